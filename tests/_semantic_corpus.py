"""A tiny espeak-ng corpus and tiny tokenizers shared by the semantic / tokens tests (no /work/data needed)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import soundfile as sf
import torch

TEXTS = ["hello world", "the cat sat on the mat", "good morning to you", "one two three four",
         "a small test of speech", "read the book again"]
VOICES = [("en-us", 25), ("en-us", 85)]  # two "speakers": one low, one high pitch
CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TINY_CODEC = dict(channels=8, max_channels=32, dim=16, n_q=4, codebook_size=64, istft_width=32, istft_blocks=1,
                  enc_blocks=1, dec_blocks=1)


def make_corpus(root: Path) -> Path:
    """12 utterances (2 voices x 6 texts): texts 0-3 train, 4 valid, 5 test. -> manifest path."""
    lines = []
    for v, (voice, pitch) in enumerate(VOICES):
        for i, text in enumerate(TEXTS):
            wav = root / f"v{v}_{i}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", "160", "-w", str(wav), text],
                           check=True)
            split = "train" if i < 4 else "valid" if i == 4 else "test"
            lines.append({"audio": wav.name, "text": text, "lang": "en", "speaker": f"spk{v}",
                          "duration": sf.info(str(wav)).duration, "split": split})
    (root / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root / "manifest.jsonl"


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
