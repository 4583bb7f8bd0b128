"""The packed tokens file (``.slc``): a tokens file's codes entropy-coded, for storage and transmission.

Layout: ``b"SLPK"``, a version byte, a little-endian uint16 header length, the header (UTF-8 JSON: ``tokenizer``,
``entropy`` (the id of the :class:`~speechlm.tokenizers.entropy.TokenEntropyModel` that coded it),
``sample_rate``, ``frame_rate``, ``n_samples``, ``streams``, ``frames``, ``bitrate`` (the nominal kbps of the
codes), ``payload_bytes``, ``crc32`` of the payload, and ``depth`` when quiet frames were packed shallower (a
:class:`~speechlm.tokenizers.entropy.FrameDepth`)), then the range-coded payload. Unpacking gives back exactly
the ``Tokens`` that were packed, except, with a ``depth``, the streams it left out of quiet frames, which come back
as its fill codes; a file cut short, altered, or coded by another model is refused with one line.
The payload is what a transmission would carry: :attr:`PackedInfo.kbps` counts it alone, as Opus's payload
rate leaves out its Ogg pages; the header adds about 250 bytes per file.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from speechlm.errors import SpeechLMError
from speechlm.tokenizers.entropy import EntropyModelError, FrameDepth, TokenEntropyModel
from speechlm.tokenizers.tokens import Tokens, TokensFileError

MAGIC = b"SLPK"
VERSION = 1
SUFFIX = ".slc"
ENTROPY_FILE = "entropy.safetensors"


@dataclass(frozen=True)
class PackedInfo:
    """Sizes of one packed file: ``payload_bytes`` of coded tokens over ``seconds`` of audio, and the header."""

    payload_bytes: int
    header_bytes: int
    seconds: float

    @property
    def kbps(self) -> float:
        """Payload kilobits per second of audio."""
        return self.payload_bytes * 8 / max(self.seconds, 1e-9) / 1000


def entropy_model_for(model_dir: str | os.PathLike, tokenizer_id: str | None = None,
                      entropy_id: str | None = None) -> TokenEntropyModel:
    """The entropy model shipped beside a codec (``MODEL_DIR/entropy.safetensors``); with ``tokenizer_id``, refused
    when it was fitted on another codec's tokens (a codec re-exported into the folder). ``entropy_id`` (a packed
    file's header): an earlier model kept beside it as ``entropy-ID.safetensors`` when that is the one, so files
    packed before a refit still unpack."""
    path = Path(model_dir) / ENTROPY_FILE
    if not path.is_file():
        raise EntropyModelError(f"codec {Path(model_dir).name} has no token entropy model ({ENTROPY_FILE}): fit "
                                "one with 'speechlm codec fit-entropy', or keep its tokens as .npz")
    model = TokenEntropyModel.load(path)
    earlier = Path(model_dir) / f"entropy-{entropy_id}.safetensors"
    if entropy_id and entropy_id != model.id and re.fullmatch(r"[0-9a-f]{16}", entropy_id) and earlier.is_file():
        model = TokenEntropyModel.load(earlier)
    if tokenizer_id is not None and model.tokenizer != tokenizer_id:
        raise EntropyModelError(f"{path} was fitted on {model.tokenizer!r} tokens, not {tokenizer_id!r}: refit it "
                                "with 'speechlm codec fit-entropy'")
    return model


def pack(tokens: Tokens, model: TokenEntropyModel, depth: FrameDepth | None = None) -> tuple[bytes, PackedInfo]:
    """The bytes of a packed file for ``tokens``, and their sizes; with ``depth``, quiet frames' deeper streams
    are left out (what unpacking gives back is ``depth.apply(tokens.codes)``)."""
    if tokens.tokenizer != model.tokenizer:
        raise EntropyModelError(f"the entropy model was fitted on {model.tokenizer!r} tokens, these are "
                                f"{tokens.tokenizer!r}")
    codes, kept = tokens.codes, None
    if depth is not None:
        depth.check(tokens.num_codebooks, [s.cardinality for s in model.streams[: tokens.num_codebooks]])
        codes = depth.apply(codes)
        kept = depth.kept(codes)
    payload = model.pack(codes, kept)
    fields = {
        "tokenizer": tokens.tokenizer, "entropy": model.id, "sample_rate": tokens.sample_rate,
        "frame_rate": tokens.frame_rate, "n_samples": tokens.n_samples, "streams": tokens.num_codebooks,
        "frames": tokens.num_frames, "bitrate": tokens.bitrate, "payload_bytes": len(payload),
        "crc32": zlib.crc32(payload),
    }
    if depth is not None:
        fields["depth"] = depth.to_json()
    header = json.dumps(fields, separators=(",", ":")).encode()
    head = MAGIC + struct.pack("<BH", VERSION, len(header)) + header
    return head + payload, PackedInfo(len(payload), len(head), tokens.duration)


def write_packed(path: str | os.PathLike, data: bytes) -> None:
    """Write the bytes :func:`pack` made to ``path`` atomically."""
    from speechlm.utils.atomic import atomic_path

    with atomic_path(path, suffix=SUFFIX) as tmp:
        Path(tmp).write_bytes(data)


def save_packed(path: str | os.PathLike, tokens: Tokens, model: TokenEntropyModel,
                depth: FrameDepth | None = None) -> PackedInfo:
    """Write ``tokens`` packed to ``path`` atomically (see :func:`pack`)."""
    data, info = pack(tokens, model, depth)
    write_packed(path, data)
    return info


def read_header(path: str | os.PathLike) -> tuple[dict, bytes]:
    """``(header, payload)`` of a packed file, checked for completeness and integrity (not yet decoded)."""
    path = Path(path)
    if not path.is_file():
        raise TokensFileError(f"packed tokens file {path} does not exist")
    data = path.read_bytes()
    if len(data) < 7 or data[:4] != MAGIC:
        raise TokensFileError(f"{path} is not a packed speechlm tokens file")
    version, n = struct.unpack("<BH", data[4:7])
    if version != VERSION:
        raise TokensFileError(f"{path}: packed format version {version}, this speechlm reads {VERSION}")
    try:
        header = json.loads(data[7:7 + n].decode())
        payload = data[7 + n:]
        ok = len(payload) == int(header["payload_bytes"]) and zlib.crc32(payload) == int(header["crc32"])
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise TokensFileError(f"{path}: corrupt packed header") from None
    if not ok:
        raise TokensFileError(f"{path}: payload truncated or altered (size or checksum differs from the header)")
    return header, payload


def load_packed(path: str | os.PathLike, model: TokenEntropyModel) -> Tokens:
    """The tokens of a packed file, decoded with ``model`` (which must be the one that packed them)."""
    header, payload = read_header(path)
    if header.get("entropy") != model.id or header.get("tokenizer") != model.tokenizer:
        raise TokensFileError(f"{path} was packed with entropy model {header.get('entropy')!r} for "
                              f"{header.get('tokenizer')!r}, not {model.id!r} for {model.tokenizer!r}")
    try:
        depth = FrameDepth.from_json(header["depth"]) if header.get("depth") is not None else None
        codes = model.unpack(payload, int(header["streams"]), int(header["frames"]), depth)
        return Tokens(codes=codes, sample_rate=int(header["sample_rate"]), frame_rate=float(header["frame_rate"]),
                      n_samples=int(header["n_samples"]), tokenizer=str(header["tokenizer"]),
                      bitrate=float(header["bitrate"]))
    except (KeyError, TypeError, ValueError, SpeechLMError) as e:
        raise TokensFileError(f"{path}: cannot unpack ({e})") from None
