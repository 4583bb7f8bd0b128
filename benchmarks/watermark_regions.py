"""Where the watermark is, in a file only partly marked (an edit): detection and the reported region's edges.

A 2-s span (the shortest an edit's mark is widened to, ``watermark.MIN_MARK_S``) at a random place is marked inside
unmarked speech: held-out recordings of at least 4 s (pocketsphinx-testdata, codec2-examples, asterisk-core-sounds
en) and our TTS on sentences of 4 s or more, three spans each. Reported: how often the file is detected, the payload
exact, and how far the reported region's start and end lie from the marked span's (seconds; a missed edge counts
as the whole miss). ``--legacy`` runs the previous scheme beside it (marks only within 50 dB of the loudest block,
regions = the detecting windows merged, untrimmed), in the same run.

    .venv/bin/python benchmarks/watermark_regions.py [--n 60] [--json runs/watermark_regions.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@contextmanager
def legacy_scheme():
    """The scheme before 2026-12-05's change: chips 50 dB under the loudest left alone, regions untrimmed."""
    from speechlm.safety import watermark as W

    saved = W.SILENCE_DB, W._trim
    W.SILENCE_DB, W._trim = 50.0, (lambda evidence, counted, lo, hi, mu: (lo, hi))
    try:
        yield
    finally:
        W.SILENCE_DB, W._trim = saved


def clips(n: int) -> list[tuple[str, np.ndarray]]:
    """Up to ``n`` held-out recordings (4-10 s) and ``n // 3`` TTS sentences (>= 4 s), 16 kHz."""
    from watermark_bench import HELDOUT, SR, active, files, load16, spread

    from speechlm.data.sentences import sentence_pool
    from speechlm.tasks.tts import TTS

    out: list[tuple[str, np.ndarray]] = []
    for name, pattern in HELDOUT.items():
        got = 0
        for f in spread(files(pattern), 400):
            x = load16(f)
            if x is not None and active(x) and len(x) >= 4 * SR:
                out.append((name, x[: 10 * SR]))
                got += 1
            if got >= n // len(HELDOUT):
                break
    tts = TTS.load()
    pool = [s.text for s in sentence_pool("en") if 12 <= len(s.text.split()) <= 25]
    for s in spread(pool, 3 * n)[: n // 3]:
        y = tts.generate(s).wav.astype(np.float32)
        if len(y) >= 4 * SR:
            out.append(("ours_tts", y))
    return out


def run(items: list[tuple[str, np.ndarray]], seed: int) -> dict:
    from watermark_bench import SR

    from speechlm.safety import watermark as W

    rng = np.random.default_rng(seed)
    found, exact, err_a, err_b, stray = 0, 0, [], [], 0
    n = 0
    for _, x in items:
        for _ in range(3):
            dur = len(x) / SR
            a = float(rng.uniform(0.0, dur - W.MIN_MARK_S))
            b = a + W.MIN_MARK_S
            payload = int(rng.integers(0, 1 << 16))
            d = W.detect(W.embed(x, SR, payload, regions=[(a, b)]), SR)
            n += 1
            if not d.detected:
                continue
            found += 1
            exact += int(d.payload == payload)
            # The reported region that overlaps the mark most (a spurious one elsewhere would show as an error).
            lo, hi = max(d.regions, key=lambda r: min(r[1], b) - max(r[0], a))
            stray += sum(1 for r0, r1 in d.regions if r1 <= a or r0 >= b)  # regions outside the mark
            err_a.append(abs(lo - a))
            err_b.append(abs(hi - b))
    e = np.array(err_a + err_b)
    return {"trials": n, "detected": found / n, "payload_exact": exact / max(found, 1),
            "edge_error_median_s": float(np.median(e)) if e.size else None,
            "edge_error_mean_s": float(e.mean()) if e.size else None,
            "edge_within_0.25s": float(np.mean(e <= 0.25)) if e.size else None, "stray_regions": stray}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=60, help="held-out recordings (TTS sentences: a third of it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    items = clips(args.n)
    res = {"kind": "watermark_regions", "clips": len(items), "span_s": 2.0,
           "command": "python benchmarks/watermark_regions.py " + " ".join(sys.argv[1:])}
    res["current"] = run(items, args.seed)
    with legacy_scheme():
        res["legacy"] = run(items, args.seed)
    res["by_source"] = {k: sum(1 for s, _ in items if s == k) for k in sorted({s for s, _ in items})}
    print(to_markdown(res))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0


def to_markdown(res: dict) -> str:
    src = ", ".join(f"{k} {v}" for k, v in res.get("by_source", {}).items())
    lines = [f"{res['clips']} clips ({src}) x 3 spans of {res['span_s']:.0f} s marked inside unmarked speech; one "
             "thread", "", "| scheme | detected | payload exact | region edge error, median s | mean s | "
             "edges within 0.25 s | regions off the mark |", "|---|---|---|---|---|---|---|"]
    names = {"current": "current (quiet chips marked, regions trimmed)",
             "legacy": "before (50-dB floor, windows merged)"}
    for k in ("current", "legacy"):
        r = res[k]
        lines.append(f"| {names[k]} | {r['detected']:.3f} | {r['payload_exact']:.3f} | "
                     f"{r['edge_error_median_s']:.3f} | {r['edge_error_mean_s']:.3f} | {r['edge_within_0.25s']:.3f} | "
                     f"{r['stray_regions']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
