"""Two causal decoders from quantized latents to waveform.

- :class:`ConvDecoder`: SEANet-style, transposed-conv upsampling mirroring the encoder (EnCodec/SoundStream).
- :class:`ISTFTDecoder`: Vocos-style, ConvNeXt backbone at (an upsampled) frame rate, a linear head predicting
  log-magnitude and phase, and an inverse STFT by overlap-add. It looks ``n_fft - hop`` samples ahead.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from speechlm.tokenizers.codec.encoder import ConvNeXtBlock, ResidualUnit
from speechlm.tokenizers.codec.harmonic import HarmonicControls, HarmonicFrames
from speechlm.tokenizers.codec.streaming import CausalConv1d, CausalConvTranspose1d, OverlapAdd


class ConvDecoder(nn.Module):
    """Latent ``[B, dim, F]`` -> waveform ``[B, 1, F * prod(strides)]``; no look-ahead."""

    def __init__(
        self,
        channels: int,
        dim: int,
        strides: Sequence[int],
        n_residual: int = 1,
        n_blocks: int = 2,
        max_channels: int = 512,
        kernel_size: int = 7,
        last_residual: bool = False,
    ) -> None:
        super().__init__()
        chans = [channels]
        for _ in strides:
            chans.append(min(chans[-1] * 2, max_channels))
        c = chans[-1]
        layers: list[nn.Module] = [CausalConv1d(dim, c, kernel_size)]
        layers += [ConvNeXtBlock(c) for _ in range(n_blocks)]
        for i, s in enumerate(reversed(strides)):
            c_next = chans[-2 - i]
            layers += [nn.ELU(), CausalConvTranspose1d(c, c_next, 2 * s, s)]
            last = i == len(strides) - 1
            for j in range(n_residual if (not last or last_residual) else 0):
                layers.append(ResidualUnit(c_next, dilation=3**j))
            c = c_next
        layers += [nn.ELU(), CausalConv1d(c, 1, kernel_size), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.lookahead = 0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z ``[B, dim, F]`` -> wav ``[B, 1, F * hop]``."""
        return self.net(z)


class ISTFTDecoder(nn.Module):
    """Latent ``[B, dim, F]`` -> waveform ``[B, 1, F * hop]`` through a predicted complex spectrum.

    Args:
        width: ConvNeXt width.
        n_blocks: ConvNeXt blocks.
        hop: samples per latent frame (the encoder's hop).
        upsample: latent frames are upsampled by this (transposed conv) first, so the iSTFT hop is
            ``hop // upsample`` and ``n_fft = 4 * that``.
        harmonics: if > 0, a harmonic oscillator bank with this many partials adds a phase-continuous voiced
            source to every frame (:mod:`speechlm.tokenizers.codec.harmonic`); needs ``sample_rate``.
    """

    def __init__(self, dim: int, width: int, n_blocks: int, hop: int, upsample: int = 2, harmonics: int = 0,
                 sample_rate: int = 16000) -> None:
        super().__init__()
        if hop % upsample:
            raise ValueError("hop must be divisible by upsample")
        self.stft_hop = hop // upsample
        self.n_fft = 4 * self.stft_hop
        self.inp = CausalConv1d(dim, width, 7)
        self.up = (
            CausalConvTranspose1d(width, width, 2 * upsample, upsample) if upsample > 1 else nn.Identity()
        )
        self.blocks = nn.Sequential(*[ConvNeXtBlock(width) for _ in range(n_blocks)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, self.n_fft + 2)
        self.ola = OverlapAdd(self.n_fft, self.stft_hop)
        self.lookahead = self.n_fft - self.stft_hop
        self.sample_rate = sample_rate
        self.harmonics = harmonics
        if harmonics:
            self.controls = HarmonicControls(width, harmonics)
            self.oscillators = HarmonicFrames(self.n_fft, self.stft_hop, sample_rate)

    def forward(self, z: torch.Tensor, return_controls: bool = False, f0_ref: torch.Tensor | None = None):
        """z ``[B, dim, F]`` -> wav ``[B, 1, F * hop]`` (streaming: less until the look-ahead fills).

        With ``return_controls`` (harmonic decoders): ``(wav, controls)``, controls holding ``f0`` (Hz),
        ``voiced_logit`` ``[B, F']`` and ``amps`` ``[B, K, F']`` at the iSTFT frame rate; frame ``i`` is centred
        on output sample ``(i - 1) * stft_hop`` (the look-ahead). ``f0_ref`` ``[B, F']``: known F0 for the
        oscillators (teacher forcing; 0 = use the prediction).
        """
        h = self.blocks(self.up(self.inp(z)))
        h = self.norm(h.transpose(1, 2))  # [B, F', width]
        logmag, phase = self.head(h).chunk(2, dim=-1)
        # exp of a clamped log-magnitude keeps early training from overflowing (as in Vocos).
        mag = torch.exp(logmag.clamp(max=6.0))
        spec = torch.polar(mag, phase)  # [B, F', n_fft/2 + 1]
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=-1).transpose(1, 2)  # [B, n_fft, F']
        controls = None
        if self.harmonics:
            controls = self.controls(h, self.sample_rate, f0_ref)
            frames = frames + self.oscillators(controls["f0_osc"], controls["amps"])
        wav = self.ola(frames).unsqueeze(1)
        return (wav, controls) if return_controls else wav

    def flush(self) -> torch.Tensor:
        """End of a stream: the held-back samples ``[B, 1, n]``."""
        out = self.ola.flush()
        return out.unsqueeze(1) if out.ndim == 2 else out.reshape(1, 1, -1)
