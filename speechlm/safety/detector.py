"""Synthetic-speech detection: is this recording a person, or did a synthesizer, vocoder or speech codec make it?

The detector (``speechlm detect FILE``) is a small convolutional network over log linear-frequency filterbank
energies (LFB: 160 triangular bands equally spaced from 0 to 8 kHz, 60 in the first model; the LFCC front end
without the DCT, which ASVspoof found more telling than mel bands because synthesis artefacts sit in the high
band) and, where ``FeatureConfig.phase_bands`` > 0, phase channels from the same STFT (:func:`phase_features`:
a vocoder or codec makes its own phase, which the magnitude does not show):

1. the file is read, downmixed, resampled to 16 kHz, its leading/trailing silence (quieter than 45 dB below the
   peak) cut, so the padding a synthesizer adds (often exact digital zeros) says nothing, and it is put on 16-bit
   steps as the training corpus was (:func:`to_16bit`);
2. it is cut into 2-s segments (hop 2 s; the last one is aligned to the end; a file shorter than 2 s is one
   segment);
3. each segment's features ``[channels, T]`` have the per-band mean of their LFB removed (so loudness and a fixed
   channel colouring, e.g. a telephone band, are not evidence on their own) and go through a small time-delay
   network (1-D convs over time with the bands as channels, dilated residual blocks, mean + standard-deviation
   pooling, a two-layer head): one logit a segment; an ensemble (:class:`DetectorEnsemble`, the shipped model)
   averages the logits of several such networks trained alike, with or without the phase channels;
4. the file's score is the sigmoid of the mean segment logit (where ``NetConfig.clip_weight`` > 0, averaged with
   a logistic regression on whole-clip statistics, :mod:`speechlm.safety.clip_stats`, which also judges each
   segment on its own for the segment scores); ``label`` is ``synthetic`` when it is at least
   the threshold saved with the model (a single model: the equal-error point of its validation set; an
   ensemble: 2 % false alarms on the human validation clips, :func:`speechlm.safety.detector_train.combine`).

Checkpoints are the project's safetensors + ``config.json`` (:mod:`speechlm.train.checkpoint`), never pickle.
Training: :mod:`speechlm.safety.detector_train`.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from speechlm.errors import SpeechLMError

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "detector_default"
TRIM_DB = -45.0
TRIM_MARGIN_S = 0.1


class DetectorError(SpeechLMError):
    """Bad input for the detector (an empty or silent file, a missing model)."""


@dataclass(frozen=True)
class FeatureConfig:
    """The LFB front end: ``n_bands`` linear triangular bands over ``[0, f_max]`` of an ``n_fft`` STFT."""

    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 160
    n_bands: int = 160  # 50 Hz wide: finer than the 60 bands of the first model (docs/safety.md#detection)
    f_max: float = 8000.0
    segment_s: float = 2.0
    # > 0: also phase features (:func:`phase_features`), 3 x phase_bands channels after the LFB; 0: LFB only
    phase_bands: int = 0

    @property
    def channels(self) -> int:
        """Feature channels: LFB bands, then the phase channels."""
        return self.n_bands + 3 * self.phase_bands


@dataclass(frozen=True)
class NetConfig:
    """The network: ``channels`` of every conv, the dilations of its residual blocks."""

    channels: int = 128
    dilations: tuple[int, ...] = (1, 2, 4)
    dropout: float = 0.2
    members: int = 1  # > 1: an ensemble of that many nets whose logits are averaged (DetectorEnsemble)
    # the first lfb_only_members of an ensemble read the LFB channels alone (members trained without phase
    # features, combined with ones trained with them)
    lfb_only_members: int = 0
    # > 0: the file logit is (1 - clip_weight) x the members' mean + clip_weight x a logistic regression on
    # whole-clip statistics (speechlm.safety.clip_stats.ClipHead, an ensemble's ``clip_head``)
    clip_weight: float = 0.0


@dataclass(frozen=True)
class DetectorConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    net: NetConfig = field(default_factory=NetConfig)
    threshold: float = 0.5

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectorConfig:
        net = dict(d.get("net") or {})
        if "dilations" in net:
            net["dilations"] = tuple(net["dilations"])
        return cls(FeatureConfig(**(d.get("features") or {})), NetConfig(**net),
                   float(d.get("threshold", 0.5)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------------ features

def _linear_filterbank(cfg: FeatureConfig) -> torch.Tensor:
    """Triangular bands equally spaced in Hz: ``[n_bands, n_fft // 2 + 1]``."""
    n_bins = cfg.n_fft // 2 + 1
    freqs = np.linspace(0, cfg.sample_rate / 2, n_bins)
    edges = np.linspace(0, cfg.f_max, cfg.n_bands + 2)
    fb = np.zeros((cfg.n_bands, n_bins), np.float32)
    for i in range(cfg.n_bands):
        lo, mid, hi = edges[i : i + 3]
        up = (freqs - lo) / (mid - lo)
        down = (hi - freqs) / (hi - mid)
        fb[i] = np.maximum(0.0, np.minimum(up, down))
    return torch.from_numpy(fb)


_FB_CACHE: dict[FeatureConfig, torch.Tensor] = {}


def lfb(wav: np.ndarray | torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """Log linear-filterbank energies.

    Args:
        wav: mono float ``[T]`` at ``cfg.sample_rate``.

    Returns:
        float32 ``[n_bands, T // hop_length + 1]`` (natural log of power, floored at 1e-10).
    """
    return _log_bands(_stft(wav, cfg), cfg)


def _stft(wav: np.ndarray | torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """``[T] -> [n_fft // 2 + 1, T // hop_length + 1]`` complex (Hann window, centred frames; a clip shorter
    than one window is zero-padded to it)."""
    x = torch.as_tensor(np.asarray(wav, np.float32))
    if x.numel() < cfg.n_fft:
        x = torch.nn.functional.pad(x, (0, cfg.n_fft - x.numel()))
    return torch.stft(x, cfg.n_fft, cfg.hop_length, window=torch.hann_window(cfg.n_fft), center=True,
                      return_complex=True)


def _log_bands(spec: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    fb = _FB_CACHE.get(cfg)
    if fb is None:
        fb = _FB_CACHE[cfg] = _linear_filterbank(cfg)
    return torch.log(fb @ spec.abs().pow(2) + 1e-10)


def phase_features(wav: np.ndarray | torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """What the magnitude spectrum throws away: a vocoder or codec makes its own phase (a minimum- or zero-phase
    pulse, a random phase), a voice's phase comes from its glottis and vocal tract.

    Per frame and per band (``cfg.phase_bands`` equal bands of the bins below Nyquist): the mean cosine and the
    mean absolute value of the wrapped phase difference between neighbouring bins (the group delay: where in the
    frame the energy sits, and how consistently), and the mean cosine of the wrapped instantaneous-frequency
    deviation (the phase advance from the previous frame less the bin's own).

    Args:
        wav: mono float ``[T]`` at ``cfg.sample_rate``.

    Returns:
        float32 ``[3 * phase_bands, T // hop_length + 1]``.
    """
    return _phase_bands(_stft(wav, cfg), cfg)


def _phase_bands(spec: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    n_bins = (cfg.n_fft // 2) // cfg.phase_bands * cfg.phase_bands
    gd = torch.angle(spec[1 : n_bins + 1] * spec[:n_bins].conj())  # [n_bins, T']
    k = torch.arange(n_bins, dtype=torch.float32)[:, None]
    advance = torch.exp(-2j * math.pi * k * cfg.hop_length / cfg.n_fft)
    ifd = torch.angle(spec[:n_bins, 1:] * spec[:n_bins, :-1].conj() * advance)  # [n_bins, T' - 1]
    ifd = torch.cat([ifd[:, :1], ifd], dim=1) if ifd.shape[1] else torch.zeros_like(gd)

    def band(a: torch.Tensor) -> torch.Tensor:
        return a.reshape(cfg.phase_bands, -1, a.shape[-1]).mean(1)
    return torch.cat([band(torch.cos(gd)), band(gd.abs()), band(torch.cos(ifd))])


def features(wav: np.ndarray | torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """The detector's input: :func:`lfb`, then :func:`phase_features` where ``cfg.phase_bands`` > 0.

    Returns:
        float32 ``[cfg.channels, T // hop_length + 1]``.
    """
    spec = _stft(wav, cfg)
    if not cfg.phase_bands:
        return _log_bands(spec, cfg)
    return torch.cat([_log_bands(spec, cfg), _phase_bands(spec, cfg)])


def trim_silence(wav: np.ndarray, sr: int, threshold_db: float = TRIM_DB,
                 margin_s: float = TRIM_MARGIN_S) -> np.ndarray:
    """Cut leading/trailing audio quieter than ``threshold_db`` below the peak: ``[T] -> [T']`` (empty: silent)."""
    peak = float(np.max(np.abs(wav))) if wav.size else 0.0
    if peak <= 0:
        return wav[:0]
    loud = np.flatnonzero(np.abs(wav) > peak * 10 ** (threshold_db / 20))
    margin = int(margin_s * sr)
    return wav[max(0, loud[0] - margin) : loud[-1] + 1 + margin]


def to_16bit(wav: np.ndarray) -> np.ndarray:
    """``[T]`` float -> ``[T]`` float32 on the 16-bit steps the detector's corpus stores (``k / 32767``, truncated
    towards zero as ``detector_data.save_clips`` does; audio already on those steps stays as it is).

    The log filterbank reads the noise floor of quiet bands: a recording resampled in floating point (an 8-kHz
    telephone file, say) has almost nothing above its old Nyquist frequency, where every training clip had
    16-bit quantisation noise. Unquantised, 58 % of 160 held-out human telephone recordings were flagged from
    their files against 13 % from the corpus's copies of the same audio (docs/safety.md#detection)."""
    x = np.clip(np.asarray(wav, np.float64), -1.0, 1.0) * 32767
    # float32 k / 32767 times 32767 is k within 0.002: the nudge keeps such values on their step
    return (np.trunc(x + np.sign(x) * 5e-3) / 32767).astype(np.float32)


def segment_bounds(n: int, seg: int) -> list[tuple[int, int]]:
    """``[start, end)`` sample ranges of the segments of ``n`` samples: windows of ``seg``, hop ``seg``, the last
    aligned to the end (so it overlaps the one before); one window ``[0, n)`` when ``n <= seg``."""
    if n <= seg:
        return [(0, n)]
    starts = list(range(0, n - seg + 1, seg))
    if starts[-1] + seg < n:
        starts.append(n - seg)
    return [(s, s + seg) for s in starts]


# ---------------------------------------------------------------------------------------------------- model

class _Residual(nn.Module):
    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm1d(channels), nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T] -> [B, C, T]``."""
        return x + self.body(x)


class DetectorNet(nn.Module):
    """LFB segments -> synthetic logits (positive: synthetic).

    A time-delay network: the bands are the input channels of a 1-D conv stack (one conv of width 5 and stride 2,
    then residual dilated convs), mean + standard-deviation pooling over time and a two-layer head. 1-D convs
    over all bands at once cost a tenth of a 2-D CNN of the same width on a CPU, which keeps training and
    detection cheap."""

    def __init__(self, n_bands: int, channels: int = 128, dilations: tuple[int, ...] = (1, 2, 4),
                 dropout: float = 0.2, extra_channels: int = 0):
        super().__init__()
        self.n_bands = n_bands  # the LFB channels, whose mean over time is removed; then extra_channels (phase)
        self.input_norm = nn.BatchNorm1d(n_bands + extra_channels)
        self.front = nn.Sequential(nn.Conv1d(n_bands + extra_channels, channels, 5, stride=2, padding=2, bias=False),
                                   nn.BatchNorm1d(channels), nn.ReLU())
        self.blocks = nn.Sequential(*[_Residual(channels, d) for d in dilations])
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * channels, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """feats ``[B, n_bands + extra_channels, T]`` (log energies, then phase features; T >= 2) -> logits
        ``[B]``."""
        feats = feats[:, : self.input_norm.num_features]  # an LFB-only member of a phase ensemble: its channels
        e = feats[:, : self.n_bands]
        x = e - e.mean(dim=-1, keepdim=True)  # per-band mean over time: gain and fixed colouring go
        if feats.shape[1] > self.n_bands:  # phase features are not levels: kept as they are
            x = torch.cat([x, feats[:, self.n_bands :]], dim=1)
        x = self.blocks(self.front(self.input_norm(x)))  # [B, C, T/2]
        x = torch.cat([x.mean(dim=-1), x.std(dim=-1)], dim=1)
        return self.head(x).squeeze(-1)


class DetectorEnsemble(nn.Module):
    """Several :class:`DetectorNet` trained alike (other seeds): the mean of their logits ``[B]``; optionally a
    ``clip_head`` (:class:`speechlm.safety.clip_stats.ClipHead`) that :class:`Detector` weighs in per file."""

    def __init__(self, members: list[DetectorNet], clip_head: nn.Module | None = None):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.clip_head = clip_head

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """feats ``[B, n_bands, T]`` -> logits ``[B]``."""
        return torch.stack([m(feats) for m in self.members]).mean(0)


def build_net(cfg: DetectorConfig) -> DetectorNet | DetectorEnsemble:
    def one(phase: bool = True) -> DetectorNet:
        return DetectorNet(cfg.features.n_bands, cfg.net.channels, cfg.net.dilations, cfg.net.dropout,
                           extra_channels=cfg.features.channels - cfg.features.n_bands if phase else 0)

    if cfg.net.members <= 1:
        return one()
    head = None
    if cfg.net.clip_weight > 0:
        from speechlm.safety.clip_stats import ClipHead, dim

        head = ClipHead(dim(cfg.features))
    return DetectorEnsemble([one(i >= cfg.net.lfb_only_members) for i in range(cfg.net.members)], head)


# ---------------------------------------------------------------------------------------------------- API

@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    synthetic_score: float


@dataclass(frozen=True)
class Detection:
    """One file's verdict: ``synthetic_score`` in [0, 1], ``label``, the threshold used, per-segment scores."""

    synthetic_score: float
    label: str
    threshold: float
    duration: float
    segments: list[Segment]
    model: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "synthetic_score": round(self.synthetic_score, 6), "label": self.label,
            "threshold": round(self.threshold, 6), "duration": round(self.duration, 3), "model": self.model,
            "segments": [{"start": round(s.start, 3), "end": round(s.end, 3),
                          "synthetic_score": round(s.synthetic_score, 6)} for s in self.segments],
        }


def resolve_model_dir(model: str | os.PathLike | None) -> Path:
    """``None`` / ``"default"``: the shipped detector; ``NAME`` or ``detector_NAME``: ``assets/detector_NAME``;
    else a checkpoint folder (or a run folder's ``final``)."""
    if model is None or str(model) == "default":
        path = DEFAULT_MODEL_DIR
    else:
        path, name = Path(model), str(model)
        asset = DEFAULT_MODEL_DIR.parent / f"detector_{name.removeprefix('detector_')}"
        if not path.exists() and "/" not in name and asset.is_dir():
            path = asset
        if (path / "final" / "config.json").exists():
            path = path / "final"
    if not (path / "config.json").exists():
        raise DetectorError(f"no detector model at {path} (expected config.json + model.safetensors)")
    return path


class Detector:
    """A loaded detector. ``Detector.load()`` is the shipped one; ``score_wav`` / ``score_file`` judge audio."""

    def __init__(self, net: DetectorNet | DetectorEnsemble, config: DetectorConfig, model_id: str = "detector"):
        self.net = net.eval()
        self.config = config
        self.model_id = model_id

    @classmethod
    def load(cls, model: str | os.PathLike | None = None) -> Detector:
        from speechlm.utils.checkpoint import load_checkpoint

        path = resolve_model_dir(model)
        ckpt = load_checkpoint(path)
        cfg = DetectorConfig.from_dict(ckpt.config.get("detector") or {})
        net = build_net(cfg)
        net.load_state_dict({k: v.float() for k, v in ckpt.state_dict.items()})
        return cls(net, cfg, ckpt.model_id)

    @property
    def threshold(self) -> float:
        return self.config.threshold

    def prepare(self, wav: np.ndarray, sr: int) -> np.ndarray:
        """``[T]`` or ``[C, T]`` at ``sr`` -> mono 16 kHz ``[T']`` with the silent ends cut, on 16-bit steps."""
        from speechlm.audio.io import model_input

        x = model_input(wav, sr, self.config.features.sample_rate)
        return to_16bit(trim_silence(x, self.config.features.sample_rate))

    @torch.no_grad()
    def segment_logits(self, wav16: np.ndarray) -> tuple[list[tuple[int, int]], torch.Tensor]:
        """Prepared 16-kHz audio ``[T]`` -> (segment sample ranges, logits ``[S]``)."""
        f = self.config.features
        seg = int(round(f.segment_s * f.sample_rate))
        bounds = segment_bounds(len(wav16), seg)
        feats = features(wav16, f)  # [channels, frames]; segments are frame slices of one STFT
        frames = [(s // f.hop_length, max(s // f.hop_length + 1, e // f.hop_length)) for s, e in bounds]
        width = max(b - a for a, b in frames)
        batch = torch.stack([torch.nn.functional.pad(feats[:, a:b], (0, width - (b - a)), mode="replicate")
                             if b - a < width else feats[:, a:b] for a, b in frames])
        return bounds, self.net(batch)

    def score_wav(self, wav: np.ndarray, sr: int) -> Detection:
        """Audio ``[T]`` / ``[C, T]`` at ``sr`` -> :class:`Detection`.

        Raises:
            DetectorError: no samples, or nothing above silence.
        """
        x = self.prepare(wav, sr)
        f = self.config.features
        if len(x) < f.sample_rate // 10:
            raise DetectorError("the audio is silent or shorter than 0.1 s: nothing to judge")
        bounds, logits = self.segment_logits(x)
        seg_logits = [float(v) for v in logits]
        file_logit = float(logits.mean())
        w = self.config.net.clip_weight
        if w > 0:  # the whole-clip regression: over the file's 6-s windows, and over each segment
            from speechlm.safety.clip_stats import clip_logit, mix_logits

            head = clip_logit(self.net.clip_head, x, f)
            file_logit = mix_logits(file_logit, head, w)
            if len(bounds) > 1:
                seg_logits = [mix_logits(v, clip_logit(self.net.clip_head, x[s:e], f), w)
                              for (s, e), v in zip(bounds, seg_logits)]
            else:  # one segment: the whole file, as the windows saw it
                seg_logits = [file_logit]
        score = _sigmoid(file_logit)
        segs = [Segment(s / f.sample_rate, e / f.sample_rate, _sigmoid(v))
                for (s, e), v in zip(bounds, seg_logits)]
        label = "synthetic" if score >= self.threshold else "human"
        return Detection(score, label, self.threshold, len(x) / f.sample_rate, segs, self.model_id)

    def score_file(self, path: str | os.PathLike) -> Detection:
        from speechlm.audio.io import load_audio

        wav, sr = load_audio(path, channels=None)
        return self.score_wav(wav, sr)


def num_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))  # no overflow either way


def logit(p: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return math.log(p / (1 - p))


def eer(human: np.ndarray, synthetic: np.ndarray) -> tuple[float, float]:
    """Equal error rate of scores (higher: more synthetic) and the threshold where it occurs.

    Args:
        human, synthetic: scores ``[N_h]``, ``[N_s]``.

    Returns:
        ``(eer, threshold)``: the rate at which false alarms (human >= threshold) and misses (synthetic <
        threshold) are closest, their mean; the threshold is a score value.
    """
    h, s = np.asarray(human, np.float64), np.asarray(synthetic, np.float64)
    if h.size == 0 or s.size == 0:
        raise ValueError("eer needs scores of both classes")
    cands = np.unique(np.concatenate([h, s]))
    far = np.array([(h >= t).mean() for t in cands])
    frr = np.array([(s < t).mean() for t in cands])
    i = int(np.argmin(np.abs(far - frr)))
    return float((far[i] + frr[i]) / 2), float(cands[i])
