"""The pipeline's settings: one frozen dataclass, every threshold in one place, loadable from YAML or JSON.

``PipelineConfig.load(path)`` reads a flat mapping (YAML or JSON; unknown keys are an error, so a typo cannot
silently fall back to a default). :meth:`PipelineConfig.digest` hashes the settings that change results; the
runner stores it beside each stage result and redoes a stage whose digest differs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from speechlm.errors import SpeechLMError

PIPELINE_SR = 16000
"""Every stage works on float32 mono audio at this rate."""

ASR_CHOICES = ("whisper-base", "whisper-tiny.en", "none")
DENOISER_CHOICES = ("deepfilternet3", "speechlm")  # what speechlm.pipeline.denoise.denoiser(name) takes


@dataclass(frozen=True)
class PipelineConfig:
    """All thresholds and options of the pipeline (see docs/pipeline.md for what each gate does)."""

    # 1. standardise
    target_lufs: float = -23.0  # integrated loudness after normalisation (EBU R128)
    max_gain_db: float = 30.0  # never amplify more than this (near-silent inputs stay quiet)
    min_input_s: float = 1.0  # shorter (or empty) inputs are rejected
    # 2./3. the model-based stages (off when their module cannot run)
    denoise: bool = True
    # "deepfilternet3" (48 kHz, the packaged model) or "speechlm" (denoise_default, the 16-kHz enhancer trained
    # here: many times faster; docs/pipeline.md#measured compares them)
    denoiser: str = "deepfilternet3"
    # a window whose SNR (denoise.speech_snr_db: speech vs non-speech frames of the VAD) is at least this is passed
    # through undenoised, saving the denoiser's time; null (the default): always denoise. A trade: DNSMOS rejects
    # more of the undenoised utterances (docs/pipeline.md#measured)
    denoise_skip_snr_db: float | None = None
    diarise: bool = True
    window_s: float = 600.0  # denoise/diarise see at most this much audio at once (bounded memory)
    # 4. segment
    vad_threshold: float = 0.5
    min_speech_s: float = 0.25  # shorter VAD regions are dropped
    min_pause_s: float = 0.3  # a pause at least this long may end an utterance
    pad_s: float = 0.1  # silence kept at each end of an utterance
    min_utt_s: float = 3.0
    max_utt_s: float = 30.0
    # 5. transcribe
    asr: str = "whisper-base"
    asr_beam: int = 1
    lang: str = "auto"  # "auto" = Whisper's language identification per window (asr_pack_s)
    # one speaker's utterances of an input are joined (1 s of silence between) into Whisper windows of at most
    # this many seconds and transcribed together, since Whisper pads every window to 30 s; 0 = one utterance each
    asr_pack_s: float = 28.0
    # 6. filter
    min_dnsmos: float = 2.5  # DNSMOS P.835 OVRL
    min_avg_logprob: float = -1.0  # Whisper's average token log-probability
    min_snr_db: float = 5.0
    max_clip_fraction: float = 0.001  # fraction of samples at full scale
    min_chars_per_s: float = 2.0  # fewer recognised characters per second: music or a missed language
    dnsmos: bool = True
    # DNSMOS scores 9-s windows; an utterance longer than one is scored on windows at most this far apart (1 s:
    # the reference's; the network runs once per utterance, so more windows cost little; docs/pipeline.md)
    dnsmos_hop_s: float = 1.0
    # the network's costly half in bfloat16 where the CPU computes it natively (AMX, AVX512-BF16): 1.8x faster,
    # OVRL within a few thousandths of float32; elsewhere float32 either way (docs/pipeline.md)
    dnsmos_bf16: bool = True
    # 7. tag and describe
    tag: bool = True
    seed: int = 0  # description phrasing
    # export
    split: str = "train"
    shard_utts: int = 1000  # utterances per WebDataset tar / Parquet file
    audio_format: str = "flac"

    def __post_init__(self) -> None:
        if self.min_utt_s <= 0 or self.max_utt_s <= self.min_utt_s:
            raise SpeechLMError(f"need 0 < min_utt_s < max_utt_s, got {self.min_utt_s} and {self.max_utt_s}")
        if self.asr not in ASR_CHOICES:
            raise SpeechLMError(f"asr must be one of {', '.join(ASR_CHOICES)}, not {self.asr!r}")
        if self.denoiser not in DENOISER_CHOICES:
            raise SpeechLMError(f"denoiser must be one of {', '.join(DENOISER_CHOICES)}, not {self.denoiser!r}")
        if self.audio_format not in ("flac", "wav"):
            raise SpeechLMError(f"audio_format must be flac or wav, not {self.audio_format!r}")
        if self.window_s < 4 * self.max_utt_s:
            raise SpeechLMError(f"window_s must be at least 4 x max_utt_s ({4 * self.max_utt_s:g} s)")
        if self.shard_utts < 1 or self.asr_beam < 1:
            raise SpeechLMError("shard_utts and asr_beam must be >= 1")
        if not 1.0 <= self.dnsmos_hop_s <= 30.0:
            raise SpeechLMError(f"dnsmos_hop_s must be 1 to 30 s, not {self.dnsmos_hop_s}")
        if not 0 <= self.asr_pack_s <= 30:
            raise SpeechLMError(f"asr_pack_s must be 0 (off) to 30 s (Whisper's window), not {self.asr_pack_s}")
        if self.denoise_skip_snr_db is not None and not math.isfinite(self.denoise_skip_snr_db):
            raise SpeechLMError(f"denoise_skip_snr_db must be a finite number or null, not {self.denoise_skip_snr_db}")
        if not 0 < self.vad_threshold < 1:
            raise SpeechLMError(f"vad_threshold must be in (0, 1), not {self.vad_threshold}")

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> PipelineConfig:
        """Build from a flat mapping; unknown keys and wrong types raise :class:`SpeechLMError`."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise SpeechLMError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
        base = cls()
        kw: dict[str, Any] = {}
        for k, v in d.items():
            if v is None and "None" in str(known[k].type):  # an optional setting switched off
                kw[k] = None
                continue
            want = type(getattr(base, k))
            if getattr(base, k) is None:  # an optional setting off by default: its type from the annotation
                want = {"float": float, "int": int, "str": str, "bool": bool}[str(known[k].type).split(" |")[0]]
            if want is float and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            if not isinstance(v, want) or (want is not bool and isinstance(v, bool)):
                raise SpeechLMError(f"{where}: {k} must be a {want.__name__}, not {v!r}")
            kw[k] = v
        return cls(**kw)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PipelineConfig:
        """Read a YAML (``.yaml``/``.yml``) or JSON file holding a flat mapping of settings."""
        p = Path(path)
        if not p.is_file():
            raise SpeechLMError(f"{p}: no such config file")
        text = p.read_text(encoding="utf-8")
        try:
            if p.suffix.lower() in (".yaml", ".yml"):
                import yaml

                d = yaml.safe_load(text) or {}
            else:
                d = json.loads(text)
        except Exception as exc:  # noqa: BLE001 - yaml and json raise different types
            raise SpeechLMError(f"{p}: cannot parse ({str(exc).splitlines()[0]})") from None
        if not isinstance(d, dict):
            raise SpeechLMError(f"{p}: expected a mapping of settings")
        return cls.from_dict(d, where=str(p))

    def with_(self, **kw: Any) -> PipelineConfig:
        """A copy with some settings changed (validated again)."""
        return replace(self, **kw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self, stage: str) -> str:
        """16 hex digits of SHA-256 over the settings that change ``stage``'s result or any earlier stage's."""
        if stage not in STAGE_FIELDS:
            raise ValueError(f"unknown stage {stage!r}")
        names: list[str] = []
        for s, fs in STAGE_FIELDS.items():
            names += fs
            if s == stage:
                break
        d = {k: getattr(self, k) for k in names}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


# The settings each stage's result depends on, in stage order (a stage also depends on all earlier ones).
STAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "standardise": ("target_lufs", "max_gain_db", "min_input_s"),
    "denoise": ("denoise", "denoiser", "window_s", "denoise_skip_snr_db"),
    "vad": ("vad_threshold", "min_speech_s"),
    "diarise": ("diarise",),
    "segment": ("min_pause_s", "pad_s", "min_utt_s", "max_utt_s"),
    # The audio gates run before ASR, so that what they reject is not transcribed; the text gates after it.
    "filter": ("dnsmos", "dnsmos_hop_s", "dnsmos_bf16", "min_dnsmos", "min_snr_db", "max_clip_fraction"),
    "transcribe": ("asr", "asr_beam", "lang", "asr_pack_s", "min_avg_logprob", "min_chars_per_s"),
    "tag": ("tag", "seed", "split"),
}
