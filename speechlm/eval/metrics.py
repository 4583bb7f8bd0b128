"""Signal metrics between a reference and a degraded/generated waveform: PESQ, STOI, SI-SDR, mel distance,
MCD, F0 error and voicing error; plus the DTW they use when the two signals are not sample-aligned.

Conventions (all functions take mono float numpy ``[T]`` at one sample rate ``sr``):
- *Sample-aligned* metrics (PESQ, STOI, SI-SDR, mel distance, and F0/voicing in :func:`f0_metrics` with
  ``use_dtw=False``) first trim both signals to the shorter length (:func:`trim_to_min`): a codec may add or
  drop a few samples at the end. They are meant for codec / enhancement pairs, not for TTS output.
- *Alignment-free* metrics (:func:`mcd` and :func:`f0_metrics` with ``use_dtw=True``) align MFCC frames with
  dynamic time warping first; use these for generated speech whose timing differs from the reference.
- Undefined results (silent input, no voiced frames, PESQ finding no utterance) are ``nan``, never an
  exception: the report drops NaNs from means and says how many values remained.

Limits: SI-SDR is capped at :data:`SI_SDR_CAP_DB` (100 dB), so identical signals (or a scaled copy) give
exactly the cap instead of +inf. MCD here is MFCC-based (natural-log magnitude mel, 40 bands, orthonormal DCT
rescaled to cepstral units, c1..c12, 10 ms frames, averaged over the DTW path): numbers are comparable between
runs of this code, not with SPTK ``mcep``-based MCD from other papers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from speechlm.errors import MissingDependencyError

SI_SDR_CAP_DB = 100.0
# Frame setup of the cepstral/F0 metrics at 16 kHz: 32 ms window, 10 ms hop.
MCD_N_FFT = 512
MCD_HOP = 160
MCD_N_MELS = 40
MCD_N_MFCC = 13
F0_FMIN = 50.0
F0_FMAX = 550.0
CLEAR_VOICING_THRESHOLD = 0.08  # half of YIN's voicing threshold (0.15): a frame no codec should unvoice
_MCD_CONST = 10.0 / math.log(10.0) * math.sqrt(2.0)
# An orthonormal DCT over K mel bands gives c'_n = sqrt(2/K) sum_j log m_j cos(.), while the cepstrum in the
# MCD formula is the Fourier series of the log spectrum, c_n ~ (1/K) sum_j log m_j cos(.): c_n = c'_n /
# sqrt(2K).
_MFCC_TO_CEPSTRUM = 1.0 / math.sqrt(2.0 * MCD_N_MELS)


def _mono(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 1:
        raise ValueError(f"{name}: expected mono audio [T], got shape {list(x.shape)}")
    return x


def trim_to_min(ref: np.ndarray, deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both signals cut to the shorter one's length (``[T]`` each)."""
    ref, deg = _mono(ref, "ref"), _mono(deg, "deg")
    n = min(ref.shape[0], deg.shape[0])
    return ref[:n], deg[:n]


# ----------------------------------------------------------------------------------------------------
# Sample-aligned metrics


def si_sdr(ref: np.ndarray, deg: np.ndarray, cap_db: float = SI_SDR_CAP_DB) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019), zero-mean, capped at ``cap_db``.

    ``deg`` is projected on ``ref``; the ratio of the projection's energy to the residual's is the SDR.
    Identical or scaled copies have a zero (or rounding-level) residual and give ``cap_db``. A silent
    reference gives nan.
    """
    ref, deg = trim_to_min(ref, deg)
    ref = ref - ref.mean()
    deg = deg - deg.mean()
    ref_energy = float(np.dot(ref, ref))
    if ref.size == 0 or ref_energy <= 0.0:
        return float("nan")
    alpha = float(np.dot(deg, ref)) / ref_energy
    target = alpha * ref
    noise = deg - target
    t, e = float(np.dot(target, target)), float(np.dot(noise, noise))
    if e <= 0.0:
        return float(cap_db)
    if t <= 0.0:
        return -float(cap_db)
    return float(min(cap_db, 10.0 * math.log10(t / e)))


def pesq_score(ref: np.ndarray, deg: np.ndarray, sr: int) -> float:
    """PESQ (ITU-T P.862) through the ``pesq`` package: wide-band at 16 kHz, narrow-band at 8 kHz.

    Other rates raise ``ValueError`` (resample first). No detected utterance (silence) gives nan.
    """
    try:
        from pesq import NoUtterancesError, pesq
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError("PESQ needs the pesq package: pip install 'speechlm[eval]'") from exc
    if sr not in (8000, 16000):
        raise ValueError(f"PESQ runs at 8000 (nb) or 16000 Hz (wb), got {sr}")
    ref, deg = trim_to_min(ref, deg)
    if ref.size < sr // 4:  # pesq needs at least ~1/4 s
        return float("nan")
    try:
        return float(pesq(sr, ref.astype(np.float32), deg.astype(np.float32), "wb" if sr == 16000 else "nb"))
    except NoUtterancesError:
        return float("nan")


def stoi_score(ref: np.ndarray, deg: np.ndarray, sr: int, extended: bool = False) -> float:
    """STOI (Taal et al. 2011; ``extended`` for ESTOI) through ``pystoi``; nan when too short or silent."""
    try:
        from pystoi import stoi
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError("STOI needs pystoi: pip install 'speechlm[eval]'") from exc
    ref, deg = trim_to_min(ref, deg)
    if ref.size == 0 or not np.any(ref):
        return float("nan")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pystoi warns (and returns 1e-5) when fewer than 30 frames remain
        value = float(stoi(ref, deg, sr, extended=extended))
    return value if np.isfinite(value) else float("nan")


def mel_distance(
    ref: np.ndarray, deg: np.ndarray, sr: int, n_fft: int = 1024, hop_length: int = 256, n_mels: int = 80
) -> float:
    """Mean absolute difference of natural-log mel spectrograms (frame-aligned, after :func:`trim_to_min`)."""
    from speechlm.audio.features import log_mel

    ref, deg = trim_to_min(ref, deg)
    if ref.size == 0:
        return float("nan")
    both = np.stack([ref, deg]).astype(np.float32)
    m = log_mel(both, sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels).numpy()
    return float(np.abs(m[0] - m[1]).mean())


# ----------------------------------------------------------------------------------------------------
# DTW


@dataclass(frozen=True)
class DTWResult:
    """A monotone alignment path between frame sequences ``a`` (length N) and ``b`` (length M)."""

    path_a: np.ndarray  # [L] int, indices into a, non-decreasing from 0 to N-1
    path_b: np.ndarray  # [L] int, indices into b
    cost: float  # accumulated cost of the path


def dtw(cost: np.ndarray) -> DTWResult:
    """Dynamic time warping over a cost matrix ``[N, M]`` with steps (1,0), (0,1), (1,1), each at unit weight.

    The accumulation runs along anti-diagonals: every cell on diagonal ``k = i + j`` depends only on diagonals
    ``k-1`` and ``k-2``, so each diagonal is one vectorised numpy step (N + M steps instead of N * M).
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] == 0 or c.shape[1] == 0:
        raise ValueError(f"dtw needs a non-empty [N, M] cost matrix, got shape {list(c.shape)}")
    n, m = c.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for k in range(2, n + m + 1):  # k = i + j in 1-based accumulator coordinates
        i = np.arange(max(1, k - m), min(n, k - 1) + 1)
        j = k - i
        best = np.minimum(np.minimum(acc[i - 1, j], acc[i, j - 1]), acc[i - 1, j - 1])
        acc[i, j] = c[i - 1, j - 1] + best
    # Backtrack (sequential but only N + M steps); ties prefer the diagonal.
    i, j = n, m
    pa, pb = [i - 1], [j - 1]
    while i > 1 or j > 1:
        options = (acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
        step = int(np.argmin(options))
        if step == 0:
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
        pa.append(i - 1)
        pb.append(j - 1)
    return DTWResult(np.array(pa[::-1]), np.array(pb[::-1]), float(acc[n, m]))


def _mfcc_frames(wav: np.ndarray, sr: int) -> np.ndarray:
    """MFCC ``[frames, 13]`` with the MCD frame setup (window and hop scaled from 16 kHz)."""
    from speechlm.audio.features import mfcc

    scale = sr / 16000
    n_fft = max(64, int(round(MCD_N_FFT * scale)))
    hop = max(1, int(round(MCD_HOP * scale)))
    c = mfcc(wav.astype(np.float32), sr, n_mfcc=MCD_N_MFCC, n_fft=n_fft, hop_length=hop, n_mels=MCD_N_MELS)
    return c.numpy().T.astype(np.float64)


def _cdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances ``[N, M]`` between rows of a ``[N, D]`` and b ``[M, D]``."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(d2, 0.0))


def mfcc_dtw(ref: np.ndarray, deg: np.ndarray, sr: int) -> tuple[DTWResult, np.ndarray, np.ndarray]:
    """DTW of the two signals' MFCC frames (c1..c12, 10 ms hop); returns (alignment, ref MFCC, deg MFCC)."""
    a, b = _mfcc_frames(_mono(ref, "ref"), sr), _mfcc_frames(_mono(deg, "deg"), sr)
    return dtw(_cdist(a[:, 1:], b[:, 1:])), a, b


def mcd(ref: np.ndarray, deg: np.ndarray, sr: int, alignment: DTWResult | None = None) -> float:
    """Mel-cepstral distortion in dB over the DTW path (``10/ln10 * sqrt(2 * sum_d (c_d - c'_d)^2)``,
    d=1..12).

    Pass ``alignment`` (from :func:`mfcc_dtw`) to reuse one DTW for MCD and F0.
    """
    ref, deg = _mono(ref, "ref"), _mono(deg, "deg")
    if ref.size == 0 or deg.size == 0:
        return float("nan")
    al, a, b = mfcc_dtw(ref, deg, sr)
    if alignment is not None:
        al = alignment
    diff = (a[al.path_a, 1:] - b[al.path_b, 1:]) * _MFCC_TO_CEPSTRUM
    return float(_MCD_CONST * np.sqrt((diff * diff).sum(1)).mean())


@dataclass(frozen=True)
class F0Metrics:
    """F0 errors on frames voiced in both signals, and the voicing decision error over all compared frames."""

    rmse_cents: float
    rmse_hz: float
    voicing_error: float  # fraction of compared frames whose voiced/unvoiced decisions differ
    n_voiced: int  # frames voiced in both
    voiced_kept: float = float("nan")  # fraction of the reference's voiced frames voiced in ``deg``
    median_cents: float = float("nan")  # median absolute F0 error on frames voiced in both
    # the same over the reference's clearly voiced frames (YIN dip below CLEAR_VOICING_THRESHOLD): YIN's
    # decision flickers on weakly voiced frames and at voicing edges, where even Opus at 12 kbps "loses" 6 %
    voiced_kept_clear: float = float("nan")


def f0_metrics(
    ref: np.ndarray,
    deg: np.ndarray,
    sr: int,
    use_dtw: bool = False,
    alignment: DTWResult | None = None,
    fmin: float = F0_FMIN,
    fmax: float = F0_FMAX,
) -> F0Metrics:
    """F0 RMSE (cents and Hz) and voicing decision error between ``ref`` and ``deg`` (YIN, 10 ms frames).

    With ``use_dtw=False`` frames are compared one-to-one after :func:`trim_to_min`; with ``use_dtw=True``
    along the MFCC DTW path (``alignment`` if given, which must come from :func:`mfcc_dtw` on the same
    signals). RMSEs are nan when no frame is voiced in both.
    """
    from speechlm.audio.features import f0

    ref, deg = _mono(ref, "ref"), _mono(deg, "deg")
    if not use_dtw:
        ref, deg = trim_to_min(ref, deg)
    if ref.size == 0 or deg.size == 0:
        return F0Metrics(float("nan"), float("nan"), float("nan"), 0)
    hop = max(1, int(round(MCD_HOP * sr / 16000)))
    fa, va = f0(ref, sr, hop, fmin=fmin, fmax=fmax)
    _, va_clear = f0(ref, sr, hop, fmin=fmin, fmax=fmax, threshold=CLEAR_VOICING_THRESHOLD)
    fb, vb = f0(deg, sr, hop, fmin=fmin, fmax=fmax)
    if use_dtw:
        al = alignment if alignment is not None else mfcc_dtw(ref, deg, sr)[0]
        # MFCC and F0 share the hop and the centring, so frame indices agree; clip guards a last-frame
        # mismatch.
        ia = np.minimum(al.path_a, fa.size - 1)
        ib = np.minimum(al.path_b, fb.size - 1)
    else:
        n = min(fa.size, fb.size)
        ia = ib = np.arange(n)
    fa, va, fb, vb = fa[ia].astype(np.float64), va[ia], fb[ib].astype(np.float64), vb[ib]
    va_clear = va_clear[ia] & va
    voicing_error = float(np.mean(va != vb)) if va.size else float("nan")
    kept = float(np.mean(vb[va])) if va.any() else float("nan")
    kept_clear = float(np.mean(vb[va_clear])) if va_clear.any() else float("nan")
    both = va & vb & (fa > 0) & (fb > 0)
    if not both.any():
        return F0Metrics(float("nan"), float("nan"), voicing_error, 0, kept, voiced_kept_clear=kept_clear)
    cents = 1200.0 * np.log2(fb[both] / fa[both])
    hz = fb[both] - fa[both]
    return F0Metrics(
        float(np.sqrt(np.mean(cents**2))), float(np.sqrt(np.mean(hz**2))), voicing_error, int(both.sum()), kept,
        float(np.median(np.abs(cents))), kept_clear,
    )
