"""Discriminators for adversarial codec training: multi-period (HiFi-GAN) and multi-scale STFT (EnCodec).

Each returns, per sub-discriminator, logits and the list of intermediate feature maps (for feature matching).
Widths are small by default: they train on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

Feats = list[torch.Tensor]


class PeriodDiscriminator(nn.Module):
    """Folds the waveform ``[B, 1, T]`` into ``[B, 1, T/p, p]`` and applies 2-D convs along time."""

    def __init__(self, period: int, channels: int = 16, n_layers: int = 4) -> None:
        super().__init__()
        self.period = period
        convs, c = [], 1
        for i in range(n_layers):
            c_next = min(channels * 2**i, 256)
            convs.append(weight_norm(nn.Conv2d(c, c_next, (5, 1), (3, 1), padding=(2, 0))))
            c = c_next
        convs.append(weight_norm(nn.Conv2d(c, c, (5, 1), 1, padding=(2, 0))))
        self.convs = nn.ModuleList(convs)
        self.out = weight_norm(nn.Conv2d(c, 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Feats]:
        b, c, t = x.shape
        pad = (-t) % self.period
        x = F.pad(x, (0, pad), mode="reflect") if pad else x
        h = x.view(b, c, -1, self.period)
        feats = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.1)
            feats.append(h)
        return self.out(h).flatten(1), feats


class STFTDiscriminator(nn.Module):
    """2-D convs over the complex STFT (real and imaginary parts as channels) at one resolution."""

    def __init__(self, n_fft: int, channels: int = 16) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        c = channels
        self.convs = nn.ModuleList(
            [
                weight_norm(nn.Conv2d(2, c, (3, 9), padding=(1, 4))),
                weight_norm(nn.Conv2d(c, c, (3, 9), (1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(c, c, (3, 9), (1, 2), dilation=(2, 1), padding=(2, 4))),
                weight_norm(nn.Conv2d(c, c, (3, 9), (1, 2), dilation=(4, 1), padding=(4, 4))),
                weight_norm(nn.Conv2d(c, c, (3, 3), padding=(1, 1))),
            ]
        )
        self.out = weight_norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Feats]:
        s = torch.stft(x.squeeze(1), self.n_fft, self.n_fft // 4, window=self.window, return_complex=True)
        h = torch.stack([s.real, s.imag], dim=1).transpose(2, 3)  # [B, 2, frames, freq]
        feats = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.1)
            feats.append(h)
        return self.out(h).flatten(1), feats


class CodecDiscriminator(nn.Module):
    """All sub-discriminators; ``forward(wav [B, 1, T]) -> (logits list, feature-map lists)``."""

    def __init__(
        self,
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        mpd_channels: int = 16,
        stft_ffts: Sequence[int] = (256, 512, 1024),
        stft_channels: int = 16,
    ) -> None:
        super().__init__()
        self.discs = nn.ModuleList(
            [PeriodDiscriminator(p, mpd_channels) for p in periods]
            + [STFTDiscriminator(n, stft_channels) for n in stft_ffts]
        )

    def forward(self, wav: torch.Tensor) -> tuple[list[torch.Tensor], list[Feats]]:
        logits, feats = [], []
        for d in self.discs:
            lo, fe = d(wav)
            logits.append(lo)
            feats.append(fe)
        return logits, feats
