"""Codec model pieces: RVQ (k-means init, dead-code restart, dropout), bitrates, batched == one-by-one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechlm.errors import SpeechLMError
from speechlm.tokenizers.codec.api import Codec
from speechlm.tokenizers.codec.builder import CodecConfig, build_codec
from speechlm.tokenizers.codec.quantizer import ResidualVQ, VectorQuantizer
from speechlm.tokenizers.codec.streaming import remove_weight_norm

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


def tiny_codec(decoder: str = "istft", seed: int = 0) -> Codec:
    torch.manual_seed(seed)
    cfg = CodecConfig(decoder=decoder, **TINY)
    model = build_codec(cfg).eval()
    remove_weight_norm(model)
    return Codec(model, cfg, "tiny", "0" * 64)


def test_kmeans_init_and_dead_code_restart():
    torch.manual_seed(0)
    vq = VectorQuantizer(dim=6, codebook_size=32, codebook_dim=4, restart_after=3).train()
    z = torch.randn(4, 6, 50)
    vq(z)  # first batch: k-means initialisation
    assert bool(vq.initialized)
    # Force a collapse: every code but 0 far away from the data, so only code 0 is ever chosen.
    with torch.no_grad():
        vq.codebook.weight[1:] = -vq.in_proj(z).mean(dim=(0, 2)) * 100
        vq.codebook.weight[0] = vq.in_proj(z).mean(dim=(0, 2))
    before = vq.codebook.weight.detach().clone()
    for _ in range(3):
        vq(z)
    changed = (vq.codebook.weight.detach() != before).any(dim=1)
    assert changed.sum() >= 20, "dead codes were not restarted"
    _, codes, _, _ = vq(z)
    assert len(torch.unique(codes)) > 5, "restarted codes are not used"


def test_quantizer_dropout_uses_prefixes():
    torch.manual_seed(0)
    rvq = ResidualVQ(dim=8, n_q=4, codebook_size=16, dropout=1.0).train()
    out = rvq(torch.randn(64, 8, 10))
    assert set(out.n_q.tolist()) == {1, 2, 3, 4}
    full = rvq.eval()(torch.randn(3, 8, 10))
    assert full.n_q.tolist() == [4, 4, 4] and full.codes.shape == (3, 4, 10)


def test_forward_matches_encode_decode():
    """The training path (forward with n_q stages) and the inference path (encode, decode) agree."""
    torch.manual_seed(0)
    rvq = ResidualVQ(dim=8, n_q=4, codebook_size=64).train()
    z = torch.randn(8, 8, 40)
    rvq(z, n_q=4)  # k-means init of every stage
    rvq.eval()
    with torch.no_grad():
        for k in (1, 3):
            out = rvq(z, n_q=k)
            codes = rvq.encode(z, n_q=k)
            assert torch.equal(out.codes, codes)
            torch.testing.assert_close(out.z, rvq.decode(codes), atol=1e-5, rtol=1e-5)


def test_bitrate_selects_codebooks():
    codec = tiny_codec()
    per = codec.config.kbps_per_codebook  # log2(64) * 50 / 1000 = 0.3
    assert per == pytest.approx(0.3)
    wav = 0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    assert codec.encode(wav, 16000).codes.shape[0] == 4
    t = codec.encode(wav, 16000, bitrate=0.65)
    assert t.codes.shape == (2, 50) and t.bitrate == pytest.approx(0.6)
    with pytest.raises(SpeechLMError, match="outside"):
        codec.encode(wav, 16000, bitrate=0.1)


@pytest.mark.parametrize("decoder", ["conv", "istft"])
def test_batched_encode_equals_one_by_one(decoder):
    codec = tiny_codec(decoder)
    rng = np.random.default_rng(1)
    wavs = [0.3 * rng.standard_normal(n).astype(np.float32) for n in (16000, 5000, 11111)]
    batched = codec.encode_batch(wavs, 16000)
    for w, b in zip(wavs, batched):
        single = codec.encode(w, 16000)
        assert b.codes.shape == single.codes.shape
        np.testing.assert_array_equal(b.codes, single.codes)
        assert b.n_samples == single.n_samples


def test_long_input_in_blocks_equals_one_pass():
    codec = tiny_codec()
    hop = codec.model.hop
    wav = 0.2 * np.random.default_rng(2).standard_normal(hop * 1300 + 17).astype(np.float32)
    toks = codec.encode(wav, 16000)  # 1301 frames: three streamed blocks of <= 500
    with torch.no_grad():
        x = torch.from_numpy(np.pad(wav, (0, hop - 17)))[None, None]
        ref = codec.model.quantizer.encode(codec.model.encoder(x))[0].numpy()
    np.testing.assert_array_equal(toks.codes, ref)
    out, sr = codec.decode(toks)
    assert sr == 16000 and out.shape == wav.shape
    with torch.no_grad():
        full = codec.model.decode(torch.from_numpy(ref.astype(np.int64))[None])[0, 0, : len(wav)].numpy()
    np.testing.assert_allclose(out, full, atol=1e-4)


def test_resample_silence_and_clipping_survive():
    codec = tiny_codec()
    t8 = codec.encode(np.zeros(8000, np.float32), 8000)  # other rate: resampled to 16 kHz
    assert t8.n_samples == 16000 and t8.codes.shape[1] == 50
    wav, _ = codec.decode(t8)
    assert np.all(np.isfinite(wav))
    clipped = np.clip(3 * np.sin(np.linspace(0, 400, 16000)), -1, 1).astype(np.float32) * 1.5
    wav, _ = codec.decode(codec.encode(clipped, 16000))
    assert np.all(np.isfinite(wav)) and np.abs(wav).max() <= 1.0
    with pytest.raises(SpeechLMError):
        codec.encode(np.array([0.0, np.nan], np.float32), 16000)


def test_training_step_reduces_loss():
    """A few optimizer steps on one clip lower the reconstruction loss (the model can learn)."""
    from speechlm.tokenizers.codec.losses import multiscale_mel_loss

    torch.manual_seed(0)
    model = build_codec(CodecConfig(**TINY)).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    t = torch.linspace(0, 1, 3200)
    wav = (0.5 * torch.sin(2 * torch.pi * 220 * t) * torch.sin(2 * torch.pi * 3 * t))[None, None]
    losses = []
    for _ in range(8):
        out = model(wav, n_q=4)
        loss = (
            multiscale_mel_loss(out.wav, wav, 16000, (256, 512))
            + out.q.commit_loss * 0.25
            + out.q.codebook_loss
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] * 0.9, losses


def test_shipped_default_round_trip():
    from speechlm.tokenizers.codec.api import ASSETS

    if not (ASSETS / "codec_default" / "model.safetensors").exists():
        pytest.skip("no shipped codec_default asset in this checkout")
    codec = Codec.load("codec_default")
    t = np.arange(16000) / 16000
    wav = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    toks = codec.encode(wav, 16000, bitrate=1.5)
    assert toks.codes.shape == (3, 50) and toks.tokenizer == codec.tokenizer_id
    out, sr = codec.decode(toks)
    assert sr == 16000 and out.shape == wav.shape and np.all(np.isfinite(out))


def test_shipped_pitch_codec_keeps_voicing_and_pitch():
    """codec_pitch (harmonic decoder + pitch input) resynthesises a voiced 140 -> 220 Hz glide as voiced speech at
    the right pitch; the plain default whispers it (the failure codec_pitch was made to fix)."""
    from speechlm.audio.features import f0 as yin

    sr = 16000
    t = np.arange(2 * sr) / sr
    f = 140 + 40 * t
    phase = 2 * np.pi * np.cumsum(f) / sr
    wav = sum(0.3 / k * np.sin(k * phase) for k in range(1, 12)).astype(np.float32)  # a buzzy glottal-like source

    def voiced_and_cents(codec):
        out, _ = codec.decode(codec.encode(wav, sr))
        fi, vi = yin(wav, sr, 320)
        fo, vo = yin(out, sr, 320)
        n = min(len(fi), len(fo))
        both = vi[:n] & vo[:n] & (fi[:n] > 0) & (fo[:n] > 0)
        cents = np.median(np.abs(1200 * np.log2(fo[:n][both] / fi[:n][both]))) if both.any() else np.inf
        return (vi[:n] & vo[:n]).sum() / max(vi[:n].sum(), 1), cents

    kept, cents = voiced_and_cents(Codec.load("pitch"))
    assert kept > 0.5 and cents < 100, (kept, cents)
    kept_default, _ = voiced_and_cents(Codec.load("codec_default"))
    assert kept_default < kept
