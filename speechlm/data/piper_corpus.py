"""An aligned English TTS corpus spoken by the Piper voice ``en_US-joe-medium``: audio + tokens + durations.

``build_piper_corpus(out, n=2000)`` writes ``out/wav/<id>.wav`` (16 kHz mono) and ``out/manifest.jsonl``, one
line an utterance: the usual manifest fields (``id``, ``audio``, ``text``, ``lang``, ``speaker``, ``duration``,
``split``) plus ``tags.tts_tokens`` (:func:`speechlm.text.tts_input.tts_tokens`) and ``tags.durations_s`` (one
duration per token, from the voice itself: :meth:`speechlm.data.piper.PiperVoice.synthesize_tokens`).

Sentences are the offline English pool (:mod:`speechlm.data.sentences`), seeded; texts in ``exclude`` (held-out
evaluation sentences) are skipped. The voice draws its own noise (VITS), so audio and durations vary from run to
run; the manifest records what was drawn. The manifest is appended line by line and the builder resumes: ids
already in it are not made again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from speechlm.data.sentences import norm_text
from speechlm.errors import SpeechLMError

SPEAKER = "piper_en_US-joe-medium"
SAMPLE_RATE = 16000


def build_piper_corpus(out: str | os.PathLike, n: int, seed: int = 0, exclude: Iterable[str] = (),
                       length_scales: tuple[float, ...] = (1.0,), threads: int = 1, progress: bool = True) -> Path:
    """Speak ``n`` sentences into ``out`` (module docstring); ``length_scales`` are cycled (speaking rates).

    Returns the manifest path."""
    from speechlm.audio.io import resample, save_audio
    from speechlm.data.piper import joe
    from speechlm.data.sentences import SentenceSampler
    from speechlm.text.tts_input import readable, tts_tokens

    if n < 1:
        raise SpeechLMError(f"n must be at least 1, got {n}")
    out = Path(out)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.jsonl"
    done = set()
    if manifest.exists():
        done = {json.loads(line)["id"] for line in manifest.read_text().splitlines() if line.strip()}
    banned = {norm_text(t) for t in exclude}
    voice = joe(threads=threads, durations=True)
    sampler = SentenceSampler("en", seed)
    seen: set[str] = set()
    from tqdm import tqdm

    bar = tqdm(total=n, initial=min(len(done), n), desc="piper corpus", unit="utt", disable=not progress)
    i = 0
    with manifest.open("a", encoding="utf-8") as f:
        while i < n:
            sent = sampler.take(1)[0]
            key = norm_text(sent.text)
            if key in banned or key in seen:
                if len(seen) > 50 * n:
                    raise SpeechLMError("the sentence pool ran out")
                continue
            seen.add(key)
            uid = f"piper_joe_{i:05d}"
            i += 1
            if uid in done:
                continue
            tokens = tts_tokens(sent.text, "en", voice.config.espeak_voice)
            if not readable(tokens):
                continue
            scale = length_scales[i % len(length_scales)]
            audio, secs = voice.synthesize_tokens(tokens, length_scale=scale)
            wav = resample(audio, voice.sample_rate, SAMPLE_RATE)
            peak = float(np.abs(wav).max()) if wav.size else 0.0
            if peak > 0.95:
                wav = wav * (0.95 / peak)
            path = out / "wav" / f"{uid}.wav"
            save_audio(path, wav, SAMPLE_RATE)
            row = {"id": uid, "audio": f"wav/{uid}.wav", "text": sent.text, "lang": "en", "speaker": SPEAKER,
                   "duration": round(len(wav) / SAMPLE_RATE, 4), "split": "train",
                   "tags": {"source": sent.source, "engine": "piper", "length_scale": scale,
                            "tts_tokens": tokens, "durations_s": [round(float(s), 5) for s in secs]}}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            bar.update(1)
    bar.close()
    return manifest
