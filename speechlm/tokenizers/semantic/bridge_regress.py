"""The regression bridge: semantic units + a voice -> source-filter parameters per frame -> `codec_sf` tokens.

The classifying bridge (:class:`~speechlm.tokenizers.semantic.bridge.BridgeModel`) picks every codebook entry of
every frame, a 1024-way choice per envelope stage that also encodes the speaker's timbre; for voices it never saw
it picks the right envelope entry in a few percent of frames and the words are lost. This one regresses the
parameters themselves (``[mcep | lf0 | vuv | bap]``, :mod:`speechlm.tokenizers.source_filter.features`), as the
duration TTS does from phones, conditioned on the prompt's voice statistics (log-F0 mean and spread, mean
mel-cepstrum: :func:`voice_vector`); the codec's own quantiser then turns them into tokens. A bidirectional
transformer over the 50 Hz units; units and codec frames share the grid, so there is no length model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechlm.tokenizers.source_filter.features import features_from_frames, voice_stats


@dataclass(frozen=True)
class RegressConfig:
    """Sizes of the regression bridge (``model:`` with ``bridge.kind: regress``)."""

    n_units: int = 1024
    n_mcep: int = 40
    n_bap: int = 6
    dim: int = 192
    layers: int = 4
    heads: int = 4
    ff_mult: int = 4
    dropout: float = 0.1
    pos_kernel: int = 15

    @property
    def n_feat(self) -> int:
        return self.n_mcep + 2 + self.n_bap

    @property
    def n_voice(self) -> int:
        return self.n_mcep + 2


def features_of_codes(codec, codes: np.ndarray) -> np.ndarray:
    """A source-filter codec's codes ``[K, T]`` -> the parameters it decodes them to, as features ``[T, F]`` (the
    bridge's targets in training, and what a prompt's voice is measured on)."""
    fr = codec.quantizer.decode(np.asarray(codes, np.int64))
    return features_from_frames(fr.f0, fr.mcep, fr.bap)


def voice_vector(feat: np.ndarray, n_mcep: int) -> np.ndarray:
    """A voice in ``n_mcep + 2`` numbers: log-F0 mean and spread, mean mel-cepstrum (voiced frames of ``feat``)."""
    lf0_mean, lf0_std, mcep = voice_stats(feat, n_mcep)
    return np.concatenate([[lf0_mean, lf0_std], mcep]).astype(np.float32)


class UnitRegressor(nn.Module):
    """(units ``[B, T]``, voice ``[B, n_voice]``, pad ``[B, T]`` bool) -> features ``[B, T, n_feat]``, normalised
    (:meth:`features` gives them in their units, the voicing as a probability).

    ``feat_mean``/``feat_std`` and ``voice_mean``/``voice_std`` are buffers set from the training data (the
    voicing dimension is left unnormalised: it is a logit)."""

    def __init__(self, cfg: RegressConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.cfg = cfg
        self.unit_emb = nn.Embedding(cfg.n_units, d)
        self.voice_proj = nn.Linear(cfg.n_voice, d)
        self.pos_conv = nn.Conv1d(d, d, cfg.pos_kernel, padding=cfg.pos_kernel // 2, groups=16)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d, cfg.heads, cfg.ff_mult * d, cfg.dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(cfg.layers)
        )
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cfg.n_feat)
        self.register_buffer("feat_mean", torch.zeros(cfg.n_feat))
        self.register_buffer("feat_std", torch.ones(cfg.n_feat))
        self.register_buffer("voice_mean", torch.zeros(cfg.n_voice))
        self.register_buffer("voice_std", torch.ones(cfg.n_voice))

    def set_stats(self, feat: np.ndarray, voices: np.ndarray) -> None:
        """Normalisation from training features ``[N, n_feat]`` and voices ``[M, n_voice]``."""
        mean, std = feat.mean(0), feat.std(0) + 1e-3
        vuv = self.cfg.n_mcep + 1
        mean[vuv], std[vuv] = 0.0, 1.0
        self.feat_mean.copy_(torch.from_numpy(mean.astype(np.float32)))
        self.feat_std.copy_(torch.from_numpy(std.astype(np.float32)))
        self.voice_mean.copy_(torch.from_numpy(voices.mean(0).astype(np.float32)))
        self.voice_std.copy_(torch.from_numpy((voices.std(0) + 1e-3).astype(np.float32)))

    def forward(self, units: torch.Tensor, voice: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        v = (voice - self.voice_mean) / self.voice_std
        x = self.unit_emb(units) + self.voice_proj(v)[:, None]
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=pad)
        return self.out(self.norm(x))

    @torch.no_grad()
    def features(self, units: torch.Tensor, voice: torch.Tensor) -> torch.Tensor:
        """units ``[B, T]``, voice ``[B, n_voice]`` -> features ``[B, T, n_feat]`` (voicing a probability)."""
        y = self(units, voice) * self.feat_std + self.feat_mean
        vuv = self.cfg.n_mcep + 1
        y[..., vuv] = torch.sigmoid(y[..., vuv])
        return y


def regress_loss(model: UnitRegressor, batch) -> dict[str, torch.Tensor]:
    """L1 on the normalised continuous parameters, BCE on the voicing, over valid frames.

    batch: units ``[B, T]``, voice ``[B, n_voice]``, feat ``[B, T, n_feat]``, valid ``[B, T]`` bool."""
    units, voice, feat, valid = batch
    pred = model(units, voice, ~valid)
    tgt = (feat - model.feat_mean) / model.feat_std
    vuv = model.cfg.n_mcep + 1
    keep = valid.float()[..., None]
    n = keep.sum().clamp(min=1)
    l1 = ((pred - tgt).abs() * keep)
    cont = (l1.sum() - l1[..., vuv].sum()) / (n * (pred.shape[-1] - 1))
    bce = F.binary_cross_entropy_with_logits(pred[..., vuv], feat[..., vuv], reduction="none") * keep[..., 0]
    return {"regress/feat": cont, "regress/vuv": 0.1 * bce.sum() / n}
