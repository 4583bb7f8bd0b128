"""The learning-rate schedule the recipes share: linear warm-up, then cosine decay to a floor."""

from __future__ import annotations

import math
import time
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


class BudgetedCosine:
    """:func:`warmup_cosine` by step, capped after warm-up by a cosine over wall time when ``max_minutes`` > 0:
    the decay ends at whichever comes first, the last step or the end of the budget, so a slower machine (or a
    shared core) still anneals instead of stopping at a high learning rate. Call :meth:`start` when the first
    step begins; :attr:`over` says the budget is spent (the trainer saves and stops)."""

    def __init__(self, warmup: int, total: int, final: float, max_minutes: float = 0.0) -> None:
        self.by_step = warmup_cosine(warmup, total, final)
        self.warmup, self.final, self.seconds = warmup, final, max_minutes * 60
        self.t0 = time.time()

    def start(self) -> None:
        self.t0 = time.time()

    @property
    def over(self) -> bool:
        return self.seconds > 0 and time.time() - self.t0 > self.seconds

    def __call__(self, step: int) -> float:
        m = self.by_step(step)
        if self.seconds > 0 and step >= self.warmup:
            frac = min(1.0, (time.time() - self.t0) / self.seconds)
            m = min(m, self.final + (1 - self.final) * 0.5 * (1 + math.cos(math.pi * frac)))
        return m
