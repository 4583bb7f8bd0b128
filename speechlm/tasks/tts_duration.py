"""TTS with the duration-based acoustic model: ``DurationTTS.load().generate("text")`` (the default ``speechlm tts``).

Text -> sentences -> TTS input tokens (:mod:`speechlm.text.tts_input`) -> the acoustic model (durations, pitch
and frames, non-autoregressive) -> source-filter parameters -> audio. The alignment is explicit (every token
gets a number of frames), so words cannot be skipped or repeated and nothing runs to a length cap.

The predicted parameters are also quantised into ordinary ``codec_sf`` tokens (``TTSResult.extra["codes"]``).
By default the audio is synthesised from the parameters themselves, before the quantiser: the envelope
codebooks cost intelligibility the model does not lose (Whisper-base WER 0.064 vs 0.086 through the tokens on
40 unseen sentences; docs/experiments/2026-12-04-tts-parameters.md). ``via_tokens=True`` decodes the tokens
instead, as a codec LM's output would be heard.

A voice prompt (1-20 s of speech, no transcript needed) sets the voice: :class:`VoiceShift` moves the model's F0
range and mean envelope to the prompt's. With ``adapt_steps`` > 0 (:data:`ADAPT_STEPS` is the measured setting)
the model's decoder is also adapted to the prompt itself (:mod:`speechlm.lm.acoustic_adapt`: optimiser steps on
the prompt's frames, aligned to its transcript: ``prompt_text``, or what :attr:`DurationTTS.hear` hears, which
the CLI sets to Whisper base): closer to the speaker, less clear (docs/tts.md), so not the default.
:meth:`DurationTTS.stream` yields audio blocks while later sentences are still being
made (first audio after one sentence's model pass and one codec block).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from speechlm.audio.limiter import StreamLimiter, limit_peak
from speechlm.lm.acoustic_api import AcousticTTSModel, VoiceShift, VoiceStats
from speechlm.tasks.tts import (
    TTSInputError,
    TTSResult,
    check_prompt_audio,
    fade_join,
    read_prompt,
    split_sentences,
)

MAX_TOKENS = 250  # a longer sentence is cut at clause punctuation, else at word boundaries
STREAM_BLOCK = 10  # codec frames (200 ms) per streamed block
ADAPT_STEPS = 100  # decoder steps on a prompt when adaptation is asked for (docs/tts.md, "A voice from a prompt")
ADAPT_LR = 1e-4
ADAPT_BLEND = 0.7  # how far the adapted decoder's frames move the shifted model's (1: all the way)
VOICE_CACHE = 8  # prompts whose adapted voice is kept
MULTILINGUAL = "tts_multilingual"  # the shipped model for the languages the default (English) one does not speak
MULTILINGUAL_LANGS = ("cs", "es", "fr", "it", "nl")
# A multi-speaker model's voices are brought to one level: the mean voiced c0 (log envelope gain) of the English
# default's voice (tts_duration's voice_stats), so no voice is louder than the default or clips
LEVEL_C0 = -11.354

log = logging.getLogger(__name__)


@dataclass
class PromptVoice:
    """A prompt's voice: the shift from the model's voice (None: the model's own), the decoder adapted to it
    (None: not adapted), the transcript it was adapted on, and the seconds it took to make; ``whisper``: every
    frame unvoiced (a style description's whisper)."""

    shift: VoiceShift | None
    am: AcousticTTSModel | None = None
    transcript: str | None = None
    seconds: float = 0.0
    blend: float = ADAPT_BLEND  # frames = shifted + blend * (adapted - shifted)
    whisper: bool = False


class DurationTTS:
    """An acoustic model + the source-filter codec it was trained for. Build with :meth:`load`."""

    def __init__(self, am: AcousticTTSModel, codec, via_tokens: bool = False) -> None:
        from speechlm.errors import CheckpointError
        from speechlm.text.symbols import default_symbols

        if am.tokenizer and am.tokenizer != codec.tokenizer_id:
            raise CheckpointError(f"{am.path} was trained for codec {am.tokenizer}, but {codec.tokenizer_id} is "
                                  "loaded; use that codec")
        self.symbols = default_symbols()
        if am.symbols and am.symbols != self.symbols.hash:
            raise CheckpointError(f"{am.path}: trained with another phoneme table ({am.symbols})")
        self.am, self.codec, self.via_tokens = am, codec, via_tokens
        self._voices: OrderedDict[tuple, PromptVoice] = OrderedDict()
        # hears a prompt's transcript for adaptation when none is given: (wav16 [T], lang) -> text; the caller
        # sets it (the CLI: Whisper base), since tasks do not load the evaluation models themselves
        self.hear: Callable[[np.ndarray, str], str] | None = None

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, codec: str | os.PathLike | None = None,
             via_tokens: bool = False) -> DurationTTS:
        """``via_tokens``: make the audio from the quantised codec tokens instead of the predicted parameters."""
        from speechlm.tokenizers.codec.api import Codec

        am = AcousticTTSModel.load(model)
        return cls(am, Codec.load(codec) if codec is not None else Codec.for_tokenizer(am.tokenizer), via_tokens)

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    # --- inputs -----------------------------------------------------------------------------------
    def text_chunks(self, text: str, lang: str = "en", max_chars: int = 2000) -> list[tuple[str, list[int]]]:
        """text -> [(sentence, token ids)]; refuses empty, unreadable or over-long text and other languages."""
        from speechlm.text.g2p import resolve_lang
        from speechlm.text.tts_input import readable, token_ids, tts_tokens

        langs = self.am.langs
        if resolve_lang(lang) not in langs:
            hint = (f"; the shipped {MULTILINGUAL} speaks {', '.join(MULTILINGUAL_LANGS)}"
                    if resolve_lang(lang) in MULTILINGUAL_LANGS else "")
            raise TTSInputError(f"this TTS model speaks {', '.join(langs)} only, not {lang!r}{hint} (the codec LM, "
                                "--model lm_default, takes any corpus language, much less intelligibly)")
        if not isinstance(text, str) or not text.strip():
            raise TTSInputError("the text is empty")
        if len(text) > max_chars:
            raise TTSInputError(f"the text has {len(text)} characters; the limit is {max_chars} (split it, or "
                                "raise the limit with --max-chars)")
        out = []
        for sent in split_sentences(text):
            toks = tts_tokens(sent, lang)
            if not readable(toks):
                continue
            for piece in _split_tokens(toks, MAX_TOKENS):
                out.append((sent, token_ids(piece, self.symbols)))
        if not out:
            raise TTSInputError(f"the text {text[:60]!r} has nothing to read aloud (only punctuation/symbols?)")
        return out

    def speakers(self, lang: str | None = None) -> list[str]:
        """A multi-speaker model's training voices (those of ``lang`` only, if given), sorted; [] for a one-voice
        model."""
        extra = self.am.meta.get("extra") or {}
        if not self.am.config.n_speakers:
            return []
        langs = extra.get("speaker_langs") or {}
        return sorted(n for n in extra.get("speakers") or [] if lang is None or langs.get(n) == lang)

    def default_speaker(self, lang: str) -> str | None:
        """The name of the training voice a multi-speaker model speaks ``lang`` in by default (None: one voice)."""
        i = self.am.speaker_of(lang)
        return None if i is None else (self.am.meta.get("extra") or {})["speakers"][i]

    def speaker_index(self, name: str, lang: str) -> int:
        """The index of training voice ``name`` (or the one voice of ``lang`` whose name contains it, case
        ignored); a one-line :class:`TTSInputError` for a one-voice model, an unknown name, or another language's
        voice."""
        from speechlm.text.g2p import resolve_lang

        lang = resolve_lang(lang)
        if not self.am.config.n_speakers:
            raise TTSInputError(f"this model has one voice; --speaker chooses among {MULTILINGUAL}'s voices")
        names = self.speakers(lang)
        found = [name] if name in names else [n for n in names if name.lower() in n.lower()]
        extra = self.am.meta.get("extra") or {}
        if len(found) != 1:
            other = (extra.get("speaker_langs") or {}).get(name)
            where = f" (a {other} voice)" if other else ""
            what = "matches several" if found else "is not one"
            raise TTSInputError(f"speaker {name!r}{where} {what} of this model's {lang} voices; list them with "
                                f"`speechlm tts --list-speakers --lang {lang}`")
        return list(extra["speakers"]).index(found[0])

    def voice_shift(self, wav: np.ndarray, sr: int, lang: str = "en") -> VoiceShift:
        """A prompt (``wav [T]`` or ``[C, T]`` at ``sr``) -> the shift from the model's voice (for ``lang``) to
        it."""
        from speechlm.audio.io import resample
        from speechlm.lm.acoustic_data import frame_features

        wav = check_prompt_audio(wav, sr)
        wav16 = resample(wav, sr, 16000) if sr != 16000 else wav
        feat = frame_features(np.ascontiguousarray(wav16, np.float64), analysis=self.am.analysis)
        m = self.am.config.n_mcep
        if (feat[:, m + 1] > 0.5).sum() < 10:
            raise TTSInputError("the prompt has almost no voiced speech (under 0.2 s): give a recording of a voice")
        return VoiceShift.between(self.am.voice_of(lang), VoiceStats.of_features(feat, m))

    def voice(self, prompt: str | os.PathLike | np.ndarray, prompt_sr: int | None = None,
              prompt_text: str | None = None, lang: str = "en", adapt_steps: int = 0,
              adapt_blend: float = ADAPT_BLEND) -> PromptVoice:
        """A prompt (a file, or ``wav [T]`` at ``prompt_sr``) -> its :class:`PromptVoice`: the shift, and with
        ``adapt_steps`` > 0 (e.g. :data:`ADAPT_STEPS`) the decoder adapted to it on ``prompt_text`` (default: what
        :attr:`hear` hears in it; when that is nothing readable, the shift alone, with a warning), its frames
        taken ``adapt_blend`` of the way from the shifted model's (:data:`ADAPT_BLEND`). The last
        :data:`VOICE_CACHE` voices are kept, so one prompt is adapted once."""
        if not 0.0 <= adapt_blend <= 1.0:
            raise TTSInputError(f"adapt_blend must be between 0 and 1, got {adapt_blend!r}")
        from speechlm.audio.io import resample
        from speechlm.lm.acoustic_adapt import AdaptConfig, adapt
        from speechlm.lm.acoustic_data import frame_features

        t0 = time.perf_counter()
        wav, sr = read_prompt(prompt, prompt_sr)
        wav = check_prompt_audio(wav, sr)
        key = (hashlib.sha1(np.ascontiguousarray(wav, np.float32).tobytes()).hexdigest(), sr, prompt_text,
               lang, adapt_steps, adapt_blend)
        if key in self._voices:
            self._voices.move_to_end(key)
            return self._voices[key]
        shift = self.voice_shift(wav, sr, lang)
        voice = PromptVoice(shift)
        if adapt_steps > 0 and self.am.config.n_speakers:
            raise TTSInputError("adapting to a prompt is for one-voice models (the default English one); this model "
                                "has several voices: the prompt's voice is shifted only")
        if adapt_steps > 0:
            wav16 = resample(wav, sr, 16000) if sr != 16000 else wav
            if prompt_text is None and self.hear is None:
                raise TTSInputError("adapting to a prompt needs its transcript: give prompt_text (--prompt-text), "
                                    "or set DurationTTS.hear to a recogniser")
            text = prompt_text if prompt_text is not None else self.hear(wav16, lang)
            ids = self._prompt_ids(text, lang, given=prompt_text is not None)
            if ids is not None:
                feat = frame_features(np.ascontiguousarray(wav16, np.float64), self.am.sub_frames, self.am.analysis)
                res = adapt(self.am, ids, feat, shift, AdaptConfig(steps=adapt_steps, lr=ADAPT_LR))
                voice = PromptVoice(shift, res.am, text, blend=adapt_blend)
        voice.seconds = time.perf_counter() - t0
        self._voices[key] = voice
        while len(self._voices) > VOICE_CACHE:
            self._voices.popitem(last=False)
        return voice

    def _prompt_ids(self, text: str, lang: str, given: bool) -> list[int] | None:
        from speechlm.text.tts_input import readable, token_ids, tts_tokens

        toks = tts_tokens(text, lang) if text.strip() else []
        if not toks or not readable(toks):
            if given:
                raise TTSInputError(f"the prompt's transcript {text[:60]!r} has nothing to read")
            log.warning("nothing readable heard in the prompt: the voice is shifted, not adapted")
            return None
        return token_ids(toks, self.symbols)

    def _voice(self, prompt, prompt_sr: int | None, prompt_text: str | None = None, lang: str = "en",
               adapt_steps: int = 0) -> PromptVoice | None:
        if prompt is None or isinstance(prompt, PromptVoice):
            return prompt
        if isinstance(prompt, VoiceShift):
            return PromptVoice(prompt)
        return self.voice(prompt, prompt_sr, prompt_text, lang, adapt_steps)

    def features(self, ids: list[int], pace: float = 1.0, voice: PromptVoice | None = None, lang: str = "en",
                 speaker: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Token ids -> (features ``[T * S, F]``, codec frames per token ``[N]``) in ``voice`` (None: the
        model's own for ``lang``, or a multi-speaker model's training ``speaker``)."""
        speaker = self.am.speaker_of(lang) if speaker is None else speaker
        if voice is None or voice.am is None or voice.blend >= 1.0:
            feat, dur = (self.am if voice is None else voice.am or self.am).features(
                ids, pace, None if voice is None else voice.shift, speaker)
            if speaker is not None:  # the voice at the default's level (LEVEL_C0)
                feat[:, 0] += LEVEL_C0 - self.am.speaker_stats(speaker).mcep_mean[0]
        else:
            base, dur = self.am.features(ids, pace, voice.shift)  # the same durations: the predictors are frozen
            feat = base + voice.blend * (voice.am.features(ids, pace, voice.shift)[0] - base)
        if voice is not None and voice.whisper:  # no voicing: WORLD excites every frame with noise
            feat[:, self.am.config.n_mcep + 1] = 0.0
        return feat, dur

    # --- generation -------------------------------------------------------------------------------
    def render(self, feat: np.ndarray, block_tokens: int | None = None
               ) -> tuple[np.ndarray, Iterator[np.ndarray]]:
        """Predicted features ``[T * S, F]`` -> (their codec codes ``[K, T]``, an iterator of float32 audio blocks
        ``T * hop`` samples in all), synthesised from the parameters or, with ``via_tokens``, from the codes;
        in blocks of ``block_tokens`` frames (default: the codec's offline block, as :meth:`generate` uses)."""
        extra = () if block_tokens is None else (block_tokens,)
        codes = self.am.to_codes(feat, self.codec)
        n = codes.shape[1] * self.codec.hop
        if self.via_tokens:
            dec = self.codec.stream_decoder(*extra)
            return codes, itertools.chain(dec.push(codes), dec.flush(n))
        fdec = self.codec.frame_stream_decoder(*extra, sub_frames=self.am.sub_frames)
        return codes, itertools.chain(fdec.push(self.am.to_frames(feat)), fdec.flush(n))

    def generate(self, text: str, prompt: str | os.PathLike | np.ndarray | VoiceShift | None = None,
                 prompt_text: str | None = None, lang: str = "en", pace: float = 1.0, prompt_sr: int | None = None,
                 max_chars: int = 2000, adapt_steps: int = 0, speaker: str | None = None,
                 description: str | None = None, **_sampling) -> TTSResult:
        """Speak ``text`` (in the voice of ``prompt`` if given: a file, a waveform with ``prompt_sr``, or a
        :meth:`voice`). ``pace`` > 1 speaks slower. ``adapt_steps`` > 0 adapts the decoder to the prompt on
        ``prompt_text`` (default: what :attr:`hear` hears); see :meth:`voice`. ``speaker``: a multi-speaker
        model's training voice for ``lang`` (:meth:`speakers`) instead of the language's default; not with a
        prompt. ``description``: a style description (:mod:`speechlm.tasks.tts_style`: gender, pitch, pitch
        range, pace, a whisper, noise, room; with a prompt or speaker not the first three). The codec LM's
        sampling options are accepted and not needed (the model is deterministic)."""
        _check_pace(pace)
        t0 = time.perf_counter()
        chunks = self.text_chunks(text, lang, max_chars)
        style = self._read_style(description, prompt, speaker, pace)
        spk = self._speaker(speaker, prompt, lang)
        voice = self._voice(prompt, prompt_sr, prompt_text, lang, adapt_steps)
        voice, pace, room = self.apply_style(style, chunks, voice, pace, lang, spk)
        codes, pieces = [], []
        for _, ids in chunks:
            c, blocks = self.render(self.features(ids, pace, voice, lang, spk)[0])
            codes.append(c)
            pieces.append(np.concatenate(list(blocks)))
        wav = fade_join(pieces, self.sample_rate)
        if room is not None:
            wav = room(wav)
        wav = limit_peak(wav)  # a loud training voice (--speaker) is scaled down whole rather than clipped
        return TTSResult(wav, self.sample_rate, [s for s, _ in chunks], [c.shape[1] for c in codes],
                         [False] * len(chunks), time.perf_counter() - t0,
                         extra={"codes": codes, "model": self.am.model_id,
                                "decoded_from": "tokens" if self.via_tokens else "parameters",
                                "voice_adapted": bool(voice is not None and voice.am is not None),
                                "prompt_transcript": voice.transcript if voice is not None else None,
                                "style": dict(style.tags) if style is not None else None})

    def stream(self, text: str, prompt: str | os.PathLike | np.ndarray | VoiceShift | None = None,
               lang: str = "en", pace: float = 1.0, prompt_sr: int | None = None, max_chars: int = 2000,
               block_tokens: int = STREAM_BLOCK, prompt_text: str | None = None,
               adapt_steps: int = 0, speaker: str | None = None, description: str | None = None
               ) -> Iterator[np.ndarray]:
        """Yield float32 audio blocks as they are made; joined they are the audio of :meth:`generate` up to the
        fades at sentence joins and its peak limit, which a stream applies as it goes (:class:`StreamLimiter`).
        Input is validated (and a prompt's voice made) before the first block."""
        _check_pace(pace)
        chunks = self.text_chunks(text, lang, max_chars)
        style = self._read_style(description, prompt, speaker, pace)
        spk = self._speaker(speaker, prompt, lang)
        voice = self._voice(prompt, prompt_sr, prompt_text, lang, adapt_steps)
        voice, pace, room = self.apply_style(style, chunks, voice, pace, lang, spk)
        return self.stream_chunks(chunks, voice, pace, block_tokens, lang, spk, room)

    def _read_style(self, description: str | None, prompt, speaker: str | None, pace: float):
        """``description`` -> its :class:`~speechlm.text.style.Style` (None without one), refusing what cannot
        go with the other options before anything is made (:func:`~speechlm.tasks.tts_style.check_style`)."""
        if description is None:
            return None
        from speechlm.tasks.tts_style import check_style

        style = check_style(description, "prompt" if prompt is not None else "speaker" if speaker is not None
                            else None, pace)
        if style.unknown:
            log.warning("style description: %s not understood (ignored)", ", ".join(style.unknown))
        return style

    def apply_style(self, style, chunks: list[tuple[str, list[int]]], voice: PromptVoice | None, pace: float,
                    lang: str = "en", speaker: int | None = None):
        """(voice, pace, room) for :meth:`stream_chunks` with ``style`` (a checked
        :class:`~speechlm.text.style.Style`, :func:`~speechlm.tasks.tts_style.check_style`) applied to the
        ``chunks`` of :meth:`text_chunks`; as they were, and no room, for None."""
        if style is None:
            return voice, pace, None
        from speechlm.tasks.tts_style import Room, f0_span_st, style_pace, style_shift
        from speechlm.text.symbols import SPECIALS

        tags = style.tags
        # the model's own frames for the text (tens of ms a sentence): the F0 span a range scales, the durations
        # a pace rescales (a voice shift changes neither the durations nor, in semitones, the span's shape)
        own = ([self.features(ids, 1.0, voice, lang, speaker) for _, ids in chunks]
               if "range_bin" in tags or "rate_bin" in tags else [])
        span = None
        if "range_bin" in tags:
            m = self.am.config.n_mcep
            span = f0_span_st(np.concatenate([f[f[:, m + 1] > 0.5, m] for f, _ in own]))
        shift = style_shift(self.am.voice_of(lang), style, span)
        if shift is not None:
            voice = PromptVoice(shift)
        if tags.get("phonation") == "whispered":
            voice = PromptVoice(None, whisper=True) if voice is None else dataclasses.replace(voice, whisper=True)
        if "rate_bin" in tags:  # phones per second of the text at the model's own pace, as the tagger counts
            from speechlm.tasks.tts import GAP_S
            from speechlm.text.g2p import count_phones

            frames = 0  # from the first to the last phone of every chunk, plus the pauses between chunks
            for (_, ids), (_, dur) in zip(chunks, own, strict=True):
                where = [k for k, i in enumerate(ids) if len(SPECIALS) <= i < len(self.symbols)]
                frames += int(dur[where[0] : where[-1] + 1].sum()) if where else 0
            phones = sum(count_phones(sent, lang) for sent in dict.fromkeys(sent for sent, _ in chunks))
            speech_s = frames * self.codec.hop / self.sample_rate + GAP_S * (len(chunks) - 1)
            pace = style_pace(style, phones, speech_s)
        return voice, pace, Room.for_style(style, self.sample_rate)

    def _speaker(self, name: str | None, prompt, lang: str) -> int | None:
        if name is None:
            return None
        if prompt is not None:
            raise TTSInputError("--speaker chooses one of the model's voices; a --prompt sets the voice instead: "
                                "give one or the other")
        return self.speaker_index(name, lang)

    def stream_chunks(self, chunks: list[tuple[str, list[int]]], voice: PromptVoice | VoiceShift | None = None,
                      pace: float = 1.0, block_tokens: int = STREAM_BLOCK, lang: str = "en",
                      speaker: int | None = None, room: Callable[[np.ndarray], np.ndarray] | None = None
                      ) -> Iterator[np.ndarray]:
        """:meth:`stream` of chunks already made by :meth:`text_chunks` (the server validates first); ``room``:
        a style's :class:`~speechlm.tasks.tts_style.Room`, applied to every block (pauses included)."""
        from speechlm.tasks.tts import FADE_S, GAP_S

        gap = np.zeros(int(GAP_S * self.sample_rate), np.float32)
        n_fade = int(FADE_S * self.sample_rate)
        voice = PromptVoice(voice) if isinstance(voice, VoiceShift) else voice
        limiter = StreamLimiter(self.sample_rate)
        for i, (_, ids) in enumerate(chunks):
            _, blocks = self.render(self.features(ids, pace, voice, lang, speaker)[0], block_tokens)
            if i:
                yield limiter(room(gap)) if room is not None else gap
            first = True
            for b in blocks:
                if first and n_fade:
                    b = b.copy()
                    m = min(n_fade, len(b))
                    b[:m] *= np.linspace(0.0, 1.0, m, dtype=np.float32)
                first = False
                yield limiter(room(b) if room is not None else b)


def default_model_for(model: str | os.PathLike | None, lang: str) -> str | os.PathLike | None:
    """``model`` unless it is the default (None/``"default"``) and ``lang`` is one that the shipped
    :data:`MULTILINGUAL` model speaks and the English default does not: then that model's name."""
    from speechlm.errors import SpeechLMError
    from speechlm.text.g2p import resolve_lang

    try:
        code = resolve_lang(lang)
    except SpeechLMError:  # an unknown language is refused later, by the model, with its own message
        return model
    if model not in (None, "default") or code not in MULTILINGUAL_LANGS:
        return model
    from speechlm.utils.checkpoint import ASSETS, MODEL_FILE

    return MULTILINGUAL if (ASSETS / MULTILINGUAL / MODEL_FILE).is_file() else model


def _check_pace(pace: float) -> None:
    if not (isinstance(pace, int | float) and 0.25 <= pace <= 4.0):
        raise TTSInputError(f"pace must be between 0.25 and 4 (1 = the model's own), got {pace!r}")


def _split_tokens(tokens: list[str], limit: int) -> list[list[str]]:
    """Cut a token list longer than ``limit`` at clause punctuation, else at the last word boundary (each piece
    gets ``<bos>``/``<eos>`` and ends with punctuation)."""
    from speechlm.text.symbols import BOS, EOS, WORD
    from speechlm.text.tts_input import PUNCTUATION

    if len(tokens) <= limit:
        return [tokens]
    pieces: list[list[str]] = []
    cur: list[str] = []
    for t in tokens[1:-1]:
        cur.append(t)
        if (t in PUNCTUATION and len(cur) > limit // 3) or len(cur) >= limit - 3:
            if t not in PUNCTUATION and WORD in cur:
                k = len(cur) - 1 - cur[::-1].index(WORD)
                pieces.append(cur[:k])
                cur = cur[k + 1 :]
            else:
                pieces.append(cur)
                cur = []
    pieces.append(cur)
    out = []
    for p in pieces:
        while p and p[0] == WORD:
            p = p[1:]
        while p and p[-1] == WORD:
            p = p[:-1]
        if p:
            out.append([BOS, *p, *([] if p[-1] in PUNCTUATION else [","]), EOS])
    return out
