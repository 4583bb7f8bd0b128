"""The shared LR schedule equals the per-recipe copies it replaced (kept here as the reference)."""

import math

import pytest

from speechlm.train.schedule import warmup_cosine


def _after_warmup(warmup: int, total: int, final: float):
    """The codec, semantic, LM, hybrid and bridge recipes' schedule before they shared one."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * t))

    return f


def _asr(max_steps: int, warmup_steps: int):
    """The ASR recipe's schedule: cosine from step 0, multiplied by the warm-up ramp, to 5 %."""

    def f(step: int) -> float:
        warm = min(1.0, (step + 1) / max(1, warmup_steps))
        progress = min(1.0, step / max(1, max_steps))
        return warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    return f


@pytest.mark.parametrize("warmup,total,final", [(0, 100, 0.1), (10, 100, 0.1), (50, 2600, 0.1), (200, 1000, 0.05),
                                                (100, 100, 0.0)])
def test_warmup_cosine_equals_the_recipe_copies(warmup, total, final):
    ours, ref = warmup_cosine(warmup, total, final), _after_warmup(warmup, total, final)
    assert [ours(s) for s in range(total + 20)] == [ref(s) for s in range(total + 20)]


@pytest.mark.parametrize("warmup,total", [(0, 100), (100, 3164), (10, 50)])
def test_decay_under_warmup_equals_the_asr_schedule(warmup, total):
    ours, ref = warmup_cosine(warmup, total, 0.05, decay_under_warmup=True), _asr(total, warmup)
    assert [ours(s) for s in range(total + 20)] == pytest.approx([ref(s) for s in range(total + 20)], abs=1e-15)


def test_shape():
    f = warmup_cosine(10, 110, 0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == 1.0 and f(10) == 1.0
    assert f(60) == pytest.approx(0.55) and f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
