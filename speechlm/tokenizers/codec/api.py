"""The user-facing codec: ``Codec.load(name_or_dir)``, ``.encode(wav, sr, bitrate) -> Tokens``, ``.decode``.

Audio at any rate is resampled to the model's; long inputs go through the streaming encoder/decoder in blocks:
memory stays bounded (and the result is identical to one offline pass).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from speechlm.errors import AudioError, CheckpointError, SpeechLMError
from speechlm.tokenizers.codec.builder import CodecConfig, build_codec, codec_config_from_dict
from speechlm.tokenizers.codec.model import CodecModel
from speechlm.tokenizers.codec.streaming import load_stream_state, remove_weight_norm, stream_state, streaming
from speechlm.tokenizers.tokens import Tokens, TokensFileError, check_tokenizer

if TYPE_CHECKING:
    from speechlm.tokenizers.source_filter.codec import SourceFilterCodec

ASSETS = Path(__file__).resolve().parents[2] / "assets"
DEFAULT_MODEL = "default"
DEFAULT_ASSET = "sf"  # what "default" names: the source-filter codec (codec_sf)
BLOCK_FRAMES = 500  # frames per streamed block (10 s at 50 Hz): bounds memory for long inputs


def resolve_model_dir(name_or_dir: str | os.PathLike | None) -> Path:
    """``None``/``"default"`` -> the shipped model; ``NAME`` or ``codec_NAME`` -> ``speechlm/assets/codec_NAME``;
    else a folder (a checkpoint, or a training run whose newest checkpoint is used)."""
    from speechlm.utils.checkpoint import latest_checkpoint

    name = str(name_or_dir) if name_or_dir is not None else DEFAULT_MODEL
    if name == DEFAULT_MODEL and not Path(name).exists():
        name = DEFAULT_ASSET
    p = Path(name)
    asset = ASSETS / f"codec_{name.removeprefix('codec_')}"
    if not p.exists() and "/" not in name and asset.is_dir():
        p = asset
    if not p.is_dir():
        names = sorted(d.name.removeprefix("codec_") for d in ASSETS.glob("codec_*") if d.is_dir())
        raise CheckpointError(f"codec model {name!r} not found (shipped: {', '.join(names)}; or a folder)")
    if not (p / "model.safetensors").exists() and (p / "checkpoints").is_dir():
        latest = latest_checkpoint(p)
        if latest is None:
            raise CheckpointError(f"{p}: training run has no complete checkpoint yet")
        p = latest
    return p


def token_space_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """Content hash of what fixes the tokens: the encoder and the quantizer's projections and codebooks.

    The decoder is left out on purpose: a decoder fine-tuned on a frozen token space (``codec.freeze_tokens``)
    reads every tokens file and LM made for the codec it started from.
    """
    from speechlm.utils.checkpoint import weights_sha256

    tokens = ("encoder.", "quantizer.", "unit_level.")
    keep = {k: v for k, v in state_dict.items()
            if k.startswith(tokens) and not k.endswith(("unused_steps", "initialized"))}
    return weights_sha256(keep)


@dataclass(frozen=True)
class DecoderState:
    """The streaming decoder's carried state after ``n_frames`` context frames of ``n_q`` codebooks."""

    modules: list
    n_q: int
    n_frames: int


class Codec:
    """A loaded codec (inference only). Build with :meth:`load`."""

    def __init__(self, model: CodecModel, config: CodecConfig, name: str, weights_hash: str) -> None:
        self.model = model.eval()
        self.config = config
        self.name = name
        self.weights_hash = weights_hash

    # ---- construction ---------------------------------------------------------------------------
    @classmethod
    def load(cls, name_or_dir: str | os.PathLike | None = None) -> Codec | SourceFilterCodec:
        """Load the shipped default (None / "default": the source-filter codec), a named asset, a checkpoint
        folder or a run folder. A source-filter checkpoint loads as a :class:`SourceFilterCodec`."""
        from speechlm.utils.checkpoint import load_checkpoint

        path = resolve_model_dir(name_or_dir)
        if _is_source_filter(path):
            from speechlm.tokenizers.source_filter.codec import SourceFilterCodec

            return SourceFilterCodec.load(path)
        ckpt = load_checkpoint(path)
        cfg_dict = ckpt.config.get("model", ckpt.config)
        try:
            cfg = codec_config_from_dict(cfg_dict)
        except (SpeechLMError, TypeError) as exc:
            raise CheckpointError(f"{path}: not a codec checkpoint ({exc})") from None
        model = build_codec(cfg)
        folded = str(ckpt.meta.get("extra", {}).get("weights", "")).startswith("folded")
        if folded:  # exported: weight norm already folded into the weights (maybe stored as float16)
            remove_weight_norm(model)
        try:
            model.load_state_dict(
                {k: v.float() if v.is_floating_point() else v for k, v in ckpt.state_dict.items()}
            )
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not fit the codec config ({str(exc)[:200]})") from None
        remove_weight_norm(model)
        name = ckpt.meta.get("extra", {}).get("name") or "codec"
        return cls(model, cfg, str(name), token_space_sha256(ckpt.state_dict))

    @classmethod
    def for_tokenizer(cls, tokenizer_id: str) -> Codec:
        """The shipped codec whose token space is ``tokenizer_id`` (``NAME@HASH``, as recorded by LMs and shards).

        Refuses, with the reason, a name that is not shipped or whose weights hash differs.
        """
        name = tokenizer_id.split("@", 1)[0]
        if not name or "/" in name:
            raise CheckpointError(f"tokenizer id {tokenizer_id!r} does not name a shipped codec")
        codec = cls.load(name)
        if codec.tokenizer_id != tokenizer_id:
            raise CheckpointError(f"the shipped {name} is {codec.tokenizer_id}, not {tokenizer_id}; "
                                  "pass the codec it was made with (--codec DIR) or retrain on this one")
        return codec

    # ---- properties (the AudioTokenizer protocol) -------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    @property
    def num_codebooks(self) -> int:
        return self.config.n_q

    @property
    def cardinality(self) -> int:
        return self.config.codebook_size

    @property
    def tokenizer_id(self) -> str:
        return f"{self.name}@{self.weights_hash[:16]}"

    @property
    def bitrates(self) -> list[float]:
        """kbps of every usable number of codebooks (1..n_q)."""
        return [round(k * self.config.kbps_per_codebook, 4) for k in range(1, self.num_codebooks + 1)]

    @property
    def hop(self) -> int:
        """Audio samples per token frame."""
        return self.model.hop

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def decoder_name(self) -> str:
        return str(self.config.decoder)

    @property
    def latency_ms(self) -> float | None:
        """Algorithmic latency of streaming; None for a codec that encodes whole inputs only (a unit codec)."""
        if self.model.unit_level is not None:
            return None
        return 1000.0 * self.model.latency_samples / self.sample_rate

    def n_q_for(self, bitrate: float | None) -> int:
        """Codebooks for ``bitrate`` kbps (the most that fit; all when None)."""
        if bitrate is None:
            return self.num_codebooks
        per = self.config.kbps_per_codebook
        n = int(math.floor(bitrate / per + 1e-6))
        if n < 1 or n > self.num_codebooks:
            raise SpeechLMError(
                f"bitrate {bitrate:g} kbps is outside this codec's range "
                f"{per:g}-{per * self.num_codebooks:g} kbps (steps of {per:g})"
            )
        return n

    # ---- encoding -------------------------------------------------------------------------------
    def _prepare(self, wav: np.ndarray, sr: int) -> np.ndarray:
        from speechlm.audio.io import model_input

        return model_input(wav, sr, self.sample_rate)

    def encode(self, wav: np.ndarray, sr: int, bitrate: float | None = None) -> Tokens:
        """wav ``[T]`` or ``[C, T]`` (downmixed) at ``sr`` -> :class:`Tokens`, codes ``[K, ceil(T'/hop)]``."""
        wav = self._prepare(wav, sr)
        step = BLOCK_FRAMES * self.model.hop
        units = self._units(wav)
        return self.encode_blocks((wav[i : i + step] for i in range(0, len(wav), step)), bitrate, units)

    def _units(self, wav: np.ndarray) -> np.ndarray | None:
        """A unit codec's level-1 units of the whole input ``[ceil(n / hop)]`` (None for other codecs)."""
        if self.model.unit_level is None or not len(wav):
            return None
        return self.model.unit_level.units_1d(wav)

    def encode_file(self, path: str | os.PathLike, bitrate: float | None = None) -> Tokens:
        """Encode an audio file of any length in bounded memory (block by block; a unit codec reads the
        whole file, since its units need it)."""
        from speechlm.audio.io import iter_audio_blocks, load_audio

        if self.model.unit_level is not None:
            wav, _ = load_audio(path, sr=self.sample_rate)
            return self.encode(wav, self.sample_rate, bitrate)

        blocks = (
            np.clip(b[0], -1.0, 1.0)
            for b in iter_audio_blocks(path, sr=self.sample_rate, block_seconds=10.0, channels=1)
        )
        return self.encode_blocks(blocks, bitrate)

    @torch.inference_mode()
    def encode_blocks(self, blocks: Iterable[np.ndarray], bitrate: float | None = None,
                      units: np.ndarray | None = None) -> Tokens:
        """Mono float blocks ``[t]`` at the model's rate -> Tokens (streaming encoder: bounded memory).

        A unit codec needs ``units`` of the whole input (:meth:`encode` computes them)."""
        n_q = self.n_q_for(bitrate)
        if self.model.unit_level is not None and units is None:
            raise SpeechLMError("this codec's first codebook is a semantic unit: encode whole inputs (encode)")
        done = 0  # frames emitted so far
        hop = self.model.hop
        pending = np.zeros(0, np.float32)
        codes: list[torch.Tensor] = []
        n_samples = 0
        with streaming(self.model.encoder):
            for block in blocks:
                n_samples += len(block)
                pending = np.concatenate([pending, np.asarray(block, np.float32)])
                n = (len(pending) // hop) * hop
                if n:
                    codes.append(self._enc(pending[:n], n_q, units, done))
                    done += n // hop
                    pending = pending[n:]
            if len(pending):  # the last partial frame, zero-padded as in offline encoding
                codes.append(self._enc(np.pad(pending, (0, hop - len(pending))), n_q, units, done))
        if n_samples == 0:
            raise AudioError("audio contains no samples")
        c = torch.cat(codes, dim=-1)[0].numpy()
        return Tokens(
            codes=c.astype(np.int16 if self.cardinality <= 32768 else np.int32),
            sample_rate=self.sample_rate,
            frame_rate=self.frame_rate,
            n_samples=n_samples,
            tokenizer=self.tokenizer_id,
            bitrate=round(n_q * self.config.kbps_per_codebook, 4),
        )

    def _enc(self, x: np.ndarray, n_q: int, units: np.ndarray | None = None, start: int = 0) -> torch.Tensor:
        z = self.model.encoder(torch.from_numpy(np.ascontiguousarray(x))[None, None])
        u = None if units is None else torch.from_numpy(np.asarray(units[start : start + z.shape[-1]]))[None]
        return self.model.quantize(z, n_q, u)

    @torch.inference_mode()
    def encode_batch(self, wavs: list[np.ndarray], sr: int, bitrate: float | None = None) -> list[Tokens]:
        """Encode several clips in one padded batch; each result equals encoding that clip alone."""
        n_q = self.n_q_for(bitrate)
        prepared = [self._prepare(w, sr) for w in wavs]
        lengths = torch.tensor([len(w) for w in prepared])
        t = int(lengths.max())
        batch = torch.zeros(len(prepared), 1, t)
        for i, w in enumerate(prepared):
            batch[i, 0, : len(w)] = torch.from_numpy(w)
        codes, frames = self.model.encode(batch, n_q=n_q, lengths=lengths)
        return [
            Tokens(
                codes=codes[i, :, : frames[i]].numpy().astype(np.int16),
                sample_rate=self.sample_rate,
                frame_rate=self.frame_rate,
                n_samples=int(lengths[i]),
                tokenizer=self.tokenizer_id,
                bitrate=round(n_q * self.config.kbps_per_codebook, 4),
            )
            for i in range(len(prepared))
        ]

    # ---- decoding -------------------------------------------------------------------------------
    def _check(self, tokens: Tokens) -> None:
        check_tokenizer(tokens, self.tokenizer_id)
        k = tokens.num_codebooks
        if not 1 <= k <= self.num_codebooks:
            raise TokensFileError(f"tokens have {k} codebooks; this codec has 1-{self.num_codebooks}")
        if tokens.codes.size and (tokens.codes.min() < 0 or tokens.codes.max() >= self.cardinality):
            raise TokensFileError(f"codes outside 0..{self.cardinality - 1}")
        expected = math.ceil(tokens.n_samples / self.model.hop)
        if tokens.num_frames != expected:
            raise TokensFileError(
                f"tokens have {tokens.num_frames} frames but n_samples={tokens.n_samples} needs {expected}"
            )

    @torch.inference_mode()
    def decode_blocks(self, tokens: Tokens) -> Iterator[np.ndarray]:
        """Yield float32 audio blocks ``[t]`` (streaming decoder); together they are ``n_samples`` long."""
        self._check(tokens)
        codes = torch.from_numpy(tokens.codes.astype(np.int64))[None]
        remaining = tokens.n_samples
        chunks = (codes[..., i : i + BLOCK_FRAMES] for i in range(0, codes.shape[-1], BLOCK_FRAMES))
        for wav in self.model.decode_stream(chunks):
            out = wav.reshape(-1)[:remaining].numpy()
            remaining -= len(out)
            if len(out):
                yield out

    @torch.inference_mode()
    def warm_state(self, context: np.ndarray | torch.Tensor) -> DecoderState:
        """Decode ``context`` codes ``[K, T]`` (e.g. a voice prompt) and keep the decoder's carried state, so
        what follows the context can be decoded again and again without decoding the context each time."""
        ctx = torch.as_tensor(np.asarray(context), dtype=torch.long)
        if ctx.ndim != 2 or not 1 <= ctx.shape[0] <= self.num_codebooks:
            raise SpeechLMError(f"context codes must be [K, T] with 1 <= K <= {self.num_codebooks}")
        dec = self.model.decoder
        with streaming(dec):
            for i in range(0, ctx.shape[1], BLOCK_FRAMES):
                dec(self.model.dequantize(ctx[None, :, i : i + BLOCK_FRAMES]))
            return DecoderState(stream_state(dec), int(ctx.shape[0]), int(ctx.shape[1]))

    @torch.inference_mode()
    def decode_after(self, state: DecoderState, codes: np.ndarray | torch.Tensor) -> np.ndarray:
        """codes ``[K, T]`` that follow a warm state's context -> audio ``[T * hop]``, equal to decoding
        ``[context; codes]`` with :meth:`decode` and cutting the context's samples off (test_codec_streaming)."""
        c = torch.as_tensor(np.asarray(codes), dtype=torch.long)
        if c.ndim != 2 or c.shape[0] != state.n_q:
            raise SpeechLMError(f"codes must be [{state.n_q}, T] like the warm context, got {tuple(c.shape)}")
        dec = self.model.decoder
        with streaming(dec):
            load_stream_state(dec, state.modules)
            outs = [dec(self.model.dequantize(c[None, :, i : i + BLOCK_FRAMES]))
                    for i in range(0, c.shape[1], BLOCK_FRAMES)]
            if hasattr(dec, "flush"):
                outs.append(dec.flush())
        wav = torch.cat([o.reshape(-1) for o in outs]) if outs else torch.zeros(0)
        # The stream has now given every sample of [context; codes] after the context's; the samples the
        # context's decode held back (overlap-add look-ahead) come first: keep the last T * hop.
        n = c.shape[1] * self.model.hop
        return wav[wav.numel() - n :].numpy() if n else np.zeros(0, np.float32)

    def decode(self, tokens: Tokens) -> tuple[np.ndarray, int]:
        """Tokens (from this codec) -> (wav float32 ``[n_samples]``, sample_rate)."""
        blocks = list(self.decode_blocks(tokens))
        wav = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
        return wav, self.sample_rate

    def decode_to_file(self, tokens: Tokens, path: str | os.PathLike) -> None:
        """Decode straight to a 16-bit WAV/FLAC file, block by block (bounded memory), atomically."""
        import soundfile as sf

        from speechlm.utils.atomic import atomic_path

        with atomic_path(path) as tmp:
            with sf.SoundFile(
                str(tmp),
                "w",
                samplerate=self.sample_rate,
                channels=1,
                subtype="PCM_16",
                format=_sf_format(Path(path)),
            ) as f:
                for block in self.decode_blocks(tokens):
                    f.write(np.clip(block, -1.0, 1.0))


def _is_source_filter(path: Path) -> bool:
    """Whether the checkpoint folder ``path`` holds a source-filter codec (its config's model kind)."""
    import json

    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    model = (cfg.get("config") or {}).get("model") or {}
    return isinstance(model, dict) and model.get("kind") == "source_filter"


def _sf_format(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    fmts = {"wav": "WAV", "flac": "FLAC"}
    if ext not in fmts:
        raise SpeechLMError(f"decode writes .wav or .flac, not {path.suffix or 'no extension'}")
    return fmts[ext]
