"""The tokens file: discrete codes of one utterance, and the ``.npz`` format they are stored in.

Fields (ARCHITECTURE.md, fixed contract):

- ``codes``: int16 (cardinality <= 32768) or int32, shape ``[K, T]`` — K codebooks, T frames.
- ``sample_rate``: the audio sample rate the tokenizer works at (Hz).
- ``frame_rate``: token frames per second (may be fractional).
- ``n_samples``: length of the encoded audio at ``sample_rate``, so decoding trims to the exact length.
- ``tokenizer``: ``"NAME@HASH"`` — the model's name and its checkpoint's content hash. Decoding with any other
  tokenizer is refused.
- ``bitrate``: kilobits per second of the stored codes (K * log2(cardinality) * frame_rate / 1000).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechlm.errors import SpeechLMError
from speechlm.utils.atomic import atomic_path

TOKEN_FIELDS = ("codes", "sample_rate", "frame_rate", "n_samples", "tokenizer", "bitrate")


class TokensFileError(SpeechLMError):
    """A tokens file that cannot be read, is incomplete, or was made by another tokenizer."""


@dataclass(frozen=True)
class Tokens:
    """Discrete codes of one utterance.

    Attributes:
        codes: int array ``[K, T]``.
        sample_rate: Hz of the audio the tokenizer works at.
        frame_rate: frames per second of ``codes``.
        n_samples: number of audio samples (at ``sample_rate``) the codes stand for.
        tokenizer: ``"name@hash"`` of the tokenizer that made them.
        bitrate: kbps of these codes.
    """

    codes: np.ndarray
    sample_rate: int
    frame_rate: float
    n_samples: int
    tokenizer: str
    bitrate: float

    def __post_init__(self) -> None:
        if self.codes.ndim != 2:
            raise TokensFileError(f"codes must be [K, T], got shape {tuple(self.codes.shape)}")
        if not np.issubdtype(self.codes.dtype, np.integer):
            raise TokensFileError(f"codes must be integers, got {self.codes.dtype}")

    @property
    def num_codebooks(self) -> int:
        return int(self.codes.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.codes.shape[1])

    @property
    def duration(self) -> float:
        return self.n_samples / self.sample_rate

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokens as ``.npz`` atomically (int16 codes when they fit, else int32)."""
        save_tokens(path, self)


def _compact_codes(codes: np.ndarray) -> np.ndarray:
    if codes.size == 0 or (codes.min() >= np.iinfo(np.int16).min and codes.max() <= np.iinfo(np.int16).max):
        return codes.astype(np.int16)
    return codes.astype(np.int32)


def save_tokens(path: str | os.PathLike, tokens: Tokens) -> None:
    """Write ``tokens`` to ``path`` (``.npz``, uncompressed) atomically."""
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                codes=_compact_codes(tokens.codes),
                sample_rate=np.int64(tokens.sample_rate),
                frame_rate=np.float64(tokens.frame_rate),
                n_samples=np.int64(tokens.n_samples),
                tokenizer=np.str_(tokens.tokenizer),
                bitrate=np.float64(tokens.bitrate),
            )


def load_tokens(path: str | os.PathLike) -> Tokens:
    """Read a tokens ``.npz``; a missing, truncated or incomplete file raises :class:`TokensFileError`."""
    path = Path(path)
    if not path.is_file():
        raise TokensFileError(f"tokens file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in TOKEN_FIELDS if k not in z.files]
            if missing:
                raise TokensFileError(f"{path} is not a speechlm tokens file (missing {', '.join(missing)})")
            codes = np.asarray(z["codes"])
            tokens = Tokens(
                codes=codes,
                sample_rate=int(z["sample_rate"]),
                frame_rate=float(z["frame_rate"]),
                n_samples=int(z["n_samples"]),
                tokenizer=str(z["tokenizer"]),
                bitrate=float(z["bitrate"]),
            )
    except TokensFileError:
        raise
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as exc:
        # np.load on a cut-off zip raises BadZipFile (no directory) or EOFError/ValueError.
        raise TokensFileError(
            f"{path} is truncated or not a valid .npz tokens file ({type(exc).__name__})"
        ) from None
    if tokens.n_samples < 0 or tokens.sample_rate <= 0 or tokens.frame_rate <= 0:
        raise TokensFileError(f"{path} has invalid header values")
    return tokens


def check_tokenizer(tokens: Tokens, expected: str) -> None:
    """Refuse tokens made by a different tokenizer (name or checkpoint hash differ)."""
    if tokens.tokenizer != expected:
        raise TokensFileError(
            f"these tokens were made by tokenizer {tokens.tokenizer!r}, not {expected!r}: decode with the "
            f"model that encoded them (--model)"
        )
