"""The shipped duration-based TTS (speechlm/assets/tts_duration, the default `speechlm tts`): heard, streamed,
prompted, and refusing bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_module

from speechlm.tasks.tts import TTSInputError

SENTENCES = ["Please leave your message after the tone.", "The weather will be sunny tomorrow afternoon."]


@pytest.fixture(scope="module")
def tts():
    from speechlm.tasks.tts import TTS
    from speechlm.tasks.tts_duration import DurationTTS

    t = TTS.load()  # the default model
    assert isinstance(t, DurationTTS)
    return t


def test_default_voice_is_understood_by_whisper(tts):
    require_module("faster_whisper", hint="pip install 'speechlm[eval]'")
    from speechlm.eval.whisper import WhisperJudge
    from speechlm.text.wer import word_errors

    judge = WhisperJudge.load("tiny.en")
    errors = words = 0
    for s in SENTENCES:
        res = tts.generate(s)
        assert res.sample_rate == 16000 and 0.2 < res.duration / len(s.split()) < 0.8  # seconds per word
        c = word_errors(s, judge.transcribe(res.wav, res.sample_rate, "en"))
        errors, words = errors + c.errors, words + c.ref_len
    assert errors / words <= 0.2


def test_stream_is_the_generated_audio_block_by_block(tts):
    from speechlm.audio.features import log_mel

    text = "One sentence here."
    res = tts.generate(text)
    # decoded in the offline block size, the stream is the generated audio except the final 10 ms fade-out
    same = np.concatenate(list(tts.stream(text, block_tokens=50)))
    assert len(same) == len(res.wav)
    assert np.allclose(same[:-160], res.wav[:-160], atol=1e-5)
    # in 200 ms blocks (the default): the same frames, the synthesiser restarted at block joins
    blocks = list(tts.stream(text))
    assert len(blocks) > 4 and max(len(b) for b in blocks) <= 10 * 320
    small = np.concatenate(blocks)
    assert len(small) == len(res.wav)
    a, b = log_mel(small, 16000).numpy(), log_mel(res.wav, 16000).numpy()
    assert np.corrcoef(np.ravel(a), np.ravel(b))[0, 1] > 0.95


def test_prompt_moves_pitch_towards_the_prompt(tts):
    sr = 16000
    t = np.arange(3 * sr) / sr
    f0 = 220.0 + 20 * np.sin(2 * np.pi * 0.5 * t)
    voice = 0.3 * np.sign(np.sin(2 * np.pi * np.cumsum(f0) / sr)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2)
    shift = tts.voice_shift(voice.astype(np.float32), sr)
    assert shift.target.lf0_mean > tts.am.voice.lf0_mean + 0.2  # the prompt is higher than the model's voice
    base = tts.am.features(tts.text_chunks("Hello there.")[0][1])[0]
    moved = tts.am.features(tts.text_chunks("Hello there.")[0][1], shift=shift)[0]
    m = tts.am.config.n_mcep
    assert np.median(moved[:, m]) - np.median(base[:, m]) > 0.2


def test_voice_shift_keeps_each_frames_energy(tts):
    from speechlm.lm.acoustic_api import VoiceShift, VoiceStats, _log_energy, warp_mcep

    src = tts.am.voice
    loud_timbre = VoiceStats(src.lf0_mean + 0.5, src.lf0_std, warp_mcep(src.mcep_mean[None], 1.2)[0] + 0.3)
    shift = VoiceShift(src, loud_timbre, 1.2)
    feat = tts.am.features(tts.text_chunks("Hello there, how are you?")[0][1])[0]
    moved = shift.apply(feat, 40)
    # kept to float32 rounding of the coding; without the c0 correction this shift adds ~0.3-1 to the log energy
    assert np.allclose(_log_energy(moved[:, :40]), _log_energy(feat[:, :40]), atol=0.03)
    uncorrected = moved.copy()
    uncorrected[:, 0] = feat[:, 0]
    assert np.abs(_log_energy(uncorrected[:, :40]) - _log_energy(feat[:, :40])).mean() > 0.1
    assert not np.allclose(moved[:, 1:40], feat[:, 1:40])  # the timbre did change


@pytest.mark.parametrize("text,match", [("", "empty"), ("?!...", "nothing to read"), ("x" * 3000, "limit")])
def test_bad_text_is_refused(tts, text, match):
    with pytest.raises(TTSInputError, match=match):
        tts.generate(text)


def test_bad_prompts_and_other_languages_are_refused(tts):
    with pytest.raises(TTSInputError, match="silent"):
        tts.generate("Hello.", prompt=np.zeros(32000, np.float32), prompt_sr=16000)
    with pytest.raises(TTSInputError, match="long"):
        tts.generate("Hello.", prompt=np.zeros(8000, np.float32), prompt_sr=16000)
    with pytest.raises(TTSInputError, match="NaN"):
        tts.generate("Hello.", prompt=np.full(32000, np.nan, np.float32), prompt_sr=16000)
    with pytest.raises(TTSInputError, match="speaks en only"):
        tts.generate("Bonjour.", lang="fr")
    with pytest.raises(TTSInputError, match="pace"):
        tts.generate("Hello.", pace=0)


def test_audio_comes_from_the_parameters_and_the_tokens_stay_available(tts):
    """By default the predicted parameters are synthesised before the quantiser (no envelope lost to the
    codebooks); ``via_tokens`` decodes the quantised codes instead; both give the same tokens and length."""
    from speechlm.tasks.tts_duration import DurationTTS
    from speechlm.tokenizers.source_filter.world import synthesize, to_analysis_rate

    feat, _ = tts.am.features(tts.text_chunks("Good morning, everyone.")[0][1])
    codes, blocks = tts.render(feat, block_tokens=10_000)
    wav = np.concatenate(list(blocks))
    assert len(wav) == codes.shape[1] * tts.codec.hop
    fr = tts.am.to_frames(feat)
    a = to_analysis_rate(fr, 4, len(fr) * 4)
    ref = synthesize(a.f0, a.mcep, a.bap)[: len(wav)]
    assert np.allclose(wav[: len(ref)], ref, atol=1e-4)
    via = DurationTTS(tts.am, tts.codec, via_tokens=True)
    codes2, blocks2 = via.render(feat, block_tokens=10_000)
    wav2 = np.concatenate(list(blocks2))
    assert np.array_equal(codes, codes2) and len(wav2) == len(wav)
    assert not np.allclose(wav, wav2, atol=1e-3)  # the quantised envelope is another sound
    assert via.generate("Good morning.").extra["decoded_from"] == "tokens"
    assert tts.generate("Good morning.").extra["decoded_from"] == "parameters"


def test_stream_limiter_only_turns_down_and_never_passes_the_limit():
    from speechlm.audio.limiter import PEAK_LIMIT, StreamLimiter

    lim = StreamLimiter(16000)
    t = np.arange(3200) / 16000
    quiet, loud = 0.5 * np.sin(2 * np.pi * 200 * t), 1.6 * np.sin(2 * np.pi * 200 * t)
    first = quiet.astype(np.float32)
    assert lim(first) is first  # nothing loud yet: untouched
    out = [lim(b.astype(np.float32)) for b in (loud, quiet, loud * 0.8, quiet)]
    assert all(np.max(np.abs(o)) <= PEAK_LIMIT + 1e-6 for o in out)
    assert lim.gain == pytest.approx(PEAK_LIMIT / 1.6, rel=1e-3)
    # the gain never rises again: the quiet block after the loud one is turned down by the same gain
    assert np.max(np.abs(out[1])) == pytest.approx(0.5 * PEAK_LIMIT / 1.6, rel=1e-3)
    # the turn-down is a 10-ms ramp, not a step: the loud block's first samples keep the old gain (1) nearly
    np.testing.assert_allclose(out[0][:4], loud[:4], rtol=0.05)
    assert np.abs(out[0][200:]).max() == pytest.approx(PEAK_LIMIT, rel=1e-3)


def test_duration_edit_replaces_only_the_changed_stretch(tts):
    """`speechlm edit`'s default editor: the recording outside the regenerated stretch is copied sample for
    sample, the stretch holds new audio, and the result reports how long the edit took (not a clock reading)."""
    from speechlm.tasks.edit import EditInputError, edit_duration

    text = "Please leave your message after the tone."
    wav = tts.generate(text).wav
    res = edit_duration(tts, wav, 16000, text, "Please leave your number after the tone.")
    assert res.changes == [("message", "number")] and len(res.in_spans) == 1
    assert 0.0 < res.seconds < 120.0
    (s, e), (os_, oe) = res.in_spans[0], res.out_spans[0]
    x = int(0.01 * 16000)  # the crossfade
    assert 0 < s < e < len(wav)
    assert np.array_equal(res.wav[: s - x], wav[: s - x])
    tail = len(wav) - e - x
    assert np.array_equal(res.wav[len(res.wav) - tail :], wav[len(wav) - tail :])
    assert oe - os_ > 0 and np.abs(res.wav[os_ + x : oe - x]).max() > 0.01  # something is said there
    with pytest.raises(EditInputError, match="nothing to edit"):
        edit_duration(tts, wav, 16000, text, text)
