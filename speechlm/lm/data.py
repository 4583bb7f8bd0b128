"""Token shards for LM training: codec codes and phoneme ids of many utterances, precomputed once.

A shard folder holds ``index.json`` (tokenizer id, codebooks, frame rate, phoneme table hash, frames per phone,
shard list) and ``shard_NNNN.npz`` files (no pickle)::

    codes         int16 [K, N]   all utterances' codes, concatenated in time
    code_offsets  int64 [n + 1]
    phones        int32 [M]      phoneme ids (word boundaries included, no specials), concatenated
    phone_offsets int64 [n + 1]
    ids, langs, speakers, splits   str [n]

:func:`build_shards` encodes a manifest with a codec (or any ``encode(wav, sr) -> Tokens``);
:class:`TokenData` loads a folder; :func:`collate_voicecraft` / :func:`collate_valle` make training batches
(random spans and prompts drawn from the torch RNG, which the trainer saves and restores on resume).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speechlm.errors import SpeechLMError
from speechlm.lm.delay import delay
from speechlm.lm.model import LMBatch
from speechlm.lm.voicecraft import AudioVocab, Span, mask_and_move
from speechlm.utils.atomic import atomic_path, atomic_write_text

INDEX = "index.json"
FORMAT = "speechlm-lm-shards/1"


@dataclass(frozen=True)
class Utt:
    """One utterance of a shard folder: codes ``[K, T]`` int16 and phoneme ids ``[M]``."""

    id: str
    codes: np.ndarray
    phones: np.ndarray
    lang: str
    speaker: str
    split: str


def text_ids(phones: Sequence[int], lang: str, langs: Sequence[str], n_symbols: int, bos: int, eos: int
             ) -> list[int]:
    """The LM's text prefix: ``[lang token, <bos>, phones..., <eos>]`` (language tokens follow the phonemes)."""
    base = lang.split("-")[0]
    if base not in langs:
        raise SpeechLMError(f"language {lang!r} is not one the model knows ({', '.join(langs)})")
    return [n_symbols + list(langs).index(base), bos, *[int(p) for p in phones], eos]


def build_shards(manifests: Sequence[str | os.PathLike], out_dir: str | os.PathLike, encoder: Any,
                 n_q: int | None = None, shard_size: int = 2000, splits: Sequence[str] | None = None,
                 max_seconds: float | None = None, show_progress: bool = True) -> Path:
    """Encode every utterance of ``manifests`` (``split`` in ``splits``, all when None) into token shards.

    ``encoder`` is a codec (``encode(wav, sr, bitrate)``, ``tokenizer_id``, ``frame_rate``); each utterance is
    encoded at the rate of its first ``n_q`` streams (:func:`~speechlm.tokenizers.base.encode_streams`). Phonemes
    come from the manifest's ``phonemes`` field, else from the G2P. Utterances longer than ``max_seconds`` (by the
    manifest's duration), whose text the G2P cannot read (e.g. a language it does not support) or whose audio
    cannot be read are left out, counted (``skipped`` in the index) and reported.
    """
    from tqdm import tqdm

    from speechlm.audio.io import load_audio
    from speechlm.data.manifest import manifest_root, read_manifest
    from speechlm.text.g2p import phonemize
    from speechlm.text.normalize import normalize_text
    from speechlm.text.symbols import default_symbols
    from speechlm.tokenizers.base import encode_streams, stream_cardinalities

    symbols = default_symbols()
    items = []
    for m in manifests:
        root = manifest_root(m)
        items += [(u, root) for u in read_manifest(m) if (splits is None or u.split in splits)
                  and (max_seconds is None or u.duration <= max_seconds)]
    if not items:
        raise SpeechLMError(f"no utterances in {', '.join(map(str, manifests))}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shards, buf, n_frames, n_phones, n_utts = [], [], 0, 0, 0
    skipped = 0

    def flush() -> None:
        name = f"shard_{len(shards):04d}.npz"
        codes = np.concatenate([b.codes for b in buf], axis=1).astype(np.int16)
        phones = np.concatenate([b.phones for b in buf]).astype(np.int32)
        with atomic_path(out / name, suffix=".npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, codes=codes, phones=phones,
                     code_offsets=np.cumsum([0] + [b.codes.shape[1] for b in buf]).astype(np.int64),
                     phone_offsets=np.cumsum([0] + [len(b.phones) for b in buf]).astype(np.int64),
                     ids=np.array([b.id for b in buf], dtype=str), langs=np.array([b.lang for b in buf], dtype=str),
                     speakers=np.array([b.speaker for b in buf], dtype=str),
                     splits=np.array([b.split for b in buf], dtype=str))
        shards.append(name)
        buf.clear()

    refused: dict[str, int] = {}  # why the G2P could not read an utterance -> how many
    for u, root in tqdm(items, desc="encoding", unit="utt", disable=not show_progress):
        try:
            ph = u.phonemes or phonemize([normalize_text(u.text, u.lang)], u.lang)[0]
        except SpeechLMError as exc:  # e.g. a language without text normalisation/G2P: leave it out
            refused[str(exc)] = refused.get(str(exc), 0) + 1
            skipped += 1
            continue
        ids = symbols.encode(ph)
        if not ids:
            skipped += 1
            continue
        try:
            wav, sr = load_audio(u.audio_path(root))
        except SpeechLMError as exc:
            print(f"skipping {u.id}: {exc}", flush=True)
            skipped += 1
            continue
        codes = encode_streams(encoder, wav, sr, n_q or encoder.num_codebooks).codes
        buf.append(Utt(u.id, codes, np.array(ids, np.int32), u.lang, u.speaker, u.split))
        n_frames += codes.shape[1]
        n_phones += len(ids)
        n_utts += 1
        if len(buf) >= shard_size:
            flush()
    if buf:
        flush()
    for why, n in refused.items():
        print(f"left out {n} utterance(s): {why}", flush=True)
    if not shards:
        raise SpeechLMError("no utterance could be encoded")
    index = {"format": FORMAT, "tokenizer": encoder.tokenizer_id, "frame_rate": float(encoder.frame_rate),
             "n_codebooks": int(n_q or encoder.num_codebooks), "cardinality": int(encoder.cardinality),
             "cardinalities": stream_cardinalities(encoder)[: n_q or encoder.num_codebooks],
             "symbols": symbols.hash, "frames_per_phone": n_frames / max(n_phones, 1),
             "n_utterances": n_utts, "hours": n_frames / encoder.frame_rate / 3600,
             "skipped": skipped, "manifests": [str(m) for m in manifests], "shards": shards}
    atomic_write_text(out / INDEX, json.dumps(index, indent=2))
    return out


class TokenData:
    """All utterances of a shard folder, in memory (int16 codes: ~0.3 MB per hour per codebook)."""

    def __init__(self, utts: list[Utt], index: dict[str, Any]) -> None:
        self.utts, self.index = utts, index

    @classmethod
    def load(cls, path: str | os.PathLike, splits: Sequence[str] | None = None) -> TokenData:
        path = Path(path)
        if not (path / INDEX).is_file():
            raise SpeechLMError(f"{path} is not a token shard folder (no {INDEX}); make one with "
                                "'speechlm lm shards'")
        index = json.loads((path / INDEX).read_text())
        utts = []
        for name in index["shards"]:
            with np.load(path / name, allow_pickle=False) as z:
                co, po = z["code_offsets"], z["phone_offsets"]
                codes, phones = z["codes"], z["phones"]
                for i in range(len(z["ids"])):
                    if splits is not None and str(z["splits"][i]) not in splits:
                        continue
                    utts.append(Utt(str(z["ids"][i]), codes[:, co[i]:co[i + 1]], phones[po[i]:po[i + 1]],
                                    str(z["langs"][i]), str(z["speakers"][i]), str(z["splits"][i])))
        return cls(utts, index)

    def __len__(self) -> int:
        return len(self.utts)


def random_spans(n_frames: int, p_tts: float, max_spans: int, n_masks: int) -> list[Span]:
    """Training spans from the torch RNG: with ``p_tts`` one span to the end (continuation after a prompt of
    0-50 %), else 1..``max_spans`` inner spans of up to ~60 % of their share of the utterance."""
    t = n_frames
    if t < 4 or float(torch.rand(())) < p_tts:
        s = int(torch.randint(0, max(1, t // 2 + 1), ()))
        return [(min(s, t - 1), t)]
    n = int(torch.randint(1, min(max_spans, n_masks) + 1, ()))
    n = max(1, min(n, t // 4))
    spans, share = [], t // n
    for i in range(n):
        length = int(torch.randint(1, max(2, int(0.6 * share) + 1), ()))
        start = i * share + int(torch.randint(0, max(1, share - length + 1), ()))
        spans.append((start, min(start + length, (i + 1) * share)))
    return spans


def _text(u: Utt, model_langs: Sequence[str], n_symbols: int) -> list[int]:
    from speechlm.text.symbols import default_symbols

    s = default_symbols()
    return text_ids(u.phones, u.lang, model_langs, n_symbols, s.bos_id, s.eos_id)


def collate_voicecraft(utts: Sequence[Utt], k: int, vocab: AudioVocab, langs: Sequence[str], n_symbols: int,
                       p_tts: float, max_spans: int) -> LMBatch:
    """Utterances -> a batch of delayed, rearranged columns (random spans), texts left-padded."""
    from speechlm.lm.generate import pad_text

    texts, seqs = [], []
    for u in utts:
        codes = torch.from_numpy(u.codes[:k].astype(np.int64))
        spans = random_spans(codes.shape[1], p_tts, max_spans, vocab.n_masks)
        seqs.append(delay(mask_and_move(codes, spans, vocab), vocab.pad))
        texts.append(_text(u, langs, n_symbols))
    ids, mask = pad_text(texts)
    audio = torch.full((len(seqs), k, max(s.shape[1] for s in seqs)), vocab.pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        audio[i, :, : s.shape[1]] = s
    return LMBatch(ids, mask, audio)


def collate_valle(utts: Sequence[Utt], k: int, vocab: AudioVocab, langs: Sequence[str], n_symbols: int
                  ) -> LMBatch:
    """Utterances -> frames ``[B, K, T]`` right-padded, a random prompt of 10-50 % per utterance."""
    from speechlm.lm.generate import pad_text

    ids, mask = pad_text([_text(u, langs, n_symbols) for u in utts])
    t = max(u.codes.shape[1] for u in utts)
    audio = torch.full((len(utts), k, t), vocab.pad, dtype=torch.long)
    plen, n = [], []
    for i, u in enumerate(utts):
        c = u.codes[:k]
        audio[i, :, : c.shape[1]] = torch.from_numpy(c.astype(np.int64))
        lo, hi = max(1, int(0.1 * c.shape[1])), max(2, int(0.5 * c.shape[1]))
        plen.append(min(int(torch.randint(lo, hi, ())), c.shape[1] - 1))
        n.append(c.shape[1])
    return LMBatch(ids, mask, audio, torch.tensor(plen), torch.tensor(n))
