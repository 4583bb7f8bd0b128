"""Waveform augmentations: pure functions on mono float32 ``[T]`` numpy arrays.

Every random choice comes from the ``np.random.Generator`` passed in, so the same seed gives the same output.
None of these functions clips: the result can exceed [-1, 1] (``save_audio`` clips when writing, and
:func:`random_augment` limits the peak). Used by the synthetic corpus (whose tags record what was applied) and
by codec training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy import signal

from speechlm.audio.io import resample

__all__ = ["DEFAULT_PROBS", "NOISE_KINDS", "add_noise", "band_limit", "gain", "make_noise", "pitch_shift",
           "random_augment", "reverb", "synthetic_rir", "time_stretch"]

NOISE_KINDS = ("white", "pink", "babble-like")


def _mono(wav: np.ndarray) -> np.ndarray:
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1:
        raise ValueError(f"augmentations take mono audio [T], got shape {list(wav.shape)}")
    return wav


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f (pink) noise by shaping white noise's spectrum by 1/sqrt(f)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.shape[0], dtype=np.float64)
    f[0] = 1.0
    spec /= np.sqrt(f)
    spec[0] = 0.0
    return np.fft.irfft(spec, n)


def make_noise(n: int, rng: np.random.Generator, kind: str = "white", sr: int = 16000) -> np.ndarray:
    """Unit-power noise ``[n]`` float64 of the given kind.

    "babble-like" is a sum of 6 independent speech-shaped (pink, 100 Hz-4 kHz) streams, each switched on and
    off by a random syllable-rate (~4 Hz) envelope: it has speech's long-term spectrum and modulation without
    any intelligible content.
    """
    if n <= 0:
        return np.zeros(0)
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind == "pink":
        x = _pink(n, rng)
    elif kind == "babble-like":
        hi = min(4000.0, 0.45 * sr)
        sos = signal.butter(4, [100.0, hi], btype="bandpass", fs=sr, output="sos")
        x = np.zeros(n)
        t = np.arange(n) / sr
        for _ in range(6):
            stream = signal.sosfilt(sos, _pink(n, rng))
            rate = rng.uniform(3.0, 5.5)  # syllables per second
            env = np.clip(np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)), 0.0, None) ** 2
            x += stream / (np.std(stream) + 1e-12) * env
    else:
        raise ValueError(f"unknown noise kind {kind!r}; use one of {NOISE_KINDS}")
    return x / (np.sqrt(np.mean(x * x)) + 1e-12)


def add_noise(wav: np.ndarray, snr_db: float, rng: np.random.Generator, kind: str = "white",
              sr: int = 16000) -> np.ndarray:
    """Add noise at exactly ``snr_db`` (signal power over noise power, measured over the whole clip).

    Args:
        wav: mono float ``[T]``.
        snr_db: wanted signal-to-noise ratio in dB.
        rng: source of the noise.
        kind: "white", "pink" or "babble-like" (see :func:`make_noise`).
        sr: sample rate; only the babble-like spectrum depends on it.

    Returns:
        float32 ``[T]``. A silent input is returned unchanged (no SNR is defined for it).
    """
    wav = _mono(wav)
    noise = make_noise(wav.shape[0], rng, kind, sr)
    p_sig = float(np.mean(np.square(wav, dtype=np.float64)))
    if p_sig == 0.0:
        return wav.copy()
    scale = math.sqrt(p_sig / 10.0 ** (snr_db / 10.0))  # noise has unit power
    return (wav + scale * noise).astype(np.float32)


def synthetic_rir(sr: int, rt60_s: float, rng: np.random.Generator, predelay_s: float = 0.0) -> np.ndarray:
    """A room impulse response ``[n]``: direct path of 1, then exponentially decaying noise (-60 dB at rt60).

    The tail starts 2.5 ms after the direct path (the first reflections) and lasts ``1.2 * rt60_s``. Its
    energy is set to the direct path's times ``rt60_s / 0.1`` capped at 10, so longer rooms are also wetter.
    """
    if rt60_s <= 0:
        return np.ones(1)
    n_pre = int(predelay_s * sr)
    n_gap = int(0.0025 * sr)
    n_tail = max(1, int(1.2 * rt60_s * sr))
    t = np.arange(n_tail) / sr
    tail = rng.standard_normal(n_tail) * np.exp(-3.0 * math.log(10.0) * t / rt60_s)  # 60 dB amplitude decay
    tail *= math.sqrt(min(rt60_s / 0.1, 10.0) / (np.sum(tail * tail) + 1e-12))
    rir = np.zeros(n_pre + n_gap + n_tail)
    rir[n_pre] = 1.0
    rir[n_pre + n_gap:] = tail
    return rir


def reverb(wav: np.ndarray, sr: int, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with :func:`synthetic_rir` and normalise to the input's RMS; the length is kept (tail cut).

    Args:
        wav: mono float ``[T]``.
        sr: sample rate.
        rt60_s: reverberation time (seconds for a 60 dB decay); 0 returns a copy.
        rng: source of the impulse response.

    Returns:
        float32 ``[T]`` with the same RMS as ``wav``.
    """
    wav = _mono(wav)
    if rt60_s <= 0 or wav.shape[0] == 0:
        return wav.copy()
    rir = synthetic_rir(sr, rt60_s, rng)
    out = signal.fftconvolve(wav.astype(np.float64), rir)[: wav.shape[0]]
    rms_in = math.sqrt(float(np.mean(np.square(wav, dtype=np.float64))))
    rms_out = math.sqrt(float(np.mean(out * out)))
    if rms_out > 0:
        out *= rms_in / rms_out
    return out.astype(np.float32)


def band_limit(wav: np.ndarray, sr: int, low_hz: float | None, high_hz: float | None, order: int = 8
               ) -> np.ndarray:
    """Zero-phase Butterworth band-pass (``low_hz`` None/<= 0: low-pass; ``high_hz`` None/>= sr/2: high-pass).

    Args:
        wav: mono float ``[T]``.
        sr: sample rate.
        low_hz, high_hz: pass band edges (-3 dB points of each pass of the filter) in Hz.
        order: filter order (applied forward and backward, so the slope is doubled).

    Returns:
        float32 ``[T]``.
    """
    wav = _mono(wav)
    nyq = sr / 2.0
    lo = low_hz if low_hz is not None and low_hz > 0 else None
    hi = high_hz if high_hz is not None and high_hz < nyq else None
    if lo is None and hi is None:
        return wav.copy()
    if lo is not None and hi is not None:
        if not lo < hi:
            raise ValueError(f"need low_hz < high_hz, got {low_hz} and {high_hz}")
        sos = signal.butter(order, [lo, hi], btype="bandpass", fs=sr, output="sos")
    elif lo is not None:
        sos = signal.butter(order, lo, btype="highpass", fs=sr, output="sos")
    else:
        sos = signal.butter(order, hi, btype="lowpass", fs=sr, output="sos")
    if wav.shape[0] <= 3 * (2 * sos.shape[0] + 1):  # too short for filtfilt's edge padding
        return signal.sosfilt(sos, wav).astype(np.float32)
    return signal.sosfiltfilt(sos, wav.astype(np.float64)).astype(np.float32)


def gain(wav: np.ndarray, db: float) -> np.ndarray:
    """Scale by ``db`` decibels (no clipping). ``[T] -> [T]`` float32."""
    return (_mono(wav) * np.float32(10.0 ** (db / 20.0))).astype(np.float32)


def time_stretch(wav: np.ndarray, sr: int, rate: float, frame_s: float = 0.03) -> np.ndarray:
    """WSOLA time stretch: duration divided by ``rate``, pitch kept.

    Overlap-adds hann frames at a synthesis hop of half a frame, reading each from the analysis position
    ``rate`` times further on, shifted within +-1/4 frame to the offset whose waveform best continues the
    output (cross-correlation), so periodic speech keeps its phase.

    Returns:
        float32 ``[round(T / rate)]``.
    """
    x = _mono(wav).astype(np.float64)
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    n_out = int(round(x.shape[0] / rate))
    if abs(rate - 1.0) < 1e-9 or x.shape[0] == 0:
        return x.astype(np.float32)
    frame = max(16, int(frame_s * sr)) // 2 * 2
    hop = frame // 2
    tol = frame // 4
    win = np.hanning(frame)
    xp = np.pad(x, (tol + frame, tol + 2 * frame + int(rate * hop) + 1))
    out = np.zeros(n_out + 2 * frame)
    norm = np.zeros_like(out)
    prev_end = None  # the natural continuation of the last frame read
    for i, pos in enumerate(range(0, n_out + frame, hop)):
        centre = int(round(i * hop * rate)) + tol + frame
        if prev_end is None:
            start = centre
        else:
            seg = xp[centre - tol: centre + tol + frame]
            ref = xp[prev_end: prev_end + frame]
            corr = np.correlate(seg, ref, mode="valid")  # 2*tol + 1 offsets
            start = centre - tol + int(np.argmax(corr))
        out[pos: pos + frame] += xp[start: start + frame] * win
        norm[pos: pos + frame] += win
        prev_end = start + hop
    out = out[hop: hop + n_out] / np.maximum(norm[hop: hop + n_out], 1e-3)
    return out.astype(np.float32)


def pitch_shift(wav: np.ndarray, sr: int, semitones: float, keep_duration: bool = True) -> np.ndarray:
    """Shift pitch by ``semitones`` by resampling.

    With ``keep_duration=False`` it is a tape-speed change: pitch and formants move together and the duration
    is divided by ``2 ** (semitones / 12)``. With ``keep_duration=True`` (default) a WSOLA
    :func:`time_stretch` first lengthens the signal by that factor, so the output has the input's length
    ``[T]``.

    Returns:
        float32 ``[T]`` (keep_duration) or ``[~T / 2 ** (semitones / 12)]``.
    """
    wav = _mono(wav)
    if semitones == 0:
        return wav.copy()
    factor = 2.0 ** (semitones / 12.0)
    x = time_stretch(wav, sr, 1.0 / factor) if keep_duration else wav
    # Playing sr * factor samples per second at sr raises the pitch by factor: resample sr*factor -> sr.
    sr_in = int(round(sr * factor))
    y = resample(x, sr_in, sr)
    if keep_duration:
        y = np.pad(y, (0, max(0, wav.shape[0] - y.shape[0])))[: wav.shape[0]]
    return y.astype(np.float32)


DEFAULT_PROBS: dict[str, float] = {"pitch": 0.0, "reverb": 0.3, "band": 0.2, "noise": 0.5, "gain": 0.5}
_BANDS = ((300, 3400), (200, 4000), (100, 7000), (50, 3000))


def random_augment(wav: np.ndarray, sr: int, rng: np.random.Generator,
                   p: float | Mapping[str, float] | None = None) -> tuple[np.ndarray, dict]:
    """Apply a random subset of the augmentations, in the order pitch, reverb, band, noise, gain.

    Args:
        wav: mono float ``[T]``.
        sr: sample rate.
        rng: every choice (which ones, their parameters, the noise) comes from it.
        p: probability of each augmentation: one float for all, or a mapping with keys of
            :data:`DEFAULT_PROBS` (missing keys keep their default); None uses the defaults.

    Returns:
        ``(wav [T'] float32, tags)`` where tags records what was applied, e.g. ``{"pitch_semitones": 2.1,
        "reverb_rt60": 0.4, "band": [300, 3400], "noise_snr_db": 15.2, "noise_kind": "pink", "gain_db":
        -6.0}``, plus ``"limiter_db"`` when the peak had to be brought down to 0.99. The length is kept.
    """
    probs = dict(DEFAULT_PROBS)
    if isinstance(p, Mapping):
        unknown = set(p) - set(probs)
        if unknown:
            raise ValueError(f"unknown augmentations {sorted(unknown)}; use {sorted(probs)}")
        probs.update(p)
    elif p is not None:
        probs = dict.fromkeys(probs, float(p))
    out = _mono(wav).copy()
    tags: dict = {}
    # Draw every decision up front so each augmentation's parameters do not depend on which others ran.
    draw = {k: rng.random() < probs[k] for k in probs}
    if draw["pitch"]:
        st = round(float(rng.uniform(-3.0, 3.0)), 2)
        out = pitch_shift(out, sr, st, keep_duration=True)
        tags["pitch_semitones"] = st
    if draw["reverb"]:
        rt60 = round(float(rng.uniform(0.15, 0.9)), 2)
        out = reverb(out, sr, rt60, rng)
        tags["reverb_rt60"] = rt60
    if draw["band"]:
        lo, hi = _BANDS[int(rng.integers(len(_BANDS)))]
        hi = min(hi, int(0.45 * sr))
        out = band_limit(out, sr, lo, hi)
        tags["band"] = [lo, hi]
    if draw["noise"]:
        snr = round(float(rng.uniform(5.0, 30.0)), 1)
        kind = NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
        out = add_noise(out, snr, rng, kind=kind, sr=sr)
        tags["noise_snr_db"] = snr
        tags["noise_kind"] = kind
    if draw["gain"]:
        g = round(float(rng.uniform(-12.0, 6.0)), 1)
        out = gain(out, g)
        tags["gain_db"] = g
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > 0.99:
        out = (out * (0.99 / peak)).astype(np.float32)
        tags["limiter_db"] = round(20 * math.log10(0.99 / peak), 2)
    return out, tags
