"""How small the codec's tokens pack: our token entropy model against general-purpose compressors, same tokens.

    .venv/bin/python benchmarks/token_packing.py --data data/real/pocketsphinx_testdata/manifest.jsonl \
        --data data/real/codec2_examples/manifest.jsonl --out runs/bench/token_packing.json

The held-out wideband clips of the codec bench are encoded at every bitrate of the codec; each clip's codes are
then stored four ways and the rate is the bytes of all clips over their seconds: at their fixed width (the
tokens' nominal rate, bits packed tight), our packed payload (``speechlm codec encode -o X.slc``; checked to
unpack to the same codes), and the fixed-width bit string compressed by zlib (level 9), bz2 (9) and lzma
(preset 9 | extreme), each clip on its own as a file would be. Also the bits per frame of every stream under
the entropy model, and the packer's speed on one thread (pack + unpack, seconds of audio per second).
Writes ``--out`` (JSON) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import bz2
import json
import lzma
import sys
import time
import zlib
from pathlib import Path

import numpy as np


def fixed_width_bytes(codes: np.ndarray, cardinalities: list[int]) -> bytes:
    """``codes [k, T]`` as a bit string, frame by frame, each stream at ``ceil(log2(cardinality))`` bits."""
    widths = [int(np.ceil(np.log2(c))) for c in cardinalities[: codes.shape[0]]]
    bits = [np.unpackbits(np.asarray(codes[i], ">u2").view(np.uint8).reshape(-1, 2), axis=1)[:, 16 - w:]
            for i, w in enumerate(widths)]
    return np.packbits(np.concatenate(bits, axis=1).reshape(-1)).tobytes()


def main() -> int:
    import torch
    from tqdm import tqdm

    sys.path.insert(0, str(Path(__file__).parent))
    from render_tables import token_packing

    from speechlm.eval.codec_bench import load_clips
    from speechlm.tokenizers.codec.api import Codec, resolve_model_dir
    from speechlm.tokenizers.packed import entropy_model_for, pack

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--data", action="append", required=True)
    p.add_argument("--max-seconds", type=float, default=8.0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    codec = Codec.load(args.model)
    em = entropy_model_for(resolve_model_dir(args.model), codec.tokenizer_id)
    clips = [w for _, w in load_clips(args.data, "test", 40, args.max_seconds, min_rate=16000)]
    seconds = sum(len(w) for w in clips) / 16000
    rows, pack_s = [], 0.0
    stream_bits = np.zeros(codec.num_codebooks)
    for br in codec.bitrates:
        sizes = dict.fromkeys(("fixed", "ours", "zlib", "bz2", "lzma"), 0)
        for w in tqdm(clips, desc=f"{br:g} kbps", leave=False):
            tok = codec.encode(w, 16000, bitrate=br)
            raw = fixed_width_bytes(tok.codes, codec.cardinalities)
            t = time.perf_counter()
            data, info = pack(tok, em)
            back = em.unpack(data[info.header_bytes:], *tok.codes.shape)
            pack_s += time.perf_counter() - t
            if not np.array_equal(back, tok.codes):
                raise RuntimeError("packed tokens did not unpack to the same codes")
            sizes["fixed"] += len(raw)
            sizes["ours"] += info.payload_bytes
            sizes["zlib"] += len(zlib.compress(raw, 9))
            sizes["bz2"] += len(bz2.compress(raw, 9))
            sizes["lzma"] += len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME))
            if tok.num_codebooks == codec.num_codebooks:
                stream_bits += em.bits(tok.codes)
        rows.append({"bitrate": br, **{k: round(v * 8 / seconds / 1000, 3) for k, v in sizes.items()}})
    frames = sum(codec.n_frames(len(w)) for w in clips)
    res = {
        "model": codec.tokenizer_id, "entropy_model": em.id, "clips": len(clips), "seconds": round(seconds, 2),
        "rows": rows,
        "bits_per_frame": {n: round(float(b) / frames, 2) for n, b in zip(codec.stream_names, stream_bits)},
        "fixed_bits": {n: int(np.ceil(np.log2(c))) for n, c in zip(codec.stream_names, codec.cardinalities)},
        "pack_unpack_x_realtime": round(seconds * len(codec.bitrates) / pack_s, 1),
        "command": ".venv/bin/python benchmarks/token_packing.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(token_packing(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
