"""The ASR recipe end to end on a few espeak-ng utterances: loss falls, export loads, resume continues."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from _semantic_corpus import TEXTS, espeak_corpus

from speechlm.asr.align import Alignment
from speechlm.asr.train import ASRTrainConfig, train
from speechlm.asr.transcriber import CTCTranscriber
from speechlm.train.config import load_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "asr"

pytestmark = pytest.mark.needs_tool("espeak-ng")


def fake_phonemes(text: str) -> str:
    # letters as "phones": the recipe does not care what the labels mean; this keeps the test off the G2P
    return " | ".join(" ".join(w) for w in text.split())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return espeak_corpus(tmp_path_factory.mktemp("asr_corpus"), fields=lambda text: {"phonemes": fake_phonemes(text)})


def losses(run: Path) -> list[float]:
    return [
        r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r
    ]


def test_tiny_recipe_trains_exports_and_resumes(corpus, tmp_path):
    cfg = load_config(CONFIGS / "tiny.yaml", ASRTrainConfig)
    run = tmp_path / "run"
    final = train(cfg, [corpus], run, show=False)
    curve = losses(run)
    assert len(curve) == 4 and all(np.isfinite(curve))
    assert curve[-1] < 0.8 * curve[0], curve  # 20 steps on 5 utterances must bring the CTC loss down

    meta = json.loads((final / "config.json").read_text())
    assert meta["extra"]["kind"] == "speechlm-asr-ctc" and meta["extra"]["frame_rate"] == 50.0
    assert meta["extra"]["phone_labels"][0] == "<blank>" and "h" in meta["extra"]["phone_labels"]
    assert "eval/per" in meta["extra"]["metrics"]

    tr = CTCTranscriber.load(final)
    import soundfile as sf

    wav, sr = sf.read(str(corpus.parent / "v0_1.wav"), dtype="float32")
    assert isinstance(tr.transcribe(wav, sr=sr), str)
    al = tr.align(wav, TEXTS[1], "en", sr=sr, phonemes=fake_phonemes(TEXTS[1]))
    assert isinstance(al, Alignment) and [w.word for w in al.words] == TEXTS[1].split()
    ends = [(w.start_s, w.end_s) for w in al.words]
    assert all(a < b for a, b in ends) and all(b1 <= a2 for (_, b1), (a2, _) in zip(ends, ends[1:]))
    assert ends[-1][1] <= len(wav) / sr + 0.02

    # resume: a longer run in the same folder continues from step 20, not from scratch
    cfg2 = load_config(CONFIGS / "tiny.yaml", ASRTrainConfig, ["train.max_steps=25"])
    train(cfg2, [corpus], run, show=False)
    steps = [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]
    assert steps[-1] == 25 and 21 not in steps[:4]


def test_warm_start_keeps_the_exported_model_and_labels(corpus, tmp_path):
    cfg = load_config(CONFIGS / "tiny.yaml", ASRTrainConfig)
    first = train(cfg, [corpus], tmp_path / "a", show=False)
    # a recipe with another width and a near-zero learning rate: the warm start's shape wins, weights carry over
    warm = load_config(
        CONFIGS / "tiny.yaml",
        ASRTrainConfig,
        [f"init={first}", "model.d_model=48", "optim.lr=1e-9", "train.max_steps=2"],
    )
    second = train(warm, [corpus], tmp_path / "b", show=False)
    from speechlm.train.checkpoint import load_checkpoint

    a, b = load_checkpoint(first), load_checkpoint(second)
    assert b.config["model"] == a.config["model"]
    assert b.meta["extra"]["phone_labels"] == a.meta["extra"]["phone_labels"]
    assert b.meta["data_summary"]["init_weights_sha256"] == a.weights_sha256
    for k, v in a.state_dict.items():
        assert torch.allclose(v.float(), b.state_dict[k].float(), atol=1e-3), k
    assert losses(tmp_path / "b")[0] < 0.8 * losses(tmp_path / "a")[0]

    from speechlm.errors import SpeechLMError

    with pytest.raises(SpeechLMError):
        train(load_config(CONFIGS / "tiny.yaml", ASRTrainConfig, [f"init={tmp_path}"]), [corpus], tmp_path / "c",
              show=False)


def test_worker_processes_give_the_same_features_as_one(corpus):
    """Decoding/augmenting/featurizing in 2 processes yields exactly the examples of the in-process path,
    augmented copies included (each utterance's draws come from its own seeded generator)."""
    from speechlm.asr.train import default_char_labels, load_corpus

    cfg = ASRTrainConfig()
    chars = default_char_labels()
    one, phones, summary1 = load_corpus([corpus], ("train",), cfg, None, chars, 1, seed=3, show=False)
    two, _, summary2 = load_corpus(
        [corpus], ("train",), replace(cfg, workers=2), phones, chars, 1, seed=3, show=False
    )
    assert len(one) == len(two) == 2 * (len(TEXTS) - 1)  # clean + one augmented copy each
    assert summary1 == summary2
    for a, b in zip(one, two):
        assert a.uid == b.uid and torch.equal(a.phones, b.phones) and torch.equal(a.chars, b.chars)
        assert torch.equal(a.feats, b.feats)
    clean, aug = one[0].feats, one[1].feats
    assert clean.shape != aug.shape or not torch.equal(clean, aug)  # the copy really is augmented
