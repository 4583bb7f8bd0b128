"""Validation of audio metadata and samples, shared by loading and saving.

Every check raises :class:`~speechlm.errors.AudioError` with a one-line message naming the file (when known)
and the limit that was broken, so the CLI can print it as is.

Documented limits:

* sample rate: ``MIN_SAMPLE_RATE`` (8 kHz) to ``MAX_SAMPLE_RATE`` (192 kHz) inclusive;
* channels: 1 to ``MAX_CHANNELS`` (8, i.e. up to 7.1 surround);
* duration: at most ``MAX_SECONDS`` (3 hours) per file loaded in one piece. Longer files can be streamed in
  bounded memory with :func:`speechlm.audio.io.iter_audio_blocks`;
* samples: finite (no NaN or Inf), at least one sample per channel.
"""

from __future__ import annotations

import math

import numpy as np

from speechlm.errors import AudioError

MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000
MAX_CHANNELS = 8
# 3 hours: ~2 GB as float32 at 48 kHz stereo, the most we are willing to hold in memory at once.
MAX_SECONDS = 3 * 3600.0


def _where(name: object | None) -> str:
    return f"{name}: " if name is not None else ""


def check_sample_rate(sr: float, name: object | None = None) -> int:
    """Raise unless ``sr`` is a whole number of Hz in [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]; return it as int."""
    try:
        ok = float(sr).is_integer()
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise AudioError(f"{_where(name)}sample rate {sr!r} is not a whole number of Hz")
    sr = int(sr)
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise AudioError(f"{_where(name)}sample rate {sr} Hz is outside the supported "
                         f"{MIN_SAMPLE_RATE // 1000}-{MAX_SAMPLE_RATE // 1000} kHz range")
    return sr


def check_channels(channels: int, name: object | None = None, max_channels: int = MAX_CHANNELS) -> int:
    """Raise unless ``1 <= channels <= max_channels``."""
    if channels < 1:
        raise AudioError(f"{_where(name)}audio has no channels")
    if channels > max_channels:
        raise AudioError(f"{_where(name)}{channels} channels is more than the supported {max_channels}")
    return int(channels)


def check_duration(frames: int, sr: int, name: object | None = None,
                   max_seconds: float = MAX_SECONDS) -> None:
    """Raise if there are no samples, or more than ``max_seconds`` of them."""
    if frames <= 0:
        raise AudioError(f"{_where(name)}audio contains no samples")
    seconds = frames / sr
    if max_seconds is not None and seconds > max_seconds:
        raise AudioError(f"{_where(name)}duration {seconds:.1f} s is over the {max_seconds:g} s limit "
                         "(stream long files with iter_audio_blocks, or raise max_seconds)")


def check_finite(wav: np.ndarray, name: object | None = None) -> None:
    """Raise if ``wav`` holds any NaN or infinite sample, saying how many and where the first one is."""
    finite = np.isfinite(wav)
    if finite.all():
        return
    bad = ~finite
    n_nan = int(np.isnan(wav).sum())
    n_inf = int(bad.sum()) - n_nan
    first = int(np.argmax(bad.reshape(-1, bad.shape[-1]).any(axis=0)))
    kinds = ", ".join(k for k, n in (("NaN", n_nan), ("Inf", n_inf)) if n)
    raise AudioError(f"{_where(name)}audio contains non-finite samples ({kinds}: {n_nan} NaN, {n_inf} Inf; "
                     f"first at sample {first})")


def validate_waveform(wav: np.ndarray, sr: int, name: object | None = None, *,
                      max_channels: int = MAX_CHANNELS, max_seconds: float | None = MAX_SECONDS
                      ) -> np.ndarray:
    """Check a waveform ``[C, T]`` (or ``[T]``) against every limit; return it as ``[C, T]``.

    Raises:
        AudioError: bad rate, shape, channel count, duration, or non-finite samples.
    """
    sr = check_sample_rate(sr, name)
    wav = np.asarray(wav)
    if wav.ndim == 1:
        wav = wav[None]
    if wav.ndim != 2:
        raise AudioError(f"{_where(name)}expected audio shaped [T] or [C, T], got {list(wav.shape)}")
    if not (np.issubdtype(wav.dtype, np.floating) or np.issubdtype(wav.dtype, np.integer)):
        raise AudioError(f"{_where(name)}audio samples have unsupported dtype {wav.dtype}")
    check_channels(wav.shape[0], name, max_channels)
    check_duration(wav.shape[1], sr, name, math.inf if max_seconds is None else max_seconds)
    if np.issubdtype(wav.dtype, np.floating):
        check_finite(wav, name)
    return wav
