"""Real recordings -> TTS training rows with a duration per input token (speechlm.lm.acoustic_corpus), and the
multi-speaker duration model they train (speaker vectors, languages, each language's voice)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from speechlm.data.sentences import norm_text
from speechlm.lm.acoustic_corpus import token_durations, word_groups


def test_pauses_go_to_punctuation_silences_to_the_ends_and_stress_marks_get_nothing():
    toks = ["<bos>", "k", "ˈ", "a", "|", "s", "a", ",", "n", "o", ".", "<eos>"]
    assert word_groups(toks) == [["k", "a"], ["s", "a"], ["n", "o"]]
    spans = [(0.10, 0.20), (0.20, 0.30), (0.34, 0.40), (0.40, 0.50), (0.80, 0.90), (0.90, 1.00)]
    d = token_durations(toks, spans, 1.2)
    assert sum(d) == pytest.approx(1.2)
    assert d[0] == pytest.approx(0.10)  # <bos>: leading silence
    assert d[2] == 0.0  # the stress mark
    assert d[4] == pytest.approx(0.04)  # | : the short gap between two words
    assert d[7] == pytest.approx(0.30) and d[9] == pytest.approx(0.10)  # ",": the pause; "o" its own span
    assert d[10] == 0.0 and d[11] == pytest.approx(0.20)  # "." nothing after it; <eos> the trailing silence
    with pytest.raises(ValueError):
        token_durations(toks, spans[:-1], 1.2)


def test_exclusion_compares_texts_without_case_or_punctuation():
    assert norm_text("Veuillez  composer, SVP!") == norm_text("veuillez composer svp")
    assert norm_text("Press 1.") != norm_text("Press 2.")


def test_a_recording_is_aligned_into_a_row_the_feature_cache_reads(tmp_path):
    from speechlm.asr.transcriber import get_transcriber
    from speechlm.audio.io import save_audio
    from speechlm.lm.acoustic_corpus import align_utterance, build_aligned_corpus
    from speechlm.tasks.tts import TTS

    tts = TTS.load()
    wav = tts.generate("The cat sat on the mat.").wav
    res = align_utterance(get_transcriber(), wav, "The cat sat on the mat.", "en")
    assert not isinstance(res, str)
    assert len(res.durations_s) == len(res.tokens) and sum(res.durations_s) == pytest.approx(len(wav) / 16000)
    assert all(d == 0 for t, d in zip(res.tokens, res.durations_s) if t in ("ˈ", "ˌ"))
    bad = align_utterance(get_transcriber(), wav, "Completely different words are written here instead.", "en")
    assert isinstance(bad, str) or bad.score < res.score  # a wrong transcript fits worse (or is refused)
    save_audio(tmp_path / "a.wav", wav, 16000)
    m = tmp_path / "in.jsonl"
    rows = [{"id": "a", "audio": "a.wav", "text": "The cat sat on the mat.", "lang": "en", "speaker": "s1",
             "duration": len(wav) / 16000},
            {"id": "b", "audio": "a.wav", "text": "Held out sentence.", "lang": "en", "speaker": "s1",
             "duration": len(wav) / 16000}]
    m.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = build_aligned_corpus([m], tmp_path / "out", exclude=["held-out sentence"], progress=False)
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert [g["id"] for g in got] == ["a"]
    assert (out.parent / got[0]["audio"]).resolve() == (tmp_path / "a.wav").resolve()
    report = json.loads((out.parent / "report.json").read_text())
    assert report["counts"] == {"kept": 1, "held-out text": 1}


def _speaker_cache(path, rng) -> None:
    feats, ids, durs, spk = [], [], [], []
    for i, n in enumerate((6, 8, 5, 7, 6, 5)):
        d = rng.integers(1, 4, n)
        f = rng.normal(3.0 * (i % 2), 1.0, size=(int(d.sum()), 48)).astype(np.float32)
        f[:, 41] = 1.0
        feats.append(f)
        ids.append(rng.integers(6, 40, n))
        durs.append(d)
        spk.append(i % 2)
    meta = {"speakers": ["cs_a", "it_b"], "speaker_langs": {"cs_a": "cs", "it_b": "it"}}
    np.savez(path, feat=np.concatenate(feats), ids=np.concatenate(ids), dur=np.concatenate(durs),
             feat_len=np.array([len(f) for f in feats]), tok_len=np.array([len(t) for t in ids]),
             spk=np.array(spk), meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))


def test_a_one_voice_model_fine_tuned_on_two_speakers_starts_as_itself_and_records_their_languages(tmp_path):
    from test_acoustic import _tiny_cache

    from speechlm.lm.acoustic_api import AcousticTTSModel
    from speechlm.lm.acoustic_train import AcousticTrainConfig, train_acoustic

    rng = np.random.default_rng(0)
    _tiny_cache(tmp_path / "a.npz", rng)
    _speaker_cache(tmp_path / "m.npz", rng)
    tiny = {"d_model": 16, "ff_dim": 32, "ff_kernel": 3, "enc_layers": 1, "dec_layers": 1}
    a = AcousticTTSModel.load(train_acoustic(tmp_path / "a.npz", tmp_path / "run_a", AcousticTrainConfig(
        steps=2, warmup=1, save_every=2, threads=1, model=tiny), progress=False))
    assert a.langs == ("en",) and a.speaker_of("en") is None and a.config.n_speakers == 0
    cfg = AcousticTrainConfig(steps=1, lr=1e-12, warmup=1, save_every=1, threads=1)
    m = AcousticTTSModel.load(train_acoustic(tmp_path / "m.npz", tmp_path / "run_m", cfg, progress=False,
                                             init=tmp_path / "run_a"))
    assert m.config.n_speakers == 2 and m.langs == ("cs", "it")
    assert m.speaker_of("cs") == 0 and m.speaker_of("it") == 1 and m.speaker_of("fr") is None
    assert m.voice_of("it").lf0_mean != m.voice_of("cs").lf0_mean
    ids = [1, 7, 9, 12, 2]
    fa, da = a.features(ids)
    for s in (None, 0, 1):  # the speaker vectors start at zero: every voice is the init's, until trained
        fm, dm = m.features(ids, speaker=s)
        assert np.array_equal(da, dm) and np.allclose(fa, fm, atol=1e-4)
    with torch.no_grad():
        m.model.speaker.weight[1] += 1.0
    f1, d1 = m.features(ids, speaker=1)
    assert not (np.array_equal(d1, da) and np.allclose(f1, fa, atol=1e-3))  # a trained vector changes the voice
    from speechlm.errors import CheckpointError
    from speechlm.lm.acoustic_train import export_acoustic

    with pytest.raises(CheckpointError, match="it_b"):  # a voice of another language is refused
        export_acoustic(tmp_path / "run_m", tmp_path / "bad", lang_voices={"cs": "it_b"})
    assert not (tmp_path / "bad").exists()
    out = export_acoustic(tmp_path / "run_m", tmp_path / "exported", lang_voices={"it": "it_b"})
    assert AcousticTTSModel.load(out).speaker_of("it") == 1


def test_align_corpus_refuses_a_missing_input_or_an_unknown_language_in_one_line(tmp_path, capsys):
    from speechlm.cli import main

    m = tmp_path / "in.jsonl"
    m.write_text("")
    for argv, needle in ((["acoustic", "align-corpus", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")],
                          "nope.jsonl"),
                         (["acoustic", "align-corpus", str(m), "--out", str(tmp_path / "o"), "--lang", "xx"], "xx")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "o").exists()


def test_another_language_goes_to_the_multilingual_model_and_the_english_default_says_where(monkeypatch):
    from speechlm.tasks import tts_duration
    from speechlm.tasks.tts import TTSInputError
    from speechlm.tasks.tts_duration import MULTILINGUAL, DurationTTS, default_model_for

    assert default_model_for(None, "en") is None and default_model_for("lm_default", "it") == "lm_default"
    assert default_model_for(None, "xx") is None  # refused later, by the model, with its own message
    assert default_model_for("default", "it") == MULTILINGUAL
    tts = DurationTTS.load()
    with pytest.raises(TTSInputError, match=MULTILINGUAL):
        tts.generate("Buongiorno a tutti.", lang="it")
    monkeypatch.setattr(tts_duration, "MULTILINGUAL_LANGS", ())
    with pytest.raises(TTSInputError, match="speaks en only"):
        tts.generate("Buongiorno a tutti.", lang="it")


def test_the_multilingual_model_speaks_its_languages_and_refuses_adaptation_in_one_line(tmp_path, capsys):
    import soundfile as sf

    from speechlm.cli import main
    from speechlm.tasks.tts import TTS

    tts = TTS.load(lang="it")
    assert tts.am.model_id.startswith("tts_multilingual@") and set(tts.am.langs) == {"cs", "es", "fr", "it", "nl"}
    wav = tts.generate("Buongiorno a tutti.", lang="it").wav
    assert 0.5 < len(wav) / tts.sample_rate < 4 and 0.01 < float(np.sqrt((wav**2).mean())) and np.abs(wav).max() < 1
    sf.write(tmp_path / "p.wav", wav, tts.sample_rate)
    out = tmp_path / "es.wav"
    assert main(["tts", "Hola.", "--lang", "es", "-o", str(out), "--adapt-steps", "5",
                 "--prompt", str(tmp_path / "p.wav")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "adapt" in err and not out.exists()


def test_a_multilingual_voice_is_chosen_by_name_and_a_wrong_one_is_refused_in_one_line(tmp_path, capsys):
    """``--speaker``: any training voice of the language (a unique part of its name will do), louder voices scaled
    under full scale; ambiguous, unknown, other-language names, a one-voice model and a prompt beside it are refused
    before anything is written; ``--list-speakers`` names the language's voices, the default first."""
    from speechlm.audio.limiter import PEAK_LIMIT
    from speechlm.cli import main
    from speechlm.tasks.tts import TTS, TTSInputError
    from speechlm.tasks.tts_duration import DurationTTS

    tts = TTS.load(lang="it")
    voices = tts.speakers("it")
    assert "asterisk_menardi" in voices and all(tts.speakers("it") != tts.speakers(g) for g in ("fr", "cs"))
    idx = tts.speaker_index("MENARDI", "it")
    assert tts.am.meta["extra"]["speakers"][idx] == "asterisk_menardi"
    default = tts.generate("Buongiorno a tutti.", lang="it").wav
    real = tts.generate("Buongiorno a tutti.", lang="it", speaker="menardi").wav
    assert real.shape != default.shape or not np.allclose(real, default)  # another voice (and its own durations)
    assert np.abs(real).max() <= PEAK_LIMIT + 1e-6
    for name, needle in (("diphone", "matches several"), ("nobody", "is not one"), ("asterisk_armelle", "a fr voice")):
        with pytest.raises(TTSInputError, match=needle):
            tts.speaker_index(name, "it")
    with pytest.raises(TTSInputError, match="one voice"):
        DurationTTS.load().speaker_index("joe", "en")
    out = tmp_path / "it.wav"
    for argv, needle in ((["--speaker", "nobody"], "is not one"), (["--speaker", "menardi", "--prompt", "x.wav"],
                                                                   "one or the other")):
        assert main(["tts", "Ciao.", "--lang", "it", "-o", str(out), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err and not out.exists(), err
    assert main(["tts", "--list-speakers", "--lang", "it"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].endswith("(default)") and sorted(n.split()[0] for n in listed) == voices
    assert main(["tts", "Ciao.", "--lang", "it", "-o", str(out), "--speaker", "menardi"]) == 0 and out.exists()
