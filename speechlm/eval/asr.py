"""Speech recognition as an external judge for generated speech, behind one small interface.

A :class:`Transcriber` turns a mono 16 kHz waveform into text. Backends, chosen by name (``--asr``):

- ``pocketsphinx``: CMU PocketSphinx 5 with the en-US acoustic model, language model and dictionary that ship
  in its PyPI wheel. English only: other languages raise :class:`~speechlm.errors.SpeechLMError`. Usable on
  natural-sounding voices (flite/festival, real read speech), not on espeak-ng's formant voices.
- ``whisper``: a faster-whisper (CTranslate2) model directory the user points at with ``--asr-model DIR``.
  Never downloaded: the hub is forced offline and only local files are read; a missing package or folder is a
  one-line error.
- ``ctc``: the project's own CTC recogniser (:mod:`speechlm.asr.transcriber`); ``--asr-model DIR`` picks a
  checkpoint folder, default the shipped one.

Other code may add backends with :func:`register_backend(name, factory)` where
``factory(model_path: str | None, lang: str) -> Transcriber``. Transcribers are cached per process.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from speechlm.errors import CheckpointError, MissingDependencyError, SpeechLMError

ASR_SR = 16000


@runtime_checkable
class Transcriber(Protocol):
    """Speech to text."""

    name: str

    def transcribe(self, wav: np.ndarray) -> str:
        """``wav [T]`` float mono at 16 kHz -> the recognised text (unnormalised; may be empty)."""
        ...


Factory = Callable[[str | None, str], Transcriber]
_BACKENDS: dict[str, Factory] = {}


@functools.lru_cache(maxsize=4)
def _cached(name: str, model_path: str | None, lang: str) -> Transcriber:
    return _BACKENDS[name](model_path, lang)


def register_backend(name: str, factory: Factory) -> None:
    """Make ``get_transcriber(name, ...)`` call ``factory(model_path, lang)``."""
    _BACKENDS[name] = factory
    _cached.cache_clear()


def available_backends() -> list[str]:
    """Registered backend names."""
    return sorted(_BACKENDS)


def _is_english(lang: str) -> bool:
    return lang.lower().replace("_", "-").split("-")[0] in ("en", "eng")


class PocketsphinxTranscriber:
    """PocketSphinx 5 with its shipped en-US model (continuous decoding of the whole utterance)."""

    name = "pocketsphinx"

    def __init__(self, lang: str = "en") -> None:
        if not _is_english(lang):
            raise SpeechLMError(
                f"the pocketsphinx judge only has an English (en-US) model, not lang {lang!r}; "
                "use --asr ctc or --asr whisper --asr-model DIR"
            )
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:
            raise MissingDependencyError(
                "the pocketsphinx judge needs pocketsphinx: pip install --no-deps pocketsphinx"
            ) from exc
        self.decoder = Decoder(samprate=ASR_SR, loglevel="FATAL")

    def transcribe(self, wav: np.ndarray) -> str:
        x = np.asarray(wav, dtype=np.float32).ravel()
        if x.size == 0:
            return ""
        pcm = (np.clip(x, -1.0, 1.0) * 32767.0).round().astype("<i2")
        d = self.decoder
        d.start_utt()
        d.process_raw(pcm.tobytes(), full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr if hyp is not None else ""


class WhisperTranscriber:
    """faster-whisper on a local CTranslate2 model folder (CPU, int8), offline only."""

    name = "whisper"

    def __init__(self, model_path: str | None, lang: str = "en") -> None:
        if not model_path:
            raise SpeechLMError(
                "--asr whisper needs --asr-model DIR (a local faster-whisper model folder); "
                "models are never downloaded"
            )
        path = Path(model_path)
        if not path.is_dir() or not (path / "model.bin").is_file():
            raise CheckpointError(f"{path} is not a faster-whisper model folder (no model.bin)")
        os.environ["HF_HUB_OFFLINE"] = "1"  # belt and braces: nothing below may reach the hub
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise MissingDependencyError(
                "--asr whisper needs faster-whisper: pip install faster-whisper"
            ) from exc
        self.model = WhisperModel(
            str(path), device="cpu", compute_type="int8", cpu_threads=1, local_files_only=True
        )
        self.lang = lang.lower().replace("_", "-").split("-")[0]

    def transcribe(self, wav: np.ndarray) -> str:
        x = np.asarray(wav, dtype=np.float32).ravel()
        if x.size == 0:
            return ""
        segments, _ = self.model.transcribe(x, language=self.lang, beam_size=5, vad_filter=False)
        return " ".join(s.text.strip() for s in segments).strip()


register_backend("pocketsphinx", lambda model_path, lang: PocketsphinxTranscriber(lang))
register_backend("whisper", lambda model_path, lang: WhisperTranscriber(model_path, lang))


def _ctc_factory(model_path: str | None, lang: str) -> Transcriber:
    try:
        from speechlm.asr.transcriber import get_transcriber as get_ctc
    except ImportError as exc:
        raise MissingDependencyError(f"the CTC recogniser (speechlm.asr) cannot be imported: {exc}") from exc
    return get_ctc(model_path)


register_backend("ctc", _ctc_factory)


def get_transcriber(
    name: str = "pocketsphinx", model_path: str | None = None, lang: str = "en"
) -> Transcriber:
    """The transcriber for backend ``name`` (loaded once per process per (name, model, lang))."""
    if name not in _BACKENDS:
        raise SpeechLMError(f"unknown ASR backend {name!r}; choose from {', '.join(available_backends())}")
    return _cached(name, model_path, lang)


def transcribe(
    wav: np.ndarray, sr: int, backend: str = "pocketsphinx", model_path: str | None = None, lang: str = "en"
) -> str:
    """Transcribe ``wav [T]`` at ``sr`` (resampled to 16 kHz) with the named backend."""
    from speechlm.audio.io import resample

    x = np.asarray(wav, dtype=np.float32).ravel()
    if sr != ASR_SR:
        x = resample(x, sr, ASR_SR)
    return get_transcriber(backend, model_path, lang).transcribe(x)
