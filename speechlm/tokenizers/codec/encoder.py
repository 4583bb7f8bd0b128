"""Causal convolutional encoder (SEANet-style) with a few ConvNeXt blocks at the frame rate."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from speechlm.tokenizers.codec.pitch import N_PITCH_FEATURES, PitchFeatures
from speechlm.tokenizers.codec.streaming import CausalConv1d


class ResidualUnit(nn.Module):
    """x + conv1x1(act(dilated causal conv(act(x)))); ``[B, C, T] -> [B, C, T]``."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: int = 1) -> None:
        super().__init__()
        hidden = max(channels // 2, 8)
        self.act1 = nn.ELU()
        self.conv1 = CausalConv1d(channels, hidden, kernel_size, dilation=dilation)
        self.act2 = nn.ELU()
        self.conv2 = CausalConv1d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act2(self.conv1(self.act1(x))))


class ConvNeXtBlock(nn.Module):
    """Causal ConvNeXt block: depthwise causal conv, LayerNorm over channels, MLP, layer scale.

    ``[B, C, T] -> [B, C, T]``; its receptive field reaches ``kernel_size - 1`` frames into the past only.
    """

    def __init__(self, dim: int, kernel_size: int = 7, mult: int = 3, layer_scale: float = 0.1) -> None:
        super().__init__()
        self.dwconv = CausalConv1d(dim, dim, kernel_size, groups=dim, norm=False)
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim * mult)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(dim * mult, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)  # [B, T, C]
        h = self.fc2(self.act(self.fc1(self.norm(h)))) * self.gamma
        return x + h.transpose(1, 2)


# The latent's frames have norms in the hundreds; Adam moves a weight by ~lr per step whatever its scale, so the
# pitch projection is scaled up to let its contribution reach that size within a few hundred steps.
PITCH_GAIN = 64.0


class Encoder(nn.Module):
    """Waveform ``[B, 1, T]`` -> latent ``[B, dim, T // prod(strides)]``, causal.

    Args:
        channels: width of the first stage; doubled at every downsampling, capped at ``max_channels``.
        dim: latent size fed to the quantizer.
        strides: downsampling factors (their product is the hop length in samples).
        n_residual: residual units per stage (dilations 1, 3, 9, ...).
        n_blocks: ConvNeXt blocks at the frame rate (cheap capacity: they run at e.g. 50 Hz).
        first_residual: also put residual units in the first (full sample rate) stage.
        pitch: add a learned projection of causal YIN features (:mod:`speechlm.tokenizers.codec.pitch`) to the
            latent, so the codes carry F0 (needs ``sample_rate``).
    """

    def __init__(
        self,
        channels: int,
        dim: int,
        strides: Sequence[int],
        n_residual: int = 1,
        n_blocks: int = 2,
        max_channels: int = 512,
        kernel_size: int = 7,
        first_residual: bool = False,
        pitch: bool = False,
        sample_rate: int = 16000,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [CausalConv1d(1, channels, kernel_size)]
        c = channels
        for k, s in enumerate(strides):
            # Residual units at the full sample rate cost most of the encoder's time: optional.
            for i in range(n_residual if (k or first_residual) else 0):
                layers.append(ResidualUnit(c, dilation=3**i))
            c_next = min(c * 2, max_channels)
            layers += [nn.ELU(), CausalConv1d(c, c_next, 2 * s, stride=s)]
            c = c_next
        layers += [ConvNeXtBlock(c) for _ in range(n_blocks)]
        layers += [nn.ELU(), CausalConv1d(c, dim, 3)]
        self.net = nn.Sequential(*layers)
        # Zero biases: with default init the biases of ~15 layers swamp a speech-level input (RMS ~0.1), every
        # frame's latent points the same way, and the cosine-lookup RVQ collapses to a few codes.
        for m in self.modules():
            if isinstance(m, nn.Conv1d | nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        self.hop = 1
        for s in strides:
            self.hop *= s
        self.pitch = PitchFeatures(self.hop, sample_rate) if pitch else None
        if pitch:  # starts silent: a trained encoder warm-starts unchanged
            self.pitch_proj = nn.Conv1d(N_PITCH_FEATURES, dim, 1)
            nn.init.zeros_(self.pitch_proj.weight)
            nn.init.zeros_(self.pitch_proj.bias)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """wav ``[B, 1, T]`` (T a multiple of the hop) -> ``[B, dim, T // hop]``."""
        z = self.net(wav)
        if self.pitch is not None:
            z = z + PITCH_GAIN * self.pitch_proj(self.pitch(wav))
        return z
