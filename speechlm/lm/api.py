"""A loaded, inference-only codec LM: ``CodecLanguageModel.load(name_or_dir)``.

``None``/``"default"`` is the shipped ``speechlm/assets/lm_default``; ``NAME`` (or ``lm_NAME``) is
``speechlm/assets/lm_NAME``; anything else is a checkpoint folder or a training run (its newest checkpoint). The
model knows the codec tokenizer id it was trained on and :meth:`check_codec` refuses any other codec.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from speechlm.errors import CheckpointError
from speechlm.lm.model import LMConfig, build_lm

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def resolve_lm_dir(name_or_dir: str | os.PathLike | None) -> Path:
    from speechlm.utils.checkpoint import resolve_model_dir

    return resolve_model_dir(name_or_dir, "lm", "lm_default", "codec LM")


@dataclass
class CodecLanguageModel:
    """model (``CodecLM`` or ``VallE``, eval mode, float32), its config, and what it was trained on."""

    model: nn.Module
    config: LMConfig
    tokenizer: str  # codec tokenizer id, "name@hash"
    symbols: str  # phoneme table hash
    frames_per_phone: float
    path: Path
    meta: dict[str, Any]

    @classmethod
    def load(cls, name_or_dir: str | os.PathLike | None = None) -> CodecLanguageModel:
        from speechlm.utils.checkpoint import load_checkpoint
        from speechlm.utils.config import load_config

        path = resolve_lm_dir(name_or_dir)
        ckpt = load_checkpoint(path)
        info = {**(ckpt.meta.get("data_summary") or {}), **ckpt.meta.get("extra", {})}
        if "tokenizer" not in info or "model" not in ckpt.config:
            raise CheckpointError(f"{path}: not a codec LM checkpoint (no model config / tokenizer id)")
        try:
            cfg = load_config(ckpt.config["model"], LMConfig)
        except Exception as exc:  # noqa: BLE001 - any config problem means "not ours"
            raise CheckpointError(f"{path}: not a codec LM config ({exc})") from None
        model = build_lm(cfg)
        try:
            model.load_state_dict({k: v.float() if v.is_floating_point() else v
                                   for k, v in ckpt.state_dict.items()})
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not fit the LM config ({str(exc)[:200]})") from None
        model.eval()
        return cls(model, cfg, str(info["tokenizer"]), str(info.get("symbols", "")),
                   float(info.get("frames_per_phone", 5.0)), path, ckpt.meta)

    def check_codec(self, tokenizer_id: str) -> None:
        """Refuse a codec other than the one the LM was trained on."""
        if tokenizer_id != self.tokenizer:
            raise CheckpointError(
                f"the codec LM {self.path} was trained on codec tokens of {self.tokenizer}, but the codec "
                f"loaded is {tokenizer_id}; use that codec or retrain the LM on the new codec's tokens")

    def check_symbols(self) -> None:
        from speechlm.text.symbols import default_symbols

        if self.symbols and self.symbols != default_symbols().hash:
            raise CheckpointError(f"{self.path}: trained with another phoneme table ({self.symbols})")

    @property
    def model_id(self) -> str:
        """``NAME@HASH`` (the exported name and the weights hash), as ``speechlm models`` lists it."""
        from speechlm.utils.checkpoint import model_id

        return model_id(self.meta, self.path)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def to(self, device: str | torch.device) -> CodecLanguageModel:
        self.model.to(device)
        return self
