"""A small speech enhancer trained here (``denoise_default``): a time-frequency mask from a bidirectional GRU.

The pipeline's other denoiser, DeepFilterNet3 (:mod:`speechlm.pipeline.denoise`), runs at 48 kHz one 10-ms frame
at a time and caps the pipeline's speed; this one works on the pipeline's own 16 kHz audio, offline (it sees the
whole window, both directions), in one batched pass.

Model (:class:`Enhancer`): STFT (32-ms Hann window, 10-ms hop, 257 bins) -> log magnitude, less its mean over the
input (gain invariance) -> a 3-frame convolution to ``conv`` channels -> ``layers`` bidirectional GRU layers
(``hidden`` units each way) -> a sigmoid gain per bin -> the gains multiply the noisy STFT, whose phase is kept ->
inverse STFT. 0.86 M parameters with the defaults.

Trained by :mod:`speechlm.pipeline.enhancer_train` on mixtures made on the fly from speech we may train on and
music, effects and noise from Debian packages the constructed test set does not use. Weights: safetensors + JSON
in ``speechlm/assets/denoise_default`` (:mod:`speechlm.train.checkpoint`).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

SR = 16000


@dataclass(frozen=True)
class EnhancerConfig:
    """Shapes of :class:`Enhancer` (saved as the checkpoint's config)."""

    n_fft: int = 512
    hop: int = 160
    conv: int = 256
    hidden: int = 128
    layers: int = 2


class Enhancer(nn.Module):
    """Mask-based enhancer: ``forward(wav [B, T]) -> [B, T]`` at 16 kHz."""

    def __init__(self, cfg: EnhancerConfig = EnhancerConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        bins = cfg.n_fft // 2 + 1
        self.inp = nn.Conv1d(bins, cfg.conv, kernel_size=3, padding=1)
        self.gru = nn.GRU(cfg.conv, cfg.hidden, num_layers=cfg.layers, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * cfg.hidden, bins)
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
        self.model_id = "untrained"  # NAME@HASH once loaded from a checkpoint

    def stft(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` -> complex ``[B, F, N]``."""
        return torch.stft(wav, self.cfg.n_fft, self.cfg.hop, window=self.window, center=True, return_complex=True)

    def istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """complex ``[B, F, N]`` -> ``[B, length]``."""
        return torch.istft(spec, self.cfg.n_fft, self.cfg.hop, window=self.window, center=True, length=length)

    def mask(self, spec: torch.Tensor) -> torch.Tensor:
        """complex ``[B, F, N]`` -> gains in (0, 1) ``[B, F, N]``."""
        logmag = torch.log(spec.abs() + 1e-5)
        logmag = logmag - logmag.mean(dim=(1, 2), keepdim=True)
        h = torch.nn.functional.gelu(self.inp(logmag)).transpose(1, 2)  # [B, N, C]
        h, _ = self.gru(h)
        return torch.sigmoid(self.out(h)).transpose(1, 2)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        spec = self.stft(wav)
        return self.istft(spec * self.mask(spec), wav.shape[-1])


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def resolve_model_dir(name_or_dir: str | os.PathLike | None = None) -> Path:
    """``None``/``"default"``/``"denoise_default"`` or a folder -> the enhancer's checkpoint folder."""
    from speechlm.utils.checkpoint import resolve_model_dir as resolve

    return resolve(name_or_dir, "denoise", "denoise_default", "speech enhancer")


@functools.cache
def load_enhancer(path: str | None = None) -> Enhancer:
    """The shipped enhancer (or the checkpoint folder ``path``), in eval mode; cached per path."""
    from speechlm.utils.checkpoint import load_checkpoint

    ck = load_checkpoint(resolve_model_dir(path))
    cfg = EnhancerConfig(**{k: int(v) for k, v in ck.config.items()})
    model = Enhancer(cfg)
    model.load_state_dict(ck.state_dict)
    model.model_id = ck.model_id
    return model.eval()


def enhance(audio: np.ndarray, sr: int = SR, model: str | None = None, chunk_s: float = 120.0,
            overlap_s: float = 2.0) -> np.ndarray:
    """Enhance mono ``audio [T]`` at 16 kHz -> float32 ``[T]`` (same length).

    Long inputs are processed in ``chunk_s`` pieces overlapping by ``overlap_s`` (linear crossfade), so memory does
    not grow with the input.
    """
    if sr != SR:
        raise ValueError(f"the enhancer takes {SR} Hz audio, not {sr} Hz")
    x = np.asarray(audio, np.float32).reshape(-1)
    if x.size == 0:
        return x.copy()
    net = load_enhancer(model)
    chunk, ov = int(chunk_s * SR), int(overlap_s * SR)
    out = np.zeros_like(x)
    with torch.inference_mode():
        start = 0
        while True:
            end = min(x.size, start + chunk)
            y = net(torch.from_numpy(x[start:end])[None])[0].numpy()
            if start == 0:
                out[start:end] = y
            else:
                n = min(ov, end - start)
                ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
                out[start:start + n] = out[start:start + n] * (1 - ramp) + y[:n] * ramp
                out[start + n:end] = y[n:]
            if end >= x.size:
                break
            start = end - ov
    return out
