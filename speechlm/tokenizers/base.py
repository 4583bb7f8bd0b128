"""The tokenizer protocol every speechlm audio tokenizer follows (acoustic codec, semantic, hybrid)."""

from __future__ import annotations

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
