"""The masked-prediction encoder (HuBERT at small scale): conv front end, masked transformer, target head.

Input is normalised log-mel at 100 Hz (:func:`~speechlm.tokenizers.semantic.features.encoder_input`); a strided
convolution brings it to 50 Hz frames; masked spans are replaced by a learned embedding before the transformer
and the head predicts the discrete target (a k-means unit) of every frame. Only masked frames are scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class EncoderConfig:
    """Sizes of the masked-prediction encoder."""

    n_mels: int = 80
    dim: int = 192
    layers: int = 6
    heads: int = 4
    ff_mult: int = 4
    dropout: float = 0.1
    pos_kernel: int = 31
    n_targets: int = 100


class MaskedPredictionEncoder(nn.Module):
    """Log-mel ``[B, n_mels, 2T]`` -> hidden states ``[B, T, dim]`` per layer, and target logits."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.cfg = cfg
        self.frontend = nn.Sequential(
            nn.Conv1d(cfg.n_mels, d, 3, padding=1), nn.GELU(),
            nn.Conv1d(d, d, 4, stride=2, padding=1), nn.GELU(),  # 100 Hz -> 50 Hz: 2T in, T out
        )
        self.in_norm = nn.LayerNorm(d)
        self.mask_emb = nn.Parameter(torch.randn(d) * 0.02)
        self.pos_conv = nn.Conv1d(d, d, cfg.pos_kernel, padding=cfg.pos_kernel // 2, groups=16)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d, cfg.heads, cfg.ff_mult * d, cfg.dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(cfg.layers)
        )
        self.out_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.n_targets)

    def forward(self, mel: torch.Tensor, mask: torch.Tensor | None = None, n_layers: int | None = None
                ) -> list[torch.Tensor]:
        """mel ``[B, n_mels, 2T]``, mask ``[B, T]`` bool (True: hidden) -> hidden states: index 0 is the front
        end's output, index ``l`` the raw output of transformer layer ``l`` (``[B, T, dim]`` each; the final
        norm is applied only by :meth:`logits`, so a layer's features do not depend on how many layers follow
        it). ``n_layers`` stops early (feature extraction from an intermediate layer)."""
        x = self.in_norm(self.frontend(mel).transpose(1, 2))
        if mask is not None:
            x = torch.where(mask[..., None], self.mask_emb.to(x.dtype), x)
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        states = [x]
        last = len(self.layers) if n_layers is None else n_layers
        for layer in self.layers[:last]:
            x = layer(x)
            states.append(x)
        return states

    def logits(self, mel: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """mel ``[B, n_mels, 2T]`` -> target logits ``[B, T, n_targets]``."""
        return self.head(self.out_norm(self.forward(mel, mask)[-1]))


def span_mask(batch: int, frames: int, prob: float, span: int, generator: torch.Generator | None = None
              ) -> torch.Tensor:
    """HuBERT/wav2vec 2.0 masking: each frame starts a ``span``-frame masked span with probability ``prob``
    (spans may overlap; about ``1 - (1 - prob) ** span`` of frames end up masked). -> bool ``[B, T]``."""
    starts = torch.rand(batch, frames, generator=generator) < prob
    mask = torch.zeros(batch, frames + span, dtype=torch.bool)
    for k in range(span):
        mask[:, k : k + frames] |= starts
    mask = mask[:, :frames]
    empty = ~mask.any(1)
    if empty.any():  # at least one span per row, so every row is scored
        mask[empty, : min(span, frames)] = True
    return mask


@torch.no_grad()
def layer_features(model: MaskedPredictionEncoder, mel: np.ndarray, layer: int, window: int = 1000,
                   context: int = 100) -> np.ndarray:
    """Layer ``layer`` output for one utterance: mel ``[n_mels, 2T]`` -> float32 ``[T, dim]``.

    Long inputs run in windows of ``window`` frames with ``context`` frames of context on each side (bounded
    attention memory; the window edges see the same context as in one pass, up to ``context`` frames).
    """
    t = mel.shape[1] // 2
    x = torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))[None]
    if t <= window + 2 * context:
        return model(x, n_layers=layer)[layer][0].numpy()
    out = []
    for a in range(0, t, window):
        lo, hi = max(0, a - context), min(t, a + window + context)
        h = model(x[..., 2 * lo : 2 * hi], n_layers=layer)[layer][0]
        out.append(h[a - lo : a - lo + min(window, t - a)])
    return torch.cat(out).numpy()
