"""Source-filter parameters as one feature vector per frame, ``[mcep | lf0 | vuv | bap]``, for models that predict
them (the duration TTS, the unit bridge), and the voice statistics a prompt is summarised by.

``mcep`` ``[n_mcep]`` (coefficient 0 = log gain), ``lf0`` the log-F0 interpolated through unvoiced frames,
``vuv`` 1 where voiced, ``bap`` the band aperiodicities in dB.
"""

from __future__ import annotations

import numpy as np

from speechlm.tokenizers.source_filter.world import Frames


def features_from_frames(f0: np.ndarray, mcep: np.ndarray, bap: np.ndarray) -> np.ndarray:
    """Token-rate source-filter parameters -> ``[T, F]`` (``[mcep | lf0 | vuv | bap]``)."""
    voiced = f0 > 0
    t = np.arange(len(f0))
    if voiced.any():
        lf0 = np.interp(t, t[voiced], np.log(f0[voiced]))
    else:
        lf0 = np.full(len(f0), np.log(120.0))
    return np.concatenate([mcep, lf0[:, None], voiced[:, None].astype(np.float32), bap], axis=1).astype(np.float32)


def frames_from_features(feat: np.ndarray, n_mcep: int) -> Frames:
    """``[T, F]`` features -> :class:`Frames` (voiced where ``vuv`` > 0.5; aperiodicity capped at 0 dB)."""
    f0 = np.where(feat[:, n_mcep + 1] > 0.5, np.exp(feat[:, n_mcep]), 0.0).astype(np.float32)
    bap = np.minimum(feat[:, n_mcep + 2 :], 0.0).astype(np.float32)
    return Frames(f0, feat[:, :n_mcep].astype(np.float32), bap)


def voice_stats(feat: np.ndarray, n_mcep: int) -> tuple[float, float, np.ndarray]:
    """(log-F0 mean, log-F0 spread, mean mel-cepstrum ``[n_mcep]``) over the voiced frames of ``[T, F]`` features
    (all frames when fewer than 5 are voiced)."""
    voiced = feat[:, n_mcep + 1] > 0.5
    if voiced.sum() < 5:
        voiced = np.ones(len(feat), bool)
    lf0 = feat[voiced, n_mcep]
    return float(lf0.mean()), float(lf0.std() + 1e-3), feat[voiced, :n_mcep].mean(0)
