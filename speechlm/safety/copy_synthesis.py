"""Copy synthesis: a human recording re-rendered by a classic vocoder, as synthetic training speech for the detector.

A detector trained on human speech from a few sources and synthetic speech from others can learn who is speaking,
in which language and through which channel instead of how the waveform was made, and then flags unfamiliar
human recordings (docs/safety.md). Re-rendering the human training recordings themselves through vocoders gives
synthetic clips with the same speakers and words as the human ones (Wang & Yamagishi, "Spoofed training data for
speech spoofing countermeasure can be efficiently created using neural vocoders", ICASSP 2023, with neural
vocoders; here three signal-processing ones). The copies are clean: a recording's Vorbis or telephone-codec traces
are not re-applied (doing so made the detector worse, docs/experiments/2026-12-06-copy-synthesis-detector.md).

- ``world``: WORLD analysis and synthesis at full resolution (DIO + StoneMask, CheapTrick, D4C; 5-ms frames).
- ``griffin_lim``: an 80-band mel spectrogram inverted by Griffin-Lim (the phase of early neural TTS).
- ``lpc``: an order-18 linear-prediction vocoder, excited by a pulse train at the WORLD F0 where voiced and by
  white noise elsewhere (the classic buzzy vocoder).

Every function maps a 16-kHz clip ``[T]`` to a 16-kHz clip of the same length ``[T]`` (float32).
"""

from __future__ import annotations

import numpy as np

SR = 16000
VOCODERS = ("world", "griffin_lim", "lpc")


def world(wav: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """WORLD analysis + synthesis at 5-ms frames, full spectral and aperiodicity resolution."""
    import pyworld as pw

    x = np.ascontiguousarray(wav, np.float64)
    f0, t = pw.dio(x, SR, frame_period=5.0)
    f0 = pw.stonemask(x, f0, t, SR)
    sp = pw.cheaptrick(x, f0, t, SR)
    ap = pw.d4c(x, f0, t, SR)
    y = pw.synthesize(f0, sp, ap, SR, frame_period=5.0)
    return _fit(y, len(wav))


def griffin_lim(wav: np.ndarray, rng: np.random.Generator | None = None, n_iter: int = 32) -> np.ndarray:
    """80-band mel magnitude (512-point STFT, 128 hop) -> linear magnitude (pseudo-inverse, non-negative) ->
    ``n_iter`` Griffin-Lim iterations from a random phase."""
    import librosa
    import torch

    rng = rng or np.random.default_rng(0)
    n_fft, hop = 512, 128
    win = torch.hann_window(n_fft, dtype=torch.float64)
    x = torch.from_numpy(np.asarray(wav, np.float64))
    spec = torch.stft(x, n_fft, hop, window=win, return_complex=True)
    fb = librosa.filters.mel(sr=SR, n_fft=n_fft, n_mels=80)
    mel = fb @ spec.abs().numpy()
    mag = torch.from_numpy(np.maximum(np.linalg.pinv(fb) @ mel, 0.0))
    phase = torch.from_numpy(np.exp(2j * np.pi * rng.random(mag.shape)))
    for _ in range(n_iter):
        y = torch.istft(mag * phase, n_fft, hop, window=win, length=len(wav))
        s = torch.stft(y, n_fft, hop, window=win, return_complex=True)
        phase = s / s.abs().clamp_min(1e-9)
    y = torch.istft(mag * phase, n_fft, hop, window=win, length=len(wav)).numpy()
    return _fit(y, len(wav))


def lpc(wav: np.ndarray, rng: np.random.Generator | None = None, order: int = 18) -> np.ndarray:
    """Order-``order`` LPC per 10-ms hop (25-ms Hann window), pulse-train or noise excitation at each hop's
    residual power, the all-pole filter's state carried across hops."""
    import pyworld as pw
    from scipy.linalg import solve_toeplitz
    from scipy.signal import lfilter

    rng = rng or np.random.default_rng(0)
    x = np.asarray(wav, np.float64)
    hop, n_win = 160, 400
    f0, t = pw.dio(x, SR, frame_period=10.0)
    f0 = pw.stonemask(x, f0, t, SR)
    pad = np.pad(x, (n_win // 2, n_win))
    window = np.hanning(n_win)
    out = np.zeros(len(x) + hop)
    zi = np.zeros(order)
    phase = 0.0
    for k in range(len(x) // hop + 1):
        frame = pad[k * hop : k * hop + n_win] * window
        r = np.correlate(frame, frame, "full")[n_win - 1 : n_win + order]
        if r[0] <= 1e-10:
            a, power = np.zeros(order), 0.0
        else:
            r[0] *= 1.0 + 1e-6  # white-noise correction keeps the system well conditioned
            a = solve_toeplitz(r[:order], r[1 : order + 1])
            power = max(float(r[0] - a @ r[1 : order + 1]), 0.0) / float((window ** 2).sum())
        f = f0[min(k, len(f0) - 1)]
        if f > 0:  # a unit-power pulse train at f, its phase carried across hops
            exc = np.zeros(hop)
            period = SR / f
            pos = (-phase) % period
            while pos < hop:
                exc[int(pos)] = np.sqrt(period)
                pos += period
            phase = (phase + hop) % period
        else:
            exc = rng.standard_normal(hop)
        y, zi = lfilter([1.0], np.concatenate([[1.0], -a]), exc * np.sqrt(power), zi=zi)
        out[k * hop : k * hop + hop] = y
    return _fit(out, len(wav))


def copy_synthesis(wav: np.ndarray, vocoder: str, rng: np.random.Generator | None = None) -> np.ndarray:
    """``wav [T]`` (16 kHz) re-rendered by ``vocoder`` (one of :data:`VOCODERS`) -> ``[T]``."""
    if vocoder not in VOCODERS:
        raise ValueError(f"unknown vocoder {vocoder!r}; choose from {', '.join(VOCODERS)}")
    return {"world": world, "griffin_lim": griffin_lim, "lpc": lpc}[vocoder](wav, rng)


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    """Length ``n``, no sample beyond full scale, float32."""
    y = np.asarray(y, np.float64)[:n]
    y = np.pad(y, (0, n - len(y)))
    peak = float(np.abs(y).max()) if y.size else 0.0
    if peak > 0.99:
        y *= 0.99 / peak
    return y.astype(np.float32)
