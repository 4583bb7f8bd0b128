"""Configs (frozen dataclasses) and the one place they become modules; YAML presets live in configs/codec/."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from speechlm.errors import SpeechLMError


@dataclass(frozen=True)
class CodecConfig:
    """Architecture of a codec (saved as JSON next to every checkpoint)."""

    sample_rate: int = 16000
    channels: int = 16
    max_channels: int = 256
    dim: int = 128
    strides: tuple[int, ...] = (4, 4, 4, 5)
    n_residual: int = 1
    full_rate_residual: bool = False  # residual units at the full sample rate (slow on CPU)
    enc_blocks: int = 2
    decoder: str = "istft"  # "istft" (Vocos-style head) or "conv" (transposed convolutions)
    dec_blocks: int = 2  # ConvNeXt blocks at the frame rate of the conv decoder
    istft_width: int = 256
    istft_blocks: int = 4
    istft_upsample: int = 2
    harmonics: int = 0  # iSTFT decoder: partials of the harmonic oscillator bank (0: none)
    pitch_input: bool = False  # encoder: add causal YIN features to the latent (codes carry F0)
    n_q: int = 8
    codebook_size: int = 1024
    codebook_dim: int = 8
    q_dropout: float = 0.5
    restart_after: int = 100
    # RVQ level 1 given by supervised semantic units (speechlm.tokenizers.hybrid.units); n_q counts it
    unit_level: dict | None = None

    @property
    def hop(self) -> int:
        return math.prod(self.strides)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    @property
    def kbps_per_codebook(self) -> float:
        return math.log2(self.codebook_size) * self.frame_rate / 1000


def _from_dict(cls, d: dict[str, Any], where: str):
    known = {f.name: f for f in fields(cls)}
    unknown = set(d) - set(known)
    if unknown:
        raise SpeechLMError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    kw = {}
    for k, v in d.items():
        kw[k] = tuple(v) if isinstance(v, list) else v
    return cls(**kw)


def codec_config_from_dict(d: dict[str, Any]) -> CodecConfig:
    return _from_dict(CodecConfig, d, "codec model config")


def build_codec(cfg: CodecConfig):
    """CodecConfig -> :class:`~speechlm.tokenizers.codec.model.CodecModel`."""
    from speechlm.tokenizers.codec.decoder import ConvDecoder, ISTFTDecoder
    from speechlm.tokenizers.codec.encoder import Encoder
    from speechlm.tokenizers.codec.model import CodecModel
    from speechlm.tokenizers.codec.quantizer import ResidualVQ

    enc = Encoder(
        cfg.channels,
        cfg.dim,
        cfg.strides,
        cfg.n_residual,
        cfg.enc_blocks,
        cfg.max_channels,
        first_residual=cfg.full_rate_residual,
        pitch=cfg.pitch_input,
        sample_rate=cfg.sample_rate,
    )
    if cfg.decoder == "conv":
        dec = ConvDecoder(
            cfg.channels,
            cfg.dim,
            cfg.strides,
            cfg.n_residual,
            cfg.dec_blocks,
            cfg.max_channels,
            last_residual=cfg.full_rate_residual,
        )
    elif cfg.decoder == "istft":
        dec = ISTFTDecoder(cfg.dim, cfg.istft_width, cfg.istft_blocks, cfg.hop, cfg.istft_upsample,
                           cfg.harmonics, cfg.sample_rate)
    else:
        raise SpeechLMError(f"unknown decoder {cfg.decoder!r} (conv or istft)")
    if cfg.harmonics and cfg.decoder != "istft":
        raise SpeechLMError("harmonics needs the istft decoder")
    unit_level = None
    if cfg.unit_level is not None:
        from speechlm.tokenizers.codec.unit_level import UnitLevel

        unit_level = UnitLevel(cfg.unit_level, cfg.dim)
        if unit_level.clusters != cfg.codebook_size or cfg.n_q < 2:
            raise SpeechLMError("unit_level needs as many units as codes per codebook, and n_q >= 2")
    q = ResidualVQ(cfg.dim, cfg.n_q - (unit_level is not None), cfg.codebook_size, cfg.codebook_dim,
                   cfg.q_dropout, cfg.restart_after)
    return CodecModel(enc, q, dec, cfg.sample_rate, unit_level)
