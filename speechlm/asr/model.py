"""A small conformer CTC acoustic model with two output heads: IPA phonemes and characters.

Input: log-mel features ``[B, n_mels, F]`` at 100 frames/s (16 kHz, hop 160). A strided convolution front end
subsamples by ``subsample`` (2 -> 50 frames/s, 20 ms per output frame), then conformer blocks (macaron
feed-forward, self-attention with rotary positions, depthwise convolution). The phoneme head reads an
intermediate layer and the character head the top one: phonemes are the easier, language-universal target and
supervising them lower in the stack lets the upper layers spend their capacity on spelling (hierarchical
multitask CTC).

Padding never changes a valid frame's output: padded frames are zeroed before every convolution, attention
masks padded keys, and normalisation is per-frame (LayerNorm) or computed over valid frames only. A batch
therefore gives the same log-probabilities as running each utterance alone (tested).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class CTCModelConfig:
    """Architecture of :class:`ConformerCTC`. ``n_phones`` / ``n_chars`` include the blank (index 0)."""

    n_mels: int = 80
    d_model: int = 144
    n_layers: int = 6
    n_heads: int = 4
    ff_mult: int = 4
    conv_kernel: int = 15
    dropout: float = 0.1
    subsample: int = 2
    phone_layer: int = (
        4  # the phoneme head reads the output of this many blocks (1-based); n_layers for the top
    )
    n_phones: int = 2
    n_chars: int = 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CTCModelConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class CTCOutput:
    """Model outputs: ``*_logprobs`` ``[B, T', V]`` log-softmax; ``lengths`` ``[B]`` valid output frames."""

    phone_logprobs: Tensor
    char_logprobs: Tensor
    lengths: Tensor


def lengths_to_mask(lengths: Tensor, max_len: int) -> Tensor:
    """``[B]`` lengths -> ``[B, max_len]`` bool mask, True on valid frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def normalize_features(feats: Tensor, lengths: Tensor, eps: float = 1e-5) -> Tensor:
    """Per-utterance mean/variance normalisation of each mel bin over the valid frames; pads set to zero.

    Per-utterance statistics make the model indifferent to recording gain and a fixed channel colouring, which
    matters because it is trained on synthetic voices and used on real recordings.

    Args:
        feats: ``[B, n_mels, F]`` log-mel features.
        lengths: ``[B]`` valid frames.
    Returns:
        ``[B, n_mels, F]`` normalised features.
    """
    mask = lengths_to_mask(lengths, feats.shape[-1]).unsqueeze(1).to(feats.dtype)  # [B, 1, F]
    n = mask.sum(-1, keepdim=True).clamp_min(1.0)
    mean = (feats * mask).sum(-1, keepdim=True) / n
    var = (((feats - mean) * mask) ** 2).sum(-1, keepdim=True) / n
    return (feats - mean) / torch.sqrt(var + eps) * mask


class ConvSubsampler(nn.Module):
    """Two 1-D convolutions, the first strided: ``[B, n_mels, F] -> [B, T', d]``, T' = ceil(F / s)."""

    def __init__(self, n_mels: int, d_model: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv1d(n_mels, d_model, kernel_size=2 * stride + 1, stride=stride, padding=stride)
        self.conv2 = nn.Conv1d(d_model, d_model, kernel_size=3, padding=1)
        self.norm = nn.LayerNorm(d_model)

    def out_lengths(self, lengths: Tensor) -> Tensor:
        # floor((L + 2s - (2s+1)) / s) + 1 == ceil(L / s)
        return torch.div(lengths - 1, self.stride, rounding_mode="floor") + 1

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` ``[B, n_mels, F]`` (pads zero), ``lengths`` ``[B]`` -> (``[B, T', d]``, ``[B]``)."""
        out_len = self.out_lengths(lengths)
        h = F.gelu(self.conv1(x))
        mask = lengths_to_mask(out_len, h.shape[-1]).unsqueeze(1)
        h = h * mask  # zero pads so the next convolution sees what a lone utterance would
        h = F.gelu(self.conv2(h)) * mask
        return self.norm(h.transpose(1, 2)), out_len


def _rotary(x: Tensor) -> Tensor:
    """Apply rotary position embedding to ``[B, H, T, Dh]`` (Dh even)."""
    b, h, t, dh = x.shape
    half = dh // 2
    freqs = 1.0 / (10000 ** (torch.arange(half, device=x.device, dtype=torch.float32) / half))
    ang = torch.arange(t, device=x.device, dtype=torch.float32)[:, None] * freqs[None, :]  # [T, half]
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class SelfAttention(nn.Module):
    """Multi-head self-attention with rotary positions and a key padding mask."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        assert d_model % n_heads == 0 and (d_model // n_heads) % 2 == 0
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x`` ``[B, T, d]``, ``mask`` ``[B, T]`` (True = valid) -> ``[B, T, d]``."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        q, k = _rotary(q), _rotary(k)
        attn_mask = mask[:, None, None, :]  # [B, 1, 1, T]: pads are never attended to
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class ConvModule(nn.Module):
    """Conformer convolution module: pointwise-GLU, depthwise conv, LayerNorm, SiLU, pointwise."""

    def __init__(self, d_model: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.pw1 = nn.Conv1d(d_model, 2 * d_model, 1)
        self.dw = nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2, groups=d_model)
        self.norm = nn.LayerNorm(d_model)  # not BatchNorm: statistics across a batch would leak padding
        self.pw2 = nn.Conv1d(d_model, d_model, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x`` ``[B, T, d]``, ``mask`` ``[B, T]`` -> ``[B, T, d]``."""
        h = F.glu(self.pw1(x.transpose(1, 2)), dim=1)
        h = h * mask[:, None, :]
        h = self.dw(h)
        h = F.silu(self.norm(h.transpose(1, 2))).transpose(1, 2)
        return self.drop(self.pw2(h).transpose(1, 2))


class FeedForward(nn.Module):
    def __init__(self, d_model: int, mult: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d_model),
            nn.Linear(d_model, mult * d_model),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(mult * d_model, d_model),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``[B, T, d] -> [B, T, d]``."""
        return self.net(x)


class ConformerBlock(nn.Module):
    """Macaron conformer block: x + FF/2, + MHSA, + Conv, + FF/2, LayerNorm."""

    def __init__(self, d_model: int, n_heads: int, ff_mult: int, conv_kernel: int, dropout: float) -> None:
        super().__init__()
        self.ff1 = FeedForward(d_model, ff_mult, dropout)
        self.attn_norm = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, dropout)
        self.attn_drop = nn.Dropout(dropout)
        self.conv_norm = nn.LayerNorm(d_model)
        self.conv = ConvModule(d_model, conv_kernel, dropout)
        self.ff2 = FeedForward(d_model, ff_mult, dropout)
        self.out_norm = nn.LayerNorm(d_model)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x`` ``[B, T, d]``, ``mask`` ``[B, T]`` -> ``[B, T, d]``."""
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn_drop(self.attn(self.attn_norm(x), mask))
        x = x + self.conv(self.conv_norm(x), mask)
        x = x + 0.5 * self.ff2(x)
        return self.out_norm(x)


class ConformerCTC(nn.Module):
    """Conformer encoder with a phoneme CTC head (intermediate layer) and a character CTC head (top)."""

    def __init__(self, cfg: CTCModelConfig) -> None:
        super().__init__()
        if not 1 <= cfg.phone_layer <= cfg.n_layers:
            raise ValueError(f"phone_layer must be in 1..{cfg.n_layers}, got {cfg.phone_layer}")
        self.cfg = cfg
        self.frontend = ConvSubsampler(cfg.n_mels, cfg.d_model, cfg.subsample)
        self.in_drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            ConformerBlock(cfg.d_model, cfg.n_heads, cfg.ff_mult, cfg.conv_kernel, cfg.dropout)
            for _ in range(cfg.n_layers)
        )
        self.phone_head = nn.Linear(cfg.d_model, cfg.n_phones)
        self.char_head = nn.Linear(cfg.d_model, cfg.n_chars)

    @property
    def frames_per_second_in(self) -> float:
        return 100.0

    def out_lengths(self, lengths: Tensor) -> Tensor:
        """Input feature frames ``[B]`` -> output frames ``[B]``."""
        return self.frontend.out_lengths(lengths)

    def forward(self, feats: Tensor, lengths: Tensor) -> CTCOutput:
        """Run the model.

        Args:
            feats: ``[B, n_mels, F]`` raw log-mel features (normalised inside), any padding values.
            lengths: ``[B]`` valid feature frames.
        Returns:
            :class:`CTCOutput` with ``phone_logprobs`` ``[B, T', n_phones]``, ``char_logprobs`` ``[B, T',
            n_chars]`` and ``lengths`` ``[B]``, T' = ceil(F / subsample).
        """
        x = normalize_features(feats, lengths)
        h, out_len = self.frontend(x, lengths)
        mask = lengths_to_mask(out_len, h.shape[1])
        h = self.in_drop(h)
        phone_h = h
        for i, block in enumerate(self.blocks, 1):
            h = block(h, mask)
            if i == self.cfg.phone_layer:
                phone_h = h
        return CTCOutput(
            phone_logprobs=F.log_softmax(self.phone_head(phone_h).float(), dim=-1),
            char_logprobs=F.log_softmax(self.char_head(h).float(), dim=-1),
            lengths=out_len,
        )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def spec_augment(
    feats: Tensor,
    lengths: Tensor,
    generator: torch.Generator,
    n_freq_masks: int = 2,
    freq_width: int = 12,
    time_mask_frac: float = 0.05,
    max_time_width: int = 20,
) -> Tensor:
    """SpecAugment masking on *normalised-to-be* log-mels: masked regions get the utterance's mean value.

    Args:
        feats: ``[B, n_mels, F]`` log-mel features.
        lengths: ``[B]`` valid frames.
        generator: random source (seeded by the recipe).
    Returns:
        ``[B, n_mels, F]`` a masked copy.
    """
    out = feats.clone()
    b, m, _ = feats.shape
    for i in range(b):
        L = int(lengths[i])
        fill = feats[i, :, :L].mean()
        for _ in range(n_freq_masks):
            w = int(torch.randint(0, freq_width + 1, (1,), generator=generator))
            f0 = int(torch.randint(0, max(1, m - w), (1,), generator=generator))
            out[i, f0 : f0 + w, :L] = fill
        n_time = max(1, int(math.ceil(L * time_mask_frac / max(1, max_time_width / 2))))
        for _ in range(n_time):
            w = int(torch.randint(0, max_time_width + 1, (1,), generator=generator))
            w = min(w, max(0, L // 5))
            t0 = int(torch.randint(0, max(1, L - w), (1,), generator=generator))
            out[i, :, t0 : t0 + w] = fill
    return out
