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


@pytest.mark.parametrize("decoder,harmonics,pitch", [("conv", 0, False), ("istft", 0, False), ("istft", 8, True)])
def test_codec_streaming_equals_offline(decoder, harmonics, pitch):
    torch.manual_seed(0)
    model = build_codec(CodecConfig(decoder=decoder, harmonics=harmonics, pitch_input=pitch, **TINY)).eval()
    remove_weight_norm(model)
    with torch.no_grad():
        if harmonics:  # loud oscillators, so a phase carried wrongly from chunk to chunk would show
            model.decoder.controls.proj.bias[2] = 2.0
        if pitch:  # pitch features that matter to the codes
            model.encoder.pitch_proj.weight.normal_()
    hop = model.hop
    wav = 0.3 * torch.randn(2, 1, hop * 23)
    if pitch:  # voiced input with a gliding F0 in one item, noise in the other
        t = torch.arange(hop * 23) / 16000
        wav[0, 0] = 0.3 * torch.sin(2 * torch.pi * torch.cumsum(120 + 80 * t, 0) / 16000)
    codes, _ = model.encode(wav)
    # Chunks of whole frames of irregular sizes.
    stream_codes = torch.cat(list(model.encode_stream(_chunks(wav, [hop, 5 * hop, 2 * hop]))), dim=-1)
    assert torch.equal(stream_codes, codes)
    ref = model.decode(codes)
    out = torch.cat([w.reshape(2, 1, -1) for w in model.decode_stream(_chunks(codes, [1, 4, 2]))], dim=-1)
    # The oscillators' phase sums F0 over every frame so far: float32 rounding differences of chunked
    # convolutions (~1e-6 of F0) add up to ~1e-4 rad per partial; at unit amplitude that is the tolerance.
    tol = 2e-3 if harmonics else 1e-4
    torch.testing.assert_close(out, ref, atol=tol, rtol=tol)
    assert ref.shape[-1] == wav.shape[-1]


@pytest.mark.parametrize("decoder,harmonics", [("conv", 0), ("istft", 0), ("istft", 8)])
@pytest.mark.parametrize("n_ctx", [0, 2, 37])
def test_warm_state_continues_like_one_decode(decoder, harmonics, n_ctx):
    """A decoder state kept after a context (a TTS voice prompt) decodes what follows as one pass would."""
    import numpy as np

    from speechlm.tokenizers.codec.api import Codec
    from speechlm.tokenizers.tokens import Tokens

    torch.manual_seed(0)
    cfg = CodecConfig(decoder=decoder, harmonics=harmonics, **TINY)
    model = build_codec(cfg).eval()
    remove_weight_norm(model)
    if harmonics:
        with torch.no_grad():
            model.decoder.controls.proj.bias[2] = 2.0
    codec = Codec(model, cfg, "tiny", "0" * 16)
    rng = np.random.default_rng(n_ctx)
    ctx, a, b = (rng.integers(0, 64, (3, n)) for n in (n_ctx, 11, 5))
    state = codec.warm_state(ctx)
    for codes in (a, b, a):  # the state is reused, never consumed
        both = np.concatenate([ctx, codes], 1)
        tok = Tokens(codes=both.astype(np.int16), sample_rate=cfg.sample_rate, frame_rate=codec.frame_rate,
                     n_samples=both.shape[1] * model.hop, tokenizer=codec.tokenizer_id,
                     bitrate=round(3 * cfg.kbps_per_codebook, 4))
        ref = codec.decode(tok)[0][n_ctx * model.hop :]
        out = codec.decode_after(state, codes)
        assert out.shape == ref.shape == (codes.shape[1] * model.hop,)
        np.testing.assert_allclose(out, ref, atol=2e-3 if harmonics else 1e-4)
    with pytest.raises(Exception, match="like the warm context"):
        codec.decode_after(state, a[:2])


def test_latency_stated():
    conv = build_codec(CodecConfig(decoder="conv", **TINY))
    istft = build_codec(CodecConfig(decoder="istft", **TINY))
    assert conv.latency_samples == conv.hop
    assert istft.latency_samples == istft.hop + istft.decoder.n_fft - istft.decoder.stft_hop


def test_harmonic_frames_make_a_continuous_sinusoid():
    """A constant F0 with one partial, overlap-added, is a clean sinusoid at that F0 (phase continuous)."""
    from speechlm.tokenizers.codec.harmonic import HarmonicFrames
    from speechlm.tokenizers.codec.streaming import OverlapAdd

    sr, hop, n_fft, n = 16000, 160, 640, 60
    osc, ola = HarmonicFrames(n_fft, hop, sr), OverlapAdd(n_fft, hop)
    f0 = torch.full((1, n), 200.0)
    amps = torch.zeros(1, 3, n)
    amps[:, 0] = 0.5
    y = ola(osc(f0, amps))[0, 4 * hop : -4 * hop]
    spec = torch.fft.rfft(y * torch.hann_window(len(y)))
    peak_hz = float(spec.abs().argmax()) * sr / len(y)
    assert abs(peak_hz - 200.0) < sr / len(y)
    assert abs(float(y.abs().max()) - 0.5) < 0.02  # no beating or cancellation between frames


def test_harmonic_needs_istft():
    from speechlm.errors import SpeechLMError

    with pytest.raises(SpeechLMError, match="istft"):
        build_codec(CodecConfig(decoder="conv", harmonics=4, **TINY))


def test_pitch_features_track_a_glide_causally():
    """YIN per latent frame on the 2 hops ending at the frame's end: F0 of a 120->180 Hz glide within 2 %,
    silence unvoiced, and chunked (streamed) features equal the offline ones."""
    import math

    from speechlm.tokenizers.codec.pitch import LOG_F0_MEAN, LOG_F0_SCALE, PitchFeatures
    from speechlm.tokenizers.codec.streaming import streaming

    sr, hop = 16000, 320
    t = torch.arange(sr) / sr
    f = 120 + 60 * t
    x = torch.cat([torch.zeros(hop * 5), 0.3 * torch.sin(2 * math.pi * torch.cumsum(f, 0) / sr)])[None, None]
    p = PitchFeatures(hop, sr)
    feats = p(x)
    assert feats.shape == (1, 3, x.shape[-1] // hop)
    assert feats[0, 2, :5].sum() == 0  # silence: unvoiced
    f0 = torch.exp(feats[0, 0, 7:] * LOG_F0_SCALE + LOG_F0_MEAN)
    ends = 5 * hop + (torch.arange(7, feats.shape[-1]) - 5 + 1) * hop  # frame ends, in samples
    centre_hz = 120 + 60 * (ends - 5 * hop - hop) / sr  # the analysed 2 hops are centred a hop before the end
    assert torch.allclose(f0, centre_hz.float(), rtol=0.02)
    with streaming(p):
        parts = [p(x[..., a:b]) for a, b in [(0, hop), (hop, 7 * hop), (7 * hop, x.shape[-1])]]
    torch.testing.assert_close(torch.cat(parts, -1), feats)
