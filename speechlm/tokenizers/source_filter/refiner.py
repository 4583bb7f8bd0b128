"""The envelope refiner: a small convolutional network from decoded token-rate parameters to 5-ms envelopes.

Quantised envelopes are averages of their clusters (flattened formants) and token frames are 20 ms; the refiner
sees each token with its neighbours (14 behind, 2 ahead: 40 ms of look-ahead) and predicts the ``hop_frames``
analysis-rate mel-cepstra of the frame as a correction of the decoded one held over the frame. One network serves
every bitrate: the number of envelope stages is an input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechlm.tokenizers.source_filter.world import MCEP_DIM, Frames, n_bands

LOG_F0_CENTRE = 5.0  # log Hz subtracted from voiced log-F0 (about 150 Hz)
AP_SCALE = 20.0  # dB per unit of the aperiodicity input


@dataclass(frozen=True)
class RefinerConfig:
    hidden: int = 256
    dilations: tuple[int, ...] = (1, 1, 2, 4)
    lookahead: tuple[int, ...] = (1, 1, 0, 0)  # frames each layer looks ahead (the rest of its kernel looks back)


class EnvelopeRefiner(nn.Module):
    """Token-rate parameters ``[B, C_in, T]`` + envelope stages used ``[B]`` -> mel-cepstra ``[B, T * hop, D]``."""

    def __init__(self, config: RefinerConfig, hop_frames: int, max_stages: int) -> None:
        super().__init__()
        self.config, self.hop_frames, self.max_stages = config, hop_frames, max_stages
        h = config.hidden
        self.inp = nn.Conv1d(self.in_channels, h, 1)
        self.convs = nn.ModuleList(nn.Conv1d(h, h, 3, dilation=d) for d in config.dilations)
        self.out = nn.Conv1d(h, hop_frames * MCEP_DIM, 1)

    @property
    def in_channels(self) -> int:
        return MCEP_DIM + 2 + n_bands() + self.max_stages

    @property
    def lookahead_frames(self) -> int:
        return sum(la * d for la, d in zip(self.config.lookahead, self.config.dilations))

    @property
    def lookback_frames(self) -> int:
        return sum((2 - la) * d for la, d in zip(self.config.lookahead, self.config.dilations))

    def forward(self, x: torch.Tensor, n_stages: torch.Tensor) -> torch.Tensor:
        b, _, t = x.shape
        onehot = F.one_hot(n_stages - 1, self.max_stages).to(x.dtype)[:, :, None].expand(-1, -1, t)
        h = self.inp(torch.cat([x, onehot], 1))
        for conv, la, d in zip(self.convs, self.config.lookahead, self.config.dilations):
            h = h + conv(F.pad(F.gelu(h), ((2 - la) * d, la * d)))
        delta = self.out(F.gelu(h)).transpose(1, 2).reshape(b, t * self.hop_frames, MCEP_DIM)
        held = x[:, :MCEP_DIM].transpose(1, 2).repeat_interleave(self.hop_frames, dim=1)
        return held + delta


def refiner_input(frames: Frames) -> np.ndarray:
    """Decoded token-rate :class:`Frames` -> the refiner's input ``[MCEP_DIM + 2 + n_bands, T]`` float32."""
    voiced = frames.f0 > 0
    log_f0 = np.where(voiced, np.log(np.maximum(frames.f0, 1.0)) - LOG_F0_CENTRE, 0.0)
    return np.concatenate(
        [frames.mcep.T, log_f0[None], voiced[None].astype(np.float32), frames.bap.T / AP_SCALE], axis=0
    ).astype(np.float32)
