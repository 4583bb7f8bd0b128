"""Adapting the duration model to a voice prompt (speechlm.lm.acoustic_adapt) and the prompted voice of
``DurationTTS``: the alignment, what adaptation changes and what it leaves alone, the voice cache and fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm.tasks.tts import TTSInputError


@pytest.fixture(scope="module")
def tts():
    from speechlm.tasks.tts_duration import DurationTTS

    return DurationTTS.load()


def test_dtw_durations_follow_a_stretched_copy():
    from speechlm.lm.acoustic_adapt import dtw_durations

    rng = np.random.default_rng(0)
    pred_dur = np.array([3, 5, 2, 6, 4])
    # one distinct frame pattern per token, a little noise on each frame
    pred = np.repeat(rng.normal(size=(5, 8)), pred_dur, 0) + 0.05 * rng.normal(size=(20, 8))
    assert (dtw_durations(pred, pred, pred_dur) == pred_dur).all()
    slow = np.repeat(pred, 2, 0)  # the same speech at half the speed
    dur = dtw_durations(pred, slow, pred_dur)
    assert dur.sum() == len(slow)
    assert np.abs(dur - 2 * pred_dur).max() <= 1


def _contrast(feat: np.ndarray, m: int) -> float:
    v = feat[:, m + 1] > 0.5
    return float(feat[v, 1:m].std(0).mean())


def test_adaptation_learns_what_the_shift_cannot_and_keeps_the_original(tts):
    """A prompt whose envelopes have 1.6x the model's frame-to-frame contrast (a global shift cannot make it):
    after adaptation on it, another sentence is spoken with more contrast than the shift alone gives."""
    from speechlm.lm.acoustic_adapt import AdaptConfig, adapt
    from speechlm.lm.acoustic_api import VoiceShift, VoiceStats

    am, m = tts.am, tts.am.config.n_mcep
    ids_a = tts.text_chunks("The weather will be sunny tomorrow afternoon, with a light breeze.")[0][1]
    ids_b = tts.text_chunks("Please leave your message after the tone.")[0][1]
    feat = am.features(ids_a)[0]
    v = feat[:, m + 1] > 0.5
    mean = feat[v, 1:m].mean(0)
    prompt = feat.copy()
    prompt[:, 1:m] = mean + 1.6 * (feat[:, 1:m] - mean)
    shift = VoiceShift.between(am.voice, VoiceStats.of_features(prompt, m))
    before = {k: p.clone() for k, p in am.model.state_dict().items()}

    same = adapt(am, ids_a, prompt, shift, AdaptConfig(steps=0))
    assert np.allclose(same.am.features(ids_b, shift=shift)[0], am.features(ids_b, shift=shift)[0], atol=1e-5)
    assert same.durations.sum() == len(prompt) // am.sub_frames

    res = adapt(am, ids_a, prompt, shift, AdaptConfig(steps=40, lr=3e-4))
    assert res.losses[-1] < 0.7 * res.losses[0]
    after = am.model.state_dict()
    assert all(torch_equal(before[k], after[k]) for k in before)  # the loaded model is untouched
    adapted = res.am.model.state_dict()
    assert all(torch_equal(before[k], adapted[k]) for k in before if k.startswith(("encoder.", "duration.", "embed")))
    assert not torch_equal(before["proj.weight"], adapted["proj.weight"])
    plain = _contrast(am.features(ids_b, shift=shift)[0], m)
    cloned = _contrast(res.am.features(ids_b, shift=shift)[0], m)
    assert cloned > plain * 1.1
    # the words keep the model's timing: durations come from the frozen predictor
    assert (res.am.features(ids_b)[1] == am.features(ids_b)[1]).all()


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def _prompt(tts) -> np.ndarray:
    return tts.generate("Good morning, this is a short voice prompt for the test.").wav


def test_voice_adapts_on_a_given_transcript_and_is_cached(tts):
    wav = _prompt(tts)
    voice = tts.voice(wav, 16000, prompt_text="Good morning, this is a short voice prompt for the test.",
                      adapt_steps=3)
    assert voice.am is not None and voice.transcript.startswith("Good morning")
    assert tts.voice(wav, 16000, prompt_text="Good morning, this is a short voice prompt for the test.",
                     adapt_steps=3) is voice
    res = tts.generate("Hello there.", prompt=voice)
    assert res.extra["voice_adapted"] and res.duration > 0.3
    # the frames are the shifted model's moved `blend` of the way to the adapted decoder's
    from dataclasses import replace

    ids = tts.text_chunks("Hello there.")[0][1]
    shifted = tts.features(ids, voice=replace(voice, am=None))[0]
    full = tts.features(ids, voice=replace(voice, blend=1.0))[0]
    half = tts.features(ids, voice=replace(voice, blend=0.5))[0]
    assert np.allclose(half, (shifted + full) / 2, atol=1e-4) and not np.allclose(full, shifted, atol=1e-3)
    plain = tts.voice(wav, 16000, adapt_steps=0)
    assert plain.am is None and plain.transcript is None
    assert not tts.generate("Hello there.", prompt=wav, prompt_sr=16000, adapt_steps=0).extra["voice_adapted"]
    with pytest.raises(TTSInputError, match="nothing to read"):
        tts.voice(wav, 16000, prompt_text="... !!", adapt_steps=3)


def test_without_a_transcript_adaptation_is_refused_or_heard(tts, monkeypatch, caplog):
    wav = _prompt(tts)[: 16000 * 2]
    monkeypatch.setattr(tts, "hear", None)
    with pytest.raises(TTSInputError, match="transcript"):
        tts.voice(wav, 16000, adapt_steps=3)
    heard = []
    monkeypatch.setattr(tts, "hear", lambda w, lang: heard.append((len(w), lang)) or "good morning")
    assert tts.voice(wav, 16000, adapt_steps=3).transcript == "good morning" and heard == [(32000, "en")]
    monkeypatch.setattr(tts, "hear", lambda w, lang: "")  # heard nothing: the shift alone, with a warning
    assert tts.voice(wav[:24000], 16000, adapt_steps=3).am is None
    assert "not adapted" in caplog.text


def test_cli_adapts_to_a_prompt_with_its_transcript(tts, tmp_path, capsys):
    from speechlm.audio.io import save_audio
    from speechlm.cli import main

    prompt = tmp_path / "p.wav"
    save_audio(prompt, _prompt(tts), 16000)
    out = tmp_path / "o.wav"
    rc = main(["tts", "Hello there.", "-o", str(out), "--prompt", str(prompt), "--prompt-text",
               "Good morning, this is a short voice prompt for the test.", "--adapt-steps", "3", "--no-sign"])
    assert rc == 0 and out.stat().st_size > 10000, capsys.readouterr().err
