"""Score a CTC checkpoint on a manifest split: PER, WER, CER (per language and overall) and speed.

WER/CER use :mod:`speechlm.text.wer` (jiwer on normalised text, corpus-level: total errors / total reference
units). PER is the phone edit distance of the greedy phone output against the espeak-ng phonemes of the
reference, word boundaries removed. Timing covers decoding the audio file, features, the model and decoding,
one utterance at a time as the evaluation suite calls it.
"""

from __future__ import annotations

import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from speechlm.asr.labels import phone_tokens
from speechlm.asr.train import phonemize_utterances
from speechlm.asr.transcriber import SAMPLE_RATE, get_transcriber
from speechlm.data.manifest import manifest_root, read_manifest
from speechlm.errors import SpeechLMError


def evaluate_manifest(
    manifest: str | Path,
    split: str = "test",
    max_utts: int = 0,
    model: str | None = None,
    threads: int = 2,
    seed: int = 0,
    show: bool = True,
) -> dict:
    """Transcribe a split and return a report dict (``summary`` numbers plus ``utterances`` details)."""
    from speechlm.audio.io import load_audio
    from speechlm.text.wer import char_errors, sequence_errors, word_errors

    torch.set_num_threads(threads)
    t_start = time.perf_counter()
    tr = get_transcriber(model)
    utts = [u for u in read_manifest(manifest) if split == "all" or u.split == split]
    if not utts:
        raise SpeechLMError(f"no utterances of split {split!r} in {manifest}")
    if max_utts and len(utts) > max_utts:
        utts = random.Random(seed).sample(utts, max_utts)
    root = manifest_root(manifest)
    ref_phones = phonemize_utterances(utts, show=False)
    rows = []
    agg: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    audio_s = decode_s = 0.0
    for u, ph in tqdm(list(zip(utts, ref_phones)), desc="asr eval", file=sys.stderr, disable=not show):
        t0 = time.perf_counter()
        wav, _ = load_audio(u.audio_path(root), sr=SAMPLE_RATE)
        em = tr.emissions(wav[0])
        from speechlm.asr.decode import greedy_decode

        hyp = tr._chars_to_text(greedy_decode(torch.from_numpy(em.char))[0])
        hyp_ph = tr.phone_set.decode(greedy_decode(torch.from_numpy(em.phone))[0])
        decode_s += time.perf_counter() - t0
        audio_s += wav.shape[-1] / SAMPLE_RATE
        ref_ph = phone_tokens(ph)
        we, ce = word_errors(u.text, hyp, u.lang), char_errors(u.text, hyp, u.lang)
        pe = sequence_errors(ref_ph, hyp_ph).errors
        for key in (u.lang, "all"):
            a = agg[key]
            a["n"] += 1
            a["word_err"] += we.errors
            a["words"] += we.ref_len
            a["char_err"] += ce.errors
            a["chars"] += ce.ref_len
            a["phone_err"] += pe
            a["phones"] += len(ref_ph)
        rows.append(
            {
                "id": u.id,
                "lang": u.lang,
                "speaker": u.speaker,
                "ref": u.text,
                "hyp": hyp,
                "wer": we.rate,
                "cer": ce.rate,
                "per": pe / max(1, len(ref_ph)),
                "ref_phones": " ".join(ref_ph),
                "hyp_phones": " ".join(hyp_ph),
            }
        )
    by_lang = {
        k: {
            "n": int(a["n"]),
            "wer": _r(a["word_err"], a["words"]),
            "cer": _r(a["char_err"], a["chars"]),
            "per": _r(a["phone_err"], a["phones"]),
        }
        for k, a in sorted(agg.items())
    }
    return {
        "manifest": str(manifest),
        "split": split,
        "model": tr.source,
        "n": len(rows),
        "wer": by_lang["all"]["wer"],
        "cer": by_lang["all"]["cer"],
        "per": by_lang["all"]["per"],
        "by_lang": by_lang,
        "n_speakers": len({u.speaker for u in utts}),
        "audio_seconds": round(audio_s, 1),
        "transcribe_seconds": round(decode_s, 2),
        "rtf": round(decode_s / max(audio_s, 1e-9), 4),
        "wall_seconds": round(time.perf_counter() - t_start, 2),
        "threads": threads,
        "utterances": rows,
    }


def _r(num: float, den: float) -> float:
    return round(float(num) / den, 4) if den else float(np.nan)
