"""Voice conversion (`speechlm vc`): a recording moved to another voice or a described style, its length and
words kept; bad requests refused before any work."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm.tasks.tts import TTSInputError

TEXT = "The weather will be sunny tomorrow afternoon."


@pytest.fixture(scope="module")
def tts():
    from speechlm.tasks.tts import TTS

    return TTS.load()


@pytest.fixture(scope="module")
def recording(tts):
    return tts.generate(TEXT).wav  # the default (male) voice, 16 kHz


def test_a_recording_moves_towards_a_target_voice(tts, recording):
    from speechlm.pipeline.tags import pitch_mean_hz
    from speechlm.tasks.vc import convert_voice

    high = tts.generate("A different sentence in a different voice.", description="A woman speaks in a high voice.")
    res = convert_voice(tts, recording, 16000, target=high.wav, target_sr=16000)
    assert len(res.wav) == len(recording) and res.sample_rate == 16000
    before, after, goal = (pitch_mean_hz(w, 16000) for w in (recording, res.wav, high.wav))
    assert abs(np.log(after / goal)) < 0.5 * abs(np.log(before / goal))  # at least half way there
    assert res.extra["shift"]["warp"] > 1.0  # the formants move up towards a woman's
    # at 8 kHz and 2 channels, the same
    stereo8k = np.stack([recording[::2], recording[::2]])
    assert len(convert_voice(tts, stereo8k, 8000, target=high.wav, target_sr=16000).wav) == len(recording)


def test_a_recording_as_described(tts, recording):
    from speechlm.pipeline.tags import pitch_mean_hz, pitch_track
    from speechlm.tasks.vc import convert_voice

    woman = convert_voice(tts, recording, 16000, description="A woman speaks in a high voice.")
    assert woman.extra["style"] == {"gender": "female", "pitch_bin": "high"}
    assert pitch_mean_hz(woman.wav, 16000) > 235
    whisper = convert_voice(tts, recording, 16000, description="whispering").wav
    assert pitch_track(whisper, 16000).size < 0.2 * pitch_track(recording, 16000).size
    assert np.abs(whisper).max() <= 0.95 + 1e-6


def test_bad_requests_are_refused(tts, recording):
    from speechlm.tasks.vc import convert_voice

    with pytest.raises(TTSInputError, match="target voice .* or a style description"):
        convert_voice(tts, recording, 16000)
    with pytest.raises(TTSInputError, match="target voice .* or a style description"):
        convert_voice(tts, recording, 16000, target=recording, target_sr=16000, description="a deep voice")
    with pytest.raises(TTSInputError, match="own timing"):
        convert_voice(tts, recording, 16000, description="quickly")
    with pytest.raises(TTSInputError, match="0.3-600 s"):
        convert_voice(tts, recording[:1000], 16000, description="a deep voice")
    with pytest.raises(TTSInputError, match="no voiced speech"):
        convert_voice(tts, np.zeros(16000, np.float32), 16000, description="a deep voice")
    with pytest.raises(TTSInputError, match="the target voice is silent"):
        convert_voice(tts, recording, 16000, target=np.zeros(32000, np.float32), target_sr=16000)


def test_cli_writes_a_marked_signed_file_and_refuses_before_loading(tmp_path, recording, capsys):
    from speechlm.audio.io import save_audio
    from speechlm.cli import main
    from speechlm.safety.provenance import verify_file
    from speechlm.safety.watermark import detect

    src = tmp_path / "in.wav"
    save_audio(src, recording, 16000)
    out = tmp_path / "out.wav"
    assert main(["vc", str(src), "--description", "A woman speaks.", "-o", str(out)]) == 0
    assert verify_file(out).manifest["watermarked"] is True
    from speechlm.audio.io import load_audio

    wav, sr = load_audio(out)
    assert detect(wav[0], sr).payload >> 12 == 5  # the "vc" family
    assert main(["vc", str(src), "-o", str(tmp_path / "x.wav")]) == 2
    assert main(["vc", str(tmp_path / "missing.wav"), "--description", "a deep voice", "-o",
                 str(tmp_path / "x.wav")]) == 2
    assert not (tmp_path / "x.wav").exists()
    err = capsys.readouterr().err
    assert "give one of them" in err and "no such file" in err
