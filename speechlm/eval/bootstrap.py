"""Bootstrap confidence intervals for the mean of a per-utterance metric and for corpus-level ratios (WER).

Both are percentile bootstraps over utterances: ``n_resamples`` index sets drawn with replacement in one
``[n_resamples, n]`` array (vectorised, seeded), so the same inputs and seed always give the same interval.
NaN values (a metric that is undefined for an utterance, e.g. F0 error with no voiced frames) are dropped
first and the count that remains is reported as ``n``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap confidence interval."""

    value: float
    low: float
    high: float
    n: int
    level: float = 0.95


def _indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_resamples, n))


def bootstrap_mean(
    values, n_resamples: int = DEFAULT_RESAMPLES, level: float = 0.95, seed: int = DEFAULT_SEED
) -> Interval:
    """Mean of ``values`` (1-D, NaNs dropped) with a percentile bootstrap CI.

    One value gives a zero-width interval; no finite values give NaNs with ``n=0``.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    n = x.size
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, level)
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, mean, mean, 1, level)
    means = x[_indices(n, n_resamples, seed)].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Interval(mean, float(lo), float(hi), n, level)


def bootstrap_ratio(
    numerators,
    denominators,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """``sum(numerators) / sum(denominators)`` with a CI from resampling the (numerator, denominator) pairs.

    This is the corpus-level WER (errors / reference words): resampling whole utterances keeps each one's
    errors with its length, which a mean of per-utterance WERs would not. Resamples whose denominator sums
    to zero are dropped.
    """
    num = np.asarray(numerators, dtype=np.float64).ravel()
    den = np.asarray(denominators, dtype=np.float64).ravel()
    if num.shape != den.shape:
        raise ValueError(f"numerators {num.shape} and denominators {den.shape} differ in shape")
    keep = ~(np.isnan(num) | np.isnan(den))
    num, den = num[keep], den[keep]
    n = num.size
    if n == 0 or den.sum() <= 0:
        return Interval(float("nan"), float("nan"), float("nan"), n, level)
    value = float(num.sum() / den.sum())
    if n == 1:
        return Interval(value, value, value, 1, level)
    idx = _indices(n, n_resamples, seed)
    d = den[idx].sum(axis=1)
    ok = d > 0
    ratios = num[idx].sum(axis=1)[ok] / d[ok]
    lo, hi = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2])
    return Interval(value, float(lo), float(hi), n, level)
