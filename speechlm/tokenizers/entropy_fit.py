"""Fit a token entropy model for a codec: encode training speech, count its tokens, pick each stream's context.

    speechlm codec fit-entropy --data a.jsonl --data b.jsonl -o speechlm/assets/codec_sf/entropy.safetensors

Every ``split=train`` utterance of the manifests (up to ``max_hours``, in a seeded random order) is encoded with
the codec, the i-th at its i-th bitrate in turn (a lower bitrate's beam search picks other first-stage codes, so
every depth is counted). Every fifth file is held back as a development set: a stream's probabilities depend on its
previous frame's value where that codes the development files in fewer bits than counting it alone, and the final
model is counted on all files.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from speechlm.errors import SpeechLMError
from speechlm.tokenizers.entropy import CONTEXTS, StreamSpec, TokenEntropyModel

DEV_EVERY = 5
_CODECS: dict = {}  # a worker's loaded codec, by model spec


@dataclass
class EntropyFitReport:
    """What :func:`fit_entropy` chose and measured: per stream the development bits per frame of each context."""

    files: int
    dev_bits: dict[str, dict[str, float]]  # stream -> {context: bits per frame on the development files}
    contexts: dict[str, str]

    def kbps_by_streams(self, frame_rate: float, prefix: int) -> dict[str, float]:
        """Development kbps of the first ``k`` streams under the chosen contexts, ``k = prefix + 1 ..`` (each
        depth of a codec whose first ``prefix`` streams are always coded; up to the first stream no development
        file had)."""
        bits = [self.dev_bits[s].get(c) for s, c in self.contexts.items()]
        measured = bits.index(None) if None in bits else len(bits)
        return {str(k): round(sum(bits[:k]) * frame_rate / 1000, 3) for k in range(prefix + 1, measured + 1)}


def _encode_file(item: tuple[str, float], model: str) -> np.ndarray:
    import torch

    from speechlm.tokenizers.codec.api import Codec

    torch.set_num_threads(1)
    if model not in _CODECS:
        _CODECS[model] = Codec.load(model)
    codec = _CODECS[model]
    path, bitrate = item
    return np.asarray(codec.encode_file(path, bitrate=bitrate).codes, np.int16)


def collect_codes(model: str, manifests: list[str], max_hours: float | None, workers: int,
                  seed: int = 0) -> tuple[list[np.ndarray], float]:
    """Codes ``[k, T]`` of the manifests' ``split=train`` utterances (see the module docstring), and their hours."""
    from tqdm import tqdm

    from speechlm.data.manifest import draw_train_utterances
    from speechlm.tokenizers.codec.api import Codec

    bitrates = Codec.load(model).bitrates
    paths, total = draw_train_utterances(manifests, max_hours, seed)
    chosen = [(p, bitrates[i % len(bitrates)]) for i, p in enumerate(paths)]
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        codes = list(tqdm(pool.map(partial(_encode_file, model=model), chosen, chunksize=4), total=len(chosen),
                          desc=f"encoding ({total / 3600:.2f} h)", unit="utt"))
    return codes, total / 3600


def fit_entropy(codes: list[np.ndarray], names: list[str], cardinalities: list[int], tokenizer: str,
                smoothing: int = 32) -> tuple[TokenEntropyModel, EntropyFitReport]:
    """Choose each stream's context on every ``DEV_EVERY``-th file, then count all files."""
    if len(codes) < DEV_EVERY:
        raise SpeechLMError(f"need at least {DEV_EVERY} files to fit a token entropy model, got {len(codes)}")
    dev = codes[::DEV_EVERY]
    fit = [c for i, c in enumerate(codes) if i % DEV_EVERY]
    dev_bits: dict[str, dict[str, float]] = {n: {} for n in names}
    for ctx in CONTEXTS:
        specs = [StreamSpec(n, k, ctx) for n, k in zip(names, cardinalities)]
        m = TokenEntropyModel.fit(fit, specs, tokenizer, smoothing)
        for i, n in enumerate(names):
            rows = [c for c in dev if c.shape[0] > i]
            frames = sum(c.shape[1] for c in rows)
            if frames:
                dev_bits[n][ctx] = float(sum(m.bits(c[: i + 1])[i] for c in rows) / frames)
    contexts = {n: min(dev_bits[n], key=dev_bits[n].get) if dev_bits[n] else "none" for n in names}
    specs = [StreamSpec(n, k, contexts[n]) for n, k in zip(names, cardinalities)]
    model = TokenEntropyModel.fit(codes, specs, tokenizer, smoothing)
    return model, EntropyFitReport(len(codes), dev_bits, contexts)
