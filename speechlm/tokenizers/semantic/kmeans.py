"""Mini-batch k-means (Sculley 2010) in torch, with k-means++ seeding on a sample.

Memory is bounded by the batch: features can be a memory-mapped or in-memory ``[N, D]`` array of hours of frames
(one hour at 50 Hz is 180k frames); only ``batch_size`` rows are on the compute path at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from speechlm.errors import SpeechLMError


@dataclass(frozen=True)
class KMeansResult:
    """centroids ``[K, D]`` float32 and the mean squared distance of the data to its nearest centroid."""

    centroids: np.ndarray
    inertia: float


def assign(x: torch.Tensor | np.ndarray, centroids: torch.Tensor | np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Nearest centroid of every row: ``x [N, D]``, ``centroids [K, D]`` -> int64 ``[N]``."""
    x = torch.as_tensor(np.asarray(x, np.float32))
    c = torch.as_tensor(np.asarray(centroids, np.float32))
    c2 = (c * c).sum(1)
    out = [torch.argmin(c2[None] - 2 * x[i : i + chunk] @ c.T, dim=1) for i in range(0, len(x), chunk)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.int64)


def _sq_dist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return ((x * x).sum(1, keepdim=True) - 2 * x @ c.T + (c * c).sum(1)[None]).clamp(min=0)


def _kmeans_pp(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding on ``x [n, D]`` (n >= k)."""
    idx = int(torch.randint(len(x), (1,), generator=gen))
    cents = [x[idx]]
    d2 = _sq_dist(x, x[idx : idx + 1])[:, 0]
    for _ in range(1, k):
        p = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full_like(d2, 1 / len(d2))
        idx = int(torch.multinomial(p, 1, generator=gen))
        cents.append(x[idx])
        d2 = torch.minimum(d2, _sq_dist(x, x[idx : idx + 1])[:, 0])
    return torch.stack(cents)


def minibatch_kmeans(
    x: np.ndarray,
    k: int,
    *,
    batch_size: int = 10000,
    steps: int = 300,
    init_size: int = 30000,
    seed: int = 0,
    show_progress: bool = False,
    lloyd_iters: int = 0,
) -> KMeansResult:
    """Cluster the rows of ``x [N, D]`` into ``k`` centroids.

    Each step draws ``batch_size`` rows, assigns them, and moves every centroid toward the mean of its rows with
    a per-centroid learning rate ``1 / count`` (so a centroid converges to the running mean of what it got).
    Centroids that stay empty after a third of the steps are re-seeded on far-away rows.

    The ``1 / count`` rate freezes centroids early (their first assignments, made when every centroid was still
    poor, weigh as much as the last); ``lloyd_iters`` full passes of Lloyd's algorithm over all of ``x`` (each
    centroid moved to the mean of its rows, in chunks: memory stays bounded) finish the job.
    """
    n = len(x)
    if k < 1 or n < k:
        raise SpeechLMError(f"k-means needs at least k={k} frames, got {n}")
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    sample = torch.from_numpy(np.asarray(x[np.sort(rng.choice(n, min(n, max(init_size, k)), replace=False))],
                                         np.float32))
    c = _kmeans_pp(sample, k, gen)
    counts = torch.zeros(k)
    from tqdm import tqdm

    for step in tqdm(range(steps), desc=f"k-means ({k})", disable=not show_progress, unit="step"):
        b = torch.from_numpy(np.asarray(x[np.sort(rng.choice(n, min(n, batch_size), replace=False))], np.float32))
        d = _sq_dist(b, c)
        a = d.argmin(1)
        bc = torch.bincount(a, minlength=k).float()
        sums = torch.zeros_like(c).index_add_(0, a, b)
        counts += bc
        hit = bc > 0
        lr = (bc[hit] / counts[hit])[:, None]
        c[hit] = (1 - lr) * c[hit] + lr * (sums[hit] / bc[hit][:, None])
        if step == steps // 3:  # re-seed dead centroids on the rows farthest from their centroid
            dead = torch.nonzero(counts == 0)[:, 0]
            if len(dead):
                far = d.min(1).values.argsort(descending=True)[: len(dead)]
                c[dead[: len(far)]] = b[far]
                counts[dead[: len(far)]] = 1
    for _ in tqdm(range(lloyd_iters), desc="Lloyd passes", disable=not show_progress, unit="pass"):
        sums, cnt = torch.zeros_like(c), torch.zeros(k)
        for i in range(0, n, 65536):
            b = torch.from_numpy(np.asarray(x[i : i + 65536], np.float32))
            a = _sq_dist(b, c).argmin(1)
            sums.index_add_(0, a, b)
            cnt += torch.bincount(a, minlength=k).float()
        c = torch.where(cnt[:, None] > 0, sums / cnt.clamp(min=1)[:, None], c)  # an empty centroid stays put
    inertia = float(np.mean([float(_sq_dist(s, c).min(1).values.mean())
                             for s in torch.split(sample, 65536)]))
    return KMeansResult(c.numpy().astype(np.float32), inertia)
