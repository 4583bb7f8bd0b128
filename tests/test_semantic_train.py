"""The semantic recipe end to end on a tiny espeak corpus: train, resume, iteration 2, encode, CLI, bridge."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from _semantic_corpus import CONFIGS, make_corpus, save_tiny_codec, train_tiny_semantic

from speechlm.cli import main
from speechlm.errors import SpeechLMError
from speechlm.tokenizers.base import AudioTokenizer
from speechlm.tokenizers.registry import load_tokenizer
from speechlm.tokenizers.semantic.api import SemanticTokenizer, run_lengths
from speechlm.tokenizers.tokens import load_tokens

pytestmark = [pytest.mark.needs_tool("espeak-ng"),
              pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("sem_corpus"))


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    return train_tiny_semantic(corpus, tmp_path_factory.mktemp("sem_run") / "run")


def test_recipe_writes_both_tokenizers_and_metrics(run):
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("mp/loss" in m for m in metrics) and any("valid/acc" in m for m in metrics)
    mfcc, sem = SemanticTokenizer.load(run / "mfcc_kmeans"), SemanticTokenizer.load(run)
    assert mfcc.cardinality == 16 and not mfcc.uses_encoder
    assert sem.cardinality == 8 and sem.uses_encoder and sem.layer == 1
    assert isinstance(sem, AudioTokenizer)
    assert sem.tokenizer_id.startswith("semantic_tiny@") and sem.tokenizer_id != mfcc.tokenizer_id


def test_encode_grid_determinism_and_resampling(run, corpus):
    tok = SemanticTokenizer.load(run)
    wav, sr = sf.read(corpus.parent / "v0_5.wav", dtype="float32")
    t = tok.encode(wav, sr)
    assert t.codes.shape == (1, -(-round(len(wav) * 16000 / sr) // 320))
    assert t.frame_rate == 50 and t.bitrate == pytest.approx(50 * 3 / 1000)
    assert 0 <= t.codes.min() and t.codes.max() < 8
    assert len(np.unique(t.codes)) > 1  # speech is not one unit
    assert (tok.encode(wav, sr).codes == t.codes).all()
    d = tok.encode(wav, sr, dedup=True)
    values, _ = run_lengths(t.codes[0])
    assert (d.codes[0] == values).all() and d.frame_rate < 50
    with pytest.raises(SpeechLMError):
        tok.encode(wav, sr, bitrate=3.0)
    with pytest.raises(SpeechLMError):
        tok.decode(t)
    with pytest.raises(SpeechLMError):
        tok.encode(np.zeros(0, np.float32), 16000)


def test_resume_and_iteration_two(run, corpus, tmp_path):
    from speechlm.tokenizers.semantic.train import train

    r = train(CONFIGS / "semantic" / "tiny.yaml", [str(corpus)], run, ["train.max_steps=6"], show_progress=False)
    assert (run / "checkpoints" / "step_00000006").is_dir()  # resumed from step 4, not restarted
    assert r["tokenizer"].endswith("tokenizer")
    it2 = train(CONFIGS / "semantic" / "tiny.yaml", [str(corpus)], tmp_path / "it2",
                [f"semantic.targets_model={run / 'tokenizer'}"], show_progress=False)
    from speechlm.train.checkpoint import load_checkpoint

    ck = load_checkpoint(sorted((tmp_path / "it2" / "checkpoints").iterdir())[-1])
    assert ck.config["model"]["n_targets"] == 8  # the teacher's units are the targets
    assert SemanticTokenizer.load(it2["tokenizer"]).cardinality == 8


def test_cli_encode_info_and_errors(run, corpus, tmp_path, capsys):
    out = tmp_path / "u.npz"
    assert main(["semantic", "encode", str(corpus.parent / "v1_5.wav"), "-o", str(out), "--model", str(run)]) == 0
    t = load_tokens(out)
    assert t.num_codebooks == 1 and t.tokenizer.startswith("semantic_tiny@")
    assert main(["semantic", "info", "--model", str(run)]) == 0
    assert "clusters: 8" in capsys.readouterr().out
    rc = main(["semantic", "encode", str(corpus.parent / "v1_5.wav"), "-o", str(tmp_path / "x.npz"),
               "--model", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and not (tmp_path / "x.npz").exists()
    # the registry finds it by folder and by kind
    assert load_tokenizer(str(run)).tokenizer_id == t.tokenizer
    assert load_tokenizer(f"semantic:{run}").tokenizer_id == t.tokenizer


def test_bridge_trains_and_decodes_in_the_prompt_voice(run, corpus, tmp_path, capsys):
    from speechlm.tokenizers.semantic.bridge_train import train as train_bridge

    codec = save_tiny_codec(tmp_path / "codec")
    res = train_bridge(CONFIGS / "semantic" / "bridge_tiny.yaml", [str(corpus)], tmp_path / "bridge",
                       [f"bridge.semantic_model={run}", f"bridge.codec_model={codec}"], show_progress=False)
    assert np.isfinite(res["bridge/loss"])
    npz, wav = tmp_path / "u.npz", tmp_path / "out.wav"
    main(["semantic", "encode", str(corpus.parent / "v0_5.wav"), "-o", str(npz), "--model", str(run)])
    n = load_tokens(npz).n_samples
    assert main(["semantic", "decode", str(npz), "--prompt", str(corpus.parent / "v1_0.wav"), "-o", str(wav),
                 "--bridge", str(tmp_path / "bridge")]) == 0
    y, sr = sf.read(wav)
    assert sr == 16000 and len(y) == n
    dd = tmp_path / "d.npz"
    main(["semantic", "encode", str(corpus.parent / "v0_5.wav"), "-o", str(dd), "--model", str(run), "--dedup"])
    capsys.readouterr()
    rc = main(["semantic", "decode", str(dd), "--prompt", str(corpus.parent / "v1_0.wav"), "-o",
               str(tmp_path / "no.wav"), "--bridge", str(tmp_path / "bridge")])
    assert rc == 2 and "dedup" in capsys.readouterr().err and not (tmp_path / "no.wav").exists()


def test_cluster_another_layer(run, corpus, tmp_path, capsys):
    dest = tmp_path / "l2"
    assert main(["semantic", "cluster", str(run), "--data", str(corpus), "-o", str(dest), "--layer", "2",
                 "--clusters", "5", "--name", "semantic_l2"]) == 0
    tok = SemanticTokenizer.load(dest)
    assert tok.layer == 2 and tok.cardinality == 5 and tok.tokenizer_id.startswith("semantic_l2@")
    assert main(["semantic", "cluster", str(run), "--data", str(corpus), "-o", str(tmp_path / "x"),
                 "--layer", "9"]) == 2


def test_warm_started_iteration_two_with_vtlp(run, corpus, tmp_path, capsys):
    """``semantic.init`` copies the encoder (not the head: other targets) and ``semantic.vtlp`` warps only the
    student's input."""
    import numpy as np
    import torch

    from speechlm.tokenizers.semantic.features import vtlp_matrix
    from speechlm.tokenizers.semantic.train import CropDataset, FeaturePool, train
    from speechlm.train.checkpoint import latest_checkpoint, load_checkpoint

    assert np.allclose(vtlp_matrix(1.0), np.eye(80), atol=1e-6)
    w = vtlp_matrix(1.1)
    assert np.allclose(w.sum(1), 1.0) and w[40].argmax() < 40  # a longer-reaching bin reads lower frequencies
    pool = FeaturePool(np.random.default_rng(0).normal(size=(80, 40)).astype(np.float16),
                       np.zeros((20, 39), np.float32), np.array([0]), np.array([20]))
    tg = np.arange(20)
    plain, warped = CropDataset(pool, tg, 2, 20, 0)[0], CropDataset(pool, tg, 2, 20, 0, vtlp=0.15)[0]
    assert torch.equal(plain[1], warped[1]) and not torch.allclose(plain[0], warped[0])

    it2 = train(CONFIGS / "semantic" / "tiny.yaml", [str(corpus)], tmp_path / "warm",
                [f"semantic.targets_model={run / 'tokenizer'}", f"semantic.init={run}", "semantic.vtlp=0.1",
                 "train.max_steps=1"], show_progress=False)
    assert "warm start from" in capsys.readouterr().out
    teacher = load_checkpoint(latest_checkpoint(run)).state_dict
    # after one step the copied weights moved by at most one optimiser step; a fresh init would be far away
    student = load_checkpoint(latest_checkpoint(tmp_path / "warm")).state_dict
    assert (student["layers.0.linear1.weight"] - teacher["layers.0.linear1.weight"]).abs().max() < 0.05
    assert SemanticTokenizer.load(it2["tokenizer"]).cardinality == 8
