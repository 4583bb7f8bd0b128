"""Low-latency streaming of the source-filter codec against its offline (1-s block) encode and decode.

    .venv/bin/python benchmarks/codec_sf_streaming.py --model sf \
        --data data/real/pocketsphinx_testdata/manifest.jsonl --data data/real/codec2_examples/manifest.jsonl \
        --encode-block 2 --lookahead-ms 40 --decode-block 2 --out runs/sf_streaming.json

Audio is pushed 20 ms at a time. Reports the algorithmic latency of each direction, the fraction of tokens equal
to the offline ones per stream, PESQ-WB / STOI of both round trips, 1-thread real-time factors, and the offline
tokens decoded with each ``--decode-sweep`` block size (what the decoder's latency costs), with and without the
codec's spectral post-filter (40 ms of delay). The streaming decoder skips the post-filter unless
``--stream-postfilter`` (with it, 2-frame blocks wait 140 ms).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    from speechlm.eval.codec_bench import load_clips
    from speechlm.eval.metrics import pesq_score, stoi_score
    from speechlm.tokenizers.codec.api import Codec

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="sf")
    p.add_argument("--data", action="append", required=True)
    p.add_argument("--bitrate", type=float, default=2.85)
    p.add_argument("--encode-block", type=int, default=2, help="token frames per encoded block")
    p.add_argument("--lookahead-ms", type=float, default=40.0, help="audio the encoder waits for after a block")
    p.add_argument("--decode-block", type=int, default=2, help="token frames per decoded block")
    p.add_argument("--decode-sweep", default="2,5,10,50",
                   help="also decode the offline tokens with each of these block sizes (comma-separated)")
    p.add_argument("--stream-postfilter", action="store_true", help="the streaming decoder runs the post-filter too")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    codec = Codec.load(args.model)
    clips = [w for _, w in load_clips(args.data, "test", 40, 8.0, 16000)]
    hop = codec.hop
    agree, scores = [], {"offline": [], "streaming": []}
    t_enc = t_dec = 0.0
    offline = [codec.encode(w, 16000, args.bitrate) for w in clips]  # also decoded by the sweep below
    for w, off in zip(clips, offline):
        t = time.perf_counter()
        enc = codec.stream_encoder(args.bitrate, args.encode_block, args.lookahead_ms)
        codes = [c for i in range(0, len(w), hop) for c in enc.push(w[i : i + hop])] + list(enc.flush())
        t_enc += time.perf_counter() - t
        codes = np.concatenate(codes, axis=1)
        agree.append((codes == off.codes).mean(axis=1))
        t = time.perf_counter()
        dec = codec.stream_decoder(args.decode_block, postfilter=args.stream_postfilter)
        out = [a for i in range(codes.shape[1]) for a in dec.push(codes[:, i : i + 1])] + list(dec.flush(len(w)))
        t_dec += time.perf_counter() - t
        y = np.concatenate(out)
        for name, z in (("offline", codec.decode(off)[0]), ("streaming", y)):
            scores[name].append((pesq_score(w, z, 16000), stoi_score(w, z, 16000)))
    sweep = {}
    has_pf = getattr(codec, "use_postfilter", False)
    for blk in (int(b) for b in args.decode_sweep.split(",") if b):
        for post in ((True, False) if has_pf else (False,)):
            per = []
            codec.use_postfilter = post
            for w, off in zip(clips, offline):
                z = np.concatenate(list(codec.decode_stream(off.codes.astype(np.int64), off.n_samples, blk)))
                per.append((pesq_score(w, z, 16000), stoi_score(w, z, 16000)))
            key = f"{blk}" + ("" if post or not has_pf else " no post-filter")
            sweep[key] = {"decode_latency_ms": codec.decode_latency_ms(blk), "block": blk, "postfilter": post,
                          "pesq_wb": float(np.mean([q[0] for q in per])), "stoi": float(np.mean([q[1] for q in per]))}
        codec.use_postfilter = has_pf
    if has_pf:  # the streaming decoder's latency, with or without the post-filter's delay
        codec.use_postfilter = bool(args.stream_postfilter)
    dec_latency = codec.decode_latency_ms(args.decode_block)
    codec.use_postfilter = has_pf
    secs = sum(len(w) for w in clips) / 16000
    res = {
        "model": codec.tokenizer_id, "clips": len(clips), "bitrate": args.bitrate,
        "encode_latency_ms": enc.latency_ms, "decode_latency_ms": dec_latency,
        "stream_postfilter": bool(args.stream_postfilter and has_pf),
        "offline_latency_ms": {"encode": codec.stream_encoder().latency_ms, "decode": codec.latency_ms},
        "token_agreement": dict(zip(codec.stream_names, np.mean(agree, axis=0).round(4).tolist())),
        "pesq_wb": {k: float(np.mean([s[0] for s in v])) for k, v in scores.items()},
        "stoi": {k: float(np.mean([s[1] for s in v])) for k, v in scores.items()},
        "streaming_rtf": {"encode": t_enc / secs, "decode": t_dec / secs},
        "decode_block_sweep": sweep,
    }
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
