"""Seeding and RNG state capture, so runs repeat and resumed runs continue exactly.

The RNG state is a plain JSON-able dict (no pickle): Python's ``random``, NumPy's global generator, torch's
CPU generator and, when CUDA is in use, the current device's generator.
"""

from __future__ import annotations

import base64
import random
from typing import Any

import numpy as np
import torch

# Ranks > 0 get seeds far from rank 0's, so seed 1 on rank 0 is not seed 0 on rank 1.
_RANK_STRIDE = 1_000_003


def seed_everything(seed: int, rank: int = 0, deterministic: bool = False) -> int:
    """Seed python, numpy and torch (CPU and CUDA) and return the seed actually used.

    Each rank gets its own stream (``seed + rank * 1_000_003``; rank 0 uses ``seed`` exactly) so dropout and
    augmentation differ between data-parallel workers; DDP copies rank 0's initial weights to all ranks, and
    data order comes from the sampler's own seed, so neither depends on the rank. ``deterministic=True`` also
    asks torch for deterministic kernels (slower on GPU).
    """
    effective = (int(seed) + int(rank) * _RANK_STRIDE) % (2**32)
    random.seed(effective)
    np.random.seed(effective)
    torch.manual_seed(effective)  # also seeds every CUDA device
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return effective


def rng_state() -> dict[str, Any]:
    """This process's RNG states as a JSON-able dict (see :func:`set_rng_state`)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss_next": gauss},
        "numpy": {"name": name, "keys": np.asarray(keys, dtype=np.uint32).tolist(), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": _b64(torch.get_rng_state()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = _b64(torch.cuda.get_rng_state())
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the RNG states captured by :func:`rng_state` (the CUDA one only when CUDA is in use)."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    n = state["numpy"]
    np.random.set_state((n["name"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(_unb64(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(_unb64(state["cuda"]))


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _unb64(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8).clone()
