"""Speech editing by token infilling: replace, insert or delete words of a recording.

``edit(audio, transcript, target)``: word diff between the transcript and the target (on the G2P's words) ->
word spans in the audio by forced alignment (:mod:`speechlm.asr`) -> codec frame spans (extended to the middle
of the neighbouring pauses) -> the codec LM regenerates only those spans (VoiceCraft infilling: it sees the
audio on both sides) -> the new audio of each span is spliced into the ORIGINAL waveform with short
crossfades. Samples outside the edited spans and their crossfades are copied unchanged.
"""

from __future__ import annotations

import difflib
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from speechlm.errors import SpeechLMError
from speechlm.tasks.tts import TTS, TTSInputError, load_capped, mono_finite

if TYPE_CHECKING:
    from speechlm.lm.generate import GenResult

XFADE_S = 0.01
CONTEXT_WORDS = 2  # edit_duration regenerates up to this many unchanged words on each side of a change ...
PAUSE_S = 0.1  # ... stopping at the first pause at least this long (where a splice is not heard)
MAX_EDIT_S = 60.0


class EditInputError(TTSInputError):
    """An edit request that cannot be carried out."""


@dataclass
class EditResult:
    """wav ``[T']``; spans: (start, end) samples of the regenerated parts in the output (before crossfades,
    so within ``XFADE_S`` per earlier junction) and in the input."""

    wav: np.ndarray
    sample_rate: int
    out_spans: list[tuple[int, int]]
    in_spans: list[tuple[int, int]]
    changes: list[tuple[str, str]]
    hit_cap: bool
    seconds: float


def _words(tts: TTS, text: str, lang: str) -> list[tuple[str, list[str]]]:
    from speechlm.text.g2p import phonemize_words
    from speechlm.text.normalize import normalize_text

    return [(w, list(p)) for w, p in phonemize_words(normalize_text(text, lang), lang) if p]


def _key(w: str) -> str:
    return "".join(ch for ch in w.lower() if ch.isalnum() or ch == "'")


def word_diff(src: list[str], dst: list[str]) -> list[tuple[int, int, int, int]]:
    """Changed regions ``(i1, i2, j1, j2)``: ``src[i1:i2]`` becomes ``dst[j1:j2]`` (case/punctuation ignored)."""
    sm = difflib.SequenceMatcher(a=[_key(w) for w in src], b=[_key(w) for w in dst], autojunk=False)
    return [(i1, i2, j1, j2) for op, i1, i2, j1, j2 in sm.get_opcodes() if op != "equal"]


def frame_spans(changes: list[tuple[int, int, int, int]], starts: list[float], ends: list[float], duration: float,
                frame_rate: float, n_frames: int, max_spans: int) -> list[tuple[int, int]]:
    """Changed word ranges -> codec frame spans, each reaching to the middle of the pauses around it;
    overlapping/touching spans are merged, and the closest are merged until at most ``max_spans`` remain."""
    out = []
    n = len(starts)
    for i1, i2, _, _ in changes:
        left = 0.0 if i1 == 0 else (ends[i1 - 1] + starts[i1]) / 2 if i1 < n else ends[-1]
        if i2 > i1:
            right = duration if i2 >= n else (ends[i2 - 1] + starts[i2]) / 2
        else:  # pure insertion: a short gap at the boundary
            right = left
        s = max(0, int(np.floor(left * frame_rate)))
        e = min(n_frames, int(np.ceil(right * frame_rate)))
        if i1 == 0 and i2 > i1:
            s = min(s, int(np.floor(starts[0] * frame_rate)))
        out.append((s, max(e, s)))
    out.sort()
    merged: list[list[int]] = []
    for s, e in out:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    while len(merged) > max_spans:
        gaps = [merged[i + 1][0] - merged[i][1] for i in range(len(merged) - 1)]
        i = int(np.argmin(gaps))
        merged[i] = [merged[i][0], merged[i + 1][1]]
        del merged[i + 1]
    return [(s, e) for s, e in merged]


def prepare_edit(tts, wav: np.ndarray, sr: int, sr_out: int, transcript: str, target: str, lang: str):
    """Checks and alignment shared by the editors: -> (mono audio at ``sr_out``, its seconds, the transcript's and
    the target's (word, phones), the changed word ranges :func:`word_diff`, the forced alignment)."""
    from speechlm.asr.transcriber import get_transcriber
    from speechlm.audio.io import resample
    from speechlm.text.g2p import format_phonemes

    for name, t in (("transcript", transcript), ("target", target)):
        if not t or not t.strip():
            raise EditInputError(f"the {name} is empty")
    wav = mono_finite(wav, "the audio to edit", EditInputError)
    wav = resample(wav, sr, sr_out) if sr != sr_out else wav
    dur = len(wav) / sr_out
    if dur < 0.3 or dur > MAX_EDIT_S:
        raise EditInputError(f"the audio is {dur:.2f} s long; editing takes 0.3-{MAX_EDIT_S:g} s")
    src, dst = _words(tts, transcript, lang), _words(tts, target, lang)
    if not src or not dst:
        raise EditInputError("the transcript and the target need words to read")
    changes = word_diff([w for w, _ in src], [w for w, _ in dst])
    if not changes:
        raise EditInputError("the target says the same words as the transcript: nothing to edit")
    try:
        al = get_transcriber().align(wav, " ".join(w for w, _ in src), lang, sr=sr_out,
                                     phonemes=format_phonemes(src))
    except SpeechLMError as exc:
        raise EditInputError(f"cannot align the transcript to the audio ({exc})") from None
    if len(al.words) != len(src):
        raise EditInputError(f"the aligner placed {len(al.words)} of {len(src)} words; cannot locate the edit")
    return wav, dur, src, dst, changes, al


def load_edit_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """A file to edit -> (``wav [T]``, rate); over :data:`MAX_EDIT_S` is refused before decoding."""
    return load_capped(path, MAX_EDIT_S, lambda s: EditInputError(
        f"the audio is {s:.2f} s long; editing takes 0.3-{MAX_EDIT_S:g} s"))


def edit(tts: TTS, wav: np.ndarray, sr: int, transcript: str, target: str, lang: str = "en", seed: int = 0,
         temperature: float = 1.0, top_k: int = 50, top_p: float = 0.9, retries: int = 2,
         draws: int = 4) -> EditResult:
    """Edit ``wav [T]`` (any rate; the output is at the codec's rate) so it says ``target``.

    ``draws`` candidates are sampled in one batch (VoiceCraft's recipe: an infill often overshoots, so sample
    several and choose); among those that end with their own stop token the one whose length is closest to
    the expected length (the spans' length, plus the phones added or removed at the speaker's rate) is kept.
    A draw that runs to the length cap is drawn again, up to ``retries`` times."""
    from speechlm.lm.data import text_ids
    from speechlm.lm.generate import GenRequest, generate_until_stop, max_frames_for, min_frames_for
    from speechlm.lm.sampling import SamplingConfig
    from speechlm.lm.voicecraft import infill_context, unmask
    from speechlm.text.g2p import format_phonemes, resolve_lang
    from speechlm.tokenizers.base import encode_streams

    t0 = time.perf_counter()
    lang = resolve_lang(lang)
    if tts.lm.config.layout != "voicecraft":
        raise EditInputError("editing needs a VoiceCraft-layout LM (this one is VALL-E: TTS only)")
    sr_out = tts.codec.sample_rate
    wav, dur, src, dst, changes, al = prepare_edit(tts, wav, sr, sr_out, transcript, target, lang)
    m = tts.lm.config
    vocab = m.vocab
    codes = torch.from_numpy(encode_streams(tts.codec, wav, sr_out, m.n_codebooks).codes.astype(np.int64))
    hop = tts.codec.hop
    spans = frame_spans(changes, [w.start_s for w in al.words], [w.end_s for w in al.words], dur,
                        tts.codec.frame_rate, codes.shape[1], vocab.n_masks)
    sym = tts.symbols
    ids = text_ids(sym.encode(format_phonemes(dst)), lang, m.langs, len(sym), sym.bos_id, sym.eos_id)
    # the cap: the regenerated words' phones plus what the spans already cover
    new_phones = sum(len(p) for i1, i2, j1, j2 in changes for _, p in dst[j1:j2])
    cap = max_frames_for(new_phones, tts.lm.frames_per_phone) + sum(e - s for s, e in spans)
    prefix, forced = infill_context(codes, spans, vocab)
    cfg = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p, rep_window=tts.rep_window)
    # The length the spans should have: what they cover now, plus the phones added or removed at the
    # speaker's own rate (frames per phone over the aligned words).
    old_phones = sum(len(p) for i1, i2, j1, j2 in changes for _, p in src[i1:i2])
    spoken = sum(w.end_s - w.start_s for w in al.words) * tts.codec.frame_rate
    rate = spoken / max(1, sum(len(p) for _, p in src))
    expected = max(1.0, sum(e - s for s, e in spans) + (new_phones - old_phones) * rate)
    with torch.inference_mode():
        floor = min_frames_for(new_phones // len(spans), tts.lm.frames_per_phone)
        req = GenRequest(ids, prefix, forced, cap, floor)
        draws_out = generate_until_stop(tts.lm.model, [req] * max(1, draws), vocab, cfg,
                                        torch.Generator().manual_seed(int(seed)), retries)
        res = pick_draw(draws_out, expected)
        new_codes, new_spans = unmask(res.frames, vocab)
        decoded = tts.decode(new_codes)
    out, pos, out_spans = [], 0, []
    x = int(XFADE_S * sr_out)
    total = 0
    for (s, e), (ns, ne) in zip(spans, new_spans):
        a, b = s * hop, min(e * hop, len(wav))
        keep = wav[pos:a]
        piece = decoded[ns * hop : ne * hop]
        out_start = total + len(keep)
        out.append(keep)
        out.append(piece)
        total += len(keep) + len(piece)
        out_spans.append((out_start, out_start + len(piece)))
        pos = b
    out.append(wav[pos:])
    result = _crossfade_concat(out, x)
    return EditResult(result, sr_out, out_spans, [(s * hop, min(e * hop, len(wav))) for s, e in spans],
                      [(" ".join(w for w, _ in src[i1:i2]), " ".join(w for w, _ in dst[j1:j2]))
                       for i1, i2, j1, j2 in changes], res.hit_cap, time.perf_counter() - t0)


def pick_draw(draws: list[GenResult], expected: float) -> GenResult:
    """The draw (a :class:`~speechlm.lm.generate.GenResult`) to keep: among those that stopped by themselves,
    the one whose generated length is closest to ``expected`` frames (in ratio); if all ran to the cap, the
    first."""
    ok = [d for d in draws if not d.hit_cap]
    if not ok:
        return draws[0]
    return min(ok, key=lambda d: abs(np.log(max(d.generated, 1) / expected)))


def with_context(changes: list[tuple[int, int, int, int]], spans: list[tuple[float, float]], n_dst: int,
                 words: int = CONTEXT_WORDS, pause_s: float = PAUSE_S) -> list[tuple[int, int, int, int]]:
    """Changed word ranges ``(i1, i2, j1, j2)`` (:func:`word_diff`) widened by the unchanged words joined to them in
    connected speech: up to ``words`` on each side, stopping at a pause of ``pause_s`` or more between two aligned
    words (``spans``: the recording's word (start, end) seconds). Ranges that meet are merged.

    A single regenerated word spliced between two recorded ones is often not heard at all (Whisper-base heard the
    new word in 17 of 50 held-out edits, against 36 when our TTS read the whole target); with its neighbours it is
    (docs/tts.md#editing)."""
    n_src = len(spans)

    def gap(k: int) -> float:  # the pause before recorded word k (0 < k < n_src)
        return spans[k][0] - spans[k - 1][1]

    out: list[list[int]] = []
    for i1, i2, j1, j2 in changes:
        left = 0
        while left < words and i1 - left > 0 and j1 - left > 0 and gap(i1 - left) < pause_s:
            left += 1
        right = 0
        while (right < words and i2 + right < n_src and j2 + right < n_dst
               and (i2 + right == 0 or gap(i2 + right) < pause_s)):
            right += 1
        a, b, c, d = i1 - left, i2 + right, j1 - left, j2 + right
        if out and a <= out[-1][1]:  # unchanged words between two changes map one to one: merge in both
            out[-1][1], out[-1][3] = max(out[-1][1], b), max(out[-1][3], d)
        else:
            out.append([a, b, c, d])
    return [(a, b, c, d) for a, b, c, d in out]


def _crossfade_concat(parts: list[np.ndarray], x: int) -> np.ndarray:
    """Concatenate with an ``x``-sample linear crossfade at each junction (the parts overlap by ``x``), so the
    original samples stay untouched except for the ``x`` samples before each junction."""
    out = np.asarray(parts[0], np.float32).copy()
    for p in parts[1:]:
        p = np.asarray(p, np.float32).copy()
        n = min(x, len(p), len(out))
        if n:
            ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
            out[-n:] = out[-n:] * (1 - ramp) + p[:n] * ramp
            p = p[n:]
        out = np.concatenate([out, p])
    return out


def _word_frames(tokens: list[str], dur: np.ndarray) -> list[tuple[int, int]]:
    """TTS input tokens and frames per token -> (first frame, end frame) of every word (a run of phones)."""
    from speechlm.text.symbols import BOS, EOS, WORD
    from speechlm.text.tts_input import PUNCTUATION

    bounds = np.concatenate([[0], np.cumsum(dur)])
    words, start = [], None
    for i, t in enumerate(tokens):
        phone = t not in (BOS, EOS, WORD) and t not in PUNCTUATION
        if phone and start is None:
            start = i
        if not phone and start is not None:
            words.append((int(bounds[start]), int(bounds[i])))
            start = None
    return words


def matched_pace(changes: list[tuple[int, int, int, int]], src_spans: list[tuple[float, float]],
                 dst_spans: list[tuple[float, float]], lo: float = 0.7, hi: float = 1.5) -> float:
    """How much slower (> 1) the recording speaks its unchanged words than the model speaks them: their summed
    durations, recording over model (``*_spans``: (start, end) seconds of every word), clipped to ``lo``-``hi``;
    1 when no word is unchanged. Unchanged words map one to one between the :func:`word_diff` changes."""
    rec = gen = 0.0
    i = j = 0
    for i1, i2, j1, j2 in [*changes, (len(src_spans), len(src_spans), len(dst_spans), len(dst_spans))]:
        for a, b in zip(range(i, i1), range(j, j1)):
            rec += src_spans[a][1] - src_spans[a][0]
            gen += dst_spans[b][1] - dst_spans[b][0]
        i, j = i2, j2
    return float(np.clip(rec / gen, lo, hi)) if rec > 0 and gen > 0 else 1.0


F0_EDGE_S = 0.3  # the stretch each side of a cut whose voiced pitch is compared
F0_MAX_OFFSET = 0.3  # largest log-F0 correction (about 5 semitones)


def voiced_lf0_median(feat: np.ndarray, n_mcep: int, a: int, b: int) -> float | None:
    """Median log-F0 of the voiced rows ``a:b`` (clipped to the array) of features ``[T, F]``
    (``[mcep | lf0 | vuv | ...]``); None with fewer than 3 voiced rows."""
    seg = feat[max(0, a) : min(len(feat), b)]
    v = seg[:, n_mcep + 1] > 0.5
    return float(np.median(seg[v, n_mcep])) if v.sum() >= 3 else None


def continue_f0(feat: np.ndarray, frame_s: float, rec: np.ndarray, rec_frame_s: float, n_mcep: int,
                regions: list[tuple[float, float, float, float, bool, bool]]) -> np.ndarray:
    """Generated features ``[T, F]`` (rows ``frame_s`` apart) with the log-F0 of each region to be spliced moved
    so that it meets the recording's (``rec [R, F]``, rows ``rec_frame_s`` apart) at both cuts: per region
    ``(rec_start, rec_end, gen_start, gen_end, has_left, has_right)`` in seconds, the median voiced log-F0 of the
    recording in the ``F0_EDGE_S`` before its start (after its end) against the generated piece's first (last)
    ``F0_EDGE_S``; the two offsets (one, if an edge has no voiced speech or is the recording's edge) are ramped
    across the region, at most ``F0_MAX_OFFSET`` each."""
    m = n_mcep
    out = feat.copy()

    def med(f: np.ndarray, dt: float, t0: float, t1: float) -> float | None:
        return voiced_lf0_median(f, m, int(t0 / dt), int(np.ceil(t1 / dt)))

    for r0, r1, g0, g1, left, right in regions:
        offs = []
        for ok, rec_span, gen_span in ((left, (r0 - F0_EDGE_S, r0), (g0, g0 + F0_EDGE_S)),
                                       (right, (r1, r1 + F0_EDGE_S), (g1 - F0_EDGE_S, g1))):
            a = med(rec, rec_frame_s, *rec_span) if ok else None
            b = med(feat, frame_s, *gen_span)
            offs.append(None if a is None or b is None else float(np.clip(a - b, -F0_MAX_OFFSET, F0_MAX_OFFSET)))
        if offs[0] is None and offs[1] is None:
            continue
        lo, hi = (offs[0] if offs[0] is not None else offs[1]), (offs[1] if offs[1] is not None else offs[0])
        a, b = int(g0 / frame_s), min(len(out), int(np.ceil(g1 / frame_s)))
        if b > a:
            out[a:b, m] += np.linspace(lo, hi, b - a)
    return out


def _cut_points(spans: list[tuple[float, float]], total: float) -> list[float]:
    """Word spans -> ``len + 1`` cut points: the start, the middles of the gaps between words, the end."""
    pts = [0.0] + [(a[1] + b[0]) / 2 for a, b in zip(spans[:-1], spans[1:])] + [total]
    return pts


def edit_duration(tts, wav: np.ndarray, sr: int, transcript: str, target: str, lang: str = "en",
                  adapt_steps: int = 0, match_pace: bool = True, match_f0: bool = True,
                  context_words: int = CONTEXT_WORDS, pause_s: float = PAUSE_S) -> EditResult:
    """Edit with the duration-based model (:class:`~speechlm.tasks.tts_duration.DurationTTS`): the target
    sentence is spoken in the recording's own voice (:meth:`DurationTTS.voice` of its first 20 s: the voice
    shift; with ``adapt_steps`` > 0 also the decoder adapted on them and their aligned words, which made 50
    held-out edits less intelligible, docs/tts.md#editing) and, with ``match_pace``, at the recording's tempo
    (:func:`matched_pace` of the unchanged words), with ``match_f0`` its pitch joined to the recording's at both
    cuts (:func:`continue_f0`), and the
    stretch of it that holds the changed words and the unchanged words joined to them (:func:`with_context`: up to
    ``context_words`` each side, stopping at a pause of ``pause_s``), cut
    at the middles of the pauses around them (where the model's durations put them), replaces the same stretch of
    the recording (cut the same way, after forced alignment), at the recording's loudness, with ``XFADE_S``
    crossfades. Everything else is the original audio."""
    from speechlm.text.g2p import resolve_lang
    from speechlm.text.tts_input import token_ids, tts_tokens

    t0 = time.perf_counter()
    lang = resolve_lang(lang)
    sr_out = tts.sample_rate
    wav, dur, src, dst, changes, al = prepare_edit(tts, wav, sr, sr_out, transcript, target, lang)
    tts.text_chunks(target, lang)  # the model's language and readability checks
    clip_s = min(dur, 20.0)
    clip = wav[: int(clip_s * sr_out)]
    clip_text = " ".join(w.word for w in al.words if w.end_s <= clip_s)  # what the clip says
    voice = (tts.voice(clip, sr_out, clip_text, lang, adapt_steps if clip_text.strip() else 0)
             if dur >= 1.0 else None)
    tokens = tts_tokens(target, lang)
    ids = token_ids(tokens, tts.symbols)
    hop = tts.codec.hop

    def words_at(pace: float):
        f, fd = tts.features(ids, pace, voice, lang)
        gw = [(a * hop / sr_out, b * hop / sr_out) for a, b in _word_frames(tokens, fd)]
        if len(gw) != len(dst):
            raise EditInputError(f"the target reads as {len(gw)} words but has {len(dst)}; cannot place the edit")
        return f, gw

    feat, gwords = words_at(1.0)
    if match_pace:  # the new words at the recording's own tempo (one more model pass, tens of ms)
        pace = matched_pace(changes, [(w.start_s, w.end_s) for w in al.words], gwords)
        if abs(pace - 1.0) > 0.02:
            feat, gwords = words_at(pace)
    frame_s = hop / sr_out / tts.am.sub_frames  # seconds per row of feat
    src_cut = _cut_points([(w.start_s, w.end_s) for w in al.words], dur)
    dst_cut = _cut_points(gwords, len(feat) * frame_s)
    spliced = with_context(changes, [(w.start_s, w.end_s) for w in al.words], len(dst), context_words, pause_s)
    if match_f0:
        from speechlm.lm.acoustic_data import frame_features

        # only the recording around the cuts is analysed (20-ms frames from r0)
        r0 = max(0.0, src_cut[spliced[0][0]] - F0_EDGE_S - 0.1)
        r1 = min(dur, src_cut[spliced[-1][1]] + F0_EDGE_S + 0.1)
        rec = frame_features(np.ascontiguousarray(wav[int(r0 * sr_out) : int(r1 * sr_out)], np.float64),
                             analysis=tts.am.analysis)
        feat = continue_f0(feat, frame_s, rec, hop / sr_out, tts.am.config.n_mcep,
                           [(src_cut[i1] - r0, src_cut[i2] - r0, dst_cut[j1], dst_cut[j2], i1 > 0, i2 < len(src))
                            for i1, i2, j1, j2 in spliced])
    gen = np.concatenate(list(tts.render(feat)[1]))

    def rms(x: np.ndarray) -> float:
        frames = x[: len(x) // 320 * 320].reshape(-1, 320)
        e = np.sqrt((frames.astype(np.float64) ** 2).mean(1)) if len(frames) else np.zeros(1)
        loud = e[e > e.max() * 0.1] if e.max() > 0 else e
        return float(loud.mean()) if loud.size else 0.0

    gain = rms(wav) / max(rms(gen), 1e-6)
    gain = min(gain, 0.99 / max(float(np.abs(gen).max()), 1e-6))  # never clip the new words
    parts, pos, in_spans, out_spans, total = [], 0, [], [], 0
    for i1, i2, j1, j2 in spliced:
        # cut points: i1 -> the middle of the pause before word i1 (an insertion has a == b there)
        a, b = int(src_cut[i1] * sr_out), int(src_cut[i2] * sr_out)
        ga, gb = int(dst_cut[j1] * sr_out), int(dst_cut[j2] * sr_out)
        keep = wav[pos:a]
        piece = gen[ga:gb] * gain
        parts += [keep, piece]
        out_spans.append((total + len(keep), total + len(keep) + len(piece)))
        in_spans.append((a, b))
        total += len(keep) + len(piece)
        pos = b
    parts.append(wav[pos:])
    out = _crossfade_concat(parts, int(XFADE_S * sr_out))
    return EditResult(out, sr_out, out_spans, in_spans,
                      [(" ".join(w for w, _ in src[i1:i2]), " ".join(w for w, _ in dst[j1:j2]))
                       for i1, i2, j1, j2 in changes], False, time.perf_counter() - t0)
