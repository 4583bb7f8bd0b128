"""Shared by the codec-LM tests: a few espeak-ng utterances, their token shards, a tiny trained LM."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path

import soundfile as sf
import torch

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "lm"
TEXTS = [
    "hello world",
    "the cat sat on the mat",
    "good morning to you",
    "one two three four",
    "a small test of speech",
    "read the book again",
]


@contextlib.contextmanager
def one_thread():
    """Small models on a shared machine: one torch thread is faster and steadier (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def make_corpus(root: Path) -> Path:
    lines = []
    for i, text in enumerate(TEXTS):
        wav = root / f"u{i}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "170", "-w", str(wav), text], check=True)
        lines.append({"audio": wav.name, "text": text, "lang": "en", "speaker": "espeak",
                      "duration": sf.info(str(wav)).duration, "split": "valid" if i == 0 else "train"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root / "manifest.jsonl"


def make_shards(root: Path) -> Path:
    from speechlm.lm.data import build_shards
    from speechlm.tokenizers.codec.api import Codec

    return build_shards([make_corpus(root)], root / "shards", Codec.load("codec_default"), n_q=2, show_progress=False)


def train_tiny(shards: Path, out: Path, steps: int = 8, extra: tuple[str, ...] = ()) -> dict:
    from speechlm.lm.train import train

    return train(CONFIGS / "tiny.yaml", shards, out, [f"train.max_steps={steps}", *extra], show_progress=False)
