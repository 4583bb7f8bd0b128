"""Loading, saving, resampling and streaming of audio files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechlm.audio import (
    MAX_SECONDS,
    audio_info,
    iter_audio_blocks,
    load_audio,
    resample,
    save_audio,
)
from speechlm.errors import AudioError

SR = 16000


def _sine(freq: float, seconds: float, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.shape[-1])))
    return float(np.argmax(spec) * sr / x.shape[-1])


def _snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    ref, est = ref.astype(np.float64), est.astype(np.float64)
    return float(10 * np.log10(np.sum(ref ** 2) / np.sum((ref - est) ** 2)))


def test_max_seconds_is_documented_three_hours() -> None:
    assert MAX_SECONDS == 3 * 3600


@pytest.mark.parametrize("ext,min_snr", [(".wav", 80.0), (".flac", 80.0), (".aiff", 80.0)])
def test_lossless_round_trip(tmp_path: Path, ext: str, min_snr: float) -> None:
    x = np.stack([_sine(440, 0.5), _sine(660, 0.5, amp=0.3)])
    path = tmp_path / f"a{ext}"
    assert save_audio(path, x, SR) == 0
    y, sr = load_audio(path, channels=None)
    assert sr == SR and y.dtype == np.float32 and y.shape == x.shape
    assert np.abs(y - x).max() <= 1.0 / 32768 + 1e-7  # PCM_16 quantisation only
    assert _snr_db(x, y) > min_snr


def test_float_wav_is_exact(tmp_path: Path) -> None:
    x = _sine(440, 0.2, amp=1.5)  # beyond full scale: float files are not clipped
    assert save_audio(tmp_path / "f.wav", x, SR, subtype="FLOAT") == 0
    y, _ = load_audio(tmp_path / "f.wav")
    np.testing.assert_array_equal(y[0], x)


@pytest.mark.parametrize("ext", [".ogg", ".opus", ".mp3"])
def test_lossy_round_trip(tmp_path: Path, ext: str) -> None:
    x = _sine(440, 1.0)
    path = tmp_path / f"a{ext}"
    save_audio(path, x, SR)
    y, sr = load_audio(path)
    assert sr == SR and y.shape[0] == 1
    assert abs(y.shape[1] - x.shape[0]) <= 0.05 * SR  # codecs may pad a frame
    mid = y[0, SR // 4: 3 * SR // 4]
    assert _peak_hz(mid, SR) == pytest.approx(440, abs=3)
    assert np.sqrt(np.mean(mid ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


def test_save_accepts_torch_and_clips_with_count(tmp_path: Path, caplog) -> None:
    x = torch.tensor([0.0, 0.5, 1.5, -2.0, 1.0])
    with caplog.at_level("WARNING"):
        n = save_audio(tmp_path / "t.wav", x, SR)
    assert n == 2 and "clipped 2" in caplog.text
    y, _ = load_audio(tmp_path / "t.wav")
    # Clipped to full scale instead of wrapping around to the opposite sign.
    assert y[0, 2] == pytest.approx(1.0, abs=1e-4) and y[0, 3] == pytest.approx(-1.0, abs=1e-4)


def test_channels_and_resampling_on_load(tmp_path: Path) -> None:
    x = np.stack([_sine(440, 0.5, sr=22050), _sine(440, 0.5, sr=22050, amp=0.1)])
    path = tmp_path / "s.wav"
    save_audio(path, x, 22050)
    mono, sr = load_audio(path)
    assert sr == 22050 and mono.shape == (1, x.shape[1])
    np.testing.assert_allclose(mono[0], x.mean(0), atol=1e-4)
    both, _ = load_audio(path, channels=None)
    assert both.shape == x.shape
    y, sr = load_audio(path, sr=16000)
    assert sr == 16000 and y.shape == (1, round(x.shape[1] * 16000 / 22050))
    with pytest.raises(AudioError, match="cannot map 2 channels to 3"):
        load_audio(path, channels=3)
    m = tmp_path / "m.wav"
    save_audio(m, _sine(440, 0.1), SR)
    assert load_audio(m, channels=2)[0].shape == (2, 1600)


@pytest.mark.parametrize("sr_in,sr_out", [(44100, 16000), (16000, 48000), (24000, 22050)])
def test_resample_keeps_frequency(sr_in: int, sr_out: int) -> None:
    x = _sine(1000, 1.0, sr=sr_in)
    y = resample(x, sr_in, sr_out)
    assert y.dtype == np.float32 and y.shape == (round(x.shape[0] * sr_out / sr_in),)
    assert _peak_hz(y, sr_out) == pytest.approx(1000, abs=1.5)
    # Amplitude is kept away from the filter edges.
    mid = y[sr_out // 4: 3 * sr_out // 4]
    assert np.abs(mid).max() == pytest.approx(0.5, rel=0.01)


def test_resample_batched_matches_single() -> None:
    x = np.stack([[_sine(300, 0.2, sr=48000), _sine(700, 0.2, sr=48000)]] * 2)  # [2, 2, T]
    y = resample(x, 48000, 16000)
    assert y.shape == (2, 2, 3200)
    np.testing.assert_allclose(y[1, 1], resample(x[1, 1], 48000, 16000), atol=1e-6)
    assert resample(x, 16000, 16000).shape == x.shape


def test_iter_audio_blocks_equals_load(tmp_path: Path) -> None:
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 3 * 22050)).astype(np.float32)
    path = tmp_path / "b.flac"
    save_audio(path, x, 22050, subtype="PCM_24")
    ref, _ = load_audio(path, channels=None)
    blocks = list(iter_audio_blocks(path, None, block_seconds=0.4, channels=None))
    assert all(b.shape[0] == 2 and b.shape[1] <= int(0.4 * 22050) for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), ref)
    # Streaming resampling matches one-shot resampling (up to soxr's stream edge effects).
    ref16, _ = load_audio(path, sr=16000)
    out = np.concatenate(list(iter_audio_blocks(path, 16000, block_seconds=0.5)), axis=1)
    assert abs(out.shape[1] - ref16.shape[1]) <= 2
    n = min(out.shape[1], ref16.shape[1])
    assert np.abs(out[:, 100:n - 100] - ref16[:, 100:n - 100]).max() < 1e-3


def test_iter_audio_blocks_has_no_duration_limit_but_checks_samples(tmp_path: Path) -> None:
    x = _sine(200, 1.0)
    x[12000] = np.nan
    path = tmp_path / "n.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    gen = iter_audio_blocks(path, None, block_seconds=0.5)
    assert next(gen).shape == (1, 8000)  # first block is clean
    with pytest.raises(AudioError, match="NaN"):
        next(gen)


def test_audio_info(tmp_path: Path) -> None:
    path = tmp_path / "i.flac"
    save_audio(path, np.zeros((2, 8000), np.float32) + 0.1, SR)
    info = audio_info(path)
    assert (info.format, info.sample_rate, info.channels, info.frames) == ("FLAC", SR, 2, 8000)
    assert info.duration == pytest.approx(0.5) and info.backend == "soundfile"


@pytest.mark.needs_tool("ffmpeg")
@pytest.mark.needs_tool("ffprobe")
def test_ffmpeg_fallback_for_m4a(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    save_audio(wav, _sine(440, 1.0), SR)
    m4a = tmp_path / "a.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "aac", str(m4a)], check=True,
                   timeout=60)
    info = audio_info(m4a)
    assert info.backend == "ffmpeg" and info.sample_rate == SR
    y, sr = load_audio(m4a, sr=8000)
    assert sr == 8000 and abs(y.shape[1] - 8000) < 0.1 * 8000
    assert _peak_hz(y[0, 2000:6000], 8000) == pytest.approx(440, abs=3)
    blocks = list(iter_audio_blocks(m4a, None, block_seconds=0.3))
    assert sum(b.shape[1] for b in blocks) == load_audio(m4a)[0].shape[1]
    with pytest.raises(AudioError, match="limit"):
        load_audio(m4a, max_seconds=0.5)


@pytest.mark.needs_tool("ffmpeg")
@pytest.mark.needs_tool("ffprobe")
def test_ffmpeg_reads_user_files_as_local_files_only(tmp_path: Path, monkeypatch) -> None:
    wav = tmp_path / "a.wav"
    save_audio(wav, _sine(440, 1.0), SR)
    monkeypatch.chdir(tmp_path)
    # A file whose name reads as an ffmpeg protocol ("concat:" would open b.m4a instead) is read as itself.
    odd = Path("concat:b.m4a")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "aac", "-f", "ipod", "file:" + str(odd)],
                   check=True, timeout=60)
    calls: list[list[str]] = []
    real_run, real_popen = subprocess.run, subprocess.Popen

    def run(cmd, *a, **k):
        calls.append(list(cmd))
        return real_run(cmd, *a, **k)

    def popen(cmd, *a, **k):
        calls.append(list(cmd))
        return real_popen(cmd, *a, **k)

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(subprocess, "Popen", popen)
    assert audio_info(odd).backend == "ffmpeg"
    assert load_audio(odd)[0].shape[1] > 0.9 * SR
    assert sum(b.shape[1] for b in iter_audio_blocks(odd, None, block_seconds=0.3)) > 0.9 * SR
    tools = [c for c in calls if Path(c[0]).name in ("ffmpeg", "ffprobe")]
    assert {Path(c[0]).name for c in tools} == {"ffmpeg", "ffprobe"}
    for c in tools:
        i = c.index("-protocol_whitelist")
        assert c[i + 1] == "file,pipe"
        assert [a for a in c if a.endswith("b.m4a")] == ["file:" + str(Path(tmp_path / odd).absolute())]
