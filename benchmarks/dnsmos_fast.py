"""DNSMOS P.835 computed once per clip (``speechlm.eval.dnsmos_shared``) against the per-window loop.

    .venv/bin/python benchmarks/dnsmos_fast.py --constructed runs/bench/pm_dev_base/constructed

Development data only (the seed-1 constructed set the pipeline's choices are made on): from each file, clips of
3-9 s ("short", cut to whole 10-ms frames as the pipeline's filter does) and of 10-30 s ("long"), its speech stem
mixed with its own background at an SNR drawn from 5, 10, 15, 20, 30 dB or none, so that OVRL spreads across the
pipeline's 2.5 gate. Each way is timed on one thread; the reference is the per-window loop with the reference's
1-s hop. Prints a table per length.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np


def _ways():
    from speechlm.eval import mos

    scorer = mos._dnsmos()

    def loop(x, hop):
        audio = mos._tiled(x)
        raws = [scorer.onnx_sess.run(None, {"input_1": audio[s * 16000: s * 16000 + mos._window_samples()][None]})
                [0][0] for s in mos._window_starts(x.size, hop)]
        return float(np.mean([mos._polyfit(scorer, r)[0] for r in raws]))

    return {
        "per-window loop, 1-s hop (reference)": lambda x: loop(x, 1.0),
        "per-window loop, 3-s hop (the pipeline before)": lambda x: loop(x, 3.0),
        "shared, float32 (onnxruntime)": lambda x: mos.dnsmos(x, 16000, p808=False).ovrl,
        "shared, bfloat16 front (torch)": lambda x: mos.dnsmos(x, 16000, p808=False, bf16=True).ovrl,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--constructed", required=True, help="a constructed set's folder (truth.json and stems/)")
    p.add_argument("--per-file", type=int, default=2, help="clips of each length per file")
    p.add_argument("--gate", type=float, default=2.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the numbers here too")
    a = p.parse_args()

    import torch
    from tqdm import tqdm

    from speechlm.audio.io import load_audio
    from speechlm.eval.dnsmos_shared import native_bf16

    torch.set_num_threads(1)
    root = Path(a.constructed)
    truth = json.loads((root / "truth.json").read_text())
    rng = random.Random(a.seed)
    clips = {"short": [], "long": []}
    for f in truth["files"]:
        speech = load_audio(root / f["speech_stem"], sr=16000)[0][0]
        bg = load_audio(root / f["background_stem"], sr=16000)[0][0]
        for kind, (lo, hi) in (("short", (3, 9)), ("long", (10, 30))):
            for _ in range(a.per_file):
                snr = rng.choice([5, 10, 15, 20, 30, None])
                x = speech if snr is None else speech + bg * np.float32(
                    np.sqrt(np.mean(speech ** 2) / (np.mean(bg ** 2) + 1e-12) / 10 ** (snr / 10)))
                length = min(rng.uniform(lo, hi), x.size / 16000 - 0.5)
                start = rng.uniform(0, x.size / 16000 - length)
                clip = x[int(start * 16000): int(start * 16000) + int(length * 100) * 160].astype(np.float32)
                if np.any(clip) and clip.size >= lo * 16000:
                    clips[kind].append(clip / max(1.0, float(np.abs(clip).max())))  # as dnsmos() scales it
    ways = _ways()
    if not native_bf16():
        ways.pop("shared, bfloat16 front (torch)")
        print("this CPU has no native bfloat16 in torch: the bfloat16 row is left out")
    out = {}
    for kind, xs in clips.items():
        audio_s = sum(x.size for x in xs) / 16000
        scores, secs = {}, {}
        for name, fn in ways.items():
            fn(xs[0])  # load sessions outside the timing
            t0 = time.perf_counter()
            scores[name] = np.array([fn(x) for x in tqdm(xs, desc=f"{kind}: {name}", leave=False)])
            secs[name] = time.perf_counter() - t0
        ref = scores[next(iter(ways))]
        print(f"\n{kind}: {len(xs)} clips, {audio_s:.0f} s of audio, from {len(truth['files'])} files of {root}")
        print("| way | seconds (one thread) | x real time | mean abs OVRL change | largest | decisions at "
              f"{a.gate} that change |")
        print("|---|---|---|---|---|---|")
        rows = []
        for name in ways:
            d = np.abs(scores[name] - ref)
            flips = int(((scores[name] < a.gate) != (ref < a.gate)).sum())
            rows.append({"way": name, "seconds": secs[name], "x_real_time": audio_s / secs[name],
                         "mean_abs_change": float(d.mean()), "max_abs_change": float(d.max()), "flips": flips})
            print(f"| {name} | {secs[name]:.1f} | {audio_s / secs[name]:.0f} | {d.mean():.4f} | {d.max():.4f} | "
                  f"{flips} of {len(xs)} |")
        out[kind] = {"clips": len(xs), "audio_s": audio_s, "rows": rows}
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
