"""Stage 6, filter: quality gates with thresholds from :class:`~speechlm.pipeline.config.PipelineConfig`.

:func:`measure` computes, per utterance, DNSMOS P.835 (:mod:`speechlm.eval.mos`, speechmos's ONNX models) on the
audio that will be kept, an SNR estimate, and the fraction of clipped samples in the standardised (not denoised)
audio. :func:`gate` returns the reasons an utterance fails, empty when it passes; the runner counts each reason.
The runner applies the audio gates (``transcript`` None) before ASR and transcribes only the utterances that pass
them, then applies every gate; an utterance the audio gates reject is not counted under the text gates.
:func:`assess` is the runner's audio step: the cheap gates (duration, SNR, clipping) first, DNSMOS (the costly
one: 0.2-0.25 s per 9-s window on one thread, a shorter utterance tiled to one) only on the utterances they
pass, so an utterance rejected for clipping or SNR is not also counted under ``dnsmos``.

- ``dnsmos``: DNSMOS OVRL below ``min_dnsmos``;
- ``low_confidence``: Whisper's mean token log-probability below ``min_avg_logprob``;
- ``low_snr``: estimated SNR below ``min_snr_db``;
- ``clipping``: more than ``max_clip_fraction`` of the samples sit in runs of 3+ at the segment's peak;
- ``no_text``: fewer than ``min_chars_per_s`` recognised characters per second (music, noise, a missed language);
- ``duration``: outside ``[min_utt_s, max_utt_s]`` (the segmenter already enforces it; kept as a safety net).

The SNR estimate needs no reference: 20 ms frame powers, the noise floor is the mean of the quietest 10 % of frames,
the signal the mean of the frames above the median minus that floor. It reads low on utterances without pauses.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from speechlm.pipeline.config import PIPELINE_SR, PipelineConfig

REASONS = ("duration", "no_text", "low_confidence", "low_snr", "clipping", "dnsmos")


def estimate_snr(x: np.ndarray, sr: int = PIPELINE_SR) -> float:
    """Blind SNR estimate in dB of mono ``x [T]`` (see the module docstring), clamped to [-10, 60]."""
    hop = max(1, int(0.02 * sr))
    n = len(x) // hop
    if n < 10:
        return float("nan")
    p = np.mean(np.asarray(x[: n * hop], np.float64).reshape(n, hop) ** 2, axis=1)
    p.sort()
    noise = float(np.mean(p[: max(1, n // 10)])) + 1e-12
    sig = float(np.mean(p[n // 2:])) - noise
    if sig <= 0:
        return -10.0
    return float(np.clip(10 * math.log10(sig / noise), -10.0, 60.0))


def clip_fraction(x: np.ndarray, run: int = 3) -> float:
    """Fraction of samples of ``x [T]`` in runs of ``run``+ consecutive samples within 0.1 % of the peak."""
    a = np.abs(np.asarray(x, np.float32))
    if a.size == 0:
        return 0.0
    peak = float(a.max())
    if peak <= 0:
        return 0.0
    at = a >= 0.999 * peak
    if not at.any():
        return 0.0
    # lengths of runs of True
    d = np.diff(np.concatenate([[0], at.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    lens = ends - starts
    return float(lens[lens >= run].sum()) / a.size


def measure(kept: np.ndarray, standardised: np.ndarray | None = None, sr: int = PIPELINE_SR,
            dnsmos: bool = True, dnsmos_hop_s: float = 1.0, dnsmos_bf16: bool = False) -> dict[str, float]:
    """Quality numbers of one utterance: ``kept [T]`` is the audio that will be saved (after denoising),
    ``standardised [T]`` the same span before denoising (for clipping; ``kept`` when None). DNSMOS: see
    :func:`_dnsmos_scores`."""
    out: dict[str, float] = {
        "snr_db": round(estimate_snr(kept, sr), 2),
        "clip_fraction": round(clip_fraction(kept if standardised is None else standardised), 6),
    }
    if dnsmos:
        out.update(_dnsmos_scores(kept, sr, dnsmos_hop_s, dnsmos_bf16))
    return out


def _dnsmos_scores(kept: np.ndarray, sr: int, hop_s: float, bf16: bool) -> dict[str, float]:
    """DNSMOS P.835 of ``kept [T]`` on 9-s windows ``hop_s`` apart (:func:`speechlm.eval.mos.dnsmos`, ``bf16``
    too), cut to whole 10-ms frames first (at most 9.9 ms dropped from its end): a short utterance, tiled to a
    window, is then scored from one period of the network's frames (about twice as fast on 3-5 s), with the
    number the reference's loop gives for that cut."""
    from speechlm.eval.mos import dnsmos

    frame = sr // 100
    s = dnsmos(kept[: max(frame, kept.size // frame * frame)], sr, hop_s=hop_s, p808=False, bf16=bf16)
    return {"dnsmos_ovrl": round(s.ovrl, 3), "dnsmos_sig": round(s.sig, 3), "dnsmos_bak": round(s.bak, 3)}


def assess(kept: np.ndarray, standardised: np.ndarray | None, duration: float, cfg: PipelineConfig,
           sr: int = PIPELINE_SR) -> tuple[dict[str, float], list[str]]:
    """The audio gates of one utterance (``kept [T]``, ``standardised [T]`` as in :func:`measure`):
    ``(quality, reasons)``, DNSMOS measured (when ``cfg.dnsmos``) only if duration, SNR and clipping pass."""
    quality = measure(kept, standardised, sr, dnsmos=False)
    reasons = gate(quality, None, duration, cfg)
    if cfg.dnsmos and not reasons:
        quality.update(_dnsmos_scores(kept, sr, cfg.dnsmos_hop_s, cfg.dnsmos_bf16))
        reasons = gate(quality, None, duration, cfg)
    return quality, reasons


def gate(quality: dict[str, Any], transcript: dict[str, Any] | None, duration: float,
         cfg: PipelineConfig) -> list[str]:
    """The reasons (from :data:`REASONS`) an utterance fails the gates; empty = keep it."""
    reasons = []
    if not cfg.min_utt_s - 1e-6 <= duration <= cfg.max_utt_s + 1e-6:
        reasons.append("duration")
    if transcript is not None:
        chars = len("".join(str(transcript.get("text", "")).split()))
        if chars / max(duration, 1e-6) < cfg.min_chars_per_s:
            reasons.append("no_text")
        if float(transcript.get("avg_logprob", 0.0)) < cfg.min_avg_logprob:
            reasons.append("low_confidence")
    snr = quality.get("snr_db", float("nan"))
    if snr == snr and snr < cfg.min_snr_db:
        reasons.append("low_snr")
    if quality.get("clip_fraction", 0.0) > cfg.max_clip_fraction:
        reasons.append("clipping")
    ovrl = quality.get("dnsmos_ovrl", float("nan"))
    if ovrl == ovrl and ovrl < cfg.min_dnsmos:
        reasons.append("dnsmos")
    return reasons
