"""A loaded duration-based acoustic model: text tokens -> source-filter codec tokens (``AcousticTTSModel``).

``AcousticTTSModel.load("tts_duration")`` (or a checkpoint / run folder) gives the model, the codec id it was
trained for and the statistics of its voice (``voice_stats`` in ``config.json``: voiced log-F0 mean and spread,
mean mel-cepstrum of voiced frames). :meth:`AcousticTTSModel.features` predicts frames; :meth:`to_codes`
quantises them with the codec's own quantiser, so the output is ordinary codec tokens (decodable, streamable,
editable like any other).

Voice adaptation (:class:`VoiceShift`): a prompt's voiced log-F0 mean/spread replace the model voice's, its
envelope is frequency-warped by the factor that best maps the model voice's mean spectrum onto the prompt's (a
vocal-tract-length change: formants move together) and then shifted by the remaining mean mel-cepstral
difference (c1.. only, a fixed equaliser towards the prompt's timbre). A cheap, explicit speaker transform that
the source-filter parameterisation makes possible. Each frame's energy is kept (c0 absorbs the change), so a voice
shift never makes the output louder or clip.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speechlm.errors import CheckpointError
from speechlm.lm.acoustic import AcousticConfig, AcousticModel

DEFAULT = "tts_duration"
KIND = "acoustic"


def resolve_acoustic_dir(name_or_dir: str | os.PathLike | None) -> Path:
    """``None``/``"default"`` -> the shipped :data:`DEFAULT`; ``NAME`` -> ``assets/NAME`` or ``assets/tts_NAME``;
    else a checkpoint folder or a run folder (its newest checkpoint)."""
    from speechlm.utils.checkpoint import resolve_model_dir

    return resolve_model_dir(name_or_dir, "tts", DEFAULT, "TTS model")


def is_acoustic(path: Path) -> bool:
    """Whether a checkpoint folder holds an acoustic model (reads ``config.json`` only)."""
    from speechlm.utils.checkpoint import checkpoint_kind

    return checkpoint_kind(path) == KIND


@dataclass(frozen=True)
class VoiceStats:
    """lf0_mean/lf0_std over voiced frames; mcep_mean ``[n_mcep]`` over voiced frames."""

    lf0_mean: float
    lf0_std: float
    mcep_mean: np.ndarray

    @classmethod
    def of_features(cls, feat: np.ndarray, n_mcep: int) -> VoiceStats:
        """From features ``[T, F]`` (``[mcep | lf0 | vuv | bap]``)."""
        from speechlm.tokenizers.source_filter.features import voice_stats

        return cls(*voice_stats(feat, n_mcep))

    def to_dict(self) -> dict[str, Any]:
        return {"lf0_mean": self.lf0_mean, "lf0_std": self.lf0_std, "mcep_mean": [float(x) for x in self.mcep_mean]}

    @classmethod
    def from_dict(cls, d: dict) -> VoiceStats:
        return cls(float(d["lf0_mean"]), float(d["lf0_std"]), np.asarray(d["mcep_mean"], np.float32))


WARPS = np.round(np.arange(0.80, 1.2501, 0.01), 2)  # frequency-warp factors searched (>1 moves formants up)
MATCH_HZ = 5000.0  # spectra are matched below this frequency
BAND_USE = 0.9  # of a band-limited recording's edge, the part whose spectrum is trusted (the rest is the channel's)


def _log_spectra(mcep: np.ndarray) -> np.ndarray:
    """Mel-cepstra ``[T, D]`` (pyworld's coding) -> log power spectra ``[T, FFT/2+1]``."""
    from speechlm.tokenizers.source_filter.world import FFT_SIZE, SAMPLE_RATE, pyworld

    sp = pyworld().decode_spectral_envelope(np.ascontiguousarray(mcep, np.float64), SAMPLE_RATE, FFT_SIZE)
    return np.log(np.maximum(sp, 1e-12))


def _log_energy(mcep: np.ndarray) -> np.ndarray:
    """Log of the summed power spectrum of every frame ``[T]``."""
    ls = _log_spectra(mcep)
    top = ls.max(1)
    return top + np.log(np.exp(ls - top[:, None]).sum(1))


def _warp_log(logsp: np.ndarray, r: float) -> np.ndarray:
    """Log spectra ``[T, F]`` with the frequency axis scaled by ``r`` (the value at f is the input's at f/r)."""
    n = logsp.shape[1]
    src = np.clip(np.arange(n) / r, 0, n - 1)
    i0 = np.minimum(src.astype(int), n - 2)
    frac = src - i0
    return logsp[:, i0] * (1 - frac) + logsp[:, i0 + 1] * frac


def warp_mcep(mcep: np.ndarray, r: float) -> np.ndarray:
    """Frequency-warp envelopes given as mel-cepstra ``[T, D]`` by ``r`` (1 = unchanged)."""
    from speechlm.tokenizers.source_filter.world import SAMPLE_RATE, pyworld

    if abs(r - 1.0) < 1e-6:
        return mcep
    sp = np.ascontiguousarray(np.exp(_warp_log(_log_spectra(mcep), r)))
    return pyworld().code_spectral_envelope(sp, SAMPLE_RATE, mcep.shape[1]).astype(np.float32)


def best_warp(source: np.ndarray, target: np.ndarray, match_hz: float = MATCH_HZ) -> float:
    """The factor in :data:`WARPS` whose warp of the mean envelope ``source [D]`` best matches ``target [D]``
    below ``match_hz`` (log spectra compared after removing their mean difference)."""
    from speechlm.tokenizers.source_filter.world import FFT_SIZE, SAMPLE_RATE

    ls, lt = _log_spectra(np.stack([source, target]))
    k = int(match_hz / SAMPLE_RATE * FFT_SIZE) + 1
    cand = np.stack([_warp_log(ls[None], r)[0] for r in WARPS])
    d = cand[:, :k] - lt[None, :k]
    d -= d.mean(1, keepdims=True)
    return float(WARPS[int(np.argmin((d**2).mean(1)))])


def _held_above(source: np.ndarray, target: np.ndarray, top_hz: float) -> np.ndarray:
    """A target mean envelope ``[D]`` (mel-cepstra) whose log-spectral difference from ``source [D]`` is kept
    below ``top_hz`` and held above it at its mean over 0.89-1 x ``top_hz`` (c0 as the target's)."""
    from speechlm.tokenizers.source_filter.world import FFT_SIZE, SAMPLE_RATE, pyworld

    ls, lt = _log_spectra(np.stack([source, target]))
    f = np.arange(ls.shape[0]) * SAMPLE_RATE / FFT_SIZE
    d = lt - ls
    near = (f >= 0.89 * top_hz) & (f <= top_hz)
    d = np.where(f > top_hz, d[near].mean() if near.any() else 0.0, d)
    out = pyworld().code_spectral_envelope(np.ascontiguousarray(np.exp(ls + d)[None]), SAMPLE_RATE, len(target))[0]
    out = out.astype(np.float32)
    out[0] = target[0]
    return out


@dataclass(frozen=True)
class VoiceShift:
    """The transform from the model's voice to a target voice (module docstring); ``warp`` 1 = no warping."""

    source: VoiceStats
    target: VoiceStats
    warp: float = 1.0

    @classmethod
    def between(cls, source: VoiceStats, target: VoiceStats, band_hz: float | None = None) -> VoiceShift:
        """The shift from ``source`` to ``target``. ``band_hz``: the band edge of the narrower of the two
        recordings (:func:`~speechlm.audio.bandwidth.band_edge_hz`; None = full band). Above :data:`BAND_USE` of
        it the mean envelopes describe the channel, not the voice: the warp is matched below that, and the
        equaliser above it holds its level just below instead of following a roll-off."""
        from speechlm.tokenizers.source_filter.world import SAMPLE_RATE

        if band_hz is None or band_hz >= SAMPLE_RATE / 2:
            return cls(source, target, best_warp(source.mcep_mean, target.mcep_mean))
        top = BAND_USE * band_hz
        warp = best_warp(source.mcep_mean, target.mcep_mean, min(MATCH_HZ, top))
        mean = warp_mcep(source.mcep_mean[None], warp)[0] if warp != 1.0 else source.mcep_mean
        held = VoiceStats(target.lf0_mean, target.lf0_std, _held_above(mean, target.mcep_mean, top))
        return cls(source, held, warp)

    def apply(self, feat: np.ndarray, n_mcep: int) -> np.ndarray:
        out = feat.copy()
        z = (out[:, n_mcep] - self.source.lf0_mean) / self.source.lf0_std
        out[:, n_mcep] = self.target.lf0_mean + z * self.target.lf0_std
        mean = self.source.mcep_mean
        if self.warp != 1.0:
            out[:, :n_mcep] = warp_mcep(out[:, :n_mcep], self.warp)
            mean = warp_mcep(mean[None], self.warp)[0]
        out[:, 1:n_mcep] += (self.target.mcep_mean[1:] - mean[1:])[None]
        # keep every frame's energy: the new envelope shape must not make the voice louder (or clip); c0 adds a
        # constant to the log spectrum, so the log-energy difference moves straight into it
        if len(out):
            out[:, 0] += _log_energy(feat[:, :n_mcep]) - _log_energy(out[:, :n_mcep])
        return out


@dataclass
class AcousticTTSModel:
    model: AcousticModel
    config: AcousticConfig
    tokenizer: str  # the codec tokenizer id the features are quantised for
    symbols: str
    voice: VoiceStats
    path: Path
    meta: dict[str, Any]

    @classmethod
    def load(cls, name_or_dir: str | os.PathLike | None = None) -> AcousticTTSModel:
        from speechlm.utils.checkpoint import load_checkpoint
        from speechlm.utils.config import load_config

        path = resolve_acoustic_dir(name_or_dir)
        ckpt = load_checkpoint(path)
        extra = ckpt.meta.get("extra") or {}
        if extra.get("kind") != KIND or "model" not in ckpt.config:
            raise CheckpointError(f"{path}: not an acoustic TTS model checkpoint")
        try:
            cfg = load_config(ckpt.config["model"], AcousticConfig)
            model = AcousticModel(cfg)
            model.load_state_dict({k: v.float() for k, v in ckpt.state_dict.items()})
            voice = VoiceStats.from_dict(extra["voice_stats"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: not a loadable acoustic model ({str(exc)[:200]})") from None
        return cls(model.eval(), cfg, str(extra.get("tokenizer", "")), str(extra.get("symbols", "")), voice, path,
                   ckpt.meta)

    @property
    def model_id(self) -> str:
        from speechlm.utils.checkpoint import model_id

        return model_id(self.meta, self.path)

    @property
    def analysis(self) -> dict:
        """The F0 analysis of the model's training features (``frame_features``' ``analysis``); prompts get the
        same."""
        from speechlm.lm.acoustic_data import analysis_settings

        return analysis_settings((self.meta.get("extra") or {}).get("analysis"))

    @property
    def langs(self) -> tuple[str, ...]:
        """The languages the model was trained on (``("en",)`` for models made before they were recorded)."""
        return tuple((self.meta.get("extra") or {}).get("langs") or ("en",))

    def speaker_of(self, lang: str) -> int | None:
        """A multi-speaker model's voice for ``lang`` (its index; the language's speaker with the most training
        speech), or None for a one-voice model."""
        extra = self.meta.get("extra") or {}
        if not self.config.n_speakers:
            return None
        name = (extra.get("lang_voices") or {}).get(lang)
        speakers = list(extra.get("speakers") or [])
        return speakers.index(name) if name in speakers else None

    def voice_of(self, lang: str) -> VoiceStats:
        """The voice statistics of the model's voice for ``lang`` (what a prompt's :class:`VoiceShift` starts
        from)."""
        i = self.speaker_of(lang)
        return self.voice if i is None else self.speaker_stats(i)

    def speaker_stats(self, speaker: int) -> VoiceStats:
        """A multi-speaker model's statistics of training speaker ``speaker``."""
        extra = self.meta.get("extra") or {}
        return VoiceStats.from_dict(extra["speaker_voice_stats"][extra["speakers"][speaker]])

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def features(self, ids: list[int], pace: float = 1.0, shift: VoiceShift | None = None,
                 speaker: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Token ids -> (features ``[T, F]``, frames per token ``[N]``); ``shift`` moves them to another voice;
        ``speaker``: a multi-speaker model's voice (:meth:`speaker_of`)."""
        feat, dur = self.model.infer(torch.tensor([ids], dtype=torch.long), pace=pace, speaker=speaker)
        feat = feat.numpy()
        if shift is not None:
            feat = shift.apply(feat, self.config.n_mcep)
        return feat, dur.numpy()

    @property
    def sub_frames(self) -> int:
        """Output frames per codec frame: 1 (20 ms) or 4 (WORLD's 5-ms analysis rate)."""
        return self.config.sub_frames

    def to_frames(self, feat: np.ndarray):
        """Features ``[T * S, F]`` -> source-filter :class:`~speechlm.tokenizers.source_filter.world.Frames` at the
        model's rate (``S`` = :attr:`sub_frames` per codec frame)."""
        from speechlm.tokenizers.source_filter.features import frames_from_features

        return frames_from_features(feat, self.config.n_mcep)

    def to_codes(self, feat: np.ndarray, codec) -> np.ndarray:
        """Features ``[T * S, F]`` -> codes ``[K, T]`` of ``codec`` (a source-filter codec; every envelope stage:
        the model's frames have no 5-ms F0 contour for ``f0.mid``)."""
        if not hasattr(codec, "quantizer"):
            raise CheckpointError(f"{codec.tokenizer_id} is not a source-filter codec: the acoustic model's frames "
                                  "are quantised by codec_sf")
        return codec.quantize(self.token_frames(self.to_frames(feat)), codec.envelope_streams)

    def token_frames(self, frames):
        """:meth:`to_frames`'s output -> codec-rate (20-ms) frames: sub-frames averaged as the codec analyses."""
        from speechlm.tokenizers.source_filter.world import to_token_rate

        return frames if self.sub_frames == 1 else to_token_rate(frames, self.sub_frames)
