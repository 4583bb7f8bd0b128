"""Streaming equals offline for every causal piece of the codec, and for the whole encoder/decoder."""

from __future__ import annotations

import pytest
import torch

from speechlm.tokenizers.codec.builder import CodecConfig, build_codec
from speechlm.tokenizers.codec.streaming import (
    CausalConv1d,
    CausalConvTranspose1d,
    OverlapAdd,
    remove_weight_norm,
    streaming,
)

TINY = dict(
    channels=8,
    max_channels=32,
    dim=16,
    n_q=4,
    codebook_size=64,
    istft_width=32,
    istft_blocks=1,
    enc_blocks=1,
    dec_blocks=1,
)


def _chunks(x: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    out, i, k = [], 0, 0
    while i < x.shape[-1]:
        n = sizes[k % len(sizes)]
        out.append(x[..., i : i + n])
        i, k = i + n, k + 1
    return out


@pytest.mark.parametrize("k,s,d", [(7, 1, 1), (3, 1, 3), (8, 4, 1), (10, 5, 1)])
def test_causal_conv_streaming_equals_offline(k, s, d):
    torch.manual_seed(0)
    conv = CausalConv1d(3, 5, k, stride=s, dilation=d).eval()
    x = torch.randn(2, 3, 40 * s)
    ref = conv(x)
    with streaming(conv):
        out = torch.cat([conv(c) for c in _chunks(x, [1, 7, 3, 13])], dim=-1)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert ref.shape[-1] == 40


def test_causal_conv_is_causal():
    torch.manual_seed(0)
    conv = CausalConv1d(1, 2, 8, stride=4).eval()
    x = torch.randn(1, 1, 64)
    y = x.clone()
    y[..., 40:] = 0.0  # changing the future leaves past outputs (frames ending before sample 40) untouched
    torch.testing.assert_close(conv(x)[..., :10], conv(y)[..., :10])


def test_conv_transpose_streaming_equals_offline():
    torch.manual_seed(0)
    conv = CausalConvTranspose1d(4, 3, 8, 4).eval()
    x = torch.randn(2, 4, 30)
    ref = conv(x)
    assert ref.shape[-1] == 120
    with streaming(conv):
        out = torch.cat([conv(c) for c in _chunks(x, [1, 5, 2])], dim=-1)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_overlap_add_streaming_equals_offline():
    torch.manual_seed(0)
    ola = OverlapAdd(64, 16)
    frames = torch.randn(2, 64, 25)
    ref = ola(frames)
    assert ref.shape == (2, 25 * 16)
    with streaming(ola):
        parts = [ola(c) for c in _chunks(frames, [1, 2, 5])]
        parts.append(ola.flush())
    torch.testing.assert_close(torch.cat(parts, dim=-1), ref, atol=1e-5, rtol=1e-5)


def test_overlap_add_reconstructs_constant():
    # Hann at hop n_fft/4 sums to a constant: a steady signal passes through with unit gain.
    ola = OverlapAdd(64, 16)
    frames = torch.zeros(1, 64, 20)
    frames[:, :, :] = 1.0
    y = ola(frames)
    torch.testing.assert_close(y[:, 64:-64], torch.ones_like(y[:, 64:-64]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("decoder", ["conv", "istft"])
def test_codec_streaming_equals_offline(decoder):
    torch.manual_seed(0)
    model = build_codec(CodecConfig(decoder=decoder, **TINY)).eval()
    remove_weight_norm(model)
    hop = model.hop
    wav = 0.3 * torch.randn(2, 1, hop * 23)
    codes, _ = model.encode(wav)
    # Chunks of whole frames of irregular sizes.
    stream_codes = torch.cat(list(model.encode_stream(_chunks(wav, [hop, 5 * hop, 2 * hop]))), dim=-1)
    assert torch.equal(stream_codes, codes)
    ref = model.decode(codes)
    out = torch.cat([w.reshape(2, 1, -1) for w in model.decode_stream(_chunks(codes, [1, 4, 2]))], dim=-1)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    assert ref.shape[-1] == wav.shape[-1]


def test_latency_stated():
    conv = build_codec(CodecConfig(decoder="conv", **TINY))
    istft = build_codec(CodecConfig(decoder="istft", **TINY))
    assert conv.latency_samples == conv.hop
    assert istft.latency_samples == istft.hop + istft.decoder.n_fft - istft.decoder.stft_hop
