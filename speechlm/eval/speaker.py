"""Speaker similarity: cosine similarity of speaker embeddings.

The default embedder is resemblyzer's GE2E encoder (its weights ship inside the resemblyzer wheel). Its
``VoiceEncoder()`` constructor unpickles ``pretrained.pt`` with a plain ``torch.load``; we never call it.
Instead :class:`ResemblyzerEmbedder` builds the same three-layer LSTM here and loads the checkpoint with
``torch.load(..., weights_only=True)`` (the file holds only tensors, ints and dicts, which the safe loader
accepts). Resemblyzer's own preprocessing (volume normalisation to -30 dBFS, webrtcvad silence trimming,
40-band mel at 16 kHz) and its partial-utterance averaging are reproduced, so embeddings equal resemblyzer's.

Other embedders plug in through :class:`SpeakerEmbedder` and :func:`load_embedder` (``--speaker-model PATH``):
- ``*.onnx``: input float32 ``[1, T]`` at 16 kHz, output ``[1, D]`` (or ``[D]``) — run with onnxruntime;
- ``*.safetensors``: a state dict for the resemblyzer architecture (e.g. a fine-tuned GE2E encoder);
- ``*.pt`` / ``*.ts`` / ``*.jit``: a TorchScript module ``wav [1, T] -> [1, D]`` (``torch.jit.load``, which
  does not unpickle arbitrary Python objects).
Embedders are cached per process (one load per model path).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from speechlm.errors import CheckpointError, MissingDependencyError

EMBED_SR = 16000


@runtime_checkable
class SpeakerEmbedder(Protocol):
    """Maps a mono waveform to an L2-normalised speaker embedding."""

    name: str
    sample_rate: int

    def embed(self, wav: np.ndarray) -> np.ndarray:
        """``wav [T]`` float at ``sample_rate`` -> embedding ``[D]`` float32 with unit L2 norm."""
        ...


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two embeddings ``[D]`` (nan if either is zero)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.dot(a, b) / (na * nb))


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32).ravel()
    n = float(np.linalg.norm(x))
    return x / n if n > 0 else x


# ----------------------------------------------------------------------------------------------------
# Resemblyzer (GE2E) without unpickling


def _resemblyzer_dir() -> Path:
    try:
        import resemblyzer
    except ImportError as exc:
        raise MissingDependencyError(
            "speaker similarity needs resemblyzer (pip install --no-deps resemblyzer; plus librosa and "
            "webrtcvad-wheels from speechlm[eval])"
        ) from exc
    return Path(resemblyzer.__file__).resolve().parent


def _build_ge2e():
    import torch
    from torch import nn

    class GE2E(nn.Module):
        """Resemblyzer's network: LSTM(40 -> 256, 3 layers) -> Linear(256) -> ReLU -> L2 norm."""

        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(40, 256, 3, batch_first=True)
            self.linear = nn.Linear(256, 256)

        def forward(self, mels: torch.Tensor) -> torch.Tensor:
            """``mels [B, frames, 40]`` -> ``[B, 256]`` unit-norm embeddings."""
            _, (hidden, _) = self.lstm(mels)
            e = torch.relu(self.linear(hidden[-1]))
            return e / torch.norm(e, dim=1, keepdim=True).clamp_min(1e-12)

    return GE2E()


def _load_ge2e(path: Path):
    import torch

    model = _build_ge2e()
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
            state = ckpt["model_state"] if isinstance(ckpt, dict) and "model_state" in ckpt else ckpt
    except Exception as exc:  # noqa: BLE001 - any failure to read is a bad checkpoint for the user
        raise CheckpointError(f"cannot load speaker encoder weights from {path}: {exc}") from exc
    # The training-time similarity scale/bias (GE2E loss) are not part of the encoder.
    state = {k: v for k, v in state.items() if not k.startswith("similarity_")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} is not a resemblyzer-compatible (GE2E) state dict: {exc}") from exc
    model.eval()
    return model


class ResemblyzerEmbedder:
    """Resemblyzer's GE2E speaker encoder, weights loaded with ``weights_only=True``."""

    sample_rate = EMBED_SR

    def __init__(self, weights: str | os.PathLike | None = None) -> None:
        path = Path(weights) if weights is not None else _resemblyzer_dir() / "pretrained.pt"
        if not path.is_file():
            raise CheckpointError(f"speaker encoder weights {path} not found")
        self.name = "resemblyzer" if weights is None else f"ge2e:{path.name}"
        self.model = _load_ge2e(path)

    def embed(self, wav: np.ndarray) -> np.ndarray:
        """``wav [T]`` at 16 kHz -> ``[256]`` (resemblyzer's ``embed_utterance`` after ``preprocess_wav``)."""
        import torch
        from resemblyzer import audio as ra
        from resemblyzer.voice_encoder import VoiceEncoder

        x = np.asarray(wav, dtype=np.float32).ravel()
        if x.size == 0 or not np.any(x):
            return np.zeros(256, dtype=np.float32)
        x = ra.normalize_volume(x, ra.audio_norm_target_dBFS, increase_only=True)
        x = np.clip(x, -1.0, 1.0)  # the int16 conversion inside the VAD wraps around otherwise
        trimmed = ra.trim_long_silences(x)
        if trimmed.size >= EMBED_SR // 10:  # keep the audio when the VAD finds (almost) no speech
            x = trimmed
        # compute_partial_slices is a staticmethod: no VoiceEncoder instance (and no pickle load) is made.
        wav_slices, mel_slices = VoiceEncoder.compute_partial_slices(len(x), rate=1.3, min_coverage=0.75)
        need = wav_slices[-1].stop
        if need >= len(x):
            x = np.pad(x, (0, need - len(x)))
        mel = ra.wav_to_mel_spectrogram(x)
        mels = np.stack([mel[s] for s in mel_slices])
        with torch.inference_mode():
            partial = self.model(torch.from_numpy(mels)).numpy()
        return _l2(partial.mean(axis=0))


# ----------------------------------------------------------------------------------------------------
# Other embedders by path


class OnnxEmbedder:
    """An ONNX model ``wav [1, T] float32 @16 kHz -> [1, D]``."""

    sample_rate = EMBED_SR

    def __init__(self, path: str | os.PathLike) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingDependencyError(
                "ONNX speaker models need onnxruntime: pip install 'speechlm[eval]'"
            ) from exc
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(f"cannot load ONNX speaker model {path}: {exc}") from exc
        self.input_name = self.session.get_inputs()[0].name
        self.name = f"onnx:{Path(path).name}"

    def embed(self, wav: np.ndarray) -> np.ndarray:
        x = np.asarray(wav, dtype=np.float32).ravel()[None, :]
        return _l2(self.session.run(None, {self.input_name: x})[0])


class TorchScriptEmbedder:
    """A TorchScript module ``wav [1, T] @16 kHz -> [1, D]``."""

    sample_rate = EMBED_SR

    def __init__(self, path: str | os.PathLike) -> None:
        import torch

        try:
            self.module = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(f"{path} is not a TorchScript speaker model: {exc}") from exc
        self.name = f"torchscript:{Path(path).name}"

    def embed(self, wav: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.asarray(wav, dtype=np.float32).ravel()[None, :])
        with torch.inference_mode():
            return _l2(self.module(x).numpy())


@functools.lru_cache(maxsize=4)
def load_embedder(path: str | None = None) -> SpeakerEmbedder:
    """The speaker embedder for ``path`` (None = resemblyzer's shipped encoder), loaded once per process."""
    if path is None:
        return ResemblyzerEmbedder()
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"speaker model {p} not found")
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        return OnnxEmbedder(p)
    if suffix == ".safetensors":
        return ResemblyzerEmbedder(p)
    if suffix in (".pt", ".ts", ".jit"):
        return TorchScriptEmbedder(p)
    raise CheckpointError(
        f"unknown speaker model type {p.name}: use .onnx, .safetensors (GE2E) or TorchScript .pt"
    )


def speaker_similarity(
    a: np.ndarray, b: np.ndarray, sr: int, embedder: SpeakerEmbedder | None = None
) -> float:
    """Cosine similarity of the speaker embeddings of ``a [T]`` and ``b [T]`` (both at ``sr``)."""
    from speechlm.audio.io import resample

    emb = embedder or load_embedder(None)
    if sr != emb.sample_rate:
        a = resample(np.asarray(a, dtype=np.float32), sr, emb.sample_rate)
        b = resample(np.asarray(b, dtype=np.float32), sr, emb.sample_rate)
    return cosine_similarity(emb.embed(a), emb.embed(b))
