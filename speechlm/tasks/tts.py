"""Zero-shot TTS with the codec LM: ``TTS.load().generate("text", prompt="ref.wav", prompt_text="...")``.

The prompt's codec tokens are the audio context and its transcript's phonemes precede the target's, so the
LM continues the prompt voice (VoiceCraft: one span at the end; VALL-E: AR + NAR). Without a prompt the
model's shipped default voice (``prompt.npz`` + ``prompt.json`` beside the weights) is used, or, when the model
has none, no audio context at all.

Long text is split at sentence boundaries (and over-long sentences at word boundaries), the pieces are
generated as one batch with the same prompt, and joined with short fades and pauses (no clicks).

Bad input: empty text or text with nothing to read, text over ``max_chars`` (default 2000), a prompt shorter
than 1 s or longer than 20 s, a silent prompt, a prompt without transcript, or a transcript that does not match
the prompt audio (speaking rate or forced-alignment score implausible) raise :class:`TTSInputError`.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from speechlm.audio.limiter import limit_peak
from speechlm.errors import SpeechLMError

if TYPE_CHECKING:
    from speechlm.tokenizers.codec.api import DecoderState

MIN_PROMPT_S, MAX_PROMPT_S = 1.0, 20.0
SILENT_DBFS = -55.0
MAX_PHONES_PER_CHUNK = 120
# A generated chunk with fewer than MIN_ACTIVE of its 20 ms frames above ACTIVE_DBFS is (near) silence: drawn again.
ACTIVE_DBFS, MIN_ACTIVE = -40.0, 0.1
MIN_LENGTH = 0.8  # default floor on a chunk's length, as a fraction of the length at the prompt's pace
# Forced-alignment score minus the unconstrained (best phone per frame) score, per frame: matching transcripts
# gave -0.02..-0.42 on synth_v2 test prompts and -0.38..-0.72 on real telephone prompts; transcripts of other
# sentences gave -0.38..-7.6 (2/3 of them below -1.0). A weak check: it catches clearly wrong transcripts.
MIN_ALIGN_GAP = -1.0
PHONE_RATE = (2.0, 40.0)  # phones per second of speech that a matching transcript can have
FADE_S, GAP_S = 0.01, 0.15


class TTSInputError(SpeechLMError):
    """Text or prompt that cannot be synthesised."""


@dataclass
class Prompt:
    """A voice prompt: codes ``[K, P]`` of the model's codec, the transcript's phoneme ids, its language."""

    codes: torch.Tensor
    phones: list[int]
    lang: str

    def frames_per_phone(self, reference: float) -> float:
        """The prompt's pace (codec frames per phoneme symbol, pauses included), kept within 0.5-2x
        ``reference`` (the training data's mean) so a prompt with long silences cannot set an absurd pace."""
        if not self.phones or self.codes.shape[1] == 0:
            return reference
        return float(np.clip(self.codes.shape[1] / len(self.phones), 0.5 * reference, 2.0 * reference))


@dataclass
class TTSResult:
    """wav ``[T]`` float32 at ``sample_rate``; per-chunk texts, generated frames and cap hits; timings."""

    wav: np.ndarray
    sample_rate: int
    chunks: list[str]
    frames: list[int]
    hit_cap: list[bool]
    seconds: float
    extra: dict = field(default_factory=dict)

    def __iter__(self):
        """``wav, sample_rate = tts.generate(...)`` (like :meth:`Codec.decode`)."""
        return iter((self.wav, self.sample_rate))

    @property
    def duration(self) -> float:
        return len(self.wav) / self.sample_rate

    @property
    def rtf(self) -> float:
        return self.seconds / max(self.duration, 1e-9)


def load_capped(path: str | os.PathLike, max_seconds: float, too_long: Callable[[float], Exception]
                ) -> tuple[np.ndarray, int]:
    """Read a mono file (``wav [T]``, its rate) refusing one longer than ``max_seconds`` from its header,
    before anything is decoded (``too_long(seconds)`` is raised); the decoder is capped too, in case the
    header lies."""
    from speechlm.audio.io import audio_info, load_audio

    info = audio_info(path)
    if info.frames > 0 and info.duration > max_seconds:
        raise too_long(info.duration)
    wav, sr = load_audio(path, max_seconds=max_seconds)
    return wav[0], sr


def load_prompt_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """A voice prompt file -> (``wav [T]``, rate); over :data:`MAX_PROMPT_S` is refused before decoding."""
    return load_capped(path, MAX_PROMPT_S, lambda s: TTSInputError(
        f"the prompt is {s:.1f} s long; give at most {MAX_PROMPT_S:g} s (3-10 s works best)"))


def read_prompt(prompt: str | os.PathLike | np.ndarray, prompt_sr: int | None) -> tuple[np.ndarray, int]:
    """A prompt given as a file (read with its length limit) or as a waveform with its rate -> (wav, rate)."""
    if isinstance(prompt, str | os.PathLike):
        return load_prompt_audio(prompt)
    if prompt_sr is None:
        raise TTSInputError("a waveform prompt needs prompt_sr")
    return np.asarray(prompt, np.float32), prompt_sr


def mono_finite(wav: np.ndarray, what: str, error: type[TTSInputError] = TTSInputError) -> np.ndarray:
    """``[T]`` or ``[C, T]`` -> mono float32 ``[T]``; NaN/Inf samples raise ``error`` naming ``what``."""
    wav = np.asarray(wav, np.float32)
    if wav.ndim == 2:
        wav = wav.mean(0)
    if not np.isfinite(wav).all():
        raise error(f"{what} contains NaN/Inf samples ({int((~np.isfinite(wav)).sum())} of {wav.size})")
    return wav


def check_prompt_audio(wav: np.ndarray, sr: int) -> np.ndarray:
    """A voice prompt ``[T]`` or ``[C, T]`` -> mono float32 ``[T]``; refuses NaN/Inf, a length outside
    :data:`MIN_PROMPT_S`-:data:`MAX_PROMPT_S` and silence (:class:`TTSInputError`)."""
    wav = mono_finite(wav, "the prompt audio")
    dur = len(wav) / sr
    if dur < MIN_PROMPT_S:
        raise TTSInputError(f"the prompt is {dur:.2f} s long; give {MIN_PROMPT_S:g}-{MAX_PROMPT_S:g} s "
                            "(3-10 s works best)")
    if dur > MAX_PROMPT_S:
        raise TTSInputError(f"the prompt is {dur:.1f} s long; give at most {MAX_PROMPT_S:g} s (3-10 s works best)")
    if _rms_dbfs(wav) < SILENT_DBFS:
        raise TTSInputError(f"the prompt is silent ({_rms_dbfs(wav):.0f} dBFS)")
    return wav


def split_sentences(text: str) -> list[str]:
    """Split at sentence-final punctuation followed by space (``. ! ? ; 。 ！ ？``); keeps the punctuation."""
    parts = re.split(r"(?<=[.!?;。！？])\s+", " ".join(text.split()))
    return [p for p in parts if p.strip()]


def active_fraction(wav: np.ndarray, frame: int = 320, floor_dbfs: float = ACTIVE_DBFS) -> float:
    """Fraction of ``frame``-sample frames of ``wav [T]`` whose RMS is above ``floor_dbfs`` (0 for empty)."""
    n = len(wav) // frame
    if n == 0:
        return 0.0
    rms = np.sqrt(np.mean(np.square(wav[: n * frame].reshape(n, frame), dtype=np.float64), axis=1))
    return float(np.mean(20 * np.log10(rms + 1e-12) > floor_dbfs))


def _rms_dbfs(wav: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(wav, dtype=np.float64))) + 1e-12))


def fade_join(pieces: Sequence[np.ndarray], sr: int, fade_s: float = FADE_S, gap_s: float = GAP_S) -> np.ndarray:
    """Join audio pieces ``[t_i]`` with ``fade_s`` fade-in/out each and ``gap_s`` silence between them."""
    n = int(fade_s * sr)
    out = []
    for i, p in enumerate(pieces):
        p = np.asarray(p, np.float32).copy()
        m = min(n, len(p) // 2)
        if m:
            ramp = np.linspace(0.0, 1.0, m, dtype=np.float32)
            p[:m] *= ramp
            p[-m:] *= ramp[::-1]
        if i:
            out.append(np.zeros(int(gap_s * sr), np.float32))
        out.append(p)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def tts_kind(model: str | os.PathLike | None) -> str:
    """``"acoustic"`` (duration-based model), ``"aligned"`` (aligned codec LM, ``speechlm acoustic train-lm``) or
    ``"lm"`` (codec LM) for a model name or folder, from its ``config.json`` only (so callers can check their
    arguments before loading anything)."""
    from speechlm.errors import CheckpointError
    from speechlm.lm.acoustic_api import is_acoustic, resolve_acoustic_dir
    from speechlm.lm.aligned import KIND as ALIGNED
    from speechlm.utils.checkpoint import checkpoint_kind

    try:
        path = resolve_acoustic_dir(model)
    except CheckpointError:
        return "lm"
    if is_acoustic(path):
        return "acoustic"
    return "aligned" if checkpoint_kind(path) == ALIGNED else "lm"


class TTS:
    """A codec LM + its codec. Build with :meth:`load`."""

    def __init__(self, lm, codec, default_prompt: Prompt | None = None) -> None:
        lm.check_codec(codec.tokenizer_id)
        lm.check_symbols()
        self.lm, self.codec, self.default_prompt = lm, codec, default_prompt
        self._warm: tuple[bytes, DecoderState] | None = None  # (prompt codes, the codec decoder's state after them)
        from speechlm.text.symbols import default_symbols

        self.symbols = default_symbols()

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, codec: str | os.PathLike | None = None,
             lang: str | None = None):
        """Load a TTS model and its codec (default: the shipped codec its tokens belong to).

        ``None``/``"default"`` is the shipped duration-based model (``tts_duration``, a
        :class:`~speechlm.tasks.tts_duration.DurationTTS`; English), or with a ``lang`` it does not speak
        the shipped multilingual one (:func:`~speechlm.tasks.tts_duration.default_model_for`); an aligned codec
        LM's run or checkpoint an
        :class:`~speechlm.tasks.tts_aligned.AlignedTTS`; a codec LM (``lm_default``, a folder) gives a
        :class:`TTS`. Both have ``generate(text, prompt=...)`` returning a :class:`TTSResult`."""
        from speechlm.lm.api import CodecLanguageModel
        from speechlm.tokenizers.codec.api import Codec

        if lang is not None:
            from speechlm.tasks.tts_duration import default_model_for

            model = default_model_for(model, lang)
        kind = tts_kind(model)
        if kind == "acoustic":
            from speechlm.tasks.tts_duration import DurationTTS

            return DurationTTS.load(model, codec)
        if kind == "aligned":
            from speechlm.tasks.tts_aligned import AlignedTTS

            return AlignedTTS.load(model, codec)

        lm = CodecLanguageModel.load(model)
        tts = cls(lm, Codec.load(codec) if codec is not None else Codec.for_tokenizer(lm.tokenizer))
        tts.default_prompt = tts._load_default_prompt(lm.path)
        return tts

    def _load_default_prompt(self, path: Path) -> Prompt | None:
        from speechlm.tokenizers.tokens import check_tokenizer, load_tokens

        npz, meta = path / "prompt.npz", path / "prompt.json"
        if not (npz.is_file() and meta.is_file()):
            return None
        tok = load_tokens(npz)
        check_tokenizer(tok, self.codec.tokenizer_id)
        info = json.loads(meta.read_text())
        k = self.lm.config.n_codebooks
        return Prompt(torch.from_numpy(tok.codes[:k].astype(np.int64)), self.symbols.encode(info["phonemes"]),
                      info["lang"])

    @property
    def rep_window(self) -> int:
        """Repetition-aware sampling's window for codebook 0: off (0) when that stream is a source-filter
        codec's F0, which holds its value for many frames by nature; else the sampler's default."""
        from speechlm.lm.sampling import SamplingConfig

        names = getattr(self.codec, "stream_names", None) or [""]
        return 0 if names[0] == "f0" else SamplingConfig.rep_window

    # --- inputs -----------------------------------------------------------------------------------
    def phonemes(self, text: str, lang: str) -> str:
        from speechlm.text.g2p import phonemize
        from speechlm.text.normalize import normalize_text

        return phonemize([normalize_text(text, lang)], lang)[0]

    def text_chunks(self, text: str, lang: str, max_chars: int = 2000) -> list[tuple[str, list[int]]]:
        """text -> [(chunk text, phoneme ids)] (sentences; long ones split at words)."""
        if not isinstance(text, str) or not text.strip():
            raise TTSInputError("the text is empty")
        if len(text) > max_chars:
            raise TTSInputError(f"the text has {len(text)} characters; the limit is {max_chars} (split it, or "
                                "raise the limit with --max-chars)")
        chunks: list[tuple[str, list[int]]] = []
        for sent in split_sentences(text):
            ph = self.phonemes(sent, lang)
            if not ph.strip():
                continue
            words = ph.split(" | ")
            cur: list[str] = []
            for w in words:
                if cur and len(" ".join(cur).split()) + len(w.split()) > MAX_PHONES_PER_CHUNK:
                    chunks.append((sent, self.symbols.encode(" | ".join(cur))))
                    cur = []
                cur.append(w)
            chunks.append((sent, self.symbols.encode(" | ".join(cur))))
        if not chunks:
            raise TTSInputError(f"the text {text[:60]!r} has nothing to read aloud (only punctuation/symbols?)")
        return chunks

    def prepare_prompt(self, wav: np.ndarray, sr: int, text: str | None, lang: str,
                       check_transcript: bool = True) -> Prompt:
        """Validate a prompt (``wav [T]`` or ``[C, T]``) and its transcript; encode it with the codec."""
        from speechlm.audio.io import resample
        from speechlm.tokenizers.base import encode_streams

        wav = check_prompt_audio(wav, sr)
        if not text or not text.strip():
            raise TTSInputError("a prompt needs its transcript (--prompt-text)")
        ph = self.phonemes(text, lang)
        if not ph.strip():
            raise TTSInputError(f"the prompt transcript {text!r} has nothing to read")
        wav16 = resample(wav, sr, self.codec.sample_rate) if sr != self.codec.sample_rate else wav
        if check_transcript:
            self._check_transcript(wav16, text, ph, lang)
        tok = encode_streams(self.codec, wav16, self.codec.sample_rate, self.lm.config.n_codebooks)
        return Prompt(torch.from_numpy(tok.codes.astype(np.int64)), self.symbols.encode(ph), lang)

    def _check_transcript(self, wav16: np.ndarray, text: str, ph: str, lang: str) -> None:
        from speechlm.asr.transcriber import get_transcriber

        n_ph = len([p for p in ph.split() if p != "|"])
        frame = 320
        e = np.array([np.mean(wav16[i : i + frame] ** 2) for i in range(0, len(wav16) - frame + 1, frame)])
        speech_s = float((10 * np.log10(e + 1e-12) > 10 * np.log10(e.max() + 1e-12) - 40).sum() * frame / 16000)
        rate = n_ph / max(speech_s, 1e-3)
        if not PHONE_RATE[0] <= rate <= PHONE_RATE[1]:
            raise TTSInputError(f"the prompt transcript does not fit the audio: {n_ph} phones in {speech_s:.1f} s "
                                f"of speech ({rate:.0f}/s)")
        tr = get_transcriber()
        try:
            al = tr.align(wav16, text, lang, sr=16000, phonemes=ph)
        except SpeechLMError as exc:
            raise TTSInputError(f"the prompt transcript does not fit the audio ({exc})") from None
        free = float(np.mean(np.max(tr.emissions(wav16, 16000).phone, axis=-1)))
        if al.score - free < MIN_ALIGN_GAP:
            raise TTSInputError(f"the prompt transcript does not match the audio (alignment score {al.score:.2f} "
                                f"vs {free:.2f} unconstrained); check --prompt-text, or pass --no-transcript-check")

    # --- generation -------------------------------------------------------------------------------
    def generate(self, text: str, prompt: str | os.PathLike | np.ndarray | Prompt | None = None,
                 prompt_text: str | None = None, lang: str = "en", seed: int = 0, temperature: float = 1.0,
                 top_k: int = 50, top_p: float = 0.9, prompt_sr: int | None = None, max_chars: int = 2000,
                 batch_size: int = 8, check_transcript: bool = True, retries: int = 2,
                 min_length: float = MIN_LENGTH) -> TTSResult:
        """Speak ``text`` in the prompt's voice (a file, a waveform with ``prompt_sr``, or a :class:`Prompt`).

        ``min_length``: no stop token before this fraction of the length the text would take at the prompt's
        pace (the model alone stops too early: its stop probability spikes at pauses).
        A chunk whose draw runs to the length cap (no stop token) is drawn again, up to ``retries`` times."""
        from speechlm.lm.generate import GenRequest, generate_until_stop, generate_valle, max_frames_for, min_frames_for
        from speechlm.lm.sampling import SamplingConfig
        from speechlm.lm.voicecraft import infill_context, unmask
        from speechlm.text.g2p import resolve_lang

        lang = resolve_lang(lang)
        t0 = time.perf_counter()
        chunks = self.text_chunks(text, lang, max_chars)
        if isinstance(prompt, Prompt):
            pr = prompt
        elif prompt is not None:
            wav, sr = read_prompt(prompt, prompt_sr)
            pr = self.prepare_prompt(wav, sr, prompt_text, lang, check_transcript)
        else:
            pr = self.default_prompt
        cfg = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p, rep_window=self.rep_window)
        gen = torch.Generator().manual_seed(int(seed))
        m = self.lm.config
        fpp = self.lm.frames_per_phone
        pace = pr.frames_per_phone(fpp) if pr is not None else fpp
        vocab = m.vocab
        from speechlm.lm.data import text_ids

        sym = self.symbols
        word = [sym.id("|")]
        k = m.n_codebooks
        p_codes = pr.codes if pr is not None else torch.zeros(k, 0, dtype=torch.long)
        p_phones = (pr.phones + word) if pr is not None else []
        lens = [(max_frames_for(len(ph), max(fpp, pace)), min_frames_for(len(ph), pace, min_length))
                for _, ph in chunks]

        def draw(which: list[int]) -> list[tuple[torch.Tensor, bool]]:
            """(codes ``[K, T]``, hit_cap) for the chunks ``which``, batched."""
            out: list[tuple[torch.Tensor, bool]] = []
            if m.layout == "valle":
                if pr is None:
                    raise TTSInputError("the VALL-E layout needs a voice prompt (--prompt)")
                for i in which:
                    ids = text_ids(p_phones + chunks[i][1], lang, m.langs, len(sym), sym.bos_id, sym.eos_id)
                    out.append(generate_valle(self.lm.model, ids, p_codes, vocab, cfg, lens[i][0], gen, lens[i][1],
                                              retries))
                return out
            prefix, forced = infill_context(p_codes, [(p_codes.shape[1], p_codes.shape[1])], vocab)
            reqs = [GenRequest(text_ids(p_phones + chunks[i][1], lang, m.langs, len(sym), sym.bos_id, sym.eos_id),
                               prefix, forced, *lens[i]) for i in which]
            for j in range(0, len(reqs), batch_size):
                for res in generate_until_stop(self.lm.model, reqs[j : j + batch_size], vocab, cfg, gen, retries):
                    full, spans = unmask(res.frames, vocab)
                    out.append((full[:, spans[0][0] : spans[0][1]], res.hit_cap))
            return out

        with torch.inference_mode():
            drawn = draw(list(range(len(chunks))))
            codes_out, hit = [c for c, _ in drawn], [h for _, h in drawn]
            pieces = [self.decode(c, p_codes) for c in codes_out]
            # A chunk drawn as (near) silence is drawn again, up to `retries` times; the most active draw is kept.
            for _ in range(max(0, retries)):
                quiet = [i for i, p in enumerate(pieces) if active_fraction(p) < MIN_ACTIVE]
                if not quiet:
                    break
                for i, (c, h) in zip(quiet, draw(quiet)):
                    piece = self.decode(c, p_codes)
                    if active_fraction(piece) > active_fraction(pieces[i]):
                        codes_out[i], hit[i], pieces[i] = c, h, piece
        wav = limit_peak(fade_join(pieces, self.codec.sample_rate))  # a loud draw is scaled down, never clipped
        return TTSResult(wav, self.codec.sample_rate, [c for c, _ in chunks], [c.shape[1] for c in codes_out], hit,
                         time.perf_counter() - t0)

    def stream(self, text: str, **kwargs) -> Iterator[np.ndarray]:
        """Yield the audio sentence by sentence as each is generated (``generate``'s options), with the pauses
        between them; the codec LM makes a sentence at a time, so this is coarser than the duration model's
        200-ms blocks. Each sentence is peak-limited as ``generate`` limits it (whole, never clipped)."""
        from speechlm.text.g2p import resolve_lang

        self.text_chunks(text, resolve_lang(kwargs.get("lang", "en")), kwargs.get("max_chars", 2000))  # checks
        gap = np.zeros(int(GAP_S * self.codec.sample_rate), np.float32)
        for i, sent in enumerate(s for s in split_sentences(text) if any(c.isalnum() for c in s)):
            if i:
                yield gap
            yield self.generate(sent, **kwargs).wav

    def clear_cache(self) -> None:
        """Forget the decoder state kept for the last prompt (the next call decodes its prompt again)."""
        self._warm = None

    def decode(self, codes: torch.Tensor, context: torch.Tensor | None = None) -> np.ndarray:
        """codes ``[K, T]`` -> audio ``[T * hop]``. With ``context`` (the prompt's codes) the causal decoder
        starts from its state after the context, as if ``[context; codes]`` were decoded and the context's
        audio cut off; that state is computed once per prompt and kept (the last prompt only)."""
        if codes.shape[1] == 0:
            return np.zeros(0, np.float32)
        ctx = context if context is not None else codes[:, :0]
        key = ctx.numpy().astype(np.int16).tobytes() + bytes(str(tuple(ctx.shape)), "ascii")
        if self._warm is None or self._warm[0] != key:
            self._warm = (key, self.codec.warm_state(ctx))
        return self.codec.decode_after(self._warm[1], codes)
