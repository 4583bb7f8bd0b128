"""``speechlm codec encode/decode/info`` on tiny random-weight models saved as checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from speechlm.cli import main
from speechlm.tokenizers.codec.builder import CodecConfig, build_codec
from speechlm.tokenizers.tokens import load_tokens, save_tokens
from speechlm.train.checkpoint import save_checkpoint

TINY = dict(
    channels=8,
    max_channels=32,
    dim=16,
    n_q=4,
    codebook_size=64,
    istft_width=32,
    istft_blocks=1,
    enc_blocks=1,
    dec_blocks=1,
)


def _save_tiny(path, seed: int, name: str = "tiny"):
    torch.manual_seed(seed)
    cfg = CodecConfig(**TINY)
    save_checkpoint(path, model=build_codec(cfg), config={"model": TINY}, step=0, extra={"name": name})
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return _save_tiny(d / "a", 0), _save_tiny(d / "b", 1)


@pytest.fixture
def wav_file(tmp_path):
    t = np.arange(22050 * 2) / 22050
    x = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 2 * t))).astype(np.float32)
    p = tmp_path / "in.wav"
    sf.write(p, x, 22050)  # 22.05 kHz: the codec resamples to 16 kHz
    return p


def test_encode_decode_round_trip(models, wav_file, tmp_path, capsys):
    a, _ = models
    npz, out = tmp_path / "t.npz", tmp_path / "out.wav"
    assert (
        main(["codec", "encode", str(wav_file), "-o", str(npz), "--model", str(a), "--bitrate", "0.6"]) == 0
    )
    tok = load_tokens(npz)
    assert tok.codes.shape == (2, 100) and tok.codes.dtype == np.int16
    assert tok.sample_rate == 16000 and tok.frame_rate == 50 and tok.n_samples == 32000
    assert tok.bitrate == pytest.approx(0.6) and tok.tokenizer.startswith("tiny@")
    assert main(["codec", "decode", str(npz), "-o", str(out), "--model", str(a)]) == 0
    y, sr = sf.read(out)
    assert sr == 16000 and len(y) == 32000
    assert main(["codec", "info", "--model", str(a)]) == 0
    assert "latency" in capsys.readouterr().out


def test_decode_refuses_other_model(models, wav_file, tmp_path, capsys):
    a, b = models
    npz = tmp_path / "t.npz"
    main(["codec", "encode", str(wav_file), "-o", str(npz), "--model", str(a)])
    capsys.readouterr()
    rc = main(["codec", "decode", str(npz), "-o", str(tmp_path / "x.wav"), "--model", str(b)])
    err = capsys.readouterr().err
    assert rc == 2 and "made by tokenizer" in err and "\n" == err[-1] and err.count("\n") == 1
    assert not (tmp_path / "x.wav").exists()


def test_truncated_and_bad_inputs(models, wav_file, tmp_path, capsys):
    a, _ = models
    npz = tmp_path / "t.npz"
    main(["codec", "encode", str(wav_file), "-o", str(npz), "--model", str(a)])
    data = npz.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    assert (
        main(["codec", "decode", str(tmp_path / "cut.npz"), "-o", str(tmp_path / "x.wav"), "--model", str(a)])
        == 2
    )
    assert "truncated" in capsys.readouterr().err
    assert main(["codec", "encode", str(wav_file), "-o", str(npz), "--model", str(a), "--bitrate", "9"]) == 2
    assert main(["codec", "encode", str(tmp_path / "missing.wav"), "-o", str(npz), "--model", str(a)]) == 2
    assert main(["codec", "encode", str(wav_file), "-o", str(npz), "--model", str(tmp_path / "nomodel")]) == 2
    # Codes out of range (a hand-edited file) are refused too.
    tok = load_tokens(npz)
    bad = type(tok)(
        codes=tok.codes + 1000,
        sample_rate=tok.sample_rate,
        frame_rate=tok.frame_rate,
        n_samples=tok.n_samples,
        tokenizer=tok.tokenizer,
        bitrate=tok.bitrate,
    )
    save_tokens(tmp_path / "bad.npz", bad)
    assert (
        main(["codec", "decode", str(tmp_path / "bad.npz"), "-o", str(tmp_path / "x.wav"), "--model", str(a)])
        == 2
    )


def test_silence_and_clipping_via_cli(models, tmp_path):
    a, _ = models
    for name, x in (
        ("silence", np.zeros(8000, np.float32)),
        ("clipped", np.clip(4 * np.sin(np.arange(16000) / 5), -1, 1).astype(np.float32)),
    ):
        sf.write(tmp_path / f"{name}.wav", x, 16000)
        assert (
            main(
                [
                    "codec",
                    "encode",
                    str(tmp_path / f"{name}.wav"),
                    "-o",
                    str(tmp_path / f"{name}.npz"),
                    "--model",
                    str(a),
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "codec",
                    "decode",
                    str(tmp_path / f"{name}.npz"),
                    "-o",
                    str(tmp_path / f"{name}.out.wav"),
                    "--model",
                    str(a),
                ]
            )
            == 0
        )
        y, _ = sf.read(tmp_path / f"{name}.out.wav")
        assert len(y) == len(x) and np.all(np.isfinite(y))
