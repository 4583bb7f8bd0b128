"""Supervised semantic units: k-means over the shipped CTC ASR's layer, on a tiny espeak corpus."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from _semantic_corpus import CONFIGS, make_corpus

from speechlm.cli import main
from speechlm.errors import SpeechLMError
from speechlm.tokenizers.registry import load_tokenizer
from speechlm.tokenizers.semantic import supervised
from speechlm.tokenizers.semantic.api import SemanticTokenizer
from speechlm.tokenizers.semantic.kmeans import assign

pytestmark = [pytest.mark.needs_tool("espeak-ng"),
              pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("sup_corpus"))


@pytest.fixture(scope="module")
def tok_dir(corpus, tmp_path_factory):
    dest = tmp_path_factory.mktemp("sup") / "tok"
    supervised.cluster_asr([str(corpus)], dest, layer=2, clusters=6, name="semantic_asr_tiny", show_progress=False)
    return dest


def _full_asr_layer(wav: np.ndarray, layer: int) -> np.ndarray:
    """The same layer computed by the whole shipped ASR model (its own forward pieces, no windows)."""
    from speechlm.asr.model import lengths_to_mask, normalize_features
    from speechlm.asr.transcriber import get_transcriber
    from speechlm.audio.features import log_mel

    tr = get_transcriber(None)
    f = tr.features
    mel = log_mel(torch.from_numpy(wav), f["sample_rate"], n_fft=f["n_fft"], hop_length=f["hop_length"],
                  n_mels=f["n_mels"])[None]
    lengths = torch.tensor([mel.shape[-1]])
    with torch.no_grad():
        h, out_len = tr.model.frontend(normalize_features(mel, lengths), lengths)
        mask = lengths_to_mask(out_len, h.shape[1])
        for block in tr.model.blocks[:layer]:
            h = block(h, mask)
    return h[0].numpy()


def test_units_follow_the_asr_layer_on_the_codec_grid(tok_dir, corpus):
    tok = SemanticTokenizer.load(tok_dir)
    assert tok.features_kind == "asr" and tok.layer == 2 and tok.cardinality == 6 and not tok.uses_encoder
    assert tok.tokenizer_id.startswith("semantic_asr_tiny@")
    from speechlm.audio.io import resample

    wav, sr = sf.read(corpus.parent / "v1_5.wav", dtype="float32")
    wav, sr = resample(wav, sr, 16000).astype(np.float32), 16000  # espeak speaks at 22.05 kHz
    feats = tok.features(wav, sr)
    n = -(-len(wav) // 320)
    ref = _full_asr_layer(wav, 2)
    assert feats.shape == (n, ref.shape[1])
    m = min(n, len(ref))
    # fp16-stored weights against the fp32 model: close, not bit-equal
    assert np.abs(feats[:m] - ref[:m]).max() < 0.05 * np.abs(ref).max()
    t = tok.encode(wav, sr)
    assert t.codes.shape == (1, n) and t.codes.min() >= 0 and t.codes.max() < 6
    assert len(np.unique(t.codes)) > 1 and (tok.encode(wav, sr).codes == t.codes).all()
    assert load_tokenizer(f"semantic:{tok_dir}").tokenizer_id == tok.tokenizer_id


def test_long_inputs_run_in_windows(tok_dir, corpus, monkeypatch):
    """Windows with context give the one-pass frames where the context covers the attention that matters."""
    tok = SemanticTokenizer.load(tok_dir)
    wav, sr = sf.read(corpus.parent / "v0_1.wav", dtype="float32")
    wav = np.tile(wav, 3)
    one_pass = tok.features(wav, sr)
    monkeypatch.setattr(supervised, "WINDOW", 40)
    monkeypatch.setattr(supervised, "CONTEXT", 20)
    windowed = tok.features(wav, sr)
    assert windowed.shape == one_pass.shape
    assert np.isfinite(windowed).all() and not np.array_equal(windowed, one_pass)  # the windows did run
    agree = (assign(windowed, tok.centroids) == assign(one_pass, tok.centroids)).mean()
    assert agree > 0.8  # attention beyond 20 frames of context is lost; most units stay


def test_cli_cluster_asr_info_and_errors(corpus, tmp_path, capsys):
    dest = tmp_path / "t"
    assert main(["semantic", "cluster-asr", "--data", str(corpus), "-o", str(dest), "--layer", "1",
                 "--clusters", "4", "--name", "sup1"]) == 0
    capsys.readouterr()
    assert main(["semantic", "info", "--model", str(dest)]) == 0
    assert "CTC ASR layer 1" in capsys.readouterr().out
    assert main(["semantic", "cluster-asr", "--data", str(corpus), "-o", str(tmp_path / "x"), "--layer", "99"]) == 2
    assert "layer 99" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_asr_units_are_refused_as_masked_prediction_targets(tok_dir, corpus, tmp_path):
    from speechlm.tokenizers.semantic.train import train

    with pytest.raises(SpeechLMError, match="ASR units"):
        train(CONFIGS / "semantic" / "tiny.yaml", [str(corpus)], tmp_path / "run",
              [f"semantic.targets_model={tok_dir}", "train.max_steps=1"])


def test_shipped_asr_units(corpus, tmp_path, capsys):
    """``semantic:asr`` ships with its own copy of the ASR's first four blocks; CLI encode works on it."""
    from speechlm.tokenizers.semantic.api import ASSETS

    if not (ASSETS / "semantic_asr" / "model.safetensors").exists():
        pytest.skip("no shipped semantic_asr")
    tok = load_tokenizer("semantic:asr")
    assert tok.features_kind == "asr" and tok.layer == 4 and tok.cardinality == 1024
    out = tmp_path / "u.npz"
    assert main(["semantic", "encode", str(corpus.parent / "v0_2.wav"), "-o", str(out), "--model", "asr"]) == 0
    from speechlm.tokenizers.tokens import load_tokens

    t = load_tokens(out)
    assert t.tokenizer == tok.tokenizer_id and t.codes.shape[0] == 1 and len(np.unique(t.codes)) > 5


def test_per_utterance_normalisation_is_kept_with_the_tokenizer(corpus, tmp_path):
    dest = tmp_path / "mean"
    supervised.cluster_asr([str(corpus)], dest, layer=2, clusters=6, norm="mean", show_progress=False)
    tok = SemanticTokenizer.load(dest)
    assert tok.asr.norm == "mean"
    from speechlm.audio.io import load_audio

    wav = load_audio(corpus.parent / "v0_1.wav", sr=16000)[0].mean(0)
    f = tok.features(wav, 16000)
    plain = supervised.asr_layers_from_model(None, 2)[0](wav)
    assert np.abs(f.mean(0)).max() < 1e-3 < np.abs(plain.mean(0)).max()
    assert np.allclose(f, plain - plain.mean(0), atol=2e-2)  # the same block, centred (fp16 weights)
    with pytest.raises(SpeechLMError, match="norm"):
        supervised.asr_layers_from_model(None, 2, "median")
