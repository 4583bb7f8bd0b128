"""Shared by the codec-LM tests: a few espeak-ng utterances, their token shards, a tiny trained LM."""

from __future__ import annotations

from pathlib import Path

from _semantic_corpus import espeak_corpus

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "lm"


def make_corpus(root: Path) -> Path:
    """The six TEXTS in one espeak-ng voice: text 0 valid, the rest train."""
    return espeak_corpus(root)


def make_shards(root: Path) -> Path:
    from speechlm.lm.data import build_shards
    from speechlm.tokenizers.codec.api import Codec

    return build_shards([make_corpus(root)], root / "shards", Codec.load("codec_default"), n_q=2, show_progress=False)


def train_tiny(shards: Path, out: Path, steps: int = 8, extra: tuple[str, ...] = ()) -> dict:
    from speechlm.lm.train import train

    return train(CONFIGS / "tiny.yaml", shards, out, [f"train.max_steps={steps}", *extra], show_progress=False)
