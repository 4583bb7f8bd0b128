"""The delay pattern (MusicGen's "delayed stacking"): codebook ``k`` is shifted right by ``k`` frames.

With the shift, one autoregressive step emits one column holding codebook 0 of frame ``t``, codebook 1 of frame
``t-1``, ... so codebook ``k`` of a frame is predicted after codebooks ``< k`` of the same frame are known, while a
step still costs one forward pass. Pure functions; :func:`undelay` inverts :func:`delay` exactly.
"""

from __future__ import annotations

import torch


def delay(codes: torch.Tensor, pad: int) -> torch.Tensor:
    """codes ``[..., K, T]`` -> delayed ``[..., K, T + K - 1]``: ``out[k, t + k] = codes[k, t]``, ``pad`` elsewhere."""
    k_cb, t = codes.shape[-2], codes.shape[-1]
    out = codes.new_full((*codes.shape[:-1], t + k_cb - 1), pad)
    for k in range(k_cb):
        out[..., k, k : k + t] = codes[..., k, :]
    return out


def undelay(delayed: torch.Tensor) -> torch.Tensor:
    """delayed ``[..., K, T + K - 1]`` -> codes ``[..., K, T]`` (the inverse of :func:`delay`)."""
    k_cb, n = delayed.shape[-2], delayed.shape[-1]
    t = n - k_cb + 1
    if t < 0:
        raise ValueError(f"a delayed grid with {k_cb} codebooks needs >= {k_cb - 1} columns, got {n}")
    return torch.stack([delayed[..., k, k : k + t] for k in range(k_cb)], dim=-2)
