"""Pitch features for the codec encoder: a causal, streamable YIN per latent frame.

A small convolutional encoder trained on a CPU budget does not learn to detect periodicity from the waveform,
so its codes carry almost no pitch (a linear probe of log F0 from the latent reaches R^2 ~ 0.2) and the decoder
whispers. This module hands it pitch explicitly: for latent frame ``t`` (samples ``[t * hop, (t + 1) * hop)``)
it runs YIN (de Cheveigne & Kawahara 2002) on the ``2 * hop`` samples ending at the frame's end, so it needs no
look-ahead, and returns ``[normalised log F0 (0 when unvoiced), voicing strength, voiced flag]``. The encoder adds
a learned projection of them to its output before quantization, so the codes (and every token stream) carry F0.

:func:`speechlm.audio.features.f0` is the project's YIN for analysis (numpy, centred frames, parabolic
refinement); this one runs in torch on causal frames inside the model, streams, and also returns the
aperiodicity. ``codec_pitch`` was trained on exactly these features, so the two are kept apart.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from speechlm.tokenizers.codec.streaming import StreamingModule

N_PITCH_FEATURES = 3
LOG_F0_MEAN, LOG_F0_SCALE = math.log(150.0), 0.5


def yin_frames(frames: torch.Tensor, sr: int, fmin: float = 50.0, fmax: float = 550.0,
               threshold: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """YIN on frames ``[..., W]`` (integration window and largest lag ``W // 2``) -> (F0 Hz, min CMNDF) ``[...]``.

    F0 is 0 where no lag has its cumulative mean normalised difference below ``threshold`` (unvoiced).
    """
    w = frames.shape[-1]
    half = w // 2
    max_lag = min(half, int(sr / fmin))
    min_lag = max(2, int(sr / fmax))
    x = frames.float()
    n = 1 << (w + half - 1).bit_length()
    spec = torch.fft.rfft(x[..., :half], n=n).conj() * torch.fft.rfft(x, n=n)
    r = torch.fft.irfft(spec, n=n)[..., : max_lag + 1]  # r[tau] = sum_{j<half} x_j x_{j+tau}
    sq = torch.cumsum(F.pad(x * x, (1, 0)), dim=-1)  # sq[k] = sum_{j<k} x_j^2
    lags = torch.arange(max_lag + 1, device=frames.device)
    e_tau = sq[..., lags + half] - sq[..., lags]
    d = (sq[..., half : half + 1] + e_tau - 2 * r).clamp(min=0)  # difference function d(tau)
    cum = torch.cumsum(d[..., 1:], dim=-1)
    cmndf = torch.ones_like(d)
    cmndf[..., 1:] = d[..., 1:] * lags[1:] / cum.clamp(min=1e-12)
    search = cmndf[..., min_lag:]
    below = search < threshold
    any_below = below.any(dim=-1)
    first = torch.where(any_below, below.float().argmax(dim=-1), search.argmin(dim=-1))
    # Descend from the first dip to its local minimum (within a quarter of the lag).
    idx = torch.arange(search.shape[-1], device=frames.device)
    window = (idx >= first[..., None]) & (idx <= (first + first // 4 + 2)[..., None])
    best = search.masked_fill(~window, float("inf")).argmin(dim=-1)
    best_val = search.gather(-1, best[..., None])[..., 0]
    f0 = sr / (best + min_lag).float()
    voiced = any_below & (x.abs().amax(dim=-1) > 1e-4)
    return torch.where(voiced, f0, torch.zeros_like(f0)).float(), best_val.clamp(0, 1).float()


class PitchFeatures(StreamingModule):
    """wav ``[B, 1, T]`` (T a multiple of ``hop``) -> pitch features ``[B, 3, T // hop]``; streams chunk by chunk
    (each a multiple of ``hop``) carrying the last ``hop`` samples."""

    def __init__(self, hop: int, sample_rate: int) -> None:
        super().__init__()
        self.hop, self.sample_rate = hop, sample_rate

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = wav[:, 0].detach()
        zeros = x.new_zeros(x.shape[0], self.hop)
        prev = zeros if self._state is None else self._state.get("prev", zeros)
        xp = torch.cat([prev, x], dim=-1)
        if self._state is not None:
            self._state["prev"] = xp[:, -self.hop :]
        if xp.shape[-1] < 2 * self.hop:
            return x.new_zeros(x.shape[0], N_PITCH_FEATURES, 0)
        frames = xp.unfold(-1, 2 * self.hop, self.hop)  # [B, F, 2 hop]
        f0, aperiodicity = yin_frames(frames, self.sample_rate)
        voiced = (f0 > 0).to(x.dtype)
        logf0 = torch.where(f0 > 0, (f0.clamp(min=1).log() - LOG_F0_MEAN) / LOG_F0_SCALE, torch.zeros_like(f0))
        return torch.stack([logf0, 1 - aperiodicity, voiced], dim=1).to(wav.dtype)
