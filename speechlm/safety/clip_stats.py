"""Whole-clip statistics for the synthetic-speech detector: a second view beside the segment network.

The network (:class:`speechlm.safety.detector.DetectorNet`) sees 2-s segments through convolutions a few hundred
milliseconds wide. A few things a synthesizer gets wrong are properties of the whole clip: how much each band
varies and how fast (its modulation spectrum: syllable-rate energy, too-smooth or too-regular envelopes), how the
phase behaves on average, how steady the pitch is. :func:`clip_statistics` summarises a clip in a fixed vector of
those; :class:`ClipHead` is a logistic regression on it (standardised), trained by
:func:`speechlm.safety.detector_train.fit_clip_head` and averaged with the network's logit
(``NetConfig.clip_weight``). A linear model on hand-made statistics misses much that the network catches and
catches some of what it misses: the two make different mistakes, which is what an average needs.

The vector, for a 16-kHz clip (the first ``window_s`` seconds; :func:`clip_logit` averages longer files' windows):

- the LFB (:func:`speechlm.safety.detector.lfb`): per band, the standard deviation over time of the mean-removed
  log energy and of its frame-to-frame change (``2 * n_bands``);
- a fine spectrum (a ``hires_n_fft``-point STFT, ``hires_bins`` bins from ``hires_lo``: 31-2016 Hz at 1024 points,
  where the harmonics of a voice are resolved): the same two statistics (``2 * hires_bins``);
- the phase channels (:func:`speechlm.safety.detector.phase_features`), where the model has them: the same two
  statistics (``6 * phase_bands``);
- the cepstral pitch peak (quefrency 2.5-12.5 ms, frames within 5 nepers of the loudest): its mean height, spread,
  how often its place holds from frame to frame, its mean jump, its height's mean change, the share of frames
  kept, the 90th and 10th percentile of its height (8);
- the modulation spectrum of the LFB (the first ``mod_frames`` frames): mean magnitude in six bands of modulation
  frequency (0-4, 4-8, 8-16, 16-32, 32-64, 64-100 Hz at 100 frames a second), log, averaged over groups of four
  LFB bands (``6 * n_bands / 4``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from speechlm.safety.detector import FeatureConfig, segment_bounds
from speechlm.safety.detector import features as detector_features


@dataclass(frozen=True)
class ClipStatsConfig:
    """What :func:`clip_statistics` measures besides the detector's own features."""

    window_s: float = 6.0
    hires_n_fft: int = 1024
    hires_lo: int = 2
    hires_bins: int = 128
    mod_frames: int = 400
    mod_edges: tuple[int, ...] = (0, 8, 16, 32, 64, 128, 201)  # rfft bins of a 400-frame window
    band_group: int = 4


def dim(features: FeatureConfig, cfg: ClipStatsConfig = ClipStatsConfig()) -> int:
    """Length of :func:`clip_statistics`' vector."""
    return (2 * features.n_bands + 2 * cfg.hires_bins + 6 * features.phase_bands + 8
            + (len(cfg.mod_edges) - 1) * (features.n_bands // cfg.band_group))


def spread(x: torch.Tensor) -> torch.Tensor:
    """``[C, T] -> [2C]``: std over time of the mean-removed rows and of their frame-to-frame change."""
    x = x - x.mean(dim=1, keepdim=True)
    d = x[:, 1:] - x[:, :-1] if x.shape[1] > 1 else torch.zeros_like(x)
    return torch.cat([x.std(dim=1, unbiased=x.shape[1] > 1), d.std(dim=1, unbiased=d.shape[1] > 1)])


def _log_power(wav: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    if wav.numel() < n_fft:
        wav = torch.nn.functional.pad(wav, (0, n_fft - wav.numel()))
    spec = torch.stft(wav, n_fft, hop, window=torch.hann_window(n_fft), center=True, return_complex=True)
    return torch.log(spec.abs().pow(2) + 1e-10)  # [n_fft // 2 + 1, T']


def _pitch_peak(logspec: torch.Tensor) -> torch.Tensor:
    """Cepstral pitch-peak statistics of a ``[n_fft // 2 + 1, T]`` log power spectrum (1024-point): ``[8]``."""
    energy = logspec.mean(dim=0)
    keep = energy > energy.max() - 5.0
    ceps = torch.fft.irfft(logspec, dim=0)[40:200]  # quefrency 2.5-12.5 ms at 16 kHz: 80-400 Hz
    peak, where = ceps.max(dim=0)
    peak, where = peak[keep], where[keep].float()
    if peak.numel() < 3:
        return torch.zeros(8)
    jump = (where[1:] - where[:-1]).abs()
    return torch.stack([peak.mean(), peak.std(), (jump < 2).float().mean(), jump.clamp(max=5).mean(),
                        (peak[1:] - peak[:-1]).abs().mean(), keep.float().mean(),
                        torch.quantile(peak, 0.9), torch.quantile(peak, 0.1)])


def _modulation(bands: torch.Tensor, cfg: ClipStatsConfig) -> torch.Tensor:
    """Log modulation spectrum of ``[n_bands, T]`` log energies, per group of bands: ``[6 * n_bands / 4]``."""
    x = bands - bands.mean(dim=1, keepdim=True)
    n = cfg.mod_frames
    x = x[:, :n] if x.shape[1] >= n else torch.nn.functional.pad(x, (0, n - x.shape[1]))
    mag = torch.fft.rfft(x, dim=1).abs()
    edges = cfg.mod_edges
    m = torch.stack([mag[:, a:b].mean(dim=1) for a, b in zip(edges[:-1], edges[1:])], dim=1)  # [n_bands, 6]
    groups = bands.shape[0] // cfg.band_group
    m = torch.log(m[: groups * cfg.band_group] + 1e-6).reshape(groups, cfg.band_group, -1).mean(dim=1)
    return m.flatten()


def clip_statistics(wav: np.ndarray | torch.Tensor, features: FeatureConfig,
                    cfg: ClipStatsConfig = ClipStatsConfig()) -> torch.Tensor:
    """One clip's statistics (the module docstring).

    Args:
        wav: mono float ``[T]`` at ``features.sample_rate`` (only the first ``cfg.window_s`` seconds are read).

    Returns:
        float32 ``[dim(features, cfg)]``.
    """
    x = torch.as_tensor(np.asarray(wav, np.float32))[: int(cfg.window_s * features.sample_rate)]
    both = detector_features(x, features)  # the LFB, then the phase channels, from one STFT
    bands = both[: features.n_bands]
    fine = _log_power(x, cfg.hires_n_fft, features.hop_length)
    parts = [spread(bands), spread(fine[cfg.hires_lo : cfg.hires_lo + cfg.hires_bins])]
    if features.phase_bands:
        parts.append(spread(both[features.n_bands :]))
    parts += [_pitch_peak(fine), _modulation(bands, cfg)]
    return torch.cat(parts).float()


class ClipHead(nn.Module):
    """A logistic regression on standardised :func:`clip_statistics`: ``[B, D] -> [B]`` logits."""

    def __init__(self, n_stats: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_stats))
        self.register_buffer("std", torch.ones(n_stats))
        self.linear = nn.Linear(n_stats, 1)

    def forward(self, stats: torch.Tensor) -> torch.Tensor:
        return self.linear((stats - self.mean) / self.std).squeeze(-1)


def mix_logits(net_logit, clip_logit, weight: float):
    """The file logit: ``(1 - weight) * net_logit + weight * clip_logit`` (floats or arrays alike)."""
    return (1 - weight) * net_logit + weight * clip_logit


def fit_head(x: torch.Tensor, y: torch.Tensor, l2: float = 1e-3, max_iter: int = 500) -> ClipHead:
    """A :class:`ClipHead` fitted to statistics ``x [N, D]`` and labels ``y [N]`` (1: synthetic): standardised,
    class-balanced logistic loss + ``l2`` on the weights, L-BFGS (``max_iter`` iterations)."""
    head = ClipHead(x.shape[1])
    head.mean.copy_(x.mean(0))
    head.std.copy_(x.std(0) + 1e-6)
    z = (x - head.mean) / head.std
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    pos = float(y.mean())
    weight = torch.where(y > 0, 0.5 / pos, 0.5 / (1 - pos))
    opt = torch.optim.LBFGS([w, b], max_iter=max_iter)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y, weight=weight)
                + l2 * w.pow(2).sum())
        loss.backward()
        return loss
    opt.step(closure)
    with torch.no_grad():
        head.linear.weight.copy_(w[None])
        head.linear.bias.copy_(b)
    return head.eval()


@torch.no_grad()
def clip_logit(head: ClipHead, wav: np.ndarray, features: FeatureConfig,
               cfg: ClipStatsConfig = ClipStatsConfig()) -> float:
    """The head's logit for a file ``[T]``: the mean over its ``window_s`` windows (one for a short file; the last
    aligned to the end)."""
    seg = int(cfg.window_s * features.sample_rate)
    stats = torch.stack([clip_statistics(wav[a:b], features, cfg) for a, b in segment_bounds(len(wav), seg)])
    return float(head(stats).mean())
