"""``speechlm asr`` commands and the transcriber on a small untrained model (behaviour, not accuracy)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from speechlm.asr.align import Alignment, AlignmentError
from speechlm.asr.labels import DEFAULT_CHARS, LabelSet
from speechlm.asr.train import ASRTrainConfig, build_model, default_phone_labels, export_model
from speechlm.asr.transcriber import CTCTranscriber
from speechlm.cli import main
from speechlm.errors import CheckpointError
from speechlm.train.config import load_config


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    cfg = load_config(
        {"model": {"d_model": 32, "n_layers": 2, "n_heads": 2, "phone_layer": 1}}, ASRTrainConfig
    )
    torch.manual_seed(0)
    phones = default_phone_labels(["h", "ə", "l", "oʊ", "w", "ɜː", "d"])
    model, cfg = build_model(cfg, phones, LabelSet.from_symbols(DEFAULT_CHARS))
    return export_model(
        model, cfg, phones, LabelSet.from_symbols(DEFAULT_CHARS), tmp_path_factory.mktemp("m") / "asr", step=0
    )


@pytest.fixture(scope="module")
def wav_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    t = np.arange(int(1.5 * 22050)) / 22050
    wav = 0.1 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(
        t.size
    )
    path = tmp_path_factory.mktemp("a") / "x.wav"
    sf.write(str(path), wav.astype(np.float32), 22050)
    return path


def test_transcriber_loads_fp16_export_and_batches(model_dir, wav_path):
    tr = CTCTranscriber.load(model_dir)
    assert all(p.dtype == torch.float32 for p in tr.model.parameters())
    wav, sr = sf.read(str(wav_path), dtype="float32")
    one = tr.transcribe(wav, sr=sr)
    assert isinstance(one, str)
    assert tr.transcribe_batch([wav, wav[: len(wav) // 2]], sr=sr)[0] == one
    em = tr.emissions(wav, sr=sr)
    assert em.frame_rate == 50.0 and em.phone.shape[0] == (1 + int(len(wav) * 16000 / sr) // 160 + 1) // 2


def test_align_words_cover_the_text(model_dir, wav_path):
    tr = CTCTranscriber.load(model_dir)
    wav, sr = sf.read(str(wav_path), dtype="float32")
    al = tr.align(wav, "hello world", "en", sr=sr, phonemes="h ə l oʊ | w ɜː l d")
    assert isinstance(al, Alignment)
    assert [w.word for w in al.words] == ["hello", "world"]
    assert [p.label for p in al.phones] == ["h", "ə", "l", "oʊ", "w", "ɜː", "l", "d"]
    assert 0 <= al.words[0].start_s < al.words[0].end_s <= al.words[1].start_s < al.words[1].end_s <= 1.52
    with pytest.raises(AlignmentError):
        tr.align(wav[:2000], "hello world", "en", sr=sr, phonemes="h ə l oʊ | w ɜː l d " * 4)


def test_cli_transcribe_and_align(model_dir, wav_path, tmp_path, capsys):
    assert main(["asr", "transcribe", str(wav_path), "--model", str(model_dir)]) == 0
    assert main(["asr", "transcribe", str(wav_path), "--model", str(model_dir), "--phonemes"]) == 0
    out = tmp_path / "spans.json"
    assert (
        main(
            [
                "asr",
                "align",
                str(wav_path),
                "--text",
                "Hello, world!",
                "--lang",
                "en",
                "--model",
                str(model_dir),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    d = json.loads(out.read_text())
    assert [w["word"] for w in d["words"]] == ["Hello", "world"] and d["frame_rate"] == 50.0
    assert all(p["start_s"] < p["end_s"] for p in d["phones"])


def test_cli_bad_inputs_fail_in_one_line(model_dir, wav_path, tmp_path, capsys):
    out = tmp_path / "never.json"
    assert (
        main(
            [
                "asr",
                "align",
                str(tmp_path / "missing.wav"),
                "--text",
                "hi",
                "--model",
                str(model_dir),
                "-o",
                str(out),
            ]
        )
        == 2
    )
    assert (
        main(["asr", "align", str(wav_path), "--text", "  ", "--model", str(model_dir), "-o", str(out)]) == 2
    )
    assert main(["asr", "transcribe", str(wav_path), "--model", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("speechlm: error: ") for line in err)
    assert not out.exists()
    with pytest.raises(CheckpointError):
        CTCTranscriber.load(tmp_path)


def test_eval_suite_backend_ctc(model_dir, wav_path):
    from speechlm.eval.asr import Transcriber, get_transcriber

    tr = get_transcriber("ctc", str(model_dir), "en")
    assert isinstance(tr, Transcriber) and tr.name == "ctc"
    wav, sr = sf.read(str(wav_path), dtype="float32")
    assert isinstance(tr.transcribe(wav), str)
    assert isinstance(tr.transcribe(np.zeros(0, dtype=np.float32)), str)  # empty clip: no error
