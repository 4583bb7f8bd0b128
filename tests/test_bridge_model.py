"""The bridge's model and its frame bookkeeping (tiny random models; no shipped asset needed)."""

from __future__ import annotations

import numpy as np
import torch

from speechlm.tokenizers.semantic.bridge import Bridge, BridgeConfig, BridgeModel
from speechlm.tokenizers.tokens import Tokens


def _model(cards: tuple[int, ...] = ()) -> BridgeModel:
    torch.manual_seed(0)
    return BridgeModel(BridgeConfig(n_units=20, n_q=3, codebook_size=16, dim=32, layers=1, heads=2,
                                    pos_kernel=3, cards=cards)).eval()


def test_each_level_keeps_to_its_own_codes() -> None:
    """Levels of different sizes (a source-filter codec's f0 128, gain 32, ...): greedy and sampled codes stay
    below each level's size; without sizes the same untrained model uses the whole range."""
    units, pu, pc = torch.randint(0, 20, (2, 40)), torch.randint(0, 20, (2, 10)), torch.randint(0, 3, (2, 3, 10))
    for temperature in (0.0, 2.0):
        codes = _model((3, 5, 16)).generate(units, pu, pc, temperature, torch.Generator().manual_seed(0))
        assert codes.shape == (2, 3, 40)
        for k, c in enumerate((3, 5, 16)):
            assert int(codes[:, k].max()) < c
    free = _model().generate(units, pu, pc, 2.0, torch.Generator().manual_seed(0))
    assert int(free[:, :2].max()) >= 5


class _Units:
    name, tokenizer_id, frame_rate = "units", "units@0", 50.0


class _Codec:
    """Counts frames from samples like codec_sf: one more than the units at a multiple of the hop."""

    tokenizer_id, sample_rate, frame_rate, hop, bitrates, num_codebooks = "sf@0", 16000, 50.0, 320, [1.0], 3

    def n_frames(self, n_samples: int) -> int:
        return n_samples // self.hop + 1

    def encode(self, wav, sr):
        n = self.n_frames(len(wav))
        return Tokens(np.zeros((3, n), np.int16), sr, 50.0, len(wav), self.tokenizer_id, 1.0)


def test_codec_tokens_have_the_codecs_frame_count(monkeypatch) -> None:
    bridge = Bridge(_model((3, 5, 16)), _Units(), _Codec())
    monkeypatch.setattr(bridge, "prompt_tokens", lambda wav, sr: (np.zeros(10, np.int64), np.zeros((3, 10), np.int64)))
    for n_samples, n_units in ((32000, 100), (31999, 100), (16160, 51)):
        units = Tokens(np.random.default_rng(0).integers(0, 20, (1, n_units)).astype(np.int16), 16000, 50.0,
                       n_samples, "units@0", 0.5)
        out = bridge.to_codec_tokens(units, np.zeros(16000, np.float32), 16000)
        assert out.num_frames == _Codec().n_frames(n_samples) and out.n_samples == n_samples
        assert np.array_equal(out.codes[:, n_units - 1], out.codes[:, -1])  # padded with the last frame


def test_f0_level_decides_voicing_before_pitch(monkeypatch) -> None:
    """An F0 level (code 0 = unvoiced) whose voiced mass (0.7) is spread over many bins: plain argmax picks
    "unvoiced" every frame (the shipped bridge spoke whispers); the voicing level picks the likeliest bin."""
    model = _model((16, 5, 16))
    logits = torch.full((1, 40, 16), float(np.log(0.7 / 14)))
    logits[..., 0] = float(np.log(0.3))
    logits[..., 7] = float(np.log(0.7 / 14 * 1.5))  # the likeliest voiced bin, still far below "unvoiced"
    monkeypatch.setattr(model, "forward", lambda *a: logits.clone())
    args = (torch.zeros(1, 40, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long),
            torch.zeros(1, 3, 4, dtype=torch.long))
    assert (model.generate(*args)[0, 0] == 0).all()
    assert (model.generate(*args, voicing_level=0)[0, 0] == 7).all()


def test_regression_bridge_learns_and_speaks_through_the_codec() -> None:
    """The regression bridge: its loss falls on one batch, and units + a prompt become codec_sf tokens of the
    codec's own frame count that decode to audio."""
    from speechlm.tokenizers.codec.api import Codec
    from speechlm.tokenizers.semantic.bridge_regress import RegressConfig, UnitRegressor, regress_loss

    torch.manual_seed(0)
    model = UnitRegressor(RegressConfig(n_units=20, dim=32, layers=1, heads=2, pos_kernel=3))
    rng = np.random.default_rng(0)
    feat = rng.normal(size=(4, 30, 48)).astype(np.float32)
    feat[..., 41] = (rng.random((4, 30)) > 0.5)
    model.set_stats(feat.reshape(-1, 48), rng.normal(size=(8, 42)).astype(np.float32))
    batch = (torch.from_numpy(rng.integers(0, 20, (4, 30))), torch.from_numpy(rng.normal(size=(4, 42)).astype(
        np.float32)), torch.from_numpy(feat), torch.ones(4, 30, dtype=torch.bool))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(5):
        loss = sum(regress_loss(model, batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]

    codec = Codec.load("codec_sf")
    bridge = Bridge(model.eval(), _Units(), codec)
    t = np.arange(24000) / 16000
    prompt = (0.3 * np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2).astype(np.float32)
    units = Tokens(rng.integers(0, 20, (1, 100)).astype(np.int16), 16000, 50.0, 32000, "units@0", 0.5)
    out = bridge.to_codec_tokens(units, prompt, 16000)
    assert out.num_frames == codec.n_frames(32000) and out.num_codebooks == codec.envelope_streams
    assert out.bitrate == codec.bitrates[codec.envelope_streams - 4]
    wav, sr = codec.decode(out)
    assert sr == 16000 and abs(len(wav) - 32000) < 400 and np.isfinite(wav).all()


def test_units_of_another_tokenizer_are_refused_with_the_encoder_to_use() -> None:
    import pytest

    from speechlm.tokenizers.tokens import TokensFileError

    bridge = Bridge(_model((3, 5, 16)), _Units(), _Codec())
    other = Tokens(np.zeros((1, 20), np.int16), 16000, 50.0, 6400, "semantic_default@0", 0.5)
    with pytest.raises(TokensFileError, match="semantic encode --model units"):
        bridge.to_codec_tokens(other, np.zeros(16000, np.float32), 16000)
