"""What the source-filter codec's decoder networks buy: PESQ-WB / STOI with the envelope refiner and the spectral
post-filter, with the refiner alone, and plain (linear interpolation of the decoded token-rate parameters, WORLD's
output as it is), at every bitrate, on the wideband held-out clips.

    .venv/bin/python benchmarks/codec_sf_refiner_ab.py --model sf \
        --data data/real/pocketsphinx_testdata/manifest.jsonl --data data/real/codec2_examples/manifest.jsonl \
        --out runs/sf_refiner_ab.json

Also the ceiling of the parameterisation: WORLD analysis/synthesis of the same clips unquantised (the codec's
own analysis settings), at the 5-ms analysis rate and averaged to the 20-ms token rate (with block-mean F0,
and, for a codec that fits its token F0 to the contour, with the fitted F0 it sends).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    from speechlm.eval.codec_bench import load_clips
    from speechlm.eval.metrics import pesq_score, stoi_score
    from speechlm.tokenizers.codec.api import Codec
    from speechlm.tokenizers.source_filter.codec import HOP_FRAMES
    from speechlm.tokenizers.source_filter.world import analyze, synthesize, to_analysis_rate, to_token_rate

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="sf")
    p.add_argument("--data", action="append", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    codec = Codec.load(args.model)
    clips = [w for _, w in load_clips(args.data, "test", 40, 8.0, 16000)]

    def score(fn) -> dict[str, float]:
        ys = [fn(w) for w in clips]
        return {"pesq_wb": float(np.mean([pesq_score(w, y[: len(w)], 16000) for w, y in zip(clips, ys)])),
                "stoi": float(np.mean([stoi_score(w, y[: len(w)], 16000) for w, y in zip(clips, ys)]))}

    def unquantised(w: np.ndarray, token_rate: bool, fit_f0: bool = False) -> np.ndarray:
        fr = analyze(w, dio_threshold=codec.dio_threshold)
        if token_rate:
            fr = to_analysis_rate(to_token_rate(fr, HOP_FRAMES, fit_f0), HOP_FRAMES, len(fr))
        y = synthesize(fr.f0, fr.mcep, fr.bap)
        return np.pad(y, (0, max(0, len(w) - len(y))))

    rows = {"unquantised 5 ms": score(lambda w: unquantised(w, False)),
            "unquantised 20 ms": score(lambda w: unquantised(w, True))}
    if codec.f0_fit:  # what the codec's fitted token F0 (world.fit_token_f0) gives back before any quantiser
        rows["unquantised 20 ms, fitted F0"] = score(lambda w: unquantised(w, True, True))
    has_pf = codec.use_postfilter
    decoders = [("refiner", True, False), ("plain", False, False)]
    if has_pf:
        decoders.insert(0, ("refiner + post-filter", True, True))
    for br in codec.bitrates:
        for name, refine, post in decoders:
            codec.use_refiner, codec.use_postfilter = refine, post
            rows[f"{br:g} kbps {name}"] = score(lambda w, br=br: codec.decode(codec.encode(w, 16000, br))[0])
    codec.use_refiner, codec.use_postfilter = True, has_pf
    lines = [f"{len(clips)} wideband held-out clips, model {codec.tokenizer_id}", "",
             "| condition | PESQ-WB | STOI |", "|---|---|---|"]
    lines += [f"| {k} | {v['pesq_wb']:.3f} | {v['stoi']:.3f} |" for k, v in rows.items()]
    cmd = (f".venv/bin/python benchmarks/codec_sf_refiner_ab.py --model {args.model}"
           + "".join(f" --data {d}" for d in args.data) + f" --out {args.out}")
    Path(args.out).write_text(json.dumps({"model": codec.tokenizer_id, "clips": len(clips), "rows": rows,
                                          "command": cmd}, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
