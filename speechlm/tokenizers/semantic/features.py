"""Frame features of the semantic tokenizer, all on one 50 Hz grid at 16 kHz.

Frame ``i`` of an utterance of ``n`` samples stands for samples ``[320 i, 320 (i + 1))``; an utterance has
``ceil(n / 320)`` frames (the codec's grid, so semantic and codec tokens line up frame by frame).

* :func:`mfcc_features`: 13 MFCCs + deltas + delta-deltas (39 dims), mean/variance normalised per utterance
  (iteration-1 k-means targets and the MFCC baseline tokenizer).
* :func:`encoder_input`: 80-band log-mel at 100 Hz (two per frame), normalised per utterance, the
  masked-prediction encoder's input. Per-utterance normalisation removes the channel and part of the speaker's
  timbre, which we want out of content units.
"""

from __future__ import annotations

import math

import numpy as np
import torch

SAMPLE_RATE = 16000
HOP = 320  # 50 Hz frames
FRAME_RATE = SAMPLE_RATE / HOP
N_MELS = 80


def num_frames(n_samples: int) -> int:
    """Frames of an utterance of ``n_samples`` samples at 16 kHz: ``ceil(n / 320)``."""
    return max(1, math.ceil(n_samples / HOP))


def _fit(x: torch.Tensor, n: int) -> torch.Tensor:
    """Crop or edge-pad ``[..., T]`` to ``[..., n]``."""
    if x.shape[-1] >= n:
        return x[..., :n]
    return torch.nn.functional.pad(x, (0, n - x.shape[-1]), mode="replicate")


def _cmvn(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-utterance mean/variance normalisation over frames of ``[D, T]``."""
    return (x - x.mean(dim=-1, keepdim=True)) / (x.std(dim=-1, keepdim=True, unbiased=False) + eps)


def _deltas(x: torch.Tensor, width: int = 2) -> torch.Tensor:
    """Regression deltas over the last axis of ``[D, T]`` (HTK formula, edges replicated)."""
    pad = torch.nn.functional.pad(x[None], (width, width), mode="replicate")[0]
    num = sum(k * (pad[:, width + k : pad.shape[1] - width + k] - pad[:, width - k : pad.shape[1] - width - k])
              for k in range(1, width + 1))
    return num / (2 * sum(k * k for k in range(1, width + 1)))


def mfcc_features(wav: np.ndarray) -> np.ndarray:
    """16 kHz mono ``[n]`` -> float32 ``[ceil(n/320), 39]`` (MFCC + delta + delta-delta, CMVN)."""
    from speechlm.audio.features import mfcc

    n = num_frames(len(wav))
    c = mfcc(np.asarray(wav, np.float32), SAMPLE_RATE, n_mfcc=13, n_fft=400, hop_length=HOP, n_mels=40)
    c = _fit(c, n)
    d = _deltas(c)
    feats = torch.cat([c, d, _deltas(d)], dim=0)
    return _cmvn(feats).T.contiguous().numpy().astype(np.float32)


def encoder_input(wav: np.ndarray) -> np.ndarray:
    """16 kHz mono ``[n]`` -> float32 ``[N_MELS, 2 * ceil(n/320)]`` normalised log-mel at 100 Hz."""
    from speechlm.audio.features import log_mel

    n = num_frames(len(wav))
    m = log_mel(np.asarray(wav, np.float32), SAMPLE_RATE, n_fft=400, hop_length=HOP // 2, n_mels=N_MELS)
    return _cmvn(_fit(m, 2 * n)).numpy().astype(np.float32)


def vtlp_matrix(alpha: float, n_mels: int = N_MELS, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Vocal-tract-length perturbation as a linear map on log-mel bins: ``W [n_mels, n_mels]``, ``W @ mel``.

    Output bin ``i`` (centre ``f_i``) reads the input at ``f_i / alpha``, linearly interpolated between bin
    centres (edges clamped): ``alpha > 1`` moves spectral structure up (a shorter vocal tract), ``< 1`` down.
    Applied to the normalised log-mel it approximates warping before normalisation, which is all an augmentation
    needs.
    """
    from speechlm.audio.features import hz_to_mel, mel_to_hz

    top = hz_to_mel(sample_rate / 2)
    centres = mel_to_hz(np.linspace(0.0, top, n_mels + 2)[1:-1])
    src = np.interp(hz_to_mel(np.clip(centres / alpha, centres[0], centres[-1])) / top * (n_mels + 1) - 1,
                    np.arange(n_mels), np.arange(n_mels))
    lo = np.floor(src).astype(int).clip(0, n_mels - 1)
    hi = (lo + 1).clip(0, n_mels - 1)
    w = np.zeros((n_mels, n_mels), np.float32)
    frac = (src - lo).astype(np.float32)
    w[np.arange(n_mels), lo] += 1 - frac
    w[np.arange(n_mels), hi] += frac
    return w
