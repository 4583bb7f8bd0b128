"""Stage 7a: style tags of one utterance (Parler-TTS data-speech style), measured from the audio and its text.

``tag(audio, sr, text, words, lang)`` returns a dict:

- ``pitch_mean_hz``: mean F0 over voiced frames (YIN, :func:`speechlm.audio.features.f0`, 10 ms hop, 50-500 Hz),
  after dropping frames more than an octave from the median (octave errors in noise);
  ``pitch_range_st``: the 5th-95th percentile span of the voiced F0 in semitones;
- ``speaking_rate``: phones per second: the G2P phones of ``text`` (:func:`speechlm.text.g2p.phonemize`) over the
  speech duration (first to last word when ``words`` are given, else the span of the Silero VAD regions,
  :func:`vad_span_s`); a span too short for the phones (over :data:`MAX_PHONES_PER_S`: the VAD lost the speech in
  noise) is widened to the clip's loud part or the whole clip; None without text;
- ``loudness_lufs``: BS.1770-4 integrated loudness (:func:`speechlm.pipeline.standardise.integrated_loudness`);
- ``snr_db``: an estimate: the power of the loudest half of the 20 ms frames over the quietest 10 %
  (noise = the quiet frames, speech power = loud frames minus noise); utterances cut at pauses keep some;
- ``reverb_rt60_s``: an estimate of the reverberation time from the fastest energy decays (the decay after a
  speech offset cannot be faster than the room's: the 5th percentile of the 60 ms log-energy slopes,
  ``60 / |slope|``); a rough, monotone indicator, not a calibrated RT60;
- ``gender`` (``"female"`` | ``"male"``) and ``gender_prob`` from the classifier trained here
  (:mod:`speechlm.pipeline.gender`);
- binned values (:func:`bins`): ``pitch_bin`` (relative to the speaker's gender, as in data-speech),
  ``rate_bin``, ``noise_bin``, ``reverb_bin``; the thresholds are :data:`PITCH_BINS_HZ` and friends.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Pitch bins per gender: mean F0 (Hz) upper edges of "low" and "moderate"; above is "high".
PITCH_BINS_HZ = {"male": (100.0, 140.0), "female": (175.0, 235.0)}
# Speaking rate (phones per second) upper edges of "slow" and "moderate"; above is "fast".
RATE_BINS = (10.0, 14.0)
# Estimated SNR (dB): below the first "noisy", below the second "slightly noisy", else "quiet".
NOISE_BINS_DB = (10.0, 25.0)
# Estimated RT60 (s): below the first "close", below the second "slightly distant", else "distant".
REVERB_BINS_S = (0.35, 0.7)
F0_HOP_S = 0.01


def pitch_track(audio: np.ndarray, sr: int) -> np.ndarray:
    """Voiced F0 values (Hz) of ``audio [T]``: YIN at a 10 ms hop, 50-500 Hz, frames more than an octave away
    from the median removed -> ``[n_voiced]`` float64 (empty when nothing is voiced)."""
    from speechlm.audio.features import f0

    hz, voiced = f0(np.asarray(audio, np.float64).reshape(-1), sr, hop_length=int(sr * F0_HOP_S), fmin=50.0,
                    fmax=500.0, silence_db=-50.0)
    v = hz[voiced].astype(np.float64)
    if v.size == 0:
        return v
    med = np.median(v)
    return v[(v > med / 2) & (v < med * 2)]


def pitch_mean_hz(audio: np.ndarray, sr: int) -> float:
    """Mean of :func:`pitch_track` (Hz); 0.0 when fewer than 5 frames are voiced."""
    v = pitch_track(audio, sr)
    return float(np.mean(v)) if v.size >= 5 else 0.0


def pitch_range_st(track: np.ndarray) -> float:
    """5th-95th percentile span of a voiced F0 track ``[n]`` in semitones (0 when too short)."""
    if track.size < 5:
        return 0.0
    lo, hi = np.percentile(track, [5, 95])
    return float(12 * np.log2(hi / lo))


def count_phones(text: str, lang: str) -> int:
    """Phones of ``text`` by the project's G2P (word separators not counted); 0 for an unknown language."""
    from speechlm.errors import SpeechLMError
    from speechlm.text.g2p import count_phones as g2p_phones

    try:  # Whisper names Mandarin "zh", the G2P "cmn"; other shared codes are the same
        return g2p_phones(text, {"zh": "cmn"}.get(lang, lang))
    except SpeechLMError:
        return 0


# Silero speech probability that bounds the speaking-rate span: 0.3, below Silero's usual 0.5, because noise and
# the denoiser lower the probability at a segment's edges (constructed development set, seed 1: rate bins right
# on the denoised audio 0.872 / 0.900 / 0.904 / 0.876 at 0.5 / 0.4 / 0.3 / 0.2).
RATE_VAD_THRESHOLD = 0.3
MAX_PHONES_PER_S = 25.0  # faster than anyone speaks (fast read speech: ~15-20 phones/s)


def speech_span_s(audio: np.ndarray, sr: int, threshold_db: float = -40.0) -> float:
    """Duration (s) from the first to the last sample louder than ``threshold_db`` below the peak of the
    50 ms-smoothed envelope (clicks and noise floor ignored)."""
    x = np.abs(np.asarray(audio, np.float64).reshape(-1))
    if x.size == 0 or not np.any(x):
        return 0.0
    hop = max(1, int(0.01 * sr))
    n = x.size // hop
    if n == 0:
        return x.size / sr
    env = np.sqrt(np.convolve((x[: n * hop] ** 2).reshape(n, hop).mean(1), np.ones(5) / 5, mode="same"))
    floor = np.percentile(env, 10)
    loud = np.flatnonzero(env > max(env.max() * 10 ** (threshold_db / 20), 3 * floor))
    return (loud[-1] - loud[0] + 1) * hop / sr if loud.size else 0.0


def vad_span_s(audio: np.ndarray, sr: int, threshold: float = RATE_VAD_THRESHOLD) -> float:
    """Duration (s) from the start of the first to the end of the last Silero VAD region
    (:func:`speechlm.pipeline.diarise.speech_regions` at speech probability ``threshold``; robust to noise);
    :func:`speech_span_s` without regions."""
    from speechlm.pipeline.diarise import speech_regions

    regions = speech_regions(audio, sr, threshold=threshold, min_silence_s=0.1)
    return regions[-1][1] - regions[0][0] if regions else speech_span_s(audio, sr)


def speaking_rate(audio: np.ndarray, sr: int, text: str | None, lang: str = "en",
                  words: Sequence[Sequence[Any]] | None = None) -> float | None:
    """Phones per second (module docstring); None without text or phones."""
    if not text or not text.strip():
        return None
    n = count_phones(text, lang)
    if n == 0:
        return None
    if words:
        dur = float(words[-1][2]) - float(words[0][1])
    else:
        dur = vad_span_s(audio, sr)
    if dur <= 0.0 or n / dur > MAX_PHONES_PER_S:
        # A span no one could speak these phones in: the VAD (or a word timestamp) lost most of the speech in
        # the noise; the loud part of the clip, or the whole clip (cut at pauses), bounds the speech instead.
        dur = max(dur, speech_span_s(audio, sr))
        if n / max(dur, 1e-9) > MAX_PHONES_PER_S:
            dur = np.asarray(audio).size / sr
    return n / dur if dur > 0.2 else None


def _frame_db(audio: np.ndarray, sr: int, frame_s: float) -> np.ndarray:
    x = np.asarray(audio, np.float64).reshape(-1)
    hop = max(1, int(frame_s * sr))
    n = x.size // hop
    if n == 0:
        return np.zeros(0)
    return 10 * np.log10(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)


def snr_estimate_db(audio: np.ndarray, sr: int) -> float:
    """SNR estimate (dB) from the 20 ms frame powers: loudest half vs quietest 10 % (module docstring); the filter
    stage's own estimate (:func:`speechlm.pipeline.filter.estimate_snr`), so a tag and a rejection agree.

    It reads high: on the constructed set, 7 dB above the true SNR of a segment on average (the quietest frames of
    a short utterance sit under the mean noise level); :data:`NOISE_BINS_DB` are on the estimate's scale
    (docs/pipeline_models.md)."""
    from speechlm.pipeline.filter import estimate_snr

    return estimate_snr(audio, sr)


def rt60_estimate_s(audio: np.ndarray, sr: int) -> float:
    """Rough reverberation time (s) from the fastest energy decays (module docstring)."""
    db = _frame_db(audio, sr, 0.01)
    if db.size < 20:
        return float("nan")
    k = 6  # 60 ms slope windows
    slope = (db[k:] - db[:-k]) / (k * 0.01)  # dB per second
    loud = db[:-k] > db.max() - 35  # decays that start from speech, not from the floor
    neg = slope[loud & (slope < 0)]
    if neg.size < 5:
        return float("nan")
    fastest = float(np.percentile(neg, 5))
    return float(min(60.0 / max(-fastest, 1e-6), 5.0))


def loudness_lufs(audio: np.ndarray, sr: int) -> float:
    """Integrated loudness (LUFS, BS.1770-4) through the standardise stage's meter."""
    from speechlm.pipeline.standardise import integrated_loudness

    return float(integrated_loudness(np.asarray(audio, np.float32).reshape(-1), sr))


def _bin3(v: float | None, edges: tuple[float, float], names: tuple[str, str, str]) -> str | None:
    if v is None or not math.isfinite(v):
        return None
    return names[0] if v < edges[0] else names[1] if v < edges[1] else names[2]


def bins(tags: dict[str, Any]) -> dict[str, str | None]:
    """Binned tags from measured ones: ``pitch_bin`` low|moderate|high (edges by ``gender``), ``rate_bin``
    slow|moderate|fast, ``noise_bin`` noisy|slightly noisy|quiet, ``reverb_bin`` close|slightly distant|distant."""
    g = tags.get("gender")
    pitch = tags.get("pitch_mean_hz")
    return {
        "pitch_bin": _bin3(pitch if pitch else None, PITCH_BINS_HZ.get(g, PITCH_BINS_HZ["female"]),
                           ("low", "moderate", "high")) if g in PITCH_BINS_HZ else None,
        "rate_bin": _bin3(tags.get("speaking_rate"), RATE_BINS, ("slow", "moderate", "fast")),
        "noise_bin": _bin3(tags.get("snr_db"), NOISE_BINS_DB, ("noisy", "slightly noisy", "quiet")),
        "reverb_bin": _bin3(tags.get("reverb_rt60_s"), REVERB_BINS_S, ("close", "slightly distant", "distant")),
    }


def tag(audio: np.ndarray, sr: int, text: str | None = None, words: Sequence[Sequence[Any]] | None = None,
        lang: str = "en", gender_model: str | None = None) -> dict[str, Any]:
    """Style tags of one utterance ``audio [T]`` (mono float at ``sr``); see the module docstring.

    ``words``: ``[[word, start_s, end_s, prob], ...]`` as the transcribe stage gives them (optional).
    ``gender_model``: a classifier folder or name (default: the shipped ``gender_default``).
    """
    from speechlm.pipeline.gender import load_classifier

    x = np.asarray(audio, np.float32).reshape(-1)
    track = pitch_track(x, sr)
    clf = load_classifier(gender_model)
    p_female = clf.predict_proba(x, sr, track=track)
    out: dict[str, Any] = {
        "pitch_mean_hz": round(float(np.mean(track)), 2) if track.size >= 5 else None,
        "pitch_range_st": round(pitch_range_st(track), 2),
        "speaking_rate": None,
        "loudness_lufs": None,
        "snr_db": None,
        "reverb_rt60_s": None,
        "gender": "female" if p_female >= 0.5 else "male",
        "gender_prob": round(float(max(p_female, 1 - p_female)), 3),
    }
    rate = speaking_rate(x, sr, text, lang, words)
    out["speaking_rate"] = round(rate, 3) if rate is not None else None
    lufs = loudness_lufs(x, sr)
    out["loudness_lufs"] = round(lufs, 2) if math.isfinite(lufs) else None
    snr = snr_estimate_db(x, sr)
    out["snr_db"] = round(snr, 2) if math.isfinite(snr) else None
    rt = rt60_estimate_s(x, sr)
    out["reverb_rt60_s"] = round(rt, 3) if math.isfinite(rt) else None
    out.update(bins(out))
    return out
