"""A recording's effective band edge, and a voice shift that does not equalise beyond it."""

from __future__ import annotations

import numpy as np
import pytest


def _speechlike(sr: int, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Bursts of white noise (fricative-like, full band) over a 150-Hz pulse train (voiced), at 16 kHz."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    x = np.zeros(n)
    x[:: sr // 150] = 1.0
    env = (np.sin(2 * np.pi * 3 * np.arange(n) / sr) > 0).astype(float)
    return (0.3 * x + 0.05 * rng.standard_normal(n) * env).astype(np.float32)


def test_band_edge_of_wideband_and_telephone_audio():
    from speechlm.audio.bandwidth import band_edge_hz
    from speechlm.audio.io import resample

    x = _speechlike(16000)
    assert band_edge_hz(x, 16000) == 8000.0  # full band
    tel = resample(resample(x, 16000, 8000), 8000, 16000)
    assert 3500 < band_edge_hz(tel, 16000) < 4100
    assert band_edge_hz(np.zeros(16000, np.float32), 16000) == 8000.0  # nothing to read: full band
    assert band_edge_hz(x[:100], 16000) == 8000.0


def test_a_band_limited_shift_holds_the_equaliser_above_the_band():
    from speechlm.lm.acoustic_api import BAND_USE, VoiceShift, VoiceStats, _log_spectra, warp_mcep
    from speechlm.tokenizers.source_filter.world import FFT_SIZE, SAMPLE_RATE, pyworld

    f = np.arange(FFT_SIZE // 2 + 1) * SAMPLE_RATE / FFT_SIZE
    tilt = np.exp(-f / 2000.0)  # a voice's falling spectrum
    rolloff = np.where(f > 3800, 1e-4, 1.0)  # the telephone channel: -40 dB above 3.8 kHz

    def stats(sp: np.ndarray) -> VoiceStats:
        mc = pyworld().code_spectral_envelope(np.ascontiguousarray(sp[None] * 1e-3), SAMPLE_RATE, 40)[0]
        return VoiceStats(np.log(120.0), 0.2, mc.astype(np.float32))

    src, tgt = stats(tilt), stats(tilt * rolloff)
    naive = VoiceShift.between(src, tgt)
    held = VoiceShift.between(src, tgt, band_hz=3800.0)

    def eq_db(sh: VoiceShift) -> np.ndarray:
        mean = warp_mcep(sh.source.mcep_mean[None], sh.warp)[0]
        ls, lt = _log_spectra(np.stack([mean, sh.target.mcep_mean]))
        return 10 / np.log(10) * (lt - ls)

    hi, mid = f > 4500, (f > 1000) & (f < 2000)  # the equaliser's shape: above the band against inside it
    # (its overall level does not matter: every frame keeps its energy)
    assert eq_db(naive)[hi].mean() - eq_db(naive)[mid].mean() < -25  # the channel's roll-off copied
    assert abs(eq_db(held)[hi].mean() - eq_db(held)[mid].mean()) < 3  # held at its level below the band
    assert held.warp == pytest.approx(1.0, abs=0.05)  # the same voice: no formant warp
    assert BAND_USE * 3800 < 3500
