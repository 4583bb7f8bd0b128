"""Reconstruction and adversarial losses for codec training."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from speechlm.audio.features import log_mel


def multiscale_mel_loss(x: torch.Tensor, y: torch.Tensor, sr: int, n_ffts: Sequence[int]) -> torch.Tensor:
    """L1 between log-mel spectrograms of x and y ``[B, 1, T]`` at several resolutions (hop = n_fft / 4).

    Small windows see transients, large ones harmonics; the number of mel bands grows with the window: no band
    is empty.
    """
    loss = x.new_zeros(())
    for n in n_ffts:
        n_mels = max(16, min(128, n // 8))
        mx = log_mel(x, sr, n_fft=n, hop_length=n // 4, n_mels=n_mels)
        my = log_mel(y, sr, n_fft=n, hop_length=n // 4, n_mels=n_mels)
        loss = loss + F.l1_loss(mx, my)
    return loss / len(n_ffts)


def multiscale_stft_loss(x: torch.Tensor, y: torch.Tensor, n_ffts: Sequence[int]) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1 (Parallel WaveGAN's multi-resolution STFT loss)."""
    loss = x.new_zeros(())
    xs, ys = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
    for n in n_ffts:
        w = torch.hann_window(n, device=x.device)
        mx = torch.stft(xs, n, n // 4, window=w, return_complex=True).abs().clamp(min=1e-5)
        my = torch.stft(ys, n, n // 4, window=w, return_complex=True).abs().clamp(min=1e-5)
        sc = torch.linalg.norm(my - mx) / torch.linalg.norm(my).clamp(min=1e-5)
        loss = loss + sc + F.l1_loss(mx.log(), my.log())
    return loss / len(n_ffts)


def disc_hinge_loss(real: Sequence[torch.Tensor], fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """Hinge loss for the discriminators (logits lists, one per sub-discriminator)."""
    return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake)) / len(real)


def gen_hinge_loss(fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """Generator side of the hinge loss."""
    return sum(F.relu(1 - f).mean() for f in fake) / len(fake)


def feature_matching_loss(
    real_feats: Sequence[Sequence[torch.Tensor]], fake_feats: Sequence[Sequence[torch.Tensor]]
) -> torch.Tensor:
    """Mean relative L1 between discriminator feature maps of real (detached) and generated audio."""
    total, n = 0.0, 0
    for rf, ff in zip(real_feats, fake_feats):
        for r, f in zip(rf, ff):
            r = r.detach()
            total = total + F.l1_loss(f, r) / r.abs().mean().clamp(min=1e-5)
            n += 1
    return total / max(n, 1)
