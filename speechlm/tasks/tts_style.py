"""A style description realised by the duration-based TTS (``speechlm tts --description``, TextrolSpeech-style).

The description is read into the data pipeline's style tags (:func:`speechlm.text.style.parse_description`), and
every tag is set through a parameter the source-filter codec makes explicit, so what is asked for is what the
pipeline's own taggers (:mod:`speechlm.pipeline.tags`) measure on the output (``benchmarks/tts_style_eval.py``):

- ``gender`` and ``pitch_bin``: the voiced log-F0 mean is moved to the middle of the bin the tagger uses for that
  gender (:data:`PITCH_HZ`), and for the other gender than the model voice's the envelope is frequency-warped
  by :data:`GENDER_WARP` (formants up for a woman, down for a man: a shorter or longer vocal tract);
- ``range_bin``: the spread of log-F0 (monotone / moderate / expressive: :data:`RANGE_ST` semitones between the
  5th and 95th percentile, as the tagger measures it);
- ``rate_bin``: the pace, so that the phones per second of the sentence reach :data:`RATE_PPS`;
- ``phonation`` ``whispered``: every frame unvoiced, so WORLD excites the envelope with noise only (a whisper;
  Whisper base heard 16 development sentences at WER 0.053 whispered against 0.041 voiced);
- ``noise_bin`` and ``reverb_bin``: a :class:`Room` after synthesis: pink background noise at :data:`NOISE_SNR_DB`
  under the voice and a synthetic room (exponentially decaying noise, :data:`ROOMS`).

A voice prompt (or ``--speaker``) sets the voice instead: a description beside it may set the pace, a whisper,
noise and room only. Shapes: ``T`` samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from speechlm.lm.acoustic_api import VoiceShift, VoiceStats, warp_mcep
from speechlm.tasks.tts import TTSInputError
from speechlm.text.style import VOICE_TAGS, Style, parse_description

# Voiced F0 means (Hz) to set: the middles of the tagger's bins (male low < 100 <= moderate < 140 <= high; female
# 175 and 235), divided by 1.07, since the tagger's YIN mean reads the model's output about 7 % above the
# WORLD F0 it is made from (the default voice on development sentences).
PITCH_HZ = {"male": {"low": 80.0, "moderate": 112.0, "high": 160.0},
            "female": {"low": 148.0, "moderate": 192.0, "high": 255.0}}
FEMALE_ABOVE_HZ = 165.0  # a model voice whose mean F0 is above this counts as a woman's (the default: 158 Hz)
GENDER_WARP = 1.17  # male -> female envelope warp (formants move up ~17 %); female -> male is its inverse
RANGE_ST = {"monotone": 2.5, "moderate": 6.5, "expressive": 12.5}  # 5-95 % F0 span (semitones) to reach
MODEL_SPAN_ST = 7.0  # the default voice's typical span in one sentence, for when the text's own is not known;
# the log-F0 spread is scaled by RANGE_ST / the span (the voice's spread is its corpus's, wider than a sentence's)
RANGE_SCALE = (0.15, 3.0)
RATE_PPS = {"slow": 8.0, "moderate": 12.0, "fast": 16.0}  # phones per second, counted as the tagger counts them
PACE_RANGE = (0.65, 1.6)  # a described pace moves the model's by at most this (short texts read oddly fast)
# SNR (dB) of the added noise; the tagger's estimate reads about 3.5 dB higher (noisy < 10 <= slightly < 25).
# At 5 dB Whisper base loses a third of the words (0.33 WER on 16 development sentences; 0.09 at 12 dB).
NOISE_SNR_DB = {"slightly noisy": 12.0, "noisy": 5.0}
# Rooms: (RT60 s, direct-to-reverberant ratio dB), their tails decaying faster above 1.5 kHz (HF_DECAY), as air
# and walls absorb high frequencies: on 16 development sentences Whisper base lost 0.10 / 0.20 of the words
# against 0.16 / 0.32 with one decay for all frequencies. The tagger's RT60 estimate (fastest energy decays)
# reads them as about 0.37 and 0.41 s and never passes about 0.55 s even at RT60 3 s, so its "distant"
# (>= 0.7 s) is out of its reach.
ROOMS = {"slightly distant": (0.8, 0.0), "distant": (1.0, -3.0)}
HF_DECAY = 0.4  # the tail above 1.5 kHz dies out in this fraction of the RT60
SPEECH_RMS = 0.064  # active-speech RMS of the model voices (measured on the default voice; the noise level's
# reference, fixed so that a stream can add it from its first block)


def read_style(description: str) -> Style:
    """A description -> its :class:`Style`; refuses one in which nothing is understood, naming what it can set."""
    if not isinstance(description, str) or not description.strip():
        raise TTSInputError("the style description is empty")
    style = parse_description(description)
    if not style.tags:
        what = f" ({', '.join(style.unknown[:6])} not understood)" if style.unknown else ""
        raise TTSInputError(f"nothing in the style description {description[:80]!r} can be realised{what}: it can "
                            "set gender, pitch (low/high), pitch range (flat/lively), pace (slowly/quickly), "
                            "a whisper, background noise and room echo, e.g. \"A woman speaks quickly in a high "
                            "voice.\"")
    return style


def check_style(description: str, voice_from: str | None = None, pace: float = 1.0) -> Style:
    """:func:`read_style`, and a refusal of what cannot go with the other options: ``voice_from`` names what
    already sets the voice ("prompt", "speaker" or None), which the description's gender, pitch and range would
    contradict; a pace other than 1 beside a described pace."""
    style = read_style(description)
    voice_tags = [t.removesuffix("_bin") for t in VOICE_TAGS if t in style.tags]
    if voice_tags and voice_from is not None:
        raise TTSInputError(f"the description sets the voice's {', '.join(voice_tags)}, and so does the {voice_from}: "
                            "give one or the other (beside a voice, a description may set the pace, background "
                            "noise and room echo)")
    if "rate_bin" in style.tags and abs(pace - 1.0) > 1e-9:
        raise TTSInputError("the description sets the pace, and so does the pace option (--pace, the server's "
                            "speed): give one or the other")
    return style


def _gender_of(voice: VoiceStats) -> str:
    return "female" if math.exp(voice.lf0_mean) > FEMALE_ABOVE_HZ else "male"


def style_shift(source: VoiceStats, style: Style, span_st: float | None = None) -> VoiceShift | None:
    """The voice shift that gives the model voice ``source`` the style's gender, pitch and pitch range (None
    when the style sets none of them). A gender without a pitch takes the gender's moderate one. ``span_st``: the
    5-95 % span of the model's own F0 for the text being spoken (semitones), which the range scales to
    :data:`RANGE_ST` (without it, :data:`MODEL_SPAN_ST` stands for it)."""
    tags = style.tags
    if not any(t in tags for t in VOICE_TAGS):
        return None
    own = _gender_of(source)
    gender = tags.get("gender", own)
    lf0 = source.lf0_mean
    if "pitch_bin" in tags or "gender" in tags:
        lf0 = math.log(PITCH_HZ[gender][tags.get("pitch_bin", "moderate")])
    std = source.lf0_std
    if "range_bin" in tags:
        span = span_st if span_st and span_st > 0 else MODEL_SPAN_ST
        std = source.lf0_std * float(np.clip(RANGE_ST[tags["range_bin"]] / span, *RANGE_SCALE))
    warp = 1.0 if gender == own else GENDER_WARP if gender == "female" else 1.0 / GENDER_WARP
    mcep = warp_mcep(source.mcep_mean[None], warp)[0] if warp != 1.0 else source.mcep_mean
    return VoiceShift(source, VoiceStats(float(lf0), float(std), np.asarray(mcep, np.float32)), warp)


def f0_span_st(lf0: np.ndarray) -> float | None:
    """The 5-95 % span (semitones) of voiced log-F0 values ``[n]`` (None for fewer than 10)."""
    if lf0.size < 10:
        return None
    lo, hi = np.percentile(lf0, [5, 95])
    return float((hi - lo) * 12.0 / math.log(2.0))


def style_pace(style: Style, phones: int, speech_s: float) -> float:
    """The pace (> 1 slower) that brings ``phones`` over ``speech_s`` seconds to the style's rate (1 without a
    rate), within :data:`PACE_RANGE`."""
    rate = style.tags.get("rate_bin")
    if rate is None or phones <= 0 or speech_s <= 0:
        return 1.0
    return float(np.clip(phones / speech_s / RATE_PPS[rate], *PACE_RANGE))


@dataclass
class Room:
    """Background noise and room echo for a style (:meth:`for_style`), applied block by block: the blocks of a
    stream come out as the whole signal would (the echo's tail and the noise run on across blocks); the tail
    past the last block is dropped, so the audio keeps its length."""

    sample_rate: int
    rir: np.ndarray | None  # room impulse response [L], direct sound first; None: no echo
    noise_rms: float  # 0: no noise
    seed: int = 0

    def __post_init__(self) -> None:
        self._tail = np.zeros(0, np.float64)
        self._rng = np.random.default_rng(self.seed)
        self._zi = np.zeros(3)

    @classmethod
    def for_style(cls, style: Style, sample_rate: int, seed: int = 0) -> Room | None:
        """The room of ``style`` (None when it asks for neither noise nor echo, or for a quiet, close sound)."""
        reverb, noise = style.tags.get("reverb_bin"), style.tags.get("noise_bin")
        rir = room_response(*ROOMS[reverb], sample_rate, seed) if reverb in ROOMS else None
        noise_rms = SPEECH_RMS * 10 ** (-NOISE_SNR_DB[noise] / 20) if noise in NOISE_SNR_DB else 0.0
        if rir is None and noise_rms == 0.0:
            return None
        return cls(sample_rate, rir, noise_rms, seed)

    def __call__(self, block: np.ndarray) -> np.ndarray:
        """``block [T]`` -> ``[T]`` float32 with the echo and the noise."""
        from scipy.signal import lfilter, oaconvolve

        x = np.asarray(block, np.float64)
        n = x.size
        if n == 0:
            return np.asarray(block, np.float32)
        if self.rir is not None:
            y = oaconvolve(x, self.rir)  # [n + L - 1]: longer than the carried tail [L - 1]
            y[: self._tail.size] += self._tail
            self._tail, x = y[n:], y[:n]
        if self.noise_rms > 0:
            # pink noise: white noise through Kellet's pinking filter, its state carried across blocks
            b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
            a = [1.0, -2.494956002, 2.017265875, -0.522189400]
            pink, self._zi = lfilter(b, a, self._rng.standard_normal(n), zi=self._zi)
            x = x + pink * (self.noise_rms / PINK_RMS)
        return x.astype(np.float32)


PINK_RMS = 0.0860  # RMS of the pinking filter's output for unit white noise (measured over 10^6 samples)


def room_response(rt60_s: float, drr_db: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """A synthetic room impulse response ``[L]``: the direct sound (1 at 0) and a tail of Gaussian noise that
    decays by 60 dB in ``rt60_s`` below 1.5 kHz and in :data:`HF_DECAY` of it above (from 2.5 ms, ``1.2 *
    rt60_s`` long), its energy ``drr_db`` under the direct sound; scaled to unit energy."""
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(seed + 1)
    n = int(1.2 * rt60_s * sample_rate)
    t = np.arange(n) / sample_rate
    decay = -3.0 * math.log(10.0) * t / rt60_s
    low = sosfilt(butter(2, 1500.0, "low", fs=sample_rate, output="sos"), rng.standard_normal(n))
    high = sosfilt(butter(2, 1500.0, "high", fs=sample_rate, output="sos"), rng.standard_normal(n))
    tail = low * np.exp(decay) + high * np.exp(decay / HF_DECAY)
    tail[: int(0.0025 * sample_rate)] = 0.0
    tail *= math.sqrt(10 ** (-drr_db / 10) / max(float((tail**2).sum()), 1e-12))
    h = tail
    h[0] = 1.0
    return h / math.sqrt(float((h**2).sum()))
