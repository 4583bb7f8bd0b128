"""Level 1 of a unit codec: a frozen ASR block plus k-means picks the unit; a learnt embedding decodes it.

A building block of :func:`speechlm.tokenizers.codec.builder.build_codec` (``CodecConfig.unit_level``). Making a
unit codec from a base codec and a ``semantic:asr`` tokenizer is :mod:`speechlm.tokenizers.hybrid.units`, which
imports this module and the builder; nothing here imports the hybrid, so the builder and the hybrid form no cycle.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from speechlm.errors import SpeechLMError


class UnitLevel(nn.Module):
    """Level 1 of a unit codec: audio -> unit ids ``[B, F]`` (frozen ASR block + k-means), ids -> ``[B, dim, F]``.

    ``spec`` (saved in the codec config as ``unit_level``): ``{"asr": {"model": ..., "features": ...},
    "layer": int, "norm": str, "clusters": K}`` (+ ``"adapter"`` when it has one), as a ``semantic:asr``
    tokenizer stores them.
    """

    def __init__(self, spec: dict, dim: int) -> None:
        super().__init__()
        from speechlm.tokenizers.semantic.supervised import ASRLayers

        try:
            self.asr = ASRLayers(spec["asr"]["model"], spec["asr"]["features"], int(spec["layer"]),
                                 spec.get("norm", "none"), spec.get("adapter"))
            k = int(spec["clusters"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SpeechLMError(f"codec unit_level spec is incomplete ({exc})") from None
        self.spec = dict(spec)
        self.register_buffer("centroids", torch.zeros(k, self.asr.cfg.d_model))
        self.embed = nn.Embedding(k, dim)
        for p in self.asr.parameters():
            p.requires_grad_(False)

    @property
    def clusters(self) -> int:
        return int(self.centroids.shape[0])

    def train(self, mode: bool = True) -> UnitLevel:
        super().train(mode)
        self.asr.eval()  # frozen: no dropout, whatever the codec is doing
        return self

    @torch.no_grad()
    def units_1d(self, wav: np.ndarray) -> np.ndarray:
        """16 kHz mono ``[n]`` -> unit ids int64 ``[ceil(n / 320)]`` (the whole input at once)."""
        from speechlm.tokenizers.semantic.kmeans import assign

        return assign(self.asr(np.asarray(wav, np.float32)), self.centroids.float().cpu().numpy())

    @torch.no_grad()
    def units(self, wav: torch.Tensor, frames: int, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """wav ``[B, 1, T]`` (each item valid up to ``lengths``) -> unit ids ``[B, frames]`` (0 past an item's end)."""
        b, _, t = wav.shape
        out = torch.zeros(b, frames, dtype=torch.long, device=wav.device)
        for i in range(b):
            n = int(lengths[i]) if lengths is not None else t
            u = torch.from_numpy(self.units_1d(wav[i, 0, :n].detach().float().cpu().numpy()))[:frames]
            out[i, : len(u)] = u.to(wav.device)
        return out

    def decode(self, units: torch.Tensor) -> torch.Tensor:
        """unit ids ``[B, F]`` -> level-1 latent ``[B, dim, F]``."""
        return self.embed(units).transpose(1, 2)
