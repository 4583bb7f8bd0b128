"""The codec-LM recipe on token shards of a few espeak-ng utterances: shards, loss falls, resume, export."""

from __future__ import annotations

import json

import numpy as np
import pytest
from lm_helpers import make_shards, train_tiny

from speechlm.errors import CheckpointError, SpeechLMError
from speechlm.lm.api import CodecLanguageModel
from speechlm.lm.data import TokenData
from speechlm.train.metrics import read_metrics

pytestmark = [pytest.mark.needs_tool("espeak-ng"), pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def shards(tmp_path_factory, one_thread):
    return make_shards(tmp_path_factory.mktemp("lm_corpus"))


def test_shards_roundtrip(shards) -> None:
    from speechlm.tokenizers.codec.api import Codec

    data = TokenData.load(shards)
    index = json.loads((shards / "index.json").read_text())
    assert len(data) == 6 and index["n_codebooks"] == 2
    assert index["tokenizer"] == Codec.load("codec_default").tokenizer_id
    u = data.utts[1]
    assert u.codes.shape[0] == 2 and u.codes.dtype == np.int16 and len(u.phones) > 5
    assert 1.0 < index["frames_per_phone"] < 20.0
    assert {x.split for x in data.utts} == {"train", "valid"}


def test_shards_leave_out_unreadable_languages(shards, tmp_path, capsys) -> None:
    """An utterance whose language the G2P does not support is left out and reported, not fatal."""
    from speechlm.lm.data import build_shards
    from speechlm.tokenizers.codec.api import Codec

    src = shards.parent / "manifest.jsonl"
    rows = [json.loads(line) for line in src.read_text().splitlines()]
    for r in rows:
        r["audio"] = str(shards.parent / r["audio"])
    rows[2] = {**rows[2], "lang": "ar", "text": "مرحبا"}
    m = tmp_path / "mixed.jsonl"
    m.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = build_shards([m], tmp_path / "shards", Codec.load("codec_default"), n_q=2, show_progress=False)
    index = json.loads((out / "index.json").read_text())
    assert index["n_utterances"] == 5 and index["skipped"] == 1
    assert "left out 1 utterance(s)" in capsys.readouterr().out


def test_train_loss_falls_resume_and_export(shards, tmp_path) -> None:
    run = tmp_path / "run"
    train_tiny(shards, run, steps=8, extra=("lm.lr=1e-2",))
    losses = [m["lm/loss"] for m in read_metrics(run) if "lm/loss" in m]
    assert len(losses) == 8
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.1, losses
    # resume: a longer run continues from step 8 instead of starting again
    out = train_tiny(shards, run, steps=10, extra=("lm.lr=1e-2",))
    steps = [m["step"] for m in read_metrics(run) if "lm/loss" in m]
    assert steps[-2:] == [9, 10]
    raw = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert sum(1 for r in raw if r["step"] == 1 and "lm/loss" in r) == 1  # resumed, not restarted
    assert out["checkpoint"].endswith("step_00000010")
    lm = CodecLanguageModel.load(run)
    assert lm.config.n_codebooks == 2 and lm.frames_per_phone > 1
    from speechlm.lm.train import export_model

    dest = export_model(run, tmp_path / "lm_x")
    lm2 = CodecLanguageModel.load(dest)
    assert lm2.tokenizer == lm.tokenizer and lm2.config == lm.config
    with pytest.raises(CheckpointError, match="trained on codec tokens"):
        lm2.check_codec("codec_other@0123456789abcdef")


def test_train_refuses_too_many_codebooks(shards, tmp_path) -> None:
    with pytest.raises(SpeechLMError, match="n_codebooks"):
        train_tiny(shards, tmp_path / "r", extra=("model.n_codebooks=4",))


def test_valle_preset_trains(shards, tmp_path) -> None:
    out = train_tiny(shards, tmp_path / "v", steps=3, extra=("model.layout=valle",))
    assert np.isfinite(out["lm/loss"]) and "ar/ce" in out and "nar/ce" in out


def test_load_rejects_non_lm_checkpoint() -> None:
    with pytest.raises(CheckpointError):
        CodecLanguageModel.load("definitely/not/here")
