"""Real recordings with transcripts -> a TTS training manifest with a duration for every input token.

The duration model (:mod:`speechlm.lm.acoustic`) needs each TTS input token's frames. For English they come from
the Piper voice's graph (:mod:`speechlm.data.piper`); for other languages the recordings here are real speech,
so they come from the project's CTC forced aligner (``asr_default``, :mod:`speechlm.asr.align`), the same
aligner ``speechlm edit`` uses:

1. the transcript -> TTS input tokens (:func:`~speechlm.text.tts_input.tts_tokens`: phones with stress marks,
   ``|`` between words, clause punctuation, ``<bos>``/``<eos>``);
2. its phones, grouped into words, are force-aligned to the audio (50 frames/s, the codec's frame rate;
   :meth:`~speechlm.asr.transcriber.CTCTranscriber.align`: inside a word a phone lasts until the next one's CTC
   emission, a word takes up to 60 ms of the blank frames around it);
3. every phone gets its aligned span; stress marks get none; the silence between two words goes to the
   punctuation between them (a pause), else to the ``|``; the leading silence to ``<bos>``, the trailing one to
   ``<eos>``.

An utterance is left out (and counted, by reason) when a phone of it is not in the aligner's inventory, the
alignment's mean log-probability is below ``min_score`` (a wrong transcript, usually), its text is one of the
``exclude`` texts (held-out test sentences), or it is outside ``min_s``..``max_s`` seconds.

Output: ``OUT/manifest.jsonl``, the input rows with ``tags.tts_tokens`` and ``tags.durations_s`` (seconds per
token, summing to the audio's length) and the audio path relative to ``OUT``; ``OUT/report.json`` the counts.
:func:`speechlm.lm.acoustic_data.extract_features` reads it like the Piper corpus.
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechlm.data.sentences import norm_text
from speechlm.text.symbols import BOS, EOS, WORD
from speechlm.text.tts_input import PUNCTUATION

STRESS = ("ˈ", "ˌ")
MIN_SCORE = -1.5  # mean log-probability per aligner frame below which the transcript is taken to be wrong


def is_phone(token: str) -> bool:
    return token not in (BOS, EOS, WORD, *STRESS, *PUNCTUATION)


def word_groups(tokens: list[str]) -> list[list[str]]:
    """The phones of each word of ``tokens`` (words end at ``|`` or punctuation)."""
    words, cur = [], []
    for t in tokens:
        if is_phone(t):
            cur.append(t)
        elif t == WORD or t in PUNCTUATION:
            if cur:
                words.append(cur)
            cur = []
    if cur:
        words.append(cur)
    return words


def token_durations(tokens: list[str], spans: list[tuple[float, float]], total_s: float) -> list[float]:
    """Seconds per token ``[N]`` (summing to ``total_s``) from the aligned spans of the phone tokens, in order
    (module docstring, step 3)."""
    dur = [0.0] * len(tokens)
    phone_at = [i for i, t in enumerate(tokens) if is_phone(t)]
    if len(phone_at) != len(spans):
        raise ValueError(f"{len(phone_at)} phones but {len(spans)} aligned spans")
    for i, (a, b) in zip(phone_at, spans):
        dur[i] = max(0.0, b - a)
    dur[0] = spans[0][0]  # <bos>: the leading silence
    dur[-1] = max(0.0, total_s - spans[-1][1])  # <eos>: the trailing one
    for k in range(len(phone_at) - 1):  # gaps between consecutive phones (between words; 0 inside one)
        i, j = phone_at[k], phone_at[k + 1]
        gap = max(0.0, spans[k + 1][0] - spans[k][1])
        if gap <= 0.0 or j == i + 1:
            dur[i] += gap
            continue
        between = list(range(i + 1, j))
        punct = [b for b in between if tokens[b] in PUNCTUATION]
        words = [b for b in between if tokens[b] == WORD]
        owner = punct[0] if punct else (words[0] if words else i)
        dur[owner] += gap
    scale = total_s / max(sum(dur), 1e-9)  # rounding of the spans: the tokens cover the whole file
    return [d * scale for d in dur]


@dataclass
class AlignedRow:
    tokens: list[str]
    durations_s: list[float]
    score: float


def align_utterance(transcriber, wav16: np.ndarray, text: str, lang: str, min_score: float = MIN_SCORE
                    ) -> AlignedRow | str:
    """One utterance -> its :class:`AlignedRow`, or the reason it is left out."""
    from speechlm.asr.align import AlignmentError
    from speechlm.text.tts_input import readable, tts_tokens

    tokens = tts_tokens(text, lang)
    if not readable(tokens):
        return "nothing readable"
    words = word_groups(tokens)
    if any(len(transcriber.phone_set.encode(w)[1]) != len(w) for w in words):
        return "phone not in the aligner's inventory"
    phonemes = " | ".join(" ".join(w) for w in words)
    try:
        al = transcriber.align(wav16, " ".join(f"w{i}" for i in range(len(words))), lang, phonemes=phonemes)
    except AlignmentError:
        return "audio too short for the text"
    if al.score < min_score:
        return "alignment score below the threshold"
    total = len(wav16) / 16000.0
    spans = [(p.start_s, min(p.end_s, total)) for p in al.phones]
    return AlignedRow(tokens, token_durations(tokens, spans, total), float(al.score))


def build_aligned_corpus(manifests: Iterable[str | os.PathLike], out: str | os.PathLike,
                         langs: tuple[str, ...] | None = None, exclude: Iterable[str] = (),
                         min_speaker_s: float = 0.0, min_s: float = 0.5, max_s: float = 15.0,
                         min_score: float = MIN_SCORE, progress: bool = True) -> Path:
    """Align every usable row of ``manifests`` (module docstring); returns ``OUT/manifest.jsonl``.

    ``langs``: keep only these languages; ``exclude``: transcripts never to train on (compared by
    :func:`norm_text`); ``min_speaker_s``: leave out speakers with less speech than this in the inputs."""
    from tqdm import tqdm

    from speechlm.asr.transcriber import get_transcriber
    from speechlm.audio.io import load_audio
    from speechlm.data.manifest import manifest_root, read_manifest

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    banned = {norm_text(t) for t in exclude}
    rows = []
    for m in manifests:
        root = manifest_root(m)
        rows += [(u, root) for u in read_manifest(m)]
    per_speaker = collections.Counter()
    for u, _ in rows:
        per_speaker[u.speaker] += u.duration or 0.0
    reasons: collections.Counter = collections.Counter()
    transcriber = get_transcriber()
    tmp = out / "manifest.jsonl.partial"
    kept_s: collections.Counter = collections.Counter()
    with tmp.open("w", encoding="utf-8") as f:
        for u, root in tqdm(rows, desc="align", disable=not progress):
            if langs and u.lang not in langs:
                reasons["other language"] += 1
                continue
            if not u.text or norm_text(u.text) in banned:
                reasons["held-out text" if u.text else "no transcript"] += 1
                continue
            if per_speaker[u.speaker] < min_speaker_s:
                reasons["speaker with too little speech"] += 1
                continue
            if u.duration is not None and not min_s <= u.duration <= max_s:
                reasons["duration out of range"] += 1
                continue
            path = u.audio_path(root)
            wav, _ = load_audio(path, sr=16000)
            res = align_utterance(transcriber, wav[0], u.text, u.lang, min_score)
            if isinstance(res, str):
                reasons[res] += 1
                continue
            d = json.loads(u.to_json())
            d["audio"] = os.path.relpath(path, out)
            d["tags"] = {**(d.get("tags") or {}), "tts_tokens": res.tokens,
                         "durations_s": [round(x, 4) for x in res.durations_s], "align_score": round(res.score, 3)}
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
            reasons["kept"] += 1
            kept_s[f"{u.lang}/{u.speaker}"] += len(wav[0]) / 16000.0
    os.replace(tmp, out / "manifest.jsonl")
    report = {"counts": dict(reasons), "kept_minutes": {k: round(v / 60, 1) for k, v in sorted(kept_s.items())},
              "min_score": min_score, "excluded_texts": len(banned)}
    (out / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    return out / "manifest.jsonl"
