"""Augmentations: determinism under a seeded generator, and each effect measured on the output."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm.audio.augment import (
    DEFAULT_PROBS,
    NOISE_KINDS,
    add_noise,
    band_limit,
    gain,
    make_noise,
    pitch_shift,
    random_augment,
    reverb,
    synthetic_rir,
    time_stretch,
)
from speechlm.audio.features import f0

SR = 16000


def _harmonic(f0_hz: float, seconds: float) -> np.ndarray:
    phase = 2 * np.pi * f0_hz * np.arange(int(seconds * SR)) / SR
    x = sum((1.0 / k) * np.sin(k * phase) for k in range(1, 15))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def _tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def _rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64))))


@pytest.mark.parametrize("kind", NOISE_KINDS)
@pytest.mark.parametrize("snr", [0.0, 12.5, 30.0])
def test_add_noise_snr_is_accurate(kind: str, snr: float) -> None:
    x = _harmonic(150, 1.0)
    y = add_noise(x, snr, np.random.default_rng(0), kind=kind, sr=SR)
    assert y.dtype == np.float32 and y.shape == x.shape
    measured = _rms_db(x) - _rms_db(y - x)
    assert abs(measured - snr) < 0.5


def test_noise_kinds_have_their_spectra() -> None:
    rng = np.random.default_rng(1)
    n = 4 * SR

    def band_power(x: np.ndarray, lo: float, hi: float) -> float:
        p = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(x.shape[0], 1 / SR)
        return float(p[(f >= lo) & (f < hi)].sum())

    white, pink, babble = (make_noise(n, rng, k, SR) for k in NOISE_KINDS)
    # White: equal power per Hz; pink: equal power per octave; babble: little above 4 kHz.
    assert band_power(white, 4000, 8000) / band_power(white, 250, 500) > 10
    assert 0.5 < band_power(pink, 4000, 8000) / band_power(pink, 250, 500) < 2
    assert band_power(babble, 5000, 8000) / band_power(babble, 100, 4000) < 0.01
    # Babble is amplitude-modulated like speech: its 50 ms envelope varies much more than white noise's.
    env = lambda x: np.sqrt(np.mean(x.reshape(-1, 800) ** 2, axis=1))  # noqa: E731
    assert np.std(env(babble)) / np.mean(env(babble)) > 3 * np.std(env(white)) / np.mean(env(white))
    with pytest.raises(ValueError):
        make_noise(10, rng, "brown")


def test_reverb_keeps_length_and_rms_and_adds_a_tail() -> None:
    x = np.zeros(SR, np.float32)
    x[1000:1400] = _tone(1000, 400 / SR)
    y = reverb(x, SR, 0.6, np.random.default_rng(2))
    assert y.shape == x.shape
    assert _rms_db(y) == pytest.approx(_rms_db(x), abs=0.01)
    tail = y[1400 + int(0.01 * SR): 1400 + int(0.2 * SR)]
    assert _rms_db(tail) > _rms_db(x) - 30  # sound continues after the burst ended
    rir = synthetic_rir(SR, 0.5, np.random.default_rng(0))
    # Energy decay: the last 100 ms of a 0.5 s RT60 tail is ~50+ dB below the first 100 ms.
    e = lambda s: _rms_db(rir[int(s * SR): int((s + 0.1) * SR)])  # noqa: E731
    assert e(0.01) - e(0.5) > 40
    np.testing.assert_array_equal(reverb(x, SR, 0.0, np.random.default_rng(0)), x)


def test_band_limit_passes_and_stops() -> None:
    cases = [(1000, 300, 3400, True), (6000, 300, 3400, False), (100, 300, 3400, False),
             (1000, None, 2000, True), (4000, None, 2000, False), (200, 500, None, False)]
    for freq, lo, hi, passes in cases:
        x = _tone(freq)
        y = band_limit(x, SR, lo, hi)
        change = _rms_db(y[2000:-2000]) - _rms_db(x[2000:-2000])
        if passes:
            assert abs(change) < 0.5, (freq, lo, hi, change)
        else:
            assert change < -30, (freq, lo, hi, change)


def test_gain_is_exact() -> None:
    x = _tone(440, 0.1)
    np.testing.assert_allclose(gain(x, -6.0), x * 10 ** (-6 / 20), rtol=1e-6)
    assert _rms_db(gain(x, 12.0)) - _rms_db(x) == pytest.approx(12.0, abs=1e-3)


@pytest.mark.parametrize("semitones", [-4.0, 3.0])
def test_pitch_shift_moves_f0(semitones: float) -> None:
    x = _harmonic(140, 1.0)
    want = 140 * 2 ** (semitones / 12)
    y = pitch_shift(x, SR, semitones)
    assert y.shape == x.shape
    f, v = f0(y, SR, 160)
    assert v[10:-10].mean() > 0.9
    assert np.median(f[v]) == pytest.approx(want, rel=0.02)
    tape = pitch_shift(x, SR, semitones, keep_duration=False)
    assert tape.shape[0] == pytest.approx(x.shape[0] / 2 ** (semitones / 12), abs=2)
    f, v = f0(tape, SR, 160)
    assert np.median(f[v]) == pytest.approx(want, rel=0.02)


def test_time_stretch_keeps_pitch() -> None:
    x = _harmonic(180, 1.0)
    y = time_stretch(x, SR, 1.25)
    assert y.shape == (round(x.shape[0] / 1.25),)
    f, v = f0(y, SR, 160)
    assert np.median(f[v]) == pytest.approx(180, rel=0.02)


def test_random_augment_is_deterministic_and_tags_what_it_did() -> None:
    x = _harmonic(120, 0.5)
    a, tags_a = random_augment(x, SR, np.random.default_rng(7), p=1.0)
    b, tags_b = random_augment(x, SR, np.random.default_rng(7), p=1.0)
    np.testing.assert_array_equal(a, b)
    assert tags_a == tags_b
    assert {"pitch_semitones", "reverb_rt60", "band", "noise_snr_db", "noise_kind", "gain_db"} <= set(tags_a)
    assert a.shape == x.shape and np.abs(a).max() <= 0.99 + 1e-6
    c, _ = random_augment(x, SR, np.random.default_rng(8), p=1.0)
    assert not np.array_equal(a, c)
    same, none = random_augment(x, SR, np.random.default_rng(0), p=0.0)
    assert none == {} and np.array_equal(same, x)
    # Tags agree with the output: only gain applied -> exactly that gain.
    only_gain = dict.fromkeys(DEFAULT_PROBS, 0.0) | {"gain": 1.0}
    g, tags = random_augment(x, SR, np.random.default_rng(3), p=only_gain)
    assert set(tags) <= {"gain_db", "limiter_db"}
    total_db = tags["gain_db"] + tags.get("limiter_db", 0.0)
    assert _rms_db(g) - _rms_db(x) == pytest.approx(total_db, abs=0.01)
    with pytest.raises(ValueError):
        random_augment(x, SR, np.random.default_rng(0), p={"chorus": 1.0})
