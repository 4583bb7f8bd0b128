"""The conformer CTC model: shapes, lengths, and padding invariance (a batch equals one-by-one)."""

from __future__ import annotations

import torch

from speechlm.asr.model import ConformerCTC, CTCModelConfig, count_parameters, spec_augment


def tiny_model(**kw) -> ConformerCTC:
    cfg = CTCModelConfig(
        d_model=32,
        n_layers=2,
        n_heads=2,
        conv_kernel=5,
        phone_layer=1,
        n_phones=7,
        n_chars=9,
        dropout=0.0,
        **kw,
    )
    torch.manual_seed(0)
    return ConformerCTC(cfg).eval()


def test_shapes_and_lengths():
    model = tiny_model()
    feats = torch.randn(3, 80, 101)
    out = model(feats, torch.tensor([101, 50, 7]))
    assert out.phone_logprobs.shape == (3, 51, 7)
    assert out.char_logprobs.shape == (3, 51, 9)
    assert out.lengths.tolist() == [51, 25, 4]  # ceil(F / 2)
    assert torch.allclose(out.phone_logprobs.exp().sum(-1), torch.ones(3, 51), atol=1e-5)


def test_batch_with_padding_equals_one_by_one():
    model = tiny_model()
    torch.manual_seed(1)
    lens = [90, 61, 33]
    feats = [torch.randn(80, n) * 3 + 5 for n in lens]
    batch = torch.full((3, 80, max(lens)), 123.0)  # garbage padding must not matter
    for i, f in enumerate(feats):
        batch[i, :, : f.shape[1]] = f
    with torch.no_grad():
        out = model(batch, torch.tensor(lens))
        for i, f in enumerate(feats):
            one = model(f[None], torch.tensor([f.shape[1]]))
            n = int(one.lengths[0])
            assert n == int(out.lengths[i])
            assert torch.allclose(out.phone_logprobs[i, :n], one.phone_logprobs[0], atol=1e-4)
            assert torch.allclose(out.char_logprobs[i, :n], one.char_logprobs[0], atol=1e-4)


def test_subsample_four():
    model = tiny_model(subsample=4)
    out = model(torch.randn(1, 80, 41), torch.tensor([41]))
    assert out.lengths.tolist() == [11] and out.char_logprobs.shape[1] == 11


def test_gain_invariance():
    # per-utterance normalisation: a constant offset on the log-mel (a gain change) does not change the output
    model = tiny_model()
    f = torch.randn(1, 80, 40)
    with torch.no_grad():
        a = model(f, torch.tensor([40])).char_logprobs
        b = model(f + 4.0, torch.tensor([40])).char_logprobs
    assert torch.allclose(a, b, atol=1e-4)


def test_spec_augment_masks_inside_lengths_only():
    f = torch.randn(2, 80, 200)
    g = torch.Generator().manual_seed(0)
    out = spec_augment(f, torch.tensor([200, 100]), g)
    assert out.shape == f.shape
    assert not torch.equal(out, f)
    assert torch.equal(out[1, :, 100:], f[1, :, 100:])


def test_default_size_is_small():
    n = count_parameters(ConformerCTC(CTCModelConfig(n_phones=100, n_chars=100)))
    assert 1_000_000 < n < 5_000_000
