"""DNSMOS of short clips scored on their own length (``tile=False``) against the reference's tiling to 9.01 s.

    .venv/bin/python benchmarks/dnsmos_own_length.py --constructed runs/bench/pm_dev_base/constructed

Development data only: 3 clips of 3-9 s from each file of a constructed set (``speechlm.pipeline.construct``;
the seed-1 set the pipeline's choices are made on), its speech stem mixed with its own background at an SNR
drawn from 5, 10, 15, 20, 30 dB or none, so that OVRL spreads across the pipeline's 2.5 gate. Prints the mean
and largest OVRL/SIG/BAK change, how many gate decisions change, and the time of each way on one thread.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--constructed", required=True, help="a constructed set's folder (truth.json and stems/)")
    p.add_argument("--per-file", type=int, default=3)
    p.add_argument("--gate", type=float, default=2.5)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    from speechlm.audio.io import load_audio
    from speechlm.eval.mos import dnsmos

    root = Path(a.constructed)
    truth = json.loads((root / "truth.json").read_text())
    rng = random.Random(a.seed)
    rows = []
    for f in truth["files"]:
        speech = load_audio(root / f["speech_stem"], sr=16000)[0][0]
        bg = load_audio(root / f["background_stem"], sr=16000)[0][0]
        for _ in range(a.per_file):
            snr = rng.choice([5, 10, 15, 20, 30, None])
            x = speech if snr is None else speech + bg * np.float32(
                np.sqrt(np.mean(speech ** 2) / (np.mean(bg ** 2) + 1e-12) / 10 ** (snr / 10)))
            length = rng.uniform(3, 9)
            start = rng.uniform(0, x.size / 16000 - length)
            clip = x[int(start * 16000): int((start + length) * 16000)].astype(np.float32)
            t0 = time.perf_counter()
            ref = dnsmos(clip, 16000)
            t1 = time.perf_counter()
            own = dnsmos(clip, 16000, tile=False)
            t2 = time.perf_counter()
            rows.append([ref.ovrl, own.ovrl, ref.sig, own.sig, ref.bak, own.bak, t1 - t0, t2 - t1])
    r = np.asarray(rows)
    silent = int((~np.isfinite(r[:, 0])).sum())  # an all-zero stretch of a speech stem has no score
    r = r[np.isfinite(r[:, 0])]
    print(f"{len(r)} clips (and {silent} silent ones left out) of 3-9 s from {len(truth['files'])} files of {root}")
    print("| score | tiled (reference) mean | own length mean | mean change | mean abs change | largest abs change |")
    print("|---|---|---|---|---|---|")
    for i, name in enumerate(("OVRL", "SIG", "BAK")):
        d = r[:, 2 * i + 1] - r[:, 2 * i]
        print(f"| {name} | {r[:, 2 * i].mean():.3f} | {r[:, 2 * i + 1].mean():.3f} | {d.mean():+.3f} | "
              f"{np.abs(d).mean():.3f} | {np.abs(d).max():.3f} |")
    changed = int(((r[:, 0] < a.gate) != (r[:, 1] < a.gate)).sum())
    print(f"decisions at OVRL {a.gate} that change: {changed} of {len(r)} (tiled rejects {(r[:, 0] < a.gate).sum()})")
    print(f"seconds, one thread: tiled {r[:, 6].sum():.1f}, own length {r[:, 7].sum():.1f} "
          f"({r[:, 6].sum() / r[:, 7].sum():.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
