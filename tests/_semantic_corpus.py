"""The tiny espeak-ng test corpus (semantic, tokens, codec-LM and ASR tests) and tiny tokenizers; no corpus on disk
needed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import soundfile as sf
import torch

TEXTS = ["hello world", "the cat sat on the mat", "good morning to you", "one two three four",
         "a small test of speech", "read the book again"]
VOICES = [("en-us", 25), ("en-us", 85)]  # two "speakers": one low, one high pitch
CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TINY_CODEC = dict(channels=8, max_channels=32, dim=16, n_q=4, codebook_size=64, istft_width=32, istft_blocks=1,
                  enc_blocks=1, dec_blocks=1)


def espeak_corpus(root: Path, voices: Sequence[tuple[str, int, int]] = (("en-us", 50, 170),),
                  split: Callable[[int], str] = lambda i: "valid" if i == 0 else "train",
                  fields: Callable[[str], dict] = lambda text: {}) -> Path:
    """The one test corpus: TEXTS spoken by each espeak-ng voice (name, pitch, words per minute), speaker
    ``spk<voice index>``; ``split(i)`` is text i's split, ``fields(text)`` adds manifest fields. -> manifest path."""
    lines = []
    for v, (voice, pitch, wpm) in enumerate(voices):
        for i, text in enumerate(TEXTS):
            wav = root / f"v{v}_{i}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(wpm), "-w", str(wav), text],
                           check=True)
            lines.append({"audio": wav.name, "text": text, "lang": "en", "speaker": f"spk{v}",
                          "duration": sf.info(str(wav)).duration, "split": split(i), **fields(text)})
    (root / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root / "manifest.jsonl"


def make_corpus(root: Path) -> Path:
    """12 utterances (2 voices x 6 texts): texts 0-3 train, 4 valid, 5 test. -> manifest path."""
    return espeak_corpus(root, [(voice, pitch, 160) for voice, pitch in VOICES],
                         split=lambda i: "train" if i < 4 else "valid" if i == 4 else "test")


def save_tiny_codec(path: Path, seed: int = 0, name: str = "tiny_codec") -> Path:
    from speechlm.tokenizers.codec.builder import CodecConfig, build_codec
    from speechlm.train.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    save_checkpoint(path, model=build_codec(CodecConfig(**TINY_CODEC)), config={"model": TINY_CODEC}, step=0,
                    extra={"name": name})
    return path


def train_tiny_semantic(manifest: Path, out: Path) -> Path:
    from speechlm.tokenizers.semantic.train import train

    train(CONFIGS / "semantic" / "tiny.yaml", [str(manifest)], out, show_progress=False)
    return out
