"""Style descriptions (`speechlm tts --description`): read back into the pipeline's tags, realised by the
duration-based TTS, refused when they cannot be realised."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from speechlm.tasks.tts import TTSInputError
from speechlm.text.style import TAGS, parse_description


def test_every_pipeline_description_reads_back_into_its_tags():
    from speechlm.pipeline.describe import describe, range_bin

    rng = random.Random(0)
    for seed in range(400):
        tags = {"gender": rng.choice(["female", "male", None]),
                "pitch_bin": rng.choice(["low", "moderate", "high", None]),
                "rate_bin": rng.choice(["slow", "moderate", "fast", None]),
                "pitch_range_st": rng.choice([2.0, 6.0, 12.0, None]),
                "noise_bin": rng.choice(["quiet", "slightly noisy", "noisy", None]),
                "reverb_bin": rng.choice(["close", "slightly distant", "distant", None])}
        want = {k: v for k, v in tags.items() if k in TAGS and v}
        rb = range_bin(tags["pitch_range_st"])
        if rb and rb != "moderate":  # a moderate range is not written out
            want["range_bin"] = rb
        text = describe(tags, seed)
        style = parse_description(text)
        assert style.tags == want, text
        assert style.unknown == (), text


def test_phrases_are_read_in_context():
    assert parse_description("with no background noise").tags == {"noise_bin": "quiet"}
    assert parse_description("over loud background noise").tags == {"noise_bin": "noisy"}
    assert parse_description("with some background noise").tags == {"noise_bin": "slightly noisy"}
    assert parse_description("A man talks at an even pace").tags == {"gender": "male", "rate_bin": "moderate"}
    assert parse_description("an even, flat voice").tags == {"range_bin": "monotone"}
    assert parse_description("the other woman").tags == {"gender": "female"}  # "he" is not inside "the"/"other"
    s = parse_description("A cheerful girl whispers sadly, slowly")
    assert s.tags == {"gender": "female", "range_bin": "expressive", "rate_bin": "slow", "phonation": "whispered"}
    assert s.unknown == ("sadly",)
    assert parse_description("he said it under his breath").tags == {"phonation": "whispered", "gender": "male"}


def test_descriptions_that_cannot_be_realised_are_refused():
    from speechlm.tasks.tts_style import check_style

    with pytest.raises(TTSInputError, match="nothing in the style description"):
        check_style("purple elephant")
    with pytest.raises(TTSInputError, match="empty"):
        check_style("  ")
    with pytest.raises(TTSInputError, match="and so does the prompt"):
        check_style("a deep voice", "prompt")
    assert check_style("slowly, in a large hall", "prompt").tags == {"rate_bin": "slow", "reverb_bin": "distant"}
    assert check_style("whispering", "prompt").tags == {"phonation": "whispered"}  # a whisper in the prompt's voice
    with pytest.raises(TTSInputError, match="--pace"):
        check_style("quickly", None, pace=1.3)


def test_style_shift_sets_gender_pitch_and_range():
    from speechlm.lm.acoustic_api import VoiceStats
    from speechlm.tasks.tts_style import GENDER_WARP, MODEL_SPAN_ST, PITCH_HZ, RANGE_ST, style_shift

    male = VoiceStats(math.log(120.0), 0.2, np.linspace(-1, 0.1, 40).astype(np.float32))
    assert style_shift(male, parse_description("quickly, with some echo")) is None  # nothing about the voice
    sh = style_shift(male, parse_description("A woman speaks in a high voice"))
    assert sh.target.lf0_mean == pytest.approx(math.log(PITCH_HZ["female"]["high"]))
    assert sh.warp == pytest.approx(GENDER_WARP)
    sh = style_shift(male, parse_description("a flat, deep voice"))
    assert sh.warp == 1.0 and sh.target.lf0_mean == pytest.approx(math.log(PITCH_HZ["male"]["low"]))
    assert sh.target.lf0_std == pytest.approx(0.2 * RANGE_ST["monotone"] / MODEL_SPAN_ST)
    female = VoiceStats(math.log(210.0), 0.2, male.mcep_mean)
    assert style_shift(female, parse_description("a man")).warp == pytest.approx(1 / GENDER_WARP)


def test_room_in_blocks_is_the_room_at_once():
    from speechlm.tasks.tts_style import Room, room_response

    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    whole = Room(16000, room_response(0.8, -3.0, 16000), 0.01)(x)
    room = Room(16000, room_response(0.8, -3.0, 16000), 0.01)
    blocks = np.concatenate([room(b) for b in np.split(x, [100, 3300, 3301, 9000])])
    assert whole.shape == x.shape and np.allclose(blocks, whole, atol=1e-5)
    quiet = Room(16000, None, 0.01)(np.zeros(160000, np.float32))
    assert np.sqrt(np.mean(quiet[16000:] ** 2)) == pytest.approx(0.01, rel=0.1)  # the noise at its level


@pytest.fixture(scope="module")
def tts():
    from speechlm.tasks.tts import TTS

    return TTS.load()


def test_the_tts_speaks_as_described(tts):
    from speechlm.pipeline.tags import pitch_mean_hz, pitch_track, snr_estimate_db

    text = "The weather will be sunny tomorrow afternoon."
    plain = tts.generate(text)
    high = tts.generate(text, description="A woman speaks in a high voice.")
    assert high.extra["style"] == {"gender": "female", "pitch_bin": "high"}
    assert pitch_mean_hz(plain.wav, 16000) < 200 < 235 < pitch_mean_hz(high.wav, 16000)
    slow = tts.generate(text, description="Someone speaks slowly.")
    assert slow.duration > 1.2 * plain.duration
    whispered = tts.generate(text, description="Someone whispers.")  # no voiced frames, the same words
    assert pitch_track(whispered.wav, 16000).size < 0.2 * pitch_track(plain.wav, 16000).size
    assert abs(whispered.duration - plain.duration) < 0.05
    noisy = tts.generate(text, description="over loud background noise")
    assert snr_estimate_db(noisy.wav, 16000) < 10 < snr_estimate_db(plain.wav, 16000)
    # streamed: the same audio block by block (the noise runs on; only the final 10-ms fade-out differs)
    same = np.concatenate(list(tts.stream(text, block_tokens=50, description="over loud background noise")))
    assert len(same) == len(noisy.wav) and np.allclose(same[:-160], noisy.wav[:-160], atol=1e-4)
