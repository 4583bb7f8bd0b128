"""The learning-rate schedule the recipes share: linear warm-up, then cosine decay to a floor."""

from __future__ import annotations

import math
from collections.abc import Callable


def warmup_cosine(warmup: int, total: int, final: float, *, decay_under_warmup: bool = False
                  ) -> Callable[[int], float]:
    """LR multiplier of step ``step`` (for ``torch.optim.lr_scheduler.LambdaLR``): ``(step + 1) / warmup`` during
    warm-up, then a cosine from 1 down to ``final`` at ``total`` (and ``final`` after).

    ``decay_under_warmup``: the cosine runs from step 0 (not from the end of warm-up) to ``total`` and the warm-up
    ramp multiplies it (the ASR recipe's schedule, kept so its shipped model's training replays the same)."""

    def f(step: int) -> float:
        if decay_under_warmup:
            warm = min(1.0, (step + 1) / max(1, warmup))
            t = min(1.0, step / max(1, total))
            return warm * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * t)))
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * t))

    return f
