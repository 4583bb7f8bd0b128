"""Which unattacked held-out clips the watermark misses, by length (docs/safety.md): up to 60 clips of each
held-out set (1-8 s), marked and detected.

    .venv/bin/python benchmarks/watermark_length.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from watermark_bench import HELDOUT, SR, active, files, load16, spread

    from speechlm.safety import watermark as W

    miss, hit = [], []
    for pattern in HELDOUT.values():
        for f in spread(files(pattern), 60):
            x = load16(f)
            if x is None or not active(x) or len(x) < SR:
                continue
            x = x[: 8 * SR]
            d = W.detect(W.embed(x, SR, 1234), SR)
            (hit if d.detected else miss).append(len(x) / SR)
    print(f"{len(hit) + len(miss)} clips: missed {len(miss)}, lengths {sorted(round(m, 2) for m in miss)}; "
          f"detected {len(hit)}, shortest {min(hit):.2f} s, {100 * np.mean(np.array(hit) < 2):.0f} % of them < 2 s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
