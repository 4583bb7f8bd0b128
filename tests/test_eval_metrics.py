"""Signal metrics against their reference implementations and known cases."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm.eval import metrics as M


def _speechlike(seconds: float = 2.0, sr: int = 16000, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A voiced, syllable-modulated harmonic signal: enough structure for PESQ/STOI/F0 to behave."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    pitch = f0 * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 20))
    env = 0.5 * (1 + np.sin(2 * np.pi * 3.0 * t)) ** 2
    return (0.1 * env * x + 1e-4 * rng.standard_normal(t.size)).astype(np.float32)


def _noisy(x: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    n = np.random.default_rng(seed).standard_normal(x.size)
    n *= np.sqrt(np.sum(x.astype(np.float64) ** 2) / np.sum(n**2) / 10 ** (snr_db / 10))
    return (x + n).astype(np.float32)


def test_si_sdr_known_cases():
    x = _speechlike()
    assert M.si_sdr(x, x) == M.SI_SDR_CAP_DB
    assert M.si_sdr(x, 0.3 * x) == M.SI_SDR_CAP_DB
    x0 = x - x.mean()  # SI-SDR is zero-mean; make the SNR exact for the zero-mean signal
    assert M.si_sdr(x0, _noisy(x0, 10.0)) == pytest.approx(10.0, abs=0.3)
    assert M.si_sdr(x0, _noisy(x0, 0.0)) == pytest.approx(0.0, abs=0.3)
    assert np.isnan(M.si_sdr(np.zeros(100), x[:100]))


def test_pesq_and_stoi_match_packages():
    from pesq import pesq
    from pystoi import stoi

    x = _speechlike(3.0)
    y = _noisy(x, 15.0)
    assert M.pesq_score(x, y, 16000) == pytest.approx(pesq(16000, x, y, "wb"), abs=1e-6)
    assert M.stoi_score(x, y, 16000) == pytest.approx(stoi(x, y, 16000), abs=1e-9)
    # narrow-band at 8 kHz
    x8, y8 = x[::2].copy(), y[::2].copy()
    assert M.pesq_score(x8, y8, 8000) == pytest.approx(pesq(8000, x8, y8, "nb"), abs=1e-6)
    # cleaner is better
    assert M.pesq_score(x, _noisy(x, 30.0), 16000) > M.pesq_score(x, _noisy(x, 5.0), 16000)
    with pytest.raises(ValueError):
        M.pesq_score(x, y, 22050)


def test_trim_to_min_for_unequal_lengths():
    x = _speechlike()
    y = np.concatenate([x, np.zeros(37, np.float32)])
    assert M.si_sdr(x, y) == M.SI_SDR_CAP_DB
    assert M.mel_distance(x, y, 16000) == pytest.approx(0.0, abs=1e-6)


def _naive_dtw(c):
    n, m = c.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            acc[i, j] = c[i - 1, j - 1] + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
    return acc[n, m]


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (6, 1), (7, 9), (13, 4)])
def test_dtw_matches_naive_loop(shape):
    c = np.random.default_rng(sum(shape)).random(shape)
    r = M.dtw(c)
    assert r.cost == pytest.approx(_naive_dtw(c))
    assert c[r.path_a, r.path_b].sum() == pytest.approx(r.cost)  # the path realises the cost
    assert r.path_a[0] == 0 and r.path_b[0] == 0
    assert r.path_a[-1] == shape[0] - 1 and r.path_b[-1] == shape[1] - 1
    steps = np.stack([np.diff(r.path_a), np.diff(r.path_b)])
    assert np.all((steps >= 0) & (steps <= 1)) and np.all(steps.sum(0) >= 1)


def test_mcd_and_f0_identical_and_shifted():
    x = _speechlike(2.0)
    assert M.mcd(x, x, 16000) == pytest.approx(0.0, abs=1e-9)
    f = M.f0_metrics(x, x, 16000)
    assert f.rmse_cents == 0.0 and f.voicing_error == 0.0 and f.n_voiced > 50
    # Time-stretched copy (padding silence at the start): DTW absorbs the shift, F0 stays the same.
    y = np.concatenate([np.zeros(3200, np.float32), x])
    g = M.f0_metrics(x, y, 16000, use_dtw=True)
    assert g.rmse_cents < 30.0
    # A pitch shift of a semitone (~100 cents) shows up as such.
    z = _speechlike(2.0, f0=140.0 * 2 ** (1 / 12))
    h = M.f0_metrics(x, z, 16000)
    assert h.rmse_cents == pytest.approx(100.0, abs=25.0)
    assert M.mcd(x, z, 16000) > M.mcd(x, x, 16000)


def test_voiced_kept_clear_counts_clearly_voiced_frames():
    x = _speechlike(2.0)
    same = M.f0_metrics(x, x, 16000)
    assert same.voiced_kept == 1.0 and same.voiced_kept_clear == 1.0
    # The second half whispered (noise with the same envelope): its voiced frames are lost under both counts.
    y = x.copy()
    half = y.size // 2
    noise = np.random.default_rng(3).standard_normal(y.size - half).astype(np.float32)
    y[half:] = noise * np.abs(x[half:]).mean() * 2
    lost = M.f0_metrics(x, y, 16000)
    assert 0.3 < lost.voiced_kept < 0.7 and 0.3 < lost.voiced_kept_clear < 0.7
