"""The tokenizer protocol every speechlm audio tokenizer follows (acoustic codec, semantic, hybrid)."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol, runtime_checkable

import numpy as np

from speechlm.tokenizers.tokens import Tokens


@runtime_checkable
class AudioTokenizer(Protocol):
    """Audio <-> discrete tokens.

    ``encode`` takes mono float audio at any sample rate (resampled) and returns :class:`Tokens` with codes
    ``[K, T]`` at ``frame_rate``; ``decode`` turns tokens made by this same tokenizer back into audio.
    """

    name: str

    @property
    def sample_rate(self) -> int: ...

    @property
    def frame_rate(self) -> float: ...

    @property
    def num_codebooks(self) -> int: ...

    @property
    def cardinality(self) -> int: ...

    @property
    def tokenizer_id(self) -> str:
        """``"name@hash"``, written into every tokens file and checked on decode."""
        ...

    def encode(self, wav: np.ndarray, sr: int, bitrate: float | None = None) -> Tokens:
        """wav ``[T]`` or ``[C, T]`` float at ``sr`` -> Tokens (codes ``[K, T']``)."""
        ...

    def decode(self, tokens: Tokens) -> tuple[np.ndarray, int]:
        """Tokens -> (wav float32 ``[T]``, sample rate)."""
        ...


def stream_cardinalities(tokenizer: AudioTokenizer) -> list[int]:
    """Codes of each stream: a source-filter codec's streams differ (f0 128, gain 32, ...), an RVQ's do not."""
    cards = getattr(tokenizer, "cardinalities", None)
    return [int(c) for c in cards] if cards else [int(tokenizer.cardinality)] * int(tokenizer.num_codebooks)


def encode_streams(tokenizer: AudioTokenizer, wav: np.ndarray, sr: int, n_q: int) -> Tokens:
    """``wav``'s tokens with only their first ``n_q`` streams (codes ``[n_q, T]``).

    Encoded at the bitrate whose streams are exactly those where the tokenizer has one: a source-filter codec
    searches its envelope stages jointly, so a full encoding cut down to ``n_q`` streams is not the encoding at
    that rate (an RVQ's is, and gives the same codes either way). Otherwise the full encoding, cut (its
    bitrate scaled by the share of streams kept).
    """
    rates = list(getattr(tokenizer, "bitrates", None) or [])
    first = int(tokenizer.num_codebooks) - len(rates) + 1  # streams at the lowest rate
    rate = rates[n_q - first] if rates and first <= n_q <= int(tokenizer.num_codebooks) else None
    tok = tokenizer.encode(wav, sr, rate)
    k = tok.codes.shape[0]
    return tok if k == n_q else replace(tok, codes=tok.codes[:n_q], bitrate=tok.bitrate * min(n_q, k) / k)
