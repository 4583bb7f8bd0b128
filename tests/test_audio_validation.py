"""Acceptance: every bad audio input gives a one-line error, a non-zero exit and no output file.

Driven through the CLI (``speechlm audio convert`` / ``info``) in-process, with ``capfd`` so that anything a C
library prints straight to file descriptor 2 also counts against the one-line rule.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlm.audio.io import load_audio, save_audio
from speechlm.cli import main
from speechlm.errors import AudioError

SR = 16000


def _noise(seconds: float = 1.0, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.2 * rng.standard_normal((int(seconds * SR), channels))).astype(np.float32)


def _corrupt_middle(src: Path, dst: Path, seed: int = 0) -> Path:
    data = bytearray(src.read_bytes())
    n = len(data)
    data[n // 3: 2 * n // 3] = np.random.default_rng(seed).bytes(2 * n // 3 - n // 3)
    dst.write_bytes(bytes(data))
    return dst


# Each maker writes one bad input into the folder and returns (path, extra CLI args, a word the error must
# hold).
def _empty(d: Path):
    p = d / "empty.wav"
    p.write_bytes(b"")
    return p, [], "empty"


def _zero_samples(d: Path):
    p = d / "zero.wav"
    sf.write(p, np.zeros((0, 1), np.float32), SR)
    return p, [], "no samples"


def _nan(d: Path):
    x = _noise()
    x[100, 0] = np.nan
    p = d / "nan.wav"
    sf.write(p, x, SR, subtype="FLOAT")
    return p, [], "NaN"


def _inf(d: Path):
    x = _noise()
    x[5000, 0] = np.inf
    x[6000, 0] = -np.inf
    p = d / "inf.wav"
    sf.write(p, x, SR, subtype="FLOAT")
    return p, [], "Inf"


def _too_many_channels(d: Path):
    p = d / "ch9.wav"
    sf.write(p, _noise(0.1, channels=9), SR)
    return p, [], "channels"


def _rate_low(d: Path):
    p = d / "sr4000.wav"
    sf.write(p, _noise(0.5)[:2000], 4000)
    return p, [], "sample rate"


def _rate_high(d: Path):
    p = d / "sr384k.wav"
    sf.write(p, _noise(0.5), 384000)
    return p, [], "sample rate"


def _too_long(d: Path):
    p = d / "long.wav"
    sf.write(p, _noise(2.0), SR)
    return p, ["--max-seconds", "1.5"], "limit"


def _unknown_format(d: Path):
    p = d / "random.xyz"
    p.write_bytes(np.random.default_rng(1).bytes(5000))
    return p, [], "unknown"


def _truncated_header(d: Path):
    full = d / "full.wav"
    sf.write(full, _noise(), SR)
    p = d / "trunc.wav"
    p.write_bytes(full.read_bytes()[:20])
    full.unlink()
    return p, [], "header"


def _garbled_header(d: Path):
    full = d / "full.flac"
    sf.write(full, _noise(), SR)
    data = bytearray(full.read_bytes())
    data[:12] = b"\x00" * 12
    p = d / "garbled.flac"
    p.write_bytes(bytes(data))
    full.unlink()
    return p, [], "header"


def _truncated_data(d: Path):
    full = d / "full.wav"
    sf.write(full, _noise(), SR)
    p = d / "cut.wav"
    p.write_bytes(full.read_bytes()[:8000])
    full.unlink()
    return p, [], "truncated"


def _corrupt_flac(d: Path):
    full = d / "full.flac"
    sf.write(full, _noise(), SR)
    p = _corrupt_middle(full, d / "corrupt.flac")
    full.unlink()
    return p, [], "corrupt"


def _corrupt_mp3(d: Path):
    full = d / "full.mp3"
    sf.write(full, _noise(3.0), SR)
    p = _corrupt_middle(full, d / "corrupt.mp3")
    full.unlink()
    return p, [], "corrupt"


def _corrupt_ogg(d: Path):
    full = d / "full.ogg"
    sf.write(full, _noise(3.0), SR)
    p = _corrupt_middle(full, d / "corrupt.ogg")
    full.unlink()
    return p, [], "corrupt"


def _missing(d: Path):
    return d / "does-not-exist.wav", [], "no such file"


BAD_INPUTS = [_empty, _zero_samples, _nan, _inf, _too_many_channels, _rate_low, _rate_high, _too_long,
              _unknown_format, _truncated_header, _garbled_header, _truncated_data, _corrupt_flac,
              _corrupt_mp3, _corrupt_ogg, _missing]


def _check_one_line_failure(rc: int, err: str, out_dir: Path, word: str) -> None:
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got: {err!r}"
    assert lines[0].startswith("speechlm: error: ")
    assert "Traceback" not in err
    assert word.lower() in lines[0].lower(), lines[0]
    assert list(out_dir.iterdir()) == [], "nothing may be written, not even a temporary file"


@pytest.mark.parametrize("make", BAD_INPUTS, ids=lambda f: f.__name__.strip("_"))
def test_convert_rejects_bad_input(make, tmp_path: Path, capfd) -> None:
    src_dir, out_dir = tmp_path / "in", tmp_path / "out"
    src_dir.mkdir()
    out_dir.mkdir()
    src, extra, word = make(src_dir)
    capfd.readouterr()
    rc = main(["audio", "convert", str(src), "-o", str(out_dir / "out.wav"), *extra])
    out, err = capfd.readouterr()
    _check_one_line_failure(rc, err, out_dir, word)


@pytest.mark.parametrize("make", [_nan, _truncated_header, _unknown_format, _corrupt_mp3, _too_long],
                         ids=lambda f: f.__name__.strip("_"))
def test_info_rejects_bad_input(make, tmp_path: Path, capfd) -> None:
    src, extra, word = make(tmp_path)
    capfd.readouterr()
    rc = main(["audio", "info", str(src), *extra])
    _, err = capfd.readouterr()
    assert rc != 0
    assert len(err.strip().splitlines()) == 1 and word.lower() in err.lower(), err


def test_failed_convert_keeps_existing_target(tmp_path: Path, capfd) -> None:
    target = tmp_path / "out.wav"
    target.write_bytes(b"previous content")
    src, _, _ = _nan(tmp_path)
    assert main(["audio", "convert", str(src), "-o", str(target)]) != 0
    assert target.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.wav", "out.wav"]


def test_convert_refuses_bad_output_options(tmp_path: Path, capfd) -> None:
    src = tmp_path / "ok.wav"
    sf.write(src, _noise(0.2), SR)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    capfd.readouterr()
    for args, word in ([str(out_dir / "x.xyz")], "cannot write"), \
                      ([str(out_dir / "x.wav"), "--sr", "4000"], "sample rate"), \
                      ([str(out_dir / "x.wav"), "--channels", "9"], "channels"), \
                      ([str(out_dir / "x.wav"), "--subtype", "VORBIS"], "subtype"), \
                      ([str(out_dir / "x.mp3"), "--sr", "96000"], "mp3"):
        rc = main(["audio", "convert", str(src), "-o", *args])
        _, err = capfd.readouterr()
        _check_one_line_failure(rc, err, out_dir, word)


def test_cli_subprocess_exit_status(tmp_path: Path) -> None:
    """The real entry point: exit status 2, one stderr line, no file."""
    src, _, _ = _truncated_header(tmp_path)
    out = tmp_path / "o.wav"
    code = "import sys; from speechlm.cli import main; sys.exit(main())"
    proc = subprocess.run([sys.executable, "-c", code, "audio", "convert", str(src), "-o", str(out)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SPEECHLM_DEBUG": "0"})
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists()


def test_convert_and_info_succeed(tmp_path: Path, capfd) -> None:
    src = tmp_path / "stereo.flac"
    sf.write(src, _noise(0.5 * 22050 / SR, channels=2), 22050)
    out = tmp_path / "sub" / "mono16k.wav"
    out.parent.mkdir()  # a missing output folder is refused, never created (tests/test_cli_validation.py)
    assert main(["audio", "convert", str(src), "-o", str(out), "--sr", "16000", "--channels", "1"]) == 0
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.frames) == (16000, 1, 8000)
    capfd.readouterr()
    assert main(["audio", "info", str(out), "--json"]) == 0
    import json

    meta = json.loads(capfd.readouterr().out)
    assert meta["sample_rate"] == 16000 and meta["channels"] == 1 and meta["duration"] == pytest.approx(0.5)
    assert 0 < meta["rms"] < meta["peak"] <= 1.0


def test_save_audio_validates_before_writing(tmp_path: Path) -> None:
    x = _noise(0.1)[:, 0]
    bad = x.copy()
    bad[3] = np.nan
    cases = [
        (tmp_path / "a.wav", bad, SR, "NaN"),
        (tmp_path / "b.wav", x, 4000, "sample rate"),
        (tmp_path / "c.wav", np.zeros((9, 100), np.float32), SR, "channels"),
        (tmp_path / "d.wav", np.zeros(0, np.float32), SR, "no samples"),
        (tmp_path / "e.xyz", x, SR, "cannot write"),
        (tmp_path / "f.opus", x, 22050, "opus"),
    ]
    for path, wav, sr, word in cases:
        with pytest.raises(AudioError, match=f"(?i){word}"):
            save_audio(path, wav, sr)
    assert list(tmp_path.iterdir()) == []


def test_load_rejects_bad_requested_rate(tmp_path: Path) -> None:
    src = tmp_path / "ok.wav"
    sf.write(src, _noise(0.1), SR)
    with pytest.raises(AudioError, match="sample rate"):
        load_audio(src, sr=500_000)
    with pytest.raises(AudioError, match="channels"):
        load_audio(src, max_channels=0)
