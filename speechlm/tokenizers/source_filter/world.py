"""WORLD analysis and synthesis (pyworld) and the frame-parameter conversions around them.

Analysis runs at a 5-ms hop (``ANALYSIS_MS``): F0 (DIO + StoneMask), the CheapTrick spectral envelope coded as
``MCEP_DIM`` mel-cepstral coefficients (coefficient 0 is the frame's log gain), and D4C aperiodicity averaged in
``BAND_EDGES_HZ`` bands (dB). Token frames are ``hop_frames`` analysis frames (20 ms at 4): :func:`to_token_rate`
averages them, :func:`to_analysis_rate` interpolates back.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from speechlm.errors import MissingDependencyError, SpeechLMError

SAMPLE_RATE = 16000
ANALYSIS_MS = 5.0
FFT_SIZE = 1024
MCEP_DIM = 40
F0_FLOOR, F0_CEIL = 60.0, 600.0
BAND_EDGES_HZ = (0.0, 500.0, 1000.0, 2000.0, 3000.0, 4500.0, 8000.0)
DIO_THRESHOLD = 0.1  # WORLD's own DIO voicing threshold (``allowed_range``); a codec config may raise it
AP_FLOOR_DB = -80.0

_FREQS = np.arange(FFT_SIZE // 2 + 1) * SAMPLE_RATE / FFT_SIZE
_BAND_CENTRES = np.array([(lo + hi) / 2 for lo, hi in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:])])
# np.interp between band centres (flat beyond the outer ones) is linear in the band values: one matrix
_BAND_TO_BINS = np.stack([np.interp(_FREQS, _BAND_CENTRES, e) for e in np.eye(len(_BAND_CENTRES))])


def pyworld():
    """The pyworld module (imported lazily: ``speechlm --help`` stays fast)."""
    try:
        with warnings.catch_warnings():  # pyworld 0.3.5 imports the deprecated pkg_resources
            warnings.simplefilter("ignore")
            import pyworld as pw
    except ImportError as exc:
        raise MissingDependencyError(f"the source-filter codec needs pyworld ({exc}); run scripts/setup.sh") from None
    return pw


@dataclass(frozen=True)
class Frames:
    """Source-filter parameters of one utterance, one row per frame.

    Attributes:
        f0: ``[T]`` Hz, 0 where unvoiced.
        mcep: ``[T, MCEP_DIM]`` mel-cepstrum of the spectral envelope (``[:, 0]`` is the log gain).
        bap: ``[T, n_bands]`` band aperiodicity in dB (0 = noise, very negative = harmonic).
        f0_mid: token-rate frames only, optional ``[T]``: where frames ``t`` and ``t + 1`` are both voiced, the
            log2-F0 of a knot halfway between their centres minus the mean of their log2-F0 (octaves; 0 = on the
            straight line, elsewhere ignored). None: no mid knots (:func:`interpolate_f0`).
    """

    f0: np.ndarray
    mcep: np.ndarray
    bap: np.ndarray
    f0_mid: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.f0)


def n_bands() -> int:
    return len(BAND_EDGES_HZ) - 1


F0_TRACKERS = ("dio", "harvest")


def analyze(wav: np.ndarray, f0_tracker: str = "dio", dio_threshold: float = DIO_THRESHOLD) -> Frames:
    """Mono float audio ``[n]`` at 16 kHz -> 5-ms :class:`Frames` (``n // 80 + 1`` rows, WORLD's count).

    ``f0_tracker``: ``"dio"`` (DIO + StoneMask, fast) or ``"harvest"`` (Harvest + StoneMask: fewer voicing and
    octave errors and so a sharper envelope, at about 6x the analysis time). ``dio_threshold``: DIO's voicing
    threshold (its ``allowed_range``; higher calls more frames voiced; Harvest ignores it)."""
    pw = pyworld()
    x = np.ascontiguousarray(wav, dtype=np.float64)
    if f0_tracker not in F0_TRACKERS:
        raise SpeechLMError(f"unknown F0 tracker {f0_tracker!r}: use {' or '.join(F0_TRACKERS)}")
    if f0_tracker == "harvest":
        f0, t = pw.harvest(x, SAMPLE_RATE, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=ANALYSIS_MS)
    else:
        f0, t = pw.dio(x, SAMPLE_RATE, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=ANALYSIS_MS,
                       allowed_range=dio_threshold)
    f0 = pw.stonemask(x, f0, t, SAMPLE_RATE)
    sp = pw.cheaptrick(x, f0, t, SAMPLE_RATE, f0_floor=F0_FLOOR, fft_size=FFT_SIZE)
    ap = pw.d4c(x, f0, t, SAMPLE_RATE, fft_size=FFT_SIZE)
    mcep = pw.code_spectral_envelope(sp, SAMPLE_RATE, MCEP_DIM)
    return Frames(f0.astype(np.float32), mcep.astype(np.float32), band_aperiodicity(ap).astype(np.float32))


def band_aperiodicity(ap: np.ndarray) -> np.ndarray:
    """WORLD aperiodicity ``[T, FFT/2+1]`` (linear) -> band means in dB ``[T, n_bands]``."""
    db = 20.0 * np.log10(np.clip(ap, 10 ** (AP_FLOOR_DB / 20), 1.0))
    return np.stack([db[:, (_FREQS >= lo) & (_FREQS < hi if hi < BAND_EDGES_HZ[-1] else _FREQS <= hi)].mean(1)
                     for lo, hi in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:])], axis=1)


def full_aperiodicity(bap: np.ndarray) -> np.ndarray:
    """Band dB ``[T, n_bands]`` -> linear aperiodicity ``[T, FFT/2+1]`` (interpolated between band centres)."""
    db = np.asarray(bap, np.float64).reshape(-1, len(_BAND_CENTRES)) @ _BAND_TO_BINS
    return np.clip(10 ** (db / 20.0), 10 ** (AP_FLOOR_DB / 20), 1.0)


def synthesize(f0: np.ndarray, mcep: np.ndarray, bap: np.ndarray) -> np.ndarray:
    """5-ms parameters (``f0 [T]``, ``mcep [T, D]``, ``bap [T, B]``) -> float32 audio ``[T * 80]``."""
    pw = pyworld()
    if len(f0) < 2:
        return np.zeros(0, np.float32)
    sp = pw.decode_spectral_envelope(np.ascontiguousarray(mcep, dtype=np.float64), SAMPLE_RATE, FFT_SIZE)
    ap = full_aperiodicity(np.asarray(bap, np.float64))
    y = pw.synthesize(np.ascontiguousarray(f0, dtype=np.float64), sp, ap, SAMPLE_RATE, ANALYSIS_MS)
    return y.astype(np.float32)


def pad_frames(frames: Frames, n: int) -> Frames:
    """Repeat the last frame up to ``n`` rows (the end of the audio); ``frames`` as it is if already that long."""
    pad = n - len(frames)
    if pad <= 0:
        return frames

    def rep(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])

    return Frames(rep(frames.f0), rep(frames.mcep), rep(frames.bap))


def to_token_rate(frames: Frames, hop_frames: int, fit_f0: bool = False, mid_knots: bool = False) -> Frames:
    """Average every ``hop_frames`` analysis frames into one token frame (``ceil(T / hop_frames)`` rows).

    F0 is the geometric mean of the voiced frames (``fit_f0``: then refitted by :func:`fit_token_f0`, so that the
    decoder's interpolation follows the contour; ``mid_knots``: refitted together with a knot halfway between
    every two voiced frames by :func:`fit_token_f0_mid`, returned as ``f0_mid``); a token frame is voiced when at
    least half of its frames are. The last block is padded by repeating its final frame."""
    t = len(frames)
    n = -(-t // hop_frames)
    pad = n * hop_frames - t

    def blocks(x: np.ndarray) -> np.ndarray:
        x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]) if pad else x
        return x.reshape(n, hop_frames, *x.shape[1:])

    f = blocks(frames.f0)
    voiced = f > 0
    n_voiced = voiced.sum(1)
    log_f0 = np.where(voiced, np.log(np.maximum(f, 1.0)), 0.0).sum(1) / np.maximum(n_voiced, 1)
    f0 = np.where(2 * n_voiced >= hop_frames, np.exp(log_f0), 0.0).astype(np.float32)
    mid = None
    if mid_knots:
        f0, mid = fit_token_f0_mid(frames.f0, f0, hop_frames)
    elif fit_f0:
        f0 = fit_token_f0(frames.f0, f0, hop_frames)
    return Frames(f0, blocks(frames.mcep).mean(1), blocks(frames.bap).mean(1), mid)


F0_FIT_HUBER = 0.03  # log-F0 (about 50 cents) beyond which an analysis frame counts less in fit_token_f0
F0_FIT_RIDGE = 1e-3  # pull of each fitted value towards its block mean (keeps isolated voiced tokens where they are)
F0_FIT_ITERS = 4


def fit_token_f0(f0: np.ndarray, token_f0: np.ndarray, hop_frames: int) -> np.ndarray:
    """Token-rate F0 that the decoder's interpolation turns back into the analysis-rate contour best.

    :func:`to_token_rate` averages each token's frames, and :func:`interpolate_f0` draws straight lines between
    token centres, so a curved contour comes back flattened. This chooses the voiced tokens' values (voicing
    unchanged) so that the interpolated log-F0 matches the analysis frames voiced in both: least squares over the
    piecewise-linear basis (:func:`fit_f0_knots`). Development clips: PESQ-WB +0.04 to +0.06 through the codec at
    no bit cost (docs/experiments/2026-12-05-f0-knot-fit.md).

    Args:
        f0: ``[n]`` analysis-rate Hz (0 = unvoiced), ``n <= len(token_f0) * hop_frames``.
        token_f0: ``[T]`` its :func:`to_token_rate` F0 (block geometric means, 0 = unvoiced).
        hop_frames: analysis frames a token.

    Returns:
        ``[T]`` float32 Hz, zero where ``token_f0`` is.
    """
    token_f0 = np.asarray(token_f0, np.float32)
    voiced = token_f0 > 0
    if voiced.sum() < 2:
        return token_f0
    knots = frame_centres(len(token_f0), hop_frames)[voiced]
    x = fit_f0_knots(f0, _fit_frames(f0, voiced, hop_frames), knots, np.log(token_f0[voiced]).astype(np.float64))
    out = token_f0.copy()
    if x is not None:
        out[voiced] = np.exp(x)
    return out


def fit_token_f0_mid(f0: np.ndarray, token_f0: np.ndarray, hop_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fit_token_f0` with a second knot halfway between every two voiced token frames (10-ms knots at 20-ms
    tokens), fitted together: what the codec's ``f0.mid`` stream carries. F0 detail between token centres
    (micro-prosody) is what a straight line per token loses; development clips: PESQ-WB +0.05 through the codec
    (docs/experiments/2026-12-05-f0-mid-knots.md).

    Returns:
        ``(token_f0 [T] float32 Hz, f0_mid [T] float32)``: the centre values (zero where ``token_f0`` is) and each
        mid knot's log2-F0 offset from the straight line between its two centres (:class:`Frames`; 0 where
        frame ``t + 1`` is unvoiced or missing).
    """
    token_f0 = np.asarray(token_f0, np.float32)
    t_n = len(token_f0)
    mid = np.zeros(t_n, np.float32)
    voiced = token_f0 > 0
    if voiced.sum() < 2:
        return token_f0, mid
    pair, pos, order = _knot_layout(voiced, hop_frames)
    log_prior = np.log(np.where(voiced, token_f0, 1.0)).astype(np.float64)
    prior = np.concatenate([log_prior[voiced], _line_midpoints(log_prior, pair)])
    x = fit_f0_knots(f0, _fit_frames(f0, voiced, hop_frames), pos, prior[order])
    if x is None:
        return token_f0, mid
    fitted = np.empty_like(x)
    fitted[order] = x  # back to [voiced centres, mid knots]
    n_c = int(voiced.sum())
    out = token_f0.copy()
    out[voiced] = np.exp(fitted[:n_c])
    line = _line_midpoints(np.log(np.where(voiced, out, 1.0)).astype(np.float64), pair)
    mid[pair] = ((fitted[n_c:] - line) / np.log(2.0)).astype(np.float32)
    return out, mid


def _knot_layout(voiced: np.ndarray, hop_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The knots of :func:`fit_token_f0_mid` and :func:`interpolate_f0` for token voicing ``voiced [T]``:
    ``(pair [T] bool, pos [k], order [k])``. ``pair[t]``: frames ``t`` and ``t + 1`` are voiced (a mid knot after
    ``t``); the knots listed as [voiced centres, mid knots] sit at ``pos`` (analysis frames, increasing) in the
    order ``order`` (``listed[order]`` is in time order)."""
    pair = np.zeros(len(voiced), bool)
    pair[:-1] = voiced[:-1] & voiced[1:]
    centres = frame_centres(len(voiced), hop_frames)
    listed = np.concatenate([centres[voiced], centres[pair] + hop_frames / 2])
    order = np.argsort(listed, kind="stable")
    return pair, listed[order], order


def _line_midpoints(log_f0: np.ndarray, pair: np.ndarray) -> np.ndarray:
    """Halfway up the straight line between frames ``t`` and ``t + 1`` wherever ``pair[t]``: ``[pair.sum()]``."""
    return (log_f0[:-1] + log_f0[1:])[pair[:-1]] / 2


def _fit_frames(f0: np.ndarray, voiced_tokens: np.ndarray, hop_frames: int) -> np.ndarray:
    """Analysis frames a token-F0 fit follows ``[n]`` bool: voiced, in a voiced token frame."""
    t = np.arange(len(f0))
    return voiced_tokens[np.minimum(t // hop_frames, len(voiced_tokens) - 1)] & (np.asarray(f0) > 0)


def fit_f0_knots(f0: np.ndarray, use: np.ndarray, knots: np.ndarray, prior: np.ndarray) -> np.ndarray | None:
    """Log-F0 values at ``knots`` (``[k]`` analysis-frame positions, increasing, k >= 2) whose straight-line
    interpolation (held beyond the ends) matches ``log f0`` at the frames ``use`` marks: least squares over the
    piecewise-linear basis (a tridiagonal system), made robust to DIO's octave slips by Huber weights
    (``F0_FIT_HUBER``, ``F0_FIT_ITERS`` reweighting rounds), with a ridge ``F0_FIT_RIDGE`` towards ``prior [k]``
    (log Hz; it keeps isolated knots where they are). None when no frame is used."""
    from scipy.linalg import solveh_banded

    k = len(knots)
    t = np.arange(len(f0))[use].astype(np.float64)
    if not len(t):
        return None
    b = np.log(np.asarray(f0, np.float64)[use])
    # each frame lies between knots j and j + 1 (clamped at the ends): weights 1 - a and a
    j = np.clip(np.searchsorted(knots, t, side="right") - 1, 0, k - 2)
    a = np.clip((t - knots[j]) / (knots[j + 1] - knots[j]), 0.0, 1.0)
    w = np.ones_like(b)
    for _ in range(F0_FIT_ITERS):
        diag = F0_FIT_RIDGE + np.bincount(j, w * (1 - a) ** 2, k) + np.bincount(j + 1, w * a**2, k)
        off = np.bincount(j, w * a * (1 - a), k)[: k - 1]
        rhs = F0_FIT_RIDGE * prior + np.bincount(j, w * (1 - a) * b, k) + np.bincount(j + 1, w * a * b, k)
        x = solveh_banded(np.stack([np.concatenate([[0.0], off]), diag]), rhs)
        r = np.abs((1 - a) * x[j] + a * x[j + 1] - b)
        w = np.where(r <= F0_FIT_HUBER, 1.0, F0_FIT_HUBER / np.maximum(r, 1e-12))
    return x


def frame_centres(n_tokens: int, hop_frames: int) -> np.ndarray:
    """Analysis-frame position of each token frame's centre ``[n_tokens]``."""
    return np.arange(n_tokens) * hop_frames + (hop_frames - 1) / 2


def interpolate(x: np.ndarray, hop_frames: int, n: int) -> np.ndarray:
    """Token-rate values ``[T]`` or ``[T, D]`` -> ``n`` analysis frames, linear between token centres."""
    tc, t = frame_centres(len(x), hop_frames), np.arange(n)
    if x.ndim == 1:
        return np.interp(t, tc, x)
    return np.stack([np.interp(t, tc, x[:, j]) for j in range(x.shape[1])], axis=1)


def interpolate_f0(f0: np.ndarray, hop_frames: int, n: int, f0_mid: np.ndarray | None = None) -> np.ndarray:
    """Token-rate F0 ``[T]`` -> ``n`` analysis frames: log-F0 interpolated across voiced tokens, voicing held.
    ``f0_mid [T]`` (:class:`Frames`): a knot halfway between every two voiced token frames, offset from their
    straight line by that many octaves."""
    voiced = f0 > 0
    hold = voiced[np.minimum(np.arange(n) // hop_frames, len(f0) - 1)]
    if not voiced.any():
        return np.zeros(n)
    if f0_mid is None:
        pos, log_f0 = frame_centres(len(f0), hop_frames)[voiced], np.log(f0[voiced])
    else:
        pair, pos, order = _knot_layout(voiced, hop_frames)
        log_all = np.log(np.where(voiced, f0, 1.0))
        mids = _line_midpoints(log_all, pair) + np.log(2.0) * np.asarray(f0_mid, np.float64)[pair]
        log_f0 = np.concatenate([log_all[voiced], mids])[order]
    return np.where(hold, np.exp(np.interp(np.arange(n), pos, log_f0)), 0.0)


def to_analysis_rate(tok: Frames, hop_frames: int, n: int) -> Frames:
    """Token-rate :class:`Frames` -> ``n`` analysis frames (:func:`interpolate_f0`, :func:`interpolate`): the
    inverse of :func:`to_token_rate` up to its averaging."""
    return Frames(interpolate_f0(tok.f0, hop_frames, n, tok.f0_mid).astype(np.float32),
                  interpolate(tok.mcep, hop_frames, n).astype(np.float32),
                  interpolate(tok.bap, hop_frames, n).astype(np.float32))
