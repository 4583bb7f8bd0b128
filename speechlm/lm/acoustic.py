"""A duration-based, non-autoregressive acoustic model (FastSpeech 2 / FastPitch-style) over source-filter frames.

Text tokens (:mod:`speechlm.text.tts_input`) -> encoder -> per-token duration, pitch and energy (predicted;
teacher-forced in training) -> length regulator (each token's state repeated for its frames) -> decoder -> per
codec frame (50 Hz), or per 5-ms sub-frame with ``sub_frames = 4`` (four stacked in one output row): 40
mel-cepstra, log-F0, a voicing logit and band aperiodicity. Those are the parameters
the source-filter codec (:mod:`speechlm.tokenizers.source_filter`) quantises, so its quantiser turns the
output into codec tokens and its decoder into audio (:mod:`speechlm.lm.acoustic_api`).

With ``n_speakers`` > 0 the model speaks several voices: a learned vector per speaker is added to every token
state after the encoder, so durations, pitch, energy and frames all depend on it (FastSpeech 2's multi-speaker
variant); speaker ``None`` adds nothing (the voice of the model it was fine-tuned from, where the vectors start
at zero).

Shapes: ``B`` utterances, ``N`` tokens, ``T`` codec frames (``T * S`` output frames, ``S = sub_frames``);
``F = n_mcep + 2 + n_bap`` output features per frame,
ordered ``[mcep | lf0 | vuv | bap]``. Features are predicted normalised (``feat_mean``/``feat_std`` buffers,
set from the training data); ``vuv`` is a logit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class AcousticConfig:
    vocab: int
    d_model: int = 256
    n_heads: int = 2
    enc_layers: int = 4
    dec_layers: int = 4
    ff_dim: int = 1024
    ff_kernel: int = 9
    dropout: float = 0.1
    var_kernel: int = 3
    n_mcep: int = 40
    n_bap: int = 6
    max_frames_per_token: int = 75
    sub_frames: int = 1  # output frames per codec frame: 4 = the codec's 5-ms analysis rate
    n_speakers: int = 0  # > 0: a learned vector per training speaker, added to every token state

    @property
    def n_feat(self) -> int:
        return self.n_mcep + 2 + self.n_bap


def sinusoids(n: int, d: int, device: torch.device | None = None) -> torch.Tensor:
    """Sinusoidal positions ``[n, d]``."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


class FFTBlock(nn.Module):
    """Pre-norm self-attention + a convolutional feed-forward (FastSpeech's FFT block). x ``[B, L, D]``."""

    def __init__(self, d: int, heads: int, ff: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.conv1 = nn.Conv1d(d, ff, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv1d(ff, d, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """x ``[B, L, D]``, pad ``[B, L]`` (True = padding) -> ``[B, L, D]``."""
        keep = (~pad)[..., None].to(x.dtype)
        h = self.norm1(x)
        h, _ = self.attn(h, h, h, key_padding_mask=pad, need_weights=False)
        x = x + self.drop(h)
        h = self.norm2(x) * keep
        h = self.conv2(F.relu(self.conv1(h.transpose(1, 2)))).transpose(1, 2)
        return (x + self.drop(h)) * keep


class VariancePredictor(nn.Module):
    """Two convolutions + a projection: one value per position. x ``[B, L, D]`` -> ``[B, L]``."""

    def __init__(self, d: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv1d(d, d, kernel, padding=kernel // 2) for _ in range(2)])
        self.norms = nn.ModuleList([nn.LayerNorm(d) for _ in range(2)])
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(d, 1)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        keep = (~pad)[..., None].to(x.dtype)
        for conv, norm in zip(self.convs, self.norms):
            x = self.drop(norm(F.relu(conv((x * keep).transpose(1, 2)).transpose(1, 2))))
        return self.out(x).squeeze(-1) * keep.squeeze(-1)


def regulate(h: torch.Tensor, durations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Length regulator: h ``[B, N, D]``, durations ``[B, N]`` (frames, int) -> (``[B, T, D]``, pad ``[B, T]``;
    padding frames are zeros). One gather for the whole batch (no per-utterance loop)."""
    dur = durations.clamp(min=0)
    ends = dur.cumsum(1)  # [B, N] end frame of each token
    lens = ends[:, -1]
    t = int(lens.max().clamp(min=1))
    frames = torch.arange(t, device=h.device)[None].expand(h.shape[0], t).contiguous()
    owner = torch.searchsorted(ends, frames, right=True).clamp(max=h.shape[1] - 1)  # [B, T] token of each frame
    pad = frames >= lens[:, None]
    out = h.gather(1, owner[..., None].expand(-1, -1, h.shape[2])) * (~pad)[..., None].to(h.dtype)
    return out, pad


class AcousticModel(nn.Module):
    """The model (module docstring). Build from an :class:`AcousticConfig`."""

    def __init__(self, cfg: AcousticConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.embed = nn.Embedding(cfg.vocab, d, padding_idx=0)
        self.encoder = nn.ModuleList([FFTBlock(d, cfg.n_heads, cfg.ff_dim, cfg.ff_kernel, cfg.dropout)
                                      for _ in range(cfg.enc_layers)])
        self.enc_norm = nn.LayerNorm(d)
        self.duration = VariancePredictor(d, cfg.var_kernel, cfg.dropout)
        self.pitch = VariancePredictor(d, cfg.var_kernel, cfg.dropout)
        self.energy = VariancePredictor(d, cfg.var_kernel, cfg.dropout)
        self.pitch_embed = nn.Conv1d(1, d, 3, padding=1)
        self.energy_embed = nn.Conv1d(1, d, 3, padding=1)
        self.decoder = nn.ModuleList([FFTBlock(d, cfg.n_heads, cfg.ff_dim, cfg.ff_kernel, cfg.dropout)
                                      for _ in range(cfg.dec_layers)])
        self.dec_norm = nn.LayerNorm(d)
        self.proj = nn.Linear(d, cfg.n_feat * cfg.sub_frames)
        if cfg.n_speakers > 0:
            self.speaker = nn.Embedding(cfg.n_speakers, d)
            nn.init.zeros_(self.speaker.weight)
        self.register_buffer("feat_mean", torch.zeros(cfg.n_feat))
        self.register_buffer("feat_std", torch.ones(cfg.n_feat))

    def encode(self, ids: torch.Tensor, speaker: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """ids ``[B, N]`` (0 = padding), speaker ``[B]`` or None -> (token states ``[B, N, D]``, pad ``[B, N]``)."""
        pad = ids == 0
        x = self.embed(ids) * math.sqrt(self.cfg.d_model) + sinusoids(ids.shape[1], self.cfg.d_model, ids.device)
        for blk in self.encoder:
            x = blk(x, pad)
        h = self.enc_norm(x)
        if speaker is not None and self.cfg.n_speakers > 0:
            h = h + self.speaker(speaker)[:, None] * (~pad)[..., None].to(h.dtype)
        return h, pad

    def variances(self, h: torch.Tensor, pad: torch.Tensor) -> dict[str, torch.Tensor]:
        """Predicted log(1 + frames), token pitch and token energy (normalised), each ``[B, N]``."""
        return {"log_dur": self.duration(h, pad), "pitch": self.pitch(h, pad), "energy": self.energy(h, pad)}

    def decode(self, h: torch.Tensor, pad: torch.Tensor, durations: torch.Tensor, pitch: torch.Tensor,
               energy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token states + per-token frames/pitch/energy ``[B, N]`` -> (features ``[B, T * S, F]``, frame pad
        ``[B, T * S]``; ``S`` = ``sub_frames`` output frames per codec frame)."""
        keep = (~pad)[..., None].to(h.dtype)
        h = h + (self.pitch_embed(pitch[:, None]).transpose(1, 2)
                 + self.energy_embed(energy[:, None]).transpose(1, 2)) * keep
        x, fpad = regulate(h, durations)
        x = x + sinusoids(x.shape[1], self.cfg.d_model, x.device)
        for blk in self.decoder:
            x = blk(x, fpad)
        y = self.proj(self.dec_norm(x))
        r = self.cfg.sub_frames
        if r > 1:
            y = y.reshape(y.shape[0], y.shape[1] * r, self.cfg.n_feat)
            fpad = fpad.repeat_interleave(r, dim=1)
        return y, fpad

    def forward(self, ids: torch.Tensor, durations: torch.Tensor, pitch: torch.Tensor, energy: torch.Tensor,
                speaker: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Teacher-forced pass (training): ids/durations/pitch/energy ``[B, N]``, speaker ``[B]`` or None ->
        predictions (``feat`` ``[B, T * S, F]``, ``frame_pad`` ``[B, T * S]``, and :meth:`variances`)."""
        h, pad = self.encode(ids, speaker)
        out = self.variances(h, pad)
        feat, fpad = self.decode(h, pad, durations, pitch, energy)
        return {**out, "feat": feat, "frame_pad": fpad, "pad": pad}

    @torch.inference_mode()
    def infer(self, ids: torch.Tensor, pace: float = 1.0, pitch_shift: float = 0.0, pitch_scale: float = 1.0,
              speaker: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """ids ``[1, N]`` -> (denormalised features ``[T * S, F]`` with vuv a probability, codec frames per token
        ``[N]``); ``speaker``: an index below ``n_speakers`` (None: no speaker vector).

        ``pace`` > 1 speaks slower; ``pitch_shift``/``pitch_scale`` move the predicted token pitch (normalised
        units) before decoding, so the contour follows."""
        spk = None if speaker is None else torch.tensor([speaker], device=ids.device)
        h, pad = self.encode(ids, spk)
        v = self.variances(h, pad)
        dur = torch.round((torch.exp(v["log_dur"]) - 1.0) * pace).clamp(0, self.cfg.max_frames_per_token).long()
        dur = dur.masked_fill(pad, 0)
        if int(dur.sum()) == 0:
            dur[0, 0] = 1
        pitch = v["pitch"] * pitch_scale + pitch_shift
        feat, _ = self.decode(h, pad, dur, pitch, v["energy"])
        feat = feat[0] * self.feat_std + self.feat_mean
        m = self.cfg.n_mcep
        feat[:, m + 1] = torch.sigmoid(feat[:, m + 1])
        return feat, dur[0]


def widen_sub_frames(state_dict: dict[str, torch.Tensor], sub_frames: int) -> dict[str, torch.Tensor]:
    """Weights of a ``sub_frames = 1`` model -> those of a ``sub_frames`` one that predicts each codec frame's
    features for every sub-frame (the output projection repeated): the starting point for fine-tuning a
    50-Hz model to the 5-ms rate."""
    out = dict(state_dict)
    out["proj.weight"] = state_dict["proj.weight"].repeat(sub_frames, 1)
    out["proj.bias"] = state_dict["proj.bias"].repeat(sub_frames)
    return out
