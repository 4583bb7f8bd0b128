"""Greedy (best-path) CTC decoding: argmax per frame, merge repeats, drop blanks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

BLANK = 0


def ctc_collapse(path: Sequence[int] | np.ndarray, blank: int = BLANK) -> list[int]:
    """Collapse a frame-level label path: merge runs of the same label, then remove blanks.

    ``[0, 3, 3, 0, 3, 5, 5] -> [3, 3, 5]`` (a blank between two 3s keeps them apart).
    """
    out: list[int] = []
    prev = None
    for p in (int(x) for x in path):
        if p != prev and p != blank:
            out.append(p)
        prev = p
    return out


def greedy_decode(logprobs: Tensor, lengths: Tensor | None = None, blank: int = BLANK) -> list[list[int]]:
    """Best-path decoding of a batch.

    Args:
        logprobs: ``[B, T, V]`` (log-)probabilities; ``[T, V]`` is treated as a batch of one.
        lengths: ``[B]`` valid frames (all ``T`` when None).
        blank: the blank index.
    Returns:
        one list of label ids per utterance.
    """
    if logprobs.dim() == 2:
        logprobs = logprobs.unsqueeze(0)
    b, t, _ = logprobs.shape
    if lengths is None:
        lengths = torch.full((b,), t, dtype=torch.long)
    best = logprobs.argmax(-1).cpu().numpy()
    return [ctc_collapse(best[i, : int(lengths[i])], blank) for i in range(b)]
