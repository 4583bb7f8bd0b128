#!/usr/bin/env python3
"""Carry acoustic feature caches to a size-capped GPU machine: 8 bits per feature instead of 32.

``pack`` merges one or more caches from ``speechlm acoustic features`` (same frame rate and F0 analysis) into
one compressed ``.npz`` whose features are quantised per dimension to 256 levels between their 0.01 % and
99.99 % quantiles (the voicing flag stays exact); ``unpack`` turns it back into an ordinary float32 cache that
``speechlm acoustic train`` reads. The rounding error is at most half a level: for the mel-cepstra about 1 %
of a dimension's range, far below what the model's L1 loss ends at.

    .venv/bin/python scripts/pack_features.py pack data/piper_joe/features20_t25.npz \\
        data/piper_joe/features20_t25_b.npz -o .devdata/features.q8.npz
    python3 scripts/pack_features.py unpack .devdata/features.q8.npz -o /tmp/features.npz   # there

Only numpy is needed, so the GPU side runs it without this project's other dependencies.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

LEVELS = 255


def pack(caches: list[str], out: str, max_utts: int = 0) -> None:
    parts = [dict(np.load(c, allow_pickle=False)) for c in caches]
    metas = [json.loads(p["meta"].tobytes().decode()) if "meta" in p else {} for p in parts]
    subs = {int(p.get("sub_frames", 1)) for p in parts}
    analyses = {json.dumps(m.get("analysis"), sort_keys=True) for m in metas}
    if len(subs) != 1 or len(analyses) != 1:
        sys.exit(f"error: the caches differ in frame rate {sorted(subs)} or F0 analysis {sorted(analyses)}")
    if any(len(m.get("speakers") or []) > 1 for m in metas):
        sys.exit("error: a cache has several speakers; packing keeps one voice (pack one-voice caches only)")
    feat = np.concatenate([p["feat"] for p in parts])
    ids, dur = np.concatenate([p["ids"] for p in parts]), np.concatenate([p["dur"] for p in parts])
    fl, tl = np.concatenate([p["feat_len"] for p in parts]), np.concatenate([p["tok_len"] for p in parts])
    if max_utts and max_utts < len(fl):
        feat, ids, dur = feat[: fl[:max_utts].sum()], ids[: tl[:max_utts].sum()], dur[: tl[:max_utts].sum()]
        fl, tl = fl[:max_utts], tl[:max_utts]
    if ids.max() > np.iinfo(np.int16).max or dur.max() > np.iinfo(np.int16).max:
        sys.exit("error: token ids or durations do not fit 16 bits")
    lo = np.quantile(feat, 1e-4, axis=0).astype(np.float32)
    hi = np.quantile(feat, 1 - 1e-4, axis=0).astype(np.float32)
    scale = np.maximum(hi - lo, 1e-6) / LEVELS
    q = np.clip(np.round((feat - lo) / scale), 0, LEVELS).astype(np.uint8)
    meta = {"manifests": sum((m.get("manifests", []) for m in metas), []), "analysis": metas[0].get("analysis"),
            "packed_from": caches}
    _write(out, np.savez_compressed, feat_q=q, lo=lo, scale=scale.astype(np.float32), ids=ids.astype(np.int16),
           dur=dur.astype(np.int16), feat_len=fl.astype(np.int32), tok_len=tl.astype(np.int32),
           sub_frames=np.array(subs.pop()), meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    err = np.abs(q * scale + lo - feat).mean(0)
    print(f"{out}: {len(fl)} utterances, {len(feat)} frames, {os.path.getsize(out) / 2**20:.1f} MiB; "
          f"mean abs rounding error / std: {float((err / (feat.std(0) + 1e-6)).mean()):.4f}")


def unpack(packed: str, out: str) -> None:
    with np.load(packed, allow_pickle=False) as z:
        feat = z["feat_q"].astype(np.float32) * z["scale"] + z["lo"]
        arrays = {"feat": feat.astype(np.float32), "ids": z["ids"].astype(np.int64), "dur": z["dur"].astype(np.int64),
                  "feat_len": z["feat_len"].astype(np.int64), "tok_len": z["tok_len"].astype(np.int64),
                  "sub_frames": z["sub_frames"], "meta": z["meta"]}
    _write(out, np.savez, **arrays)
    print(f"{out}: {len(arrays['feat_len'])} utterances, {len(feat)} frames")


def _write(out: str, save, **arrays: np.ndarray) -> None:
    """Write ``arrays`` with ``save`` (np.savez or np.savez_compressed) to a temporary sibling, then move it into
    place: a reader never sees half a file."""
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    tmp = out + ".partial.npz"
    save(tmp, **arrays)
    os.replace(tmp, out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="caches -> one 8-bit compressed file")
    p.add_argument("caches", nargs="+")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--max-utts", type=int, default=0, help="keep the first N utterances (0 = all)")
    p = sub.add_parser("unpack", help="a packed file -> a float32 cache")
    p.add_argument("packed")
    p.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    for f in getattr(args, "caches", None) or [args.packed]:
        if not os.path.isfile(f):
            sys.exit(f"error: {f}: no such file")
    if not args.output.endswith(".npz"):
        sys.exit("error: the output must be a .npz file")
    if args.cmd == "pack":
        pack(args.caches, args.output, args.max_utts)
    else:
        unpack(args.packed, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
