"""Length-bucketed batches: item indices grouped so that a padded batch stays under a frame budget."""

from __future__ import annotations

import random
from collections.abc import Sequence


def length_batches(lengths: Sequence[int], batch_frames: int, rng: random.Random) -> list[list[int]]:
    """Item lengths ``[N]`` -> batches of indices: sorted by length (ties broken at random), chunked so that
    ``len(batch) * longest <= batch_frames`` (a longer item alone still makes a batch), in random order."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i] + rng.random())
    out, cur, longest = [], [], 0
    for i in order:
        n = lengths[i]
        if cur and max(longest, n) * (len(cur) + 1) > batch_frames:
            out.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, n)
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out
