"""Acoustic features: log-mel, MFCC, energy (torch, batched) and F0 (vectorised YIN, numpy).

Framing is the same for every feature: frame ``i`` is centred on sample ``i * hop_length`` (the signal is
padded by half a frame on each side), so a signal of ``T`` samples gives ``1 + T // hop_length`` frames for
every feature at the same hop, and frames line up across features.

The log-mel, MFCC and energy functions take a float tensor (or numpy array) ``[..., T]`` and keep its leading
dimensions; they run on the input's device. Mel filterbanks and DCT matrices are computed here (no
torchaudio, no librosa) and cached per configuration.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft
import soxr
import torch

__all__ = ["energy", "f0", "hz_to_mel", "log_mel", "mel_filterbank", "mel_to_hz", "mfcc", "num_frames"]

# Floor before the log: -100 dB for RMS energy, log(1e-5) = -11.5 for log-mel magnitudes (HiFi-GAN's clamp).
_LOG_FLOOR = 1e-5


def num_frames(n_samples: int, hop_length: int) -> int:
    """Frames for ``n_samples`` at ``hop_length`` with centre padding: ``1 + n_samples // hop_length``."""
    return 1 + n_samples // hop_length


def _as_tensor(wav: torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(wav, np.ndarray):
        wav = torch.from_numpy(np.ascontiguousarray(wav))
    if not wav.is_floating_point():
        wav = wav.float()
    return wav


# ----------------------------------------------------------------------------------------------------
# Mel scale


def hz_to_mel(f: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """Hz to mel: HTK's ``2595 log10(1 + f/700)``, or Slaney's (linear below 1 kHz, log above; librosa's)."""
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    log_part = min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep
    return np.where(f >= min_log_hz, log_part, f / f_sp)


def mel_to_hz(m: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=32)
def _mel_filterbank_np(sr: int, n_fft: int, n_mels: int, f_min: float, f_max: float, htk: bool,
                       norm: str | None) -> np.ndarray:
    fft_freqs = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    mel_pts = np.linspace(hz_to_mel(f_min, htk), hz_to_mel(f_max, htk), n_mels + 2)
    hz_pts = mel_to_hz(mel_pts, htk)
    fdiff = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    fb = np.maximum(0.0, np.minimum(lower, upper))  # [n_mels, n_freqs] triangles
    if norm == "slaney":  # equal area per filter, so wide high filters do not dominate
        fb *= (2.0 / (hz_pts[2:n_mels + 2] - hz_pts[:n_mels]))[:, None]
    fb.setflags(write=False)
    return fb


def mel_filterbank(sr: int, n_fft: int, n_mels: int = 80, f_min: float = 0.0, f_max: float | None = None,
                   htk: bool = False, norm: str | None = "slaney") -> np.ndarray:
    """Triangular mel filterbank ``[n_mels, n_fft // 2 + 1]`` (float64, read-only, cached).

    Same as ``librosa.filters.mel`` with the same arguments (Slaney scale and area normalisation by default).
    """
    f_max = sr / 2.0 if f_max is None else float(f_max)
    if not 0.0 <= f_min < f_max <= sr / 2.0 + 1e-6:
        raise ValueError(f"need 0 <= f_min < f_max <= sr/2, got f_min={f_min}, f_max={f_max}, sr={sr}")
    return _mel_filterbank_np(int(sr), int(n_fft), int(n_mels), float(f_min), f_max, bool(htk), norm)


@functools.lru_cache(maxsize=32)
def _mel_fb_tensor(sr: int, n_fft: int, n_mels: int, f_min: float, f_max: float | None, htk: bool,
                   norm: str | None, dtype: torch.dtype, device: str) -> torch.Tensor:
    fb = mel_filterbank(sr, n_fft, n_mels, f_min, f_max, htk, norm)
    return torch.tensor(fb, dtype=dtype, device=device)


@functools.lru_cache(maxsize=16)
def _window(n_fft: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    return torch.hann_window(n_fft, dtype=dtype, device=device)


def _center_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad the last axis by ``pad`` each side: reflect when long enough (as torch.stft does), else zeros."""
    shape = x.shape
    flat = x.reshape(math.prod(shape[:-1]), 1, shape[-1])
    mode = "reflect" if shape[-1] > pad else "constant"
    flat = torch.nn.functional.pad(flat, (pad, pad), mode=mode)
    return flat.reshape(*shape[:-1], flat.shape[-1])


def _stft_mag(wav: torch.Tensor, n_fft: int, hop_length: int, power: float) -> torch.Tensor:
    """|STFT| ** power, ``[..., n_fft // 2 + 1, 1 + T // hop]``, centre-padded hann frames of ``n_fft``."""
    lead, t = wav.shape[:-1], wav.shape[-1]
    x = _center_pad(wav.reshape(math.prod(lead), t), n_fft // 2)
    spec = torch.stft(x, n_fft=n_fft, hop_length=hop_length, window=_window(n_fft, x.dtype, str(x.device)),
                      center=False, return_complex=True)
    mag = spec.abs()
    if power != 1.0:
        mag = mag.pow(power)
    mag = mag[..., : num_frames(t, hop_length)]
    return mag.reshape(*lead, *mag.shape[-2:])


def log_mel(wav: torch.Tensor | np.ndarray, sr: int, n_fft: int = 1024, hop_length: int = 256,
            n_mels: int = 80, f_min: float = 0.0, f_max: float | None = None, power: float = 1.0, *,
            htk: bool = False, norm: str | None = "slaney", chunk_frames: int | None = None) -> torch.Tensor:
    """Natural-log mel spectrogram.

    Args:
        wav: float ``[..., T]`` (tensor or numpy array), any leading batch/channel dimensions.
        sr: sample rate in Hz.
        n_fft: FFT size and hann window length.
        hop_length: frame step in samples.
        n_mels, f_min, f_max: mel bands and their frequency range (``f_max`` None = ``sr / 2``).
        power: 1 for magnitude (HiFi-GAN/vocos convention), 2 for power.
        htk, norm: mel scale (Slaney by default) and filter normalisation ("slaney" or None).
        chunk_frames: for long inputs, compute at most this many frames at a time (the complex STFT of an hour
            of 16 kHz audio is over 1 GB); the frames are the same, up to float rounding. Inputs of at most
            ``chunk_frames`` frames take the one-pass path.

    Returns:
        ``log(max(mel, 1e-5))`` shaped ``[..., n_mels, 1 + T // hop_length]``, float32 (or the input's float
        dtype), on the input's device.
    """
    wav = _as_tensor(wav)
    t = wav.shape[-1]
    n = num_frames(t, hop_length)
    fb = _mel_fb_tensor(int(sr), n_fft, n_mels, float(f_min), f_max, htk, norm, wav.dtype, str(wav.device))
    if chunk_frames is None or n <= chunk_frames:
        mel = torch.matmul(fb, _stft_mag(wav, n_fft, hop_length, power))
        return torch.log(torch.clamp(mel, min=_LOG_FLOOR))
    lead = wav.shape[:-1]
    x = _center_pad(wav.reshape(math.prod(lead), t), n_fft // 2)
    window = _window(n_fft, x.dtype, str(x.device))
    out = []
    for a in range(0, n, chunk_frames):
        b = min(n, a + chunk_frames)  # frames a..b-1 start at samples a*hop..(b-1)*hop of the padded signal
        spec = torch.stft(x[:, a * hop_length : (b - 1) * hop_length + n_fft], n_fft=n_fft, hop_length=hop_length,
                          window=window, center=False, return_complex=True)
        mag = spec.abs() if power == 1.0 else spec.abs().pow(power)
        out.append(torch.log(torch.clamp(torch.matmul(fb, mag), min=_LOG_FLOOR)))
    return torch.cat(out, -1).reshape(*lead, n_mels, n)


@functools.lru_cache(maxsize=16)
def _dct_matrix(n_mfcc: int, n_mels: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    """Orthonormal DCT-II ``[n_mfcc, n_mels]`` (scipy's ``dct(type=2, norm="ortho")``)."""
    n = torch.arange(n_mels, dtype=torch.float64)
    k = torch.arange(n_mfcc, dtype=torch.float64)[:, None]
    m = torch.cos(math.pi / n_mels * (n + 0.5) * k) * math.sqrt(2.0 / n_mels)
    m[0] /= math.sqrt(2.0)
    return m.to(dtype=dtype, device=device)


def mfcc(wav: torch.Tensor | np.ndarray, sr: int, n_mfcc: int = 13, **mel_kwargs) -> torch.Tensor:
    """MFCC: orthonormal DCT-II over the mel axis of :func:`log_mel`, first ``n_mfcc`` coefficients.

    Args:
        wav: float ``[..., T]``.
        sr: sample rate in Hz.
        n_mfcc: coefficients kept (must be <= n_mels).
        **mel_kwargs: passed to :func:`log_mel` (n_fft, hop_length, n_mels, f_min, f_max, power, ...).

    Returns:
        ``[..., n_mfcc, 1 + T // hop_length]``.
    """
    lm = log_mel(wav, sr, **mel_kwargs)
    n_mels = lm.shape[-2]
    if n_mfcc > n_mels:
        raise ValueError(f"n_mfcc={n_mfcc} is more than n_mels={n_mels}")
    return torch.matmul(_dct_matrix(n_mfcc, n_mels, lm.dtype, str(lm.device)), lm)


def energy(wav: torch.Tensor | np.ndarray, frame_length: int = 1024, hop_length: int = 256) -> torch.Tensor:
    """Frame RMS energy in dB: ``20 log10 max(rms, 1e-5)`` (silence -100 dB, a full-scale sine -3 dB).

    Args:
        wav: float ``[..., T]``.
        frame_length: rectangular frame in samples, centred on ``i * hop_length`` (zero-padded at the ends).
        hop_length: frame step.

    Returns:
        ``[..., 1 + T // hop_length]``.
    """
    wav = _as_tensor(wav)
    lead, t = wav.shape[:-1], wav.shape[-1]
    n = num_frames(t, hop_length)
    x = wav.reshape(math.prod(lead), t)
    left = frame_length // 2
    right = max(0, (n - 1) * hop_length + frame_length - left - t)
    x = torch.nn.functional.pad(x, (left, right))
    frames = x.unfold(-1, frame_length, hop_length)[:, :n]  # [B, n, frame_length]
    rms = frames.pow(2).mean(-1).sqrt()
    db = 20.0 * torch.log10(torch.clamp(rms, min=_LOG_FLOOR))
    return db.reshape(*lead, n)


# ----------------------------------------------------------------------------------------------------
# F0 (YIN)


def f0(wav: np.ndarray, sr: int, hop_length: int, fmin: float = 50.0, fmax: float = 550.0,
       threshold: float = 0.15, frame_length: int | None = None, silence_db: float = -60.0,
       analysis_sr: int | None = 16000, chunk_frames: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Fundamental frequency by YIN (de Cheveigné & Kawahara 2002), vectorised over frames.

    Per frame: the difference function through FFT cross-correlation and cumulative energy sums, the
    cumulative mean normalised difference, the first local minimum below ``threshold`` between the lags of
    ``fmax`` and ``fmin``, and parabolic interpolation around it. Frames with no such dip, or quieter than
    ``silence_db`` (frame RMS relative to full scale), are unvoiced.

    Args:
        wav: mono float ``[T]`` (a ``[1, T]`` array is accepted).
        sr: sample rate in Hz.
        hop_length: frame step in samples at ``sr``; frames are centred on ``i * hop_length`` as for the other
            features.
        fmin, fmax: search range in Hz.
        threshold: YIN's absolute threshold on the normalised difference (lower = stricter voicing).
        frame_length: analysis frame in samples at the analysis rate; default ``2 * ceil(rate / fmin)`` (two
            periods of fmin), made even.
        silence_db: frames whose RMS is below this (dBFS) are unvoiced.
        analysis_sr: signals above this rate (and above ``20 * fmax``) are first resampled to it with soxr:
            F0 needs no more bandwidth, and the cost falls with the rate. None analyses at ``sr``.
        chunk_frames: frames processed at once (bounds memory for long inputs).

    Returns:
        ``(f0_hz [1 + T // hop_length] float32, 0 where unvoiced; voiced [same] bool)``.
    """
    x = np.asarray(wav, dtype=np.float64)
    if x.ndim == 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 1:
        raise ValueError(f"f0 expects mono audio [T], got shape {list(x.shape)}")
    if not 0 < fmin < fmax < sr / 2:
        raise ValueError(f"need 0 < fmin < fmax < sr/2, got fmin={fmin}, fmax={fmax}, sr={sr}")
    n = num_frames(x.shape[0], hop_length)
    rate = sr
    if analysis_sr is not None and sr > max(analysis_sr, 20 * fmax) and x.shape[0] > 0:
        rate = int(max(analysis_sr, 20 * fmax))
        x = np.asarray(soxr.resample(x, sr, rate, quality="HQ"), dtype=np.float64)
    tau_min = max(2, int(math.floor(rate / fmax)))
    tau_max = int(math.ceil(rate / fmin))
    if frame_length is None:
        frame_length = 2 * tau_max
    frame_length += frame_length % 2
    win = frame_length - tau_max  # integration window of the difference function
    if win < tau_max // 2:
        raise ValueError(f"frame_length {frame_length} is too short for fmin={fmin} Hz at {rate} Hz")
    # Frame i covers [c_i - frame_length/2, c_i + frame_length/2) around c_i = i * hop at the analysis rate
    # (rounded when resampled); zero padding centres the first and last frames.
    centres = np.round(np.arange(n) * (hop_length * rate / sr)).astype(np.int64)
    left = frame_length // 2
    right = max(0, int(centres[-1]) + frame_length - left - x.shape[0]) + 1
    xp = np.pad(x, (left, right))
    frames_view = np.lib.stride_tricks.sliding_window_view(xp, frame_length)  # start k -> xp[k:k+L]
    # Circular correlation needs no zero padding here: head index j < win and lag tau <= tau_max keep
    # j + tau < frame_length, so an FFT of the frame length (next power of two) has no wrap-around.
    nfft = 1 << int(math.ceil(math.log2(frame_length)))
    taus = np.arange(tau_max + 1)
    silence_rms = 10.0 ** (silence_db / 20.0)
    f0_hz = np.zeros(n, dtype=np.float32)
    voiced = np.zeros(n, dtype=bool)
    for s in range(0, n, chunk_frames):
        starts = centres[s:s + chunk_frames]  # frame start in xp (the left padding equals half a frame)
        fr = frames_view[starts]  # [B, L]
        # c[tau] = sum_{j<win} x[j] x[j+tau]: cross-correlation of the first `win` samples with the frame.
        spec_full = scipy.fft.rfft(fr, nfft, axis=-1)
        spec_head = scipy.fft.rfft(fr[:, :win], nfft, axis=-1)
        corr = scipy.fft.irfft(np.conj(spec_head) * spec_full, nfft, axis=-1)[:, : tau_max + 1]
        # e[tau] = sum_{j<win} x[j+tau]^2: a moving sum of squares over this chunk's span, read per frame.
        lo, hi = int(starts[0]), int(starts[-1]) + frame_length
        seg = xp[lo:hi]
        csum = np.concatenate([[0.0], np.cumsum(seg * seg)])
        moving = csum[win:] - csum[:-win]  # moving[k] = sum seg[k:k+win]^2
        e = np.lib.stride_tricks.sliding_window_view(moving, tau_max + 1)[starts - lo]
        d = e[:, :1] + e - 2.0 * corr  # d[tau] = sum (x[j] - x[j+tau])^2
        d[:, 0] = 0.0
        np.maximum(d, 0.0, out=d)
        # Cumulative mean normalised difference: d'[tau] = d[tau] * tau / sum_{1..tau} d.
        cum = np.cumsum(d[:, 1:], axis=-1)
        cmnd = np.ones_like(d)
        cmnd[:, 1:] = d[:, 1:] * taus[1:] / np.maximum(cum, 1e-12)
        # First local minimum below threshold in [tau_min, tau_max - 1].
        mid = cmnd[:, tau_min:tau_max]
        is_min = (mid <= cmnd[:, tau_min - 1:tau_max - 1]) & (mid < cmnd[:, tau_min + 1:tau_max + 1])
        cand = is_min & (mid < threshold)
        has = cand.any(axis=-1)
        tau = np.argmax(cand, axis=-1) + tau_min
        # Parabolic interpolation of the minimum for sub-sample lag precision.
        rows = np.arange(fr.shape[0])
        a, b, c = cmnd[rows, tau - 1], cmnd[rows, tau], cmnd[rows, np.minimum(tau + 1, tau_max)]
        denom = a - 2.0 * b + c
        shift = np.where(np.abs(denom) > 1e-12, 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
        period = tau + np.clip(shift, -1.0, 1.0)
        rms = np.sqrt(e[:, 0] / win)
        ok = has & (rms > silence_rms)
        f0_hz[s:s + fr.shape[0]] = np.where(ok, rate / period, 0.0)
        voiced[s:s + fr.shape[0]] = ok
    return f0_hz, voiced
