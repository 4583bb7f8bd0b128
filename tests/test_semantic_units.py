"""Semantic tokenizer building blocks: features on the 50 Hz grid, mini-batch k-means, the masked encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechlm.errors import SpeechLMError
from speechlm.tokenizers.semantic.api import run_lengths
from speechlm.tokenizers.semantic.encoder import EncoderConfig, MaskedPredictionEncoder, span_mask
from speechlm.tokenizers.semantic.features import encoder_input, mfcc_features, num_frames
from speechlm.tokenizers.semantic.kmeans import assign, minibatch_kmeans

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("n", [1, 319, 320, 321, 16000, 16001])
def test_features_share_the_codec_frame_grid(n):
    wav = np.random.default_rng(n).normal(0, 0.1, n).astype(np.float32)
    t = num_frames(n)
    assert t == max(1, -(-n // 320))
    assert mfcc_features(wav).shape == (t, 39)
    assert encoder_input(wav).shape == (80, 2 * t)


def test_features_are_normalised_per_utterance():
    wav = np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32)
    f = mfcc_features(wav)
    assert np.allclose(f.mean(0), 0, atol=1e-4) and np.allclose(f.std(0), 1, atol=1e-2)
    # a louder copy has the same normalised features (gain is a constant offset of log-mel)
    assert np.allclose(mfcc_features(wav * 4), f, atol=1e-2)


def test_kmeans_recovers_separated_blobs():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (6, 5))
    labels = rng.integers(0, 6, 6000)
    x = (centres[labels] + rng.normal(0, 0.3, (6000, 5))).astype(np.float32)
    res = minibatch_kmeans(x, 6, batch_size=500, steps=50, init_size=2000, seed=0)
    pred = assign(x, res.centroids)
    # the clustering equals the truth up to a permutation: every found cluster is one true blob
    for k in range(6):
        assert len(np.unique(labels[pred == k])) == 1
    assert res.inertia < 0.3**2 * 5 * 1.5


def test_lloyd_passes_lower_the_inertia_of_a_short_minibatch_run():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20000, 8)).astype(np.float32)  # no clusters to find: the centroids' placement is all
    short = minibatch_kmeans(x, 64, batch_size=200, steps=5, init_size=2000, seed=0)
    refined = minibatch_kmeans(x, 64, batch_size=200, steps=5, init_size=2000, seed=0, lloyd_iters=5)
    assert refined.inertia < 0.95 * short.inertia


def test_assign_is_the_nearest_centroid():
    rng = np.random.default_rng(1)
    x, c = rng.normal(size=(300, 4)).astype(np.float32), rng.normal(size=(7, 4)).astype(np.float32)
    brute = ((x[:, None] - c[None]) ** 2).sum(-1).argmin(1)
    assert (assign(x, c, chunk=64) == brute).all()


def test_kmeans_needs_enough_frames():
    with pytest.raises(SpeechLMError):
        minibatch_kmeans(np.zeros((3, 2), np.float32), 5)


def test_span_mask_ratio_and_nonempty_rows():
    m = span_mask(64, 200, 0.065, 10, torch.Generator().manual_seed(0))
    assert m.shape == (64, 200) and m.any(1).all()
    expected = 1 - (1 - 0.065) ** 10
    assert abs(float(m.float().mean()) - expected) < 0.06


def test_encoder_shapes_and_early_exit():
    cfg = EncoderConfig(dim=32, layers=3, heads=2, pos_kernel=15, n_targets=11)
    model = MaskedPredictionEncoder(cfg).eval()
    mel = torch.randn(2, 80, 2 * 25)
    states = model(mel)
    assert len(states) == 4 and all(s.shape == (2, 25, 32) for s in states)
    assert model.logits(mel).shape == (2, 25, 11)
    early = model(mel, n_layers=2)
    assert len(early) == 3 and torch.allclose(early[2], states[2], atol=1e-5)


def test_masked_prediction_learns():
    """A few steps on one batch lower the masked-frame loss (the target is a function of the input)."""
    torch.manual_seed(0)
    cfg = EncoderConfig(dim=32, layers=2, heads=2, pos_kernel=15, n_targets=4, dropout=0.0)
    model = MaskedPredictionEncoder(cfg)
    mel = torch.randn(4, 80, 80)
    tgt = (mel[:, :4, ::2].argmax(1))  # [4, 40]: depends on the (local) input
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(30):
        mask = span_mask(4, 40, 0.05, 3)
        logits = model.logits(mel, mask)
        loss = torch.nn.functional.cross_entropy(logits[mask], tgt[mask])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


def test_run_lengths_round_trip():
    u = np.array([3, 3, 3, 1, 1, 4, 3, 3])
    v, d = run_lengths(u)
    assert v.tolist() == [3, 1, 4, 3] and d.tolist() == [3, 2, 1, 2]
    assert (np.repeat(v, d) == u).all()


def test_shipped_layer_features_equal_the_full_models(tmp_path):
    """A tokenizer keeps the encoder up to its layer: its features must be that layer's output in the full model
    (regression: the final norm was once applied to the truncated encoder's last layer)."""
    from speechlm.tokenizers.semantic.api import SemanticTokenizer
    from speechlm.tokenizers.semantic.encoder import layer_features
    from speechlm.tokenizers.semantic.train import save_tokenizer

    torch.manual_seed(0)
    model = MaskedPredictionEncoder(EncoderConfig(dim=32, layers=3, heads=2, pos_kernel=15, n_targets=5)).eval()
    with torch.no_grad():
        model.out_norm.weight.mul_(3.0)  # a trained final norm is not the identity
    wav = np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32)
    full = layer_features(model, encoder_input(wav), 2)
    save_tokenizer(tmp_path / "t", centroids=full[:4], name="t", features="encoder", encoder=model, layer=2,
                   half=False)
    tok = SemanticTokenizer.load(tmp_path / "t")
    assert np.allclose(tok.features(wav, 16000), full, atol=1e-5)
    assert (tok.encode(wav, 16000).codes[0] == assign(full, full[:4])).all()
