"""Forced-alignment sanity check against known word boundaries.

Each word of a sentence is synthesised on its own with espeak-ng (a voice variant held out of the synthetic
corpus's training split), trimmed to its voiced part, and the words are concatenated with random pauses of
0-150 ms, so the true word boundaries are known to the sample. The sentence is then force-aligned with the CTC
model and the word start/end times are compared with the truth.

    .venv/bin/python benchmarks/asr_align_boundaries.py --n 30 [--model DIR] [--lang en --voice en-us+m7]

Prints the mean / median absolute boundary error and the share of boundaries within 20 / 50 / 100 ms. Words
spoken in isolation are not connected speech (no coarticulation across words), so this measures where the
aligner puts boundaries when they are acoustically clear, not its accuracy on running speech.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from speechlm.asr.transcriber import get_transcriber
from speechlm.audio.io import resample
from speechlm.data.manifest import read_manifest
from speechlm.text.normalize import normalize_for_wer

SR = 16000


def synth_word(word: str, voice: str, tmp: Path) -> np.ndarray:
    out = tmp / "w.wav"
    from speechlm.data.voices import espeak_voice_arg

    subprocess.run(["espeak-ng", "-v", espeak_voice_arg(voice), "-s", "165", "-w", str(out), word], check=True)
    wav, sr = sf.read(str(out), dtype="float32")
    wav = resample(wav, sr, SR)
    # trim to the voiced part: frames above -40 dB of the word's peak frame energy
    hop = 160
    n = len(wav) // hop
    e = np.array([np.sqrt(np.mean(wav[i * hop : (i + 1) * hop] ** 2) + 1e-12) for i in range(n)])
    on = np.flatnonzero(e > e.max() * 0.01)
    return wav[on[0] * hop : (on[-1] + 1) * hop] if len(on) else wav


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=30, help="sentences")
    ap.add_argument("--model", default=None)
    ap.add_argument("--lang", default="en")
    ap.add_argument("--voice", default="en-us+m7")
    ap.add_argument("--manifest", default="/work/data/synth_v1/manifest.jsonl", help="source of sentences")
    ap.add_argument("--json", default=None, help="write per-boundary errors here")
    args = ap.parse_args()
    torch.set_num_threads(2)
    tr = get_transcriber(args.model)
    texts = [u.text for u in read_manifest(args.manifest) if u.lang == args.lang]
    rng = random.Random(0)
    texts = rng.sample(texts, min(args.n, len(texts)))
    errs_start, errs_end, scores, base_err = [], [], [], []
    t_align = 0.0
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        for text in texts:
            words = normalize_for_wer(text, args.lang).split()
            pieces, truth, pos = [], [], 0
            lead = np.zeros(int(SR * 0.2), dtype=np.float32)
            pieces.append(lead)
            pos += len(lead)
            for w in words:
                audio = synth_word(w, args.voice, tmp)
                truth.append((pos / SR, (pos + len(audio)) / SR))
                pieces.append(audio)
                pos += len(audio)
                gap = np.zeros(int(SR * rng.uniform(0.0, 0.15)), dtype=np.float32)
                pieces.append(gap)
                pos += len(gap)
            pieces.append(np.zeros(int(SR * 0.2), dtype=np.float32))
            wav = np.concatenate(pieces)
            wav = wav + np.float32(1e-4) * np.random.default_rng(0).standard_normal(len(wav)).astype(
                np.float32
            )
            t0 = time.perf_counter()
            al = tr.align(wav, " ".join(words), args.lang)
            t_align += time.perf_counter() - t0
            if len(al.words) != len(words):
                continue  # the G2P split differs from the whitespace split (rare); skip the sentence
            scores.append(al.score)
            for (ts, te), w in zip(truth, al.words):
                errs_start.append(abs(w.start_s - ts))
                errs_end.append(abs(w.end_s - te))
            # baseline: the speech region (known) split among the words in proportion to their letters
            lo, hi = truth[0][0], truth[-1][1]
            cum = np.cumsum([0] + [len(w) for w in words]) / sum(len(w) for w in words)
            for k, (ts, te) in enumerate(truth):
                base_err.append(abs(lo + cum[k] * (hi - lo) - ts))
                base_err.append(abs(lo + cum[k + 1] * (hi - lo) - te))
    allerr = np.array(errs_start + errs_end)
    report = {
        "sentences": len(scores),
        "boundaries": int(allerr.size),
        "voice": args.voice,
        "lang": args.lang,
        "mean_abs_ms": round(1000 * float(allerr.mean()), 1),
        "median_abs_ms": round(1000 * float(np.median(allerr)), 1),
        "start_mean_abs_ms": round(1000 * float(np.mean(errs_start)), 1),
        "end_mean_abs_ms": round(1000 * float(np.mean(errs_end)), 1),
        "within_20ms": round(float((allerr <= 0.02).mean()), 3),
        "within_50ms": round(float((allerr <= 0.05).mean()), 3),
        "within_100ms": round(float((allerr <= 0.1).mean()), 3),
        "mean_score": round(float(np.mean(scores)), 3),
        "align_seconds_per_sentence": round(t_align / max(1, len(texts)), 3),
        "baseline_letters_mean_abs_ms": round(1000 * float(np.mean(base_err)), 1),
        "baseline_letters_within_50ms": round(float((np.array(base_err) <= 0.05).mean()), 3),
    }
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"report": report, "start": errs_start, "end": errs_end}))


if __name__ == "__main__":
    main()
