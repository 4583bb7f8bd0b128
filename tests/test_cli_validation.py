"""Bad outputs, sampling values and over-long inputs fail with one line and exit 2 before any model loads.

The model loaders are replaced by ones that fail the test, so a check that comes too late shows up as a
different error (exit 1) rather than as a slow pass.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from speechlm.cli import main


def _no_model(*args, **kwargs):
    raise AssertionError("a model was loaded before the arguments were checked")


@pytest.fixture(autouse=True)
def no_models(monkeypatch):
    from speechlm.tasks.tts import TTS
    from speechlm.tokenizers.codec.api import Codec
    from speechlm.tokenizers.semantic.api import SemanticTokenizer
    from speechlm.tokenizers.semantic.bridge import Bridge

    for cls in (TTS, Codec, SemanticTokenizer, Bridge):
        monkeypatch.setattr(cls, "load", classmethod(_no_model))


def _fails(argv: list[str], capsys, *needles: str) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "in.wav"
    t = np.arange(16000 * 2) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16000)
    return str(path)


# ---- outputs ----------------------------------------------------------------------------------------------------

def _commands(wav: str, out: str) -> list[list[str]]:
    return [
        ["tts", "Hello.", "-o", out],
        ["edit", wav, "--transcript", "a b", "--target", "a c", "-o", out],
        ["audio", "convert", wav, "-o", out],
    ]


def test_unknown_audio_extension(capsys, tmp_path, wav) -> None:
    for argv in _commands(wav, str(tmp_path / "out.xyz")):
        _fails(argv, capsys, "out.xyz", ".wav")
    _fails(["codec", "encode", wav, "-o", str(tmp_path / "t.wav")], capsys, ".npz")
    _fails(["semantic", "encode", wav, "-o", str(tmp_path / "t.txt")], capsys, ".npz")
    # Decoding writes 16-bit PCM block by block: lossy formats are refused up front.
    _fails(["codec", "decode", str(tmp_path / "t.npz"), "-o", str(tmp_path / "x.mp3")], capsys, ".flac")
    _fails(["semantic", "decode", str(tmp_path / "t.npz"), "--prompt", wav, "-o", str(tmp_path / "x.ogg")],
           capsys, ".wav")


def test_missing_output_folder_is_not_created(capsys, tmp_path, wav) -> None:
    missing = tmp_path / "missing" / "dir"
    out = str(missing / "x.wav")
    for argv in [*_commands(wav, out), ["codec", "decode", str(tmp_path / "t.npz"), "-o", out],
                 ["codec", "encode", wav, "-o", str(missing / "t.npz")],
                 ["asr", "align", wav, "--text", "hi", "-o", str(missing / "a.json")]]:
        _fails(argv, capsys, f"folder {missing} does not exist")
    assert not (tmp_path / "missing").exists()


def test_output_that_is_a_folder(capsys, tmp_path) -> None:
    (tmp_path / "x.wav").mkdir()
    _fails(["tts", "Hello.", "-o", str(tmp_path / "x.wav")], capsys, "is a folder")


# ---- sampling parameters ----------------------------------------------------------------------------------------

BAD_SAMPLING = [
    (["--top-p", "0"], "--top-p"), (["--top-p", "1.5"], "--top-p"), (["--top-p", "nan"], "--top-p"),
    (["--temperature", "-1"], "--temperature"), (["--temperature", "nan"], "--temperature"),
    (["--temperature", "inf"], "--temperature"), (["--top-k", "-1"], "--top-k"), (["--retries", "-1"], "--retries"),
    (["--threads", "0"], "--threads"), (["--seed", str(2**64)], "--seed"),
]


@pytest.mark.parametrize("flags,name", BAD_SAMPLING, ids=lambda x: " ".join(x) if isinstance(x, list) else x)
def test_bad_sampling_values(capsys, tmp_path, wav, flags, name) -> None:
    out = str(tmp_path / "out.wav")
    _fails(["tts", "Hello.", "-o", out, *flags], capsys, name)
    _fails(["edit", wav, "--transcript", "a b", "--target", "a c", "-o", out, *flags], capsys, name)


def test_bad_tts_and_edit_only_values(capsys, tmp_path, wav) -> None:
    out = str(tmp_path / "out.wav")
    _fails(["edit", wav, "--transcript", "a b", "--target", "a c", "-o", out, "--draws", "0"], capsys, "--draws")
    _fails(["tts", "Hello.", "-o", out, "--max-chars", "0"], capsys, "--max-chars")
    _fails(["tts", "Hello.", "-o", out, "--min-length", "3"], capsys, "--min-length")
    _fails(["tts", "Hello.", "-o", out, "--prompt", wav, "--model", "lm_default"], capsys, "--prompt-text")
    _fails(["tts", "Hello.", "-o", out, "--pace", "0"], capsys, "--pace")
    _fails(["tts", "Hello.", "-o", out, "--adapt-steps", "10"], capsys, "--adapt-steps", "--prompt")
    _fails(["tts", "Hello.", "-o", out, "--prompt", wav, "--adapt-steps", "-1"], capsys, "--adapt-steps")
    _fails(["tts", "Hello.", "-o", out, "--prompt", wav, "--prompt-text", "hi", "--model", "lm_default",
            "--adapt-steps", "10"], capsys, "--adapt-steps")
    _fails(["tts", "Hello.", "-o", out, "--description", "a calm voice"], capsys,
           "nothing in the style description", "calm not understood")
    _fails(["tts", "Hello.", "-o", out, "--description", "a deep voice", "--prompt", wav], capsys,
           "description sets the voice's pitch", "prompt")
    _fails(["tts", "Hello.", "-o", out, "--description", "quickly", "--pace", "1.2"], capsys, "pace")
    _fails(["tts", "Hello.", "-o", out, "--description", "quickly", "--model", "lm_default"], capsys,
           "--description is for the duration-based models")
    _fails(["codec", "encode", wav, "-o", str(tmp_path / "t.npz"), "--threads", "0"], capsys, "--threads")


# ---- inputs are read with their limit ---------------------------------------------------------------------------

@pytest.fixture()
def no_decoding(monkeypatch):
    """Decoding a file fails the test: an over-long input must be refused from its header."""
    import speechlm.audio.io as io

    monkeypatch.setattr(io, "load_audio", _no_model)


def _long_wav(path, seconds: float) -> str:
    sf.write(path, np.zeros(int(16000 * seconds), np.float32), 16000)
    return str(path)


def test_long_prompt_refused_before_decoding(capsys, tmp_path, no_decoding) -> None:
    prompt = _long_wav(tmp_path / "long.wav", 25.0)
    _fails(["tts", "Hello.", "-o", str(tmp_path / "o.wav"), "--prompt", prompt, "--prompt-text", "hi"], capsys,
           "the prompt is 25.0 s long", "at most 20 s")


def test_long_edit_input_refused_before_decoding(capsys, tmp_path, no_decoding) -> None:
    src = _long_wav(tmp_path / "long.wav", 61.0)
    _fails(["edit", src, "--transcript", "a b", "--target", "a c", "-o", str(tmp_path / "o.wav")], capsys,
           "61.00 s long", "0.3-60 s")


def test_nan_prompt_says_so(tmp_path) -> None:
    from speechlm.tasks.edit import EditInputError, edit
    from speechlm.tasks.tts import TTS, TTSInputError

    wav = np.full(16000 * 3, 0.1, np.float32)
    wav[100] = np.nan
    tts = TTS.__new__(TTS)  # the check comes before anything of the model is used
    with pytest.raises(TTSInputError, match="NaN/Inf"):
        tts.prepare_prompt(wav, 16000, "hello there", "en")

    class _VoiceCraft:
        class lm:
            class config:
                layout = "voicecraft"

        class codec:
            sample_rate = 16000

    with pytest.raises(EditInputError, match="NaN/Inf"):
        edit(_VoiceCraft(), wav, 16000, "a b", "a c")


def test_nan_prompt_file_says_so(capsys, tmp_path) -> None:
    wav = np.full(16000 * 3, 0.1, np.float32)
    wav[100] = np.nan
    sf.write(tmp_path / "nan.wav", wav, 16000, subtype="FLOAT")
    _fails(["tts", "Hello.", "-o", str(tmp_path / "o.wav"), "--prompt", str(tmp_path / "nan.wav"),
            "--prompt-text", "hi"], capsys, "NaN")
