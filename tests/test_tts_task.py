"""``speechlm tts`` / ``speechlm edit`` end to end with a tiny LM trained in seconds, and their bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from lm_helpers import make_shards, train_tiny

from speechlm.errors import CheckpointError
from speechlm.tasks.edit import EditInputError, edit, frame_spans, pick_draw, with_context, word_diff
from speechlm.tasks.tts import TTS, TTSInputError, fade_join, split_sentences

pytestmark = [pytest.mark.needs_tool("espeak-ng"), pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def run(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("tts")
    shards = make_shards(root)
    train_tiny(shards, root / "run", steps=4)
    return root


@pytest.fixture(scope="module")
def tts(run):
    return TTS.load(run / "run")


def _speech(run, i: int = 1):
    wav, sr = sf.read(str(run / f"v0_{i}.wav"), dtype="float32")
    return wav, sr


def test_generate_reproducible_and_bounded(tts) -> None:
    a = tts.generate("Hello world. Good morning!", seed=3)
    b = tts.generate("Hello world. Good morning!", seed=3)
    c = tts.generate("Hello world. Good morning!", seed=4)
    assert np.array_equal(a.wav, b.wav) and not np.array_equal(a.wav, c.wav)
    assert len(a.chunks) == 2 and a.sample_rate == 16000 and np.isfinite(a.wav).all()
    # an untrained-ish model rarely stops; the cap derived from the phoneme count bounds it
    from speechlm.lm.generate import max_frames_for

    for f, (_, ph) in zip(a.frames, tts.text_chunks("Hello world. Good morning!", "en")):
        assert f <= max_frames_for(len(ph), tts.lm.frames_per_phone)


def test_generate_scales_a_loud_draw_down_whole(tts, monkeypatch) -> None:
    """The codec LM's decoded audio can pass full scale (a sampled draw, a loud prompt): generate (and so stream)
    scales the utterance down whole to the peak limit instead of clipping it."""
    from speechlm.audio.limiter import PEAK_LIMIT

    loud = (2.5 * np.sin(np.linspace(0, 400, 16000))).astype(np.float32)
    monkeypatch.setattr(tts, "decode", lambda codes, prompt=None: loud)
    wav = tts.generate("Hello world.", seed=0).wav
    assert np.abs(wav).max() == pytest.approx(PEAK_LIMIT, rel=1e-4)
    mid = slice(2000, 14000)  # inside the joins' fades: the waveform is the draw's, scaled (not clipped)
    np.testing.assert_allclose(wav[mid], loud[mid] * (PEAK_LIMIT / np.abs(loud).max()), rtol=1e-5, atol=1e-6)
    streamed = np.concatenate(list(tts.stream("Hello world. Good morning!", seed=0)))
    assert np.abs(streamed).max() <= PEAK_LIMIT + 1e-6


def test_generate_with_prompt(tts, run) -> None:
    wav, sr = _speech(run, 1)
    res = tts.generate("Good morning.", prompt=wav, prompt_sr=sr, prompt_text="the cat sat on the mat", seed=0,
                       check_transcript=False)
    assert res.duration > 0 and len(res.hit_cap) == 1
    # no stop before min_length x the length at the prompt's pace
    pr = tts.prepare_prompt(wav, sr, "the cat sat on the mat", "en", check_transcript=False)
    pace = pr.frames_per_phone(tts.lm.frames_per_phone)
    assert 0.5 * tts.lm.frames_per_phone <= pace <= 2 * tts.lm.frames_per_phone
    (_, ph), = tts.text_chunks("Good morning.", "en")
    import speechlm.lm.generate as gen_mod

    seen = []
    real = gen_mod.generate_until_stop

    def spy(model, reqs, *a, **k):
        seen.extend(r.min_frames for r in reqs)
        return real(model, reqs, *a, **k)

    gen_mod.generate_until_stop = spy
    try:
        long = tts.generate("Good morning.", prompt=pr, seed=0, min_length=1.5)
        tts.generate("Good morning.", prompt=pr, seed=0, min_length=0.0)
    finally:
        gen_mod.generate_until_stop = real
    assert seen == [int(1.5 * pace * len(ph)), 0]
    assert long.frames[0] >= seen[0]


@pytest.mark.parametrize("text,match", [("", "empty"), ("   ", "empty"), ("?!... ,", "nothing to read"),
                                        ("a" * 10_000, "limit")])
def test_bad_text(tts, text, match) -> None:
    with pytest.raises(TTSInputError, match=match):
        tts.generate(text)


def test_bad_prompts(tts, run) -> None:
    wav, sr = _speech(run, 1)
    with pytest.raises(TTSInputError, match="long"):
        tts.generate("Hi.", prompt=wav[: int(0.2 * sr)], prompt_sr=sr, prompt_text="the")
    with pytest.raises(TTSInputError, match="silent"):
        tts.generate("Hi.", prompt=np.zeros(3 * sr, np.float32), prompt_sr=sr, prompt_text="hello")
    with pytest.raises(TTSInputError, match="transcript"):
        tts.generate("Hi.", prompt=wav, prompt_sr=sr, prompt_text=None)
    with pytest.raises(TTSInputError, match="does not fit"):  # a paragraph for a 1.5 s clip
        tts.generate("Hi.", prompt=wav, prompt_sr=sr, prompt_text="the cat sat on the mat " * 20)


def test_wrong_prompt_transcript_refused(tts, run) -> None:
    wav, sr = _speech(run, 0)  # "hello world"; measured gap -1.23 for this text, -0.35 for its own
    with pytest.raises(TTSInputError, match="does not match"):
        tts.generate("Hi.", prompt=wav, prompt_sr=sr, prompt_text="good morning to you")
    tts.prepare_prompt(wav, sr, "hello world", "en")  # the right transcript passes


def test_codec_mismatch_refused(run) -> None:
    from speechlm.lm.api import CodecLanguageModel
    from speechlm.tokenizers.codec.api import Codec

    lm = CodecLanguageModel.load(run / "run")
    lm.tokenizer = "codec_old@0000000000000000"
    with pytest.raises(CheckpointError, match="trained on codec tokens"):
        TTS(lm, Codec.load())


def test_edit_keeps_unedited_audio(tts, run) -> None:
    from speechlm.audio.io import resample

    wav, sr = _speech(run, 1)
    wav, sr = resample(wav, sr, 16000), 16000  # at the codec's rate the kept samples are bit-identical
    res = edit(tts, wav, sr, "the cat sat on the mat", "the dog sat on the mat", seed=0)
    assert res.changes == [("cat", "dog")] and len(res.in_spans) == 1
    s, e = res.in_spans[0]
    x = int(0.01 * 16000)
    ref = wav
    assert np.array_equal(res.wav[: s - x], ref[: s - x])  # before the span: untouched
    tail = len(ref) - e - x
    assert np.array_equal(res.wav[len(res.wav) - tail :], ref[len(ref) - tail :])  # after it: untouched
    with pytest.raises(EditInputError, match="nothing to edit"):
        edit(tts, wav, sr, "the cat sat", "The cat, sat!")
    with pytest.raises(EditInputError, match="empty"):
        edit(tts, wav, sr, "the cat sat", "  ")


def test_word_diff_and_spans() -> None:
    src, dst = "the cat sat on the mat".split(), "the dog sat on a big mat".split()
    changes = word_diff(src, dst)
    assert changes == [(1, 2, 1, 2), (4, 5, 4, 6)]
    starts = [0.1, 0.3, 0.6, 0.9, 1.1, 1.3]
    ends = [0.25, 0.55, 0.85, 1.05, 1.25, 1.6]
    spans = frame_spans(changes, starts, ends, 1.8, 50.0, 90, max_spans=4)
    assert spans == [(13, 29), (53, 64)]  # (1.05 + 1.1) / 2 * 50 = 53.75, floored
    assert frame_spans(changes, starts, ends, 1.8, 50.0, 90, max_spans=1) == [(13, 64)]


def test_with_context_widens_to_joined_neighbours() -> None:
    # "the cat sat on the mat": a 0.3-s pause after "sat", words otherwise joined
    spans = [(0.1, 0.3), (0.3, 0.55), (0.55, 0.8), (1.1, 1.3), (1.3, 1.45), (1.45, 1.8)]
    # cat -> dog: "the" joins it on the left; on the right "sat" joins, then the pause stops it
    assert with_context([(1, 2, 1, 2)], spans, 6) == [(0, 3, 0, 3)]
    # mat -> big mat (two words for one): two neighbours on the left, the end of the sentence on the right
    assert with_context([(5, 6, 5, 7)], spans, 7) == [(3, 6, 3, 7)]
    # "on" after the pause: left stops at once, right takes "the" and "mat"
    assert with_context([(3, 4, 3, 4)], spans, 6) == [(3, 6, 3, 6)]
    # two changes whose widened ranges meet or touch are merged, in both index spaces
    assert with_context([(1, 2, 1, 2), (4, 5, 4, 5)], spans, 6) == [(0, 6, 0, 6)]
    assert with_context([(1, 2, 1, 2), (4, 5, 4, 5)], spans, 6, words=0) == [(1, 2, 1, 2), (4, 5, 4, 5)]
    assert with_context([(1, 2, 1, 2), (5, 6, 6, 7)], spans, 6, words=0) == [(1, 2, 1, 2), (5, 6, 6, 7)]
    # words=0 is the changed words alone
    assert with_context([(1, 2, 1, 2)], spans, 6, words=0) == [(1, 2, 1, 2)]


def test_matched_pace_compares_the_unchanged_words_only() -> None:
    from speechlm.tasks.edit import matched_pace

    # recording: "the cat sat on the mat", each word 0.3 s; model: "the dog sat on a big mat", each word 0.2 s
    src = [(0.3 * k, 0.3 * k + 0.3) for k in range(6)]
    dst = [(0.2 * k, 0.2 * k + 0.2) for k in range(7)]
    changes = word_diff("the cat sat on the mat".split(), "the dog sat on a big mat".split())
    assert matched_pace(changes, src, dst) == pytest.approx(1.5)  # 4 unchanged words: 1.2 s against 0.8 s
    dst[0] = (0.0, 0.4)  # the model's "the" as long as the recording's: (0.3 * 4) / (0.4 + 0.2 * 3)
    assert matched_pace(changes, src, dst) == pytest.approx(1.2)
    assert matched_pace(changes, src, [(0.0, 0.1)] * 7) == 1.5  # clipped
    assert matched_pace([(0, 6, 0, 7)], src, dst) == 1.0  # nothing unchanged


def test_continue_f0_meets_the_recording_at_the_cuts() -> None:
    from speechlm.tasks.edit import continue_f0

    m = 2  # features [mcep(2) | lf0 | vuv]: enough for the F0 columns

    def feats(n: int, lf0: float) -> np.ndarray:
        f = np.zeros((n, m + 2), np.float32)
        f[:, m], f[:, m + 1] = lf0, 1.0
        return f

    rec = feats(100, np.log(120.0))  # 2 s at 20 ms
    rec[60:, m] = np.log(130.0)  # the recording is higher after the edit
    gen = feats(400, np.log(100.0))  # 2 s at 5 ms
    out = continue_f0(gen, 0.005, rec, 0.02, m, [(0.5, 1.2, 0.5, 1.2, True, True)])
    assert np.allclose(out[:100, m], np.log(100.0)) and np.allclose(out[240:, m], np.log(100.0))  # outside: as is
    assert abs(out[101, m] - np.log(120.0)) < 0.01 and abs(out[239, m] - np.log(130.0)) < 0.01  # meets both cuts
    # no recording before the region (it starts the sentence): the right offset alone, over the whole region
    one = continue_f0(gen, 0.005, rec, 0.02, m, [(0.5, 1.2, 0.5, 1.2, False, True)])
    assert np.allclose(one[100:240, m], np.log(130.0), atol=1e-5)
    # corrections are bounded; an unvoiced recording leaves the pitch alone
    far = continue_f0(gen, 0.005, feats(100, np.log(400.0)), 0.02, m, [(0.5, 1.2, 0.5, 1.2, True, True)])
    assert np.allclose(far[100:240, m], np.log(100.0) + 0.3, atol=1e-5)
    silent = feats(100, 0.0)
    silent[:, m + 1] = 0.0
    assert np.array_equal(continue_f0(gen, 0.005, silent, 0.02, m, [(0.5, 1.2, 0.5, 1.2, True, True)]), gen)


def test_pick_draw_prefers_a_stopped_draw_near_the_expected_length() -> None:
    from speechlm.lm.generate import GenResult

    def d(n: int, cap: bool = False) -> GenResult:
        return GenResult(torch.zeros(1, n + 1, dtype=torch.long), n, cap)

    draws = [d(90, cap=True), d(60), d(22), d(12)]
    assert pick_draw(draws, 20.0) is draws[2]
    assert pick_draw(draws, 55.0) is draws[1]
    assert pick_draw(draws, 15.0) is draws[3]  # 12 is nearer than 22 in ratio (1.25 vs 1.47)
    only_caps = [d(90, cap=True), d(91, cap=True)]
    assert pick_draw(only_caps, 20.0) is only_caps[0]


def test_active_fraction() -> None:
    from speechlm.tasks.tts import active_fraction

    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    assert active_fraction(tone) == 1.0
    assert active_fraction(np.zeros(16000, np.float32)) == 0.0
    assert active_fraction(0.003 * tone) == 0.0  # -53 dBFS RMS: near silence
    half = tone.copy()
    half[8000:] = 0
    assert active_fraction(half) == pytest.approx(0.5, abs=0.03)
    assert active_fraction(np.zeros(10, np.float32)) == 0.0


def test_split_and_join() -> None:
    assert split_sentences("One. Two!  Three? four") == ["One.", "Two!", "Three?", "four"]
    out = fade_join([np.ones(1000, np.float32), np.ones(1000, np.float32)], 16000)
    assert out[0] == 0 and out[-1] == 0 and len(out) == 2000 + int(0.15 * 16000)
    assert np.abs(np.diff(out)).max() < 0.01  # no jump anywhere: fades, not clicks


def test_cli_tts_and_edit(run, tmp_path, capsys) -> None:
    from speechlm.cli import main

    out = tmp_path / "out.wav"
    common = ["--model", str(run / "run"), "--seed", "1"]
    assert main(["tts", "Hi.", "-o", str(out), *common]) == 0
    assert sf.info(str(out)).duration > 0
    bad = tmp_path / "bad.wav"
    capsys.readouterr()
    assert main(["tts", "...", "-o", str(bad), *common]) == 2
    err = capsys.readouterr().err
    assert "nothing to read" in err and len(err.strip().splitlines()) == 1 and not bad.exists()
    assert main(["edit", str(run / "v0_1.wav"), "--transcript", "the cat sat on the mat", "--target",
                 "the dog sat on the mat", "-o", str(tmp_path / "e.wav"), *common]) == 0
    assert (tmp_path / "e.wav").exists()
    assert main(["edit", str(run / "v0_1.wav"), "--transcript", "the cat", "--target", "the cat", "-o",
                 str(tmp_path / "same.wav"), *common]) == 2
    assert not (tmp_path / "same.wav").exists()


def test_cli_help_is_fast_and_lists_commands() -> None:
    r = subprocess.run([sys.executable, "-m", "speechlm.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and all(f"    {c} " in r.stdout for c in ("lm", "tts", "edit"))


def test_tts_finds_the_lms_codec_by_tokenizer_id(run) -> None:
    """Without --codec the LM's own codec is loaded (by the name in its tokenizer id); a stale hash is refused."""
    from speechlm.lm.api import CodecLanguageModel
    from speechlm.tokenizers.codec.api import Codec

    lm = CodecLanguageModel.load(run / "run")
    assert Codec.for_tokenizer(lm.tokenizer).tokenizer_id == lm.tokenizer
    pitch = Codec.load("pitch")
    assert Codec.for_tokenizer(pitch.tokenizer_id).name == "codec_pitch"
    with pytest.raises(CheckpointError, match="not codec_pitch@0000"):
        Codec.for_tokenizer("codec_pitch@0000000000000000")
    with pytest.raises(CheckpointError, match="not found"):
        Codec.for_tokenizer("codec_nosuch@0000000000000000")
