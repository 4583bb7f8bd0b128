"""The user-facing semantic tokenizer: ``SemanticTokenizer.load(name_or_dir)``, ``.encode(wav, sr) -> Tokens``.

Tokens have one codebook (``codes [1, T]``) at 50 Hz, the codec's frame grid. ``dedup=True`` collapses runs of
the same unit (``codes [1, T']``; the file's ``frame_rate`` is then the mean rate ``T' / duration``, and
:func:`run_lengths` recovers the runs). Semantic tokens carry no voice, so ``decode`` needs the bridge
(``speechlm semantic decode IN.npz --prompt REF.wav``), not this class.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from speechlm.errors import CheckpointError, SpeechLMError
from speechlm.tokenizers.semantic.encoder import EncoderConfig, MaskedPredictionEncoder
from speechlm.tokenizers.semantic.features import FRAME_RATE, SAMPLE_RATE, encoder_input, mfcc_features
from speechlm.tokenizers.semantic.kmeans import assign
from speechlm.tokenizers.tokens import Tokens

ASSETS = Path(__file__).resolve().parents[2] / "assets"
DEFAULT_MODEL = "default"


def resolve_model_dir(name_or_dir: str | os.PathLike | None) -> Path:
    """``None``/``"default"`` -> ``speechlm/assets/semantic_default``; ``NAME`` or ``semantic_NAME`` ->
    ``assets/semantic_NAME``; a tokenizer folder; or a training run folder (its ``tokenizer/``)."""
    name = str(name_or_dir) if name_or_dir is not None else DEFAULT_MODEL
    p = Path(name)
    asset = ASSETS / f"semantic_{name.removeprefix('semantic_')}"
    if not p.exists() and "/" not in name and asset.is_dir():
        p = asset
    if p.is_dir() and not (p / "model.safetensors").exists() and (p / "tokenizer").is_dir():
        p = p / "tokenizer"
    if not (p / "model.safetensors").is_file():
        raise CheckpointError(f"semantic tokenizer {name!r} not found (a name under speechlm/assets, a tokenizer "
                              "folder, or a 'speechlm semantic train' run folder)")
    return p


def run_lengths(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run-length encoding: ``units [T]`` -> (values ``[T']``, durations ``[T']``), ``np.repeat`` inverts it."""
    units = np.asarray(units)
    if units.size == 0:
        return units, np.zeros(0, np.int64)
    change = np.concatenate([[True], units[1:] != units[:-1]])
    starts = np.nonzero(change)[0]
    return units[starts], np.diff(np.concatenate([starts, [len(units)]]))


class SemanticTokenizer:
    """k-means units of MFCCs (``features="mfcc"``), of a masked-prediction encoder's layer (``"encoder"``) or
    of the CTC ASR's layer (``"asr"``, :mod:`speechlm.tokenizers.semantic.supervised`). Build with :meth:`load`."""

    def __init__(self, centroids: np.ndarray, name: str, weights_hash: str,
                 encoder: MaskedPredictionEncoder | None = None, layer: int = 0, asr: torch.nn.Module | None = None
                 ) -> None:
        self.centroids = np.asarray(centroids, np.float32)
        self.name, self.weights_hash = name, weights_hash
        self.encoder = encoder.eval() if encoder is not None else None
        self.asr = asr.eval() if asr is not None else None
        self.layer = layer

    @classmethod
    def load(cls, name_or_dir: str | os.PathLike | None = None) -> SemanticTokenizer:
        from speechlm.utils.checkpoint import load_checkpoint

        path = resolve_model_dir(name_or_dir)
        ckpt = load_checkpoint(path)
        cfg = ckpt.config.get("semantic")
        if not isinstance(cfg, dict) or "centroids" not in ckpt.state_dict:
            raise CheckpointError(f"{path}: not a semantic tokenizer checkpoint")
        sd = {k: v.float() if v.is_floating_point() else v for k, v in ckpt.state_dict.items()}
        encoder = asr = None
        if cfg.get("features") == "asr":
            from speechlm.tokenizers.semantic.supervised import ASRLayers

            try:
                asr = ASRLayers(cfg["asr"]["model"], cfg["asr"]["features"], int(cfg["layer"]),
                                cfg["asr"].get("norm", "none"), cfg["asr"].get("adapter"))
                asr.load_state_dict({k[len("asr."):]: v for k, v in sd.items() if k.startswith("asr.")})
            except (TypeError, KeyError, RuntimeError, SpeechLMError) as exc:
                raise CheckpointError(f"{path}: ASR weights do not fit its config ({str(exc)[:200]})") from None
        elif cfg.get("features") == "encoder":
            try:
                encoder = MaskedPredictionEncoder(EncoderConfig(**cfg["encoder"]))
                own = encoder.state_dict()
                enc_sd = {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}
                # the head and final norm are not shipped (features come from an intermediate layer)
                enc_sd.update({k: v for k, v in own.items() if k.startswith(("head.", "out_norm."))})
                encoder.load_state_dict(enc_sd)
            except (TypeError, KeyError, RuntimeError) as exc:
                raise CheckpointError(f"{path}: encoder weights do not fit its config ({str(exc)[:200]})") from None
        elif cfg.get("features") != "mfcc":
            raise CheckpointError(f"{path}: unknown semantic features {cfg.get('features')!r}")
        name = ckpt.meta.get("extra", {}).get("name") or "semantic"
        return cls(sd["centroids"].numpy(), str(name), ckpt.weights_sha256, encoder, int(cfg.get("layer", 0)), asr)

    # ---- the AudioTokenizer protocol --------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def frame_rate(self) -> float:
        return FRAME_RATE

    @property
    def num_codebooks(self) -> int:
        return 1

    @property
    def cardinality(self) -> int:
        return int(len(self.centroids))

    @property
    def uses_encoder(self) -> bool:
        """Whether units come from a masked-prediction encoder's mel input (:meth:`units_from_mel` works)."""
        return self.encoder is not None

    @property
    def features_kind(self) -> str:
        """``"mfcc"``, ``"encoder"`` or ``"asr"``."""
        return "asr" if self.asr is not None else "encoder" if self.encoder is not None else "mfcc"

    @property
    def tokenizer_id(self) -> str:
        return f"{self.name}@{self.weights_hash[:16]}"

    @property
    def bitrate(self) -> float:
        """kbps of undeduplicated units: ``frame_rate * log2(cardinality) / 1000``."""
        return round(self.frame_rate * math.log2(self.cardinality) / 1000, 4)

    # ---- features and units ----------------------------------------------------------------------
    def _prepare(self, wav: np.ndarray, sr: int) -> np.ndarray:
        from speechlm.audio.io import model_input

        return model_input(wav, sr, SAMPLE_RATE, allow_empty=False)

    @torch.inference_mode()
    def features_from_mel(self, mel: np.ndarray) -> np.ndarray:
        """Encoder input ``[n_mels, 2T]`` -> the clustered layer's features ``[T, dim]`` (encoder models only)."""
        from speechlm.tokenizers.semantic.encoder import layer_features

        if self.encoder is None:
            raise SpeechLMError(f"{self.name} clusters MFCCs: it has no encoder features")
        return layer_features(self.encoder, mel, self.layer)

    def features(self, wav: np.ndarray, sr: int) -> np.ndarray:
        """wav ``[T]`` or ``[C, T]`` -> the clustered features ``[ceil(n/320), D]`` (MFCC, encoder or ASR layer)."""
        x = self._prepare(wav, sr)
        if self.asr is not None:
            return self.asr(x)
        if self.encoder is None:
            return mfcc_features(x)
        return self.features_from_mel(encoder_input(x))

    def units_from_mel(self, mel: np.ndarray) -> np.ndarray:
        """Encoder input ``[n_mels, 2T]`` -> units int64 ``[T]``."""
        return assign(self.features_from_mel(mel), self.centroids)

    def encode(self, wav: np.ndarray, sr: int, bitrate: float | None = None, dedup: bool = False) -> Tokens:
        """wav ``[T]``/``[C, T]`` at ``sr`` -> Tokens ``codes [1, ceil(n/320)]`` (``[1, T']`` with ``dedup``).

        ``bitrate`` must be None or this tokenizer's one bitrate (units cannot be dropped like RVQ levels).
        """
        if bitrate is not None and abs(bitrate - self.bitrate) > 1e-6:
            raise SpeechLMError(f"{self.name} has one bitrate, {self.bitrate:g} kbps (got {bitrate:g})")
        x = self._prepare(wav, sr)
        units = assign(self.features(x, SAMPLE_RATE), self.centroids)
        frame_rate, kbps = self.frame_rate, self.bitrate
        if dedup:
            units, _ = run_lengths(units)
            frame_rate = len(units) / (len(x) / SAMPLE_RATE)
            kbps = round(frame_rate * math.log2(self.cardinality) / 1000, 4)
        return Tokens(codes=units[None].astype(np.int16 if self.cardinality <= 32768 else np.int32),
                      sample_rate=SAMPLE_RATE, frame_rate=frame_rate, n_samples=len(x),
                      tokenizer=self.tokenizer_id, bitrate=kbps)

    def encode_file(self, path: str | os.PathLike, dedup: bool = False) -> Tokens:
        from speechlm.audio.io import load_audio

        wav, sr = load_audio(path, sr=SAMPLE_RATE)
        return self.encode(wav, sr, dedup=dedup)

    def decode(self, tokens: Tokens) -> tuple[np.ndarray, int]:
        """Semantic units carry no voice: decoding needs a voice prompt and the bridge."""
        raise SpeechLMError("semantic tokens need a voice to be heard: use 'speechlm semantic decode IN.npz "
                            "--prompt REF.wav -o OUT.wav' (the semantic-to-codec bridge)")
