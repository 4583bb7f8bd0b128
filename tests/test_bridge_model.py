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
    tokenizer_id, frame_rate = "units@0", 50.0


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
