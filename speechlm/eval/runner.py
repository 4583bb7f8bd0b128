"""Run a per-utterance job over many utterances: inline for one worker, else a process pool (spawn), with
tqdm.

Each worker process sets torch to one thread and loads its models (speaker encoder, DNSMOS, ASR) once through
the per-process caches of those modules, so the cost of loading is paid once per worker, not per utterance.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TypeVar

J = TypeVar("J")
R = TypeVar("R")


def default_workers() -> int:
    """Worker processes to use: the CPUs this process may run on, at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def _init_worker() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch

    torch.set_num_threads(1)


def run_jobs(fn: Callable[[J], R], jobs: Sequence[J], workers: int = 1, desc: str = "evaluating") -> list[R]:
    """``[fn(j) for j in jobs]`` in order; ``workers > 1`` uses processes (``fn`` must be picklable)."""
    from tqdm import tqdm

    workers = max(1, min(workers, len(jobs)))
    bar = dict(total=len(jobs), desc=desc, unit="utt", disable=len(jobs) < 2, dynamic_ncols=True)
    if workers == 1:
        return [fn(j) for j in tqdm(jobs, **bar)]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(
        max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_init_worker
    ) as pool:
        return list(tqdm(pool.map(fn, jobs, chunksize=1), **bar))
