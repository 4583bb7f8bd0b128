"""Log-mel, MFCC, energy and F0: shapes, frame alignment and values on signals with a known answer."""

from __future__ import annotations

import time

import numpy as np
import pytest
import scipy.fft
import torch
from conftest import require_module

from speechlm.audio.features import (
    energy,
    f0,
    hz_to_mel,
    log_mel,
    mel_filterbank,
    mel_to_hz,
    mfcc,
    num_frames,
)

SR = 16000


def _sine(freq: float, seconds: float, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _harmonic(f0_track: np.ndarray, sr: int = SR, n_harm: int = 15) -> np.ndarray:
    """Speech-like voiced signal: harmonics with 1/k amplitudes (a glottal-pulse-like tilt) on an F0 track."""
    phase = 2 * np.pi * np.cumsum(f0_track) / sr
    x = sum((1.0 / k) * np.sin(k * phase) for k in range(1, n_harm + 1))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


@pytest.mark.parametrize("t", [0, 100, 255, 256, 257, 1000, 16000, 16001])
def test_frame_counts_agree(t: int) -> None:
    hop = 256
    x = np.random.default_rng(0).standard_normal(t).astype(np.float32) * 0.1
    n = num_frames(t, hop)
    assert n == 1 + t // hop
    assert log_mel(x, SR, hop_length=hop).shape == (80, n)
    assert mfcc(x, SR, hop_length=hop).shape == (13, n)
    assert energy(x, 1024, hop).shape == (n,)
    f, v = f0(x, SR, hop)
    assert f.shape == v.shape == (n,)


def test_batched_shapes_and_consistency() -> None:
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 3, 8000)).astype(np.float32))
    lm = log_mel(x, SR, n_fft=512, hop_length=160, n_mels=64)
    assert lm.shape == (2, 3, 64, 51) and lm.dtype == torch.float32
    torch.testing.assert_close(lm[1, 2], log_mel(x[1, 2], SR, n_fft=512, hop_length=160, n_mels=64),
                               atol=1e-4, rtol=1e-4)
    assert mfcc(x, SR, n_mfcc=20, n_fft=512, hop_length=160, n_mels=64).shape == (2, 3, 20, 51)
    assert energy(x, 400, 160).shape == (2, 3, 51)


def test_log_mel_of_sine_peaks_at_its_mel_band() -> None:
    fb = mel_filterbank(SR, 1024, 80)
    for freq in (300.0, 1000.0, 3000.0):
        lm = log_mel(_sine(freq, 0.5), SR)
        peak_bins = lm[:, 2:-2].argmax(dim=0)
        # The band whose triangle responds most to this frequency.
        fft_bin = int(round(freq * 1024 / SR))
        expected = int(np.argmax(fb[:, fft_bin]))
        assert (peak_bins == expected).all(), (freq, peak_bins.unique(), expected)
    # Silence sits at the floor.
    floor = torch.tensor(np.log(1e-5), dtype=torch.float32)
    assert torch.allclose(log_mel(np.zeros(4000, np.float32), SR), floor)


def test_mel_scale_round_trip_and_filterbank() -> None:
    f = np.array([0.0, 200.0, 999.0, 1000.0, 4000.0, 8000.0])
    for htk in (False, True):
        np.testing.assert_allclose(mel_to_hz(hz_to_mel(f, htk), htk), f, atol=1e-6)
    fb = mel_filterbank(SR, 1024, 80)
    assert fb.shape == (80, 513) and (fb >= 0).all() and (fb.sum(axis=1) > 0).all()
    assert mel_filterbank(SR, 1024, 80) is fb  # cached


@pytest.mark.slow  # importing librosa (numba) alone takes ~8 s
def test_log_mel_matches_librosa_when_available() -> None:
    librosa = require_module("librosa")
    x = np.random.default_rng(2).standard_normal(8000).astype(np.float32) * 0.1
    ref = librosa.feature.melspectrogram(y=x, sr=SR, n_fft=1024, hop_length=256, n_mels=80, power=1.0,
                                         pad_mode="reflect")
    np.testing.assert_allclose(log_mel(x, SR).numpy(), np.log(np.maximum(ref, 1e-5)), atol=1e-3)


def test_mfcc_is_orthonormal_dct_of_log_mel() -> None:
    x = np.random.default_rng(3).standard_normal(8000).astype(np.float32) * 0.1
    lm = log_mel(x, SR).numpy()
    ref = scipy.fft.dct(lm, type=2, norm="ortho", axis=0)[:13]
    np.testing.assert_allclose(mfcc(x, SR).numpy(), ref, atol=1e-3)
    with pytest.raises(ValueError):
        mfcc(x, SR, n_mfcc=100)


def test_energy_values() -> None:
    e = energy(_sine(500, 0.5, amp=1.0), 1024, 256)
    np.testing.assert_allclose(e[4:-4].numpy(), -3.0103, atol=0.05)  # full-scale sine RMS = 1/sqrt(2)
    assert torch.all(energy(np.zeros(2000, np.float32), 400, 160) == -100.0)


def test_f0_of_pure_tone() -> None:
    for freq in (80.0, 220.0, 440.0):
        f, v = f0(_sine(freq, 1.0), SR, 160)
        assert v[3:-3].all()
        np.testing.assert_allclose(f[v], freq, rtol=0.02)
        assert abs(np.median(f[v]) - freq) / freq < 0.002


def test_f0_tracks_harmonic_vibrato() -> None:
    t = np.arange(2 * SR) / SR
    track = 140.0 * (1.0 + 0.05 * np.sin(2 * np.pi * 5.0 * t))
    f, v = f0(_harmonic(track), SR, 160)
    ref = track[np.minimum(np.arange(f.shape[0]) * 160, t.shape[0] - 1)]
    assert v.mean() > 0.95
    err = np.abs(f[v] / ref[v] - 1.0)
    assert np.median(err) < 0.01 and err.max() < 0.03  # no octave errors


def test_f0_unvoiced_on_noise_and_silence() -> None:
    noise = np.random.default_rng(4).standard_normal(SR).astype(np.float32) * 0.1
    f, v = f0(noise, SR, 160)
    assert v.mean() < 0.05 and np.all(f[~v] == 0)
    f, v = f0(np.zeros(SR, np.float32), SR, 160)
    assert not v.any() and not f.any()
    # A tone in the middle of silence is voiced only there.
    x = np.zeros(SR, np.float32)
    x[4000:12000] = _sine(200, 0.5)
    f, v = f0(x, SR, 160)
    assert v[30:70].all() and not v[:15].any() and not v[-15:].any()


def test_f0_is_fast() -> None:
    """Loose on a shared machine (the report measures ~50x+); catches an accidental per-frame Python loop."""
    x = _harmonic(np.full(10 * SR, 150.0))
    start = time.perf_counter()
    f0(x, SR, 160)
    assert time.perf_counter() - start < 1.0  # >= 10x real time


@pytest.mark.parametrize("sr,hop", [(44100, 441), (48000, 480), (22050, 256), (8000, 80)])
def test_f0_at_other_rates(sr: int, hop: int) -> None:
    """Rates above 16 kHz are analysed after resampling; frame count and accuracy must not change."""
    x = _sine(220.0, 1.0, sr=sr)
    f, v = f0(x, sr, hop)
    assert f.shape == (1 + x.shape[0] // hop,)
    assert v[3:-3].all()
    np.testing.assert_allclose(f[v], 220.0, rtol=0.02)


def test_log_mel_in_chunks_equals_one_pass():
    x = np.random.default_rng(3).normal(0, 0.1, (2, 16000 * 3 + 77)).astype(np.float32)
    one = log_mel(x, 16000, n_fft=400, hop_length=160, n_mels=40)
    chunked = log_mel(x, 16000, n_fft=400, hop_length=160, n_mels=40, chunk_frames=70)  # 5 chunks, a ragged end
    assert chunked.shape == one.shape == (2, 40, 301)
    assert torch.allclose(chunked, one, atol=1e-5)
    assert torch.equal(log_mel(x, 16000, n_fft=400, hop_length=160, n_mels=40, chunk_frames=301), one)
