"""Voice conversion through the source-filter parameters (``speechlm vc``): a recording spoken again in another
voice, or in a described style, with its own words, timing and intonation.

The recording is analysed into the duration TTS's frames (WORLD F0, voicing, mel-cepstral envelope, band
aperiodicity at 5 ms: :func:`~speechlm.lm.acoustic_data.frame_features`), moved by a
:class:`~speechlm.lm.acoustic_api.VoiceShift` from its own voice statistics to

- a target voice (``target``: 1-20 s of any speech): its F0 mean and spread, the frequency warp that best maps the
  recording's mean envelope onto the target's (formants together), the remaining mean envelope difference; or
- a style description (``description``, :mod:`speechlm.tasks.tts_style`): gender, pitch, pitch range, a whisper,
  background noise and room echo (not the pace: a recording keeps its timing),

and synthesised by the codec's frame decoder, as the TTS renders its own frames. Every frame keeps its energy,
so the loudness is the recording's. It is a voice transform, not a neural conversion: the recording's own
articulation stays, so the result sounds like the recording's speaker moved towards the target (the benchmark
in docs/tts.md#voice-conversion measures how far). Shapes: ``T`` samples.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from speechlm.tasks.tts import TTSInputError, load_capped, mono_finite

MAX_VC_S = 600.0  # a recording to convert: at most 10 minutes (analysed whole: about a minute on one core)
MIN_VC_S = 0.3


@dataclass
class VCResult:
    """The converted audio ``wav [T]`` at ``sample_rate`` (the same length as the input at that rate), how long it
    took, and what was done (``extra``: ``shift`` warp and F0 means, ``style`` tags)."""

    wav: np.ndarray
    sample_rate: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def load_vc_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """A recording to convert -> (``wav [T]``, rate); over :data:`MAX_VC_S` is refused before decoding."""
    return load_capped(path, MAX_VC_S, lambda s: TTSInputError(
        f"the recording is {s:.1f} s long; voice conversion takes {MIN_VC_S:g}-{MAX_VC_S:g} s (split it)"))


@contextmanager
def as_target() -> Iterator[None]:
    """The TTS's checks of a voice prompt, worded for the target voice of a conversion."""
    try:
        yield
    except TTSInputError as exc:
        raise TTSInputError(str(exc).replace("the prompt", "the target voice")) from None


def check_vc_request(target: Any, description: str | None):
    """Refuses a request without exactly one of a target voice and a description, or a description that sets
    the pace or nothing that can be realised; -> the description's style (None without one)."""
    if (target is None) == (description is None):
        raise TTSInputError("voice conversion needs a target voice (--target) or a style description "
                            "(--description): give one of them")
    if description is None:
        return None
    from speechlm.tasks.tts_style import check_style

    style = check_style(description)
    if "rate_bin" in style.tags:
        raise TTSInputError("a converted recording keeps its own timing: the description may not set the pace "
                            "(use speechlm tts for that)")
    return style


def analyse(tts, wav: np.ndarray) -> np.ndarray:
    """``wav [T]`` at the TTS's rate -> its source-filter frames ``[T' * S, F]`` as the TTS model predicts them
    (:func:`~speechlm.lm.acoustic_data.frame_features` at the model's rate and F0 analysis), the last frame
    repeated to whole codec frames (what the frame decoder takes; the audio's tail is cut after synthesis)."""
    from speechlm.lm.acoustic_data import frame_features

    am = tts.am
    feat = frame_features(np.ascontiguousarray(wav, np.float64), am.sub_frames, am.analysis)
    pad = -len(feat) % am.sub_frames
    return np.concatenate([feat, np.repeat(feat[-1:], pad, 0)]) if pad else feat


def convert_voice(tts, wav: np.ndarray, sr: int, target: str | os.PathLike | np.ndarray | None = None,
                  target_sr: int | None = None, description: str | None = None) -> VCResult:
    """``wav [T]`` (or ``[C, T]``) at ``sr`` in the voice of ``target`` (a file, or a waveform with
    ``target_sr``) or as ``description`` says; ``tts``: a :class:`~speechlm.tasks.tts_duration.DurationTTS`
    (its analysis settings, voice-shift code and frame decoder)."""
    from speechlm.audio.bandwidth import band_edge_hz
    from speechlm.audio.io import resample
    from speechlm.audio.limiter import limit_peak
    from speechlm.lm.acoustic_api import VoiceShift, VoiceStats
    from speechlm.tasks.tts import read_prompt
    from speechlm.tasks.tts_style import Room, f0_span_st, style_shift

    t0 = time.perf_counter()
    style = check_vc_request(target, description)
    wav = mono_finite(wav, "the recording")
    if not MIN_VC_S <= len(wav) / sr <= MAX_VC_S:
        raise TTSInputError(f"the recording is {len(wav) / sr:.2f} s long; voice conversion takes "
                            f"{MIN_VC_S:g}-{MAX_VC_S:g} s")
    target_wav = None
    if target is not None:
        with as_target():
            target_wav, target_sr = read_prompt(target, target_sr)
    out_sr = tts.sample_rate
    x = resample(wav, sr, out_sr) if sr != out_sr else np.asarray(wav, np.float32)
    m = tts.am.config.n_mcep
    feat = analyse(tts, x)
    voiced = feat[:, m + 1] > 0.5
    if voiced.sum() < 10:
        raise TTSInputError("the recording has almost no voiced speech (under 0.2 s): nothing to convert")
    source = VoiceStats.of_features(feat, m)
    if target_wav is not None:
        t16 = mono_finite(target_wav, "the target voice")
        t16 = resample(t16, target_sr, out_sr) if target_sr != out_sr else t16
        # a telephone recording (or target) is not equalised above its band edge (VoiceShift.between)
        band = min(band_edge_hz(x, out_sr), band_edge_hz(t16, out_sr))
        with as_target():
            shift = VoiceShift.between(source, tts.voice_shift(t16, out_sr).target, band)
    else:
        shift = style_shift(source, style, f0_span_st(feat[voiced, m]))
    if shift is not None:
        feat = shift.apply(feat, m)
    if style is not None and style.tags.get("phonation") == "whispered":
        feat[:, m + 1] = 0.0
    y = np.concatenate(list(tts.render(feat)[1]))[: len(x)]
    y = np.pad(y, (0, len(x) - len(y)))
    room = Room.for_style(style, out_sr) if style is not None else None
    if room is not None:
        y = room(y)
    extra: dict[str, Any] = {"style": dict(style.tags) if style is not None else None}
    if shift is not None:
        extra["shift"] = {"warp": shift.warp, "f0_hz": [float(np.exp(shift.source.lf0_mean)),
                                                        float(np.exp(shift.target.lf0_mean))]}
    return VCResult(limit_peak(y), out_sr, time.perf_counter() - t0, extra)
