"""A learned spectral post-filter on the vocoder's output: per time-frequency gains, the vocoder's phase kept.

WORLD rebuilds speech from F0, envelope and aperiodicity with minimum-phase pulses and shaped noise; what it
cannot rebuild (the level between harmonics, noise in voiced bands, detail the 20-ms tokens smooth away) shows
in the magnitude spectrum. The post-filter sees the log-magnitude STFT of the decoded audio (32-ms frames, 8-ms
hop) and predicts a bounded gain for every bin (at most ``max_db`` up or down); the gains multiply the STFT and
the audio is overlap-added with its own phase. Trained on (decoded, original) pairs of training speech with a
loss on compressed magnitudes (``|X| ** 0.3``), the way speech enhancement masks are trained: no adversary, a
CPU budget (docs/experiments/2026-12-05-spectral-postfilter.md). One network serves every bitrate: the
codec's bitrate is an input.

Streaming: :class:`PostFilterStream` takes audio in blocks of any size and returns exactly what the whole
signal gives at once; it holds back ``delay_samples`` (a frame plus the network's look-ahead: 40 ms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LOG_FLOOR = 1e-5  # added to magnitudes before the log
LOG_CENTRE, LOG_SCALE = -4.0, 3.0  # the network's input is (log|Y| - LOG_CENTRE) / LOG_SCALE


@dataclass(frozen=True)
class PostFilterConfig:
    hidden: int = 128
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    n_fft: int = 512  # 32 ms at 16 kHz
    hop: int = 128  # 8 ms: four frames overlap (Hann analysis and synthesis windows)
    lookahead: int = 1  # frames the first layer reads ahead
    max_db: float = 12.0  # largest boost or cut of a bin
    n_conditions: int = 8  # condition indices: the index of a codec's bitrate (codec_sf has 7)

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1


class SpectralPostFilter(nn.Module):
    """Log-magnitudes ``[B, T, F]`` + condition ``[B]`` -> log gains ``[B, T, F]`` within +-``max_db``.

    Causal but for ``lookahead`` frames: frame t's gain reads frames ``t - receptive_back .. t + lookahead``."""

    def __init__(self, config: PostFilterConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden
        self.inp = nn.Conv1d(config.bins, h, 3)
        self.condition = nn.Embedding(config.n_conditions, h)
        self.convs = nn.ModuleList(nn.Conv1d(h, h, 3, dilation=d) for d in config.dilations)
        self.out = nn.Conv1d(h, config.bins, 1)
        nn.init.zeros_(self.out.weight)  # starts as the identity (no gain)
        nn.init.zeros_(self.out.bias)
        self.max_log = config.max_db / 20.0 * math.log(10.0)

    @property
    def receptive_back(self) -> int:
        """Past frames a gain depends on."""
        return (2 - self.config.lookahead) + 2 * sum(self.config.dilations)

    @property
    def delay_samples(self) -> int:
        """What streaming holds back: a frame, and the frames the network reads ahead."""
        return self.config.n_fft + self.config.lookahead * self.config.hop

    def forward(self, log_mag: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        la = self.config.lookahead
        x = F.pad(((log_mag - LOG_CENTRE) / LOG_SCALE).transpose(1, 2), (2 - la, la))
        h = self.inp(x) + self.condition(condition)[:, :, None]
        for conv, d in zip(self.convs, self.config.dilations):
            h = h + conv(F.pad(F.gelu(h), (2 * d, 0)))
        g = self.out(F.gelu(h)).transpose(1, 2)
        return self.max_log * torch.tanh(g / self.max_log)


def hann(n: int) -> torch.Tensor:
    return torch.hann_window(n, periodic=True)


def log_magnitude(frames: torch.Tensor, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Audio frames ``[T, n_fft]`` -> (spectrum ``[T, F]`` complex, log-magnitude ``[T, F]``)."""
    spec = torch.fft.rfft(frames * window, dim=-1)
    return spec, torch.log(spec.abs() + LOG_FLOOR)


class PostFilterStream:
    """Audio blocks in, post-filtered audio out (the same samples, ``delay_samples`` later; see the module).

    The signal is framed from ``n_fft - hop`` zeros before its first sample, so every sample is covered by four
    frames (Hann windows before and after the gains: their squares sum to 1.5 at a quarter-frame hop, so unit
    gains give the input back); a frame's gains are computed once its look-ahead has arrived, over enough earlier
    frames that the network's receptive field is whole, so any split into blocks gives the same output as one
    block."""

    def __init__(self, model: SpectralPostFilter, condition: int) -> None:
        cfg = model.config
        if not 0 <= condition < cfg.n_conditions:
            raise ValueError(f"post-filter condition {condition} outside 0..{cfg.n_conditions - 1}")
        self.model, self.cfg, self.cond = model, cfg, torch.tensor([condition])
        self.window = hann(cfg.n_fft)
        self.norm = 3.0 * cfg.n_fft / (8.0 * cfg.hop)  # sum of the squared Hann window over the overlapping frames
        self.pad = cfg.n_fft - cfg.hop
        self.buf = np.zeros(self.pad, np.float32)  # padded input from absolute index `base`
        self.base = 0
        self.next_frame = 0  # first frame whose gains are not yet applied
        self.acc = np.zeros(0, np.float32)  # overlap-add accumulator from padded index `acc_start`
        self.acc_start = self.pad
        self.n_in = 0  # input samples received

    @property
    def delay_samples(self) -> int:
        return self.model.delay_samples

    def push(self, block: np.ndarray) -> np.ndarray:
        """Append audio ``[n]`` and return the samples that became final (possibly none)."""
        block = np.asarray(block, np.float32).reshape(-1)
        self.buf = np.concatenate([self.buf, block])
        self.n_in += len(block)
        available = self.base + len(self.buf)  # padded samples received
        last = (available - self.cfg.n_fft) // self.cfg.hop - self.cfg.lookahead  # last frame with its look-ahead
        return self._run(last)

    def flush(self) -> np.ndarray:
        """End of the signal: the rest of the samples (``n_in`` in all)."""
        k = n_frames(self.n_in, self.cfg)
        need = (k - 1) * self.cfg.hop + self.cfg.n_fft  # the last frame's end, in padded samples
        if self.base + len(self.buf) < need:
            self.buf = np.concatenate([self.buf, np.zeros(need - self.base - len(self.buf), np.float32)])
        return self._run(k - 1, final=True)

    def _run(self, last: int, final: bool = False) -> np.ndarray:
        """Apply the gains of frames up to ``last`` (the network reads ``lookahead`` frames past it, which are
        there, or at the end of the signal its zero padding) and return the samples that became final."""
        hop, n_fft = self.cfg.hop, self.cfg.n_fft
        available_frames = last + 1 + (0 if final else self.cfg.lookahead)
        if last >= self.next_frame:
            first_in = max(0, self.next_frame - self.model.receptive_back)
            span = self.buf[first_in * hop - self.base : (available_frames - 1) * hop + n_fft - self.base]
            spec, logm = log_magnitude(torch.from_numpy(span).unfold(0, n_fft, hop), self.window)
            with torch.no_grad():
                gain = self.model(logm[None], self.cond)[0]
            k0 = self.next_frame - first_in
            k1 = last + 1 - first_in
            y = torch.fft.irfft(spec[k0:k1] * torch.exp(gain[k0:k1]), n=n_fft, dim=-1) * self.window
            y = (y / self.norm).numpy()
            end = (last * hop + n_fft) - self.acc_start
            if end > len(self.acc):
                self.acc = np.concatenate([self.acc, np.zeros(end - len(self.acc), np.float32)])
            for j, k in enumerate(range(self.next_frame, last + 1)):
                s = k * hop - self.acc_start
                if s < 0:  # the padding before the signal: not output
                    self.acc[: s + n_fft] += y[j, -s:]
                else:
                    self.acc[s : s + n_fft] += y[j]
            self.next_frame = last + 1
        done = self.next_frame * hop if not final else self.pad + self.n_in  # padded index: final before this
        n = max(0, min(done, self.pad + self.n_in) - self.acc_start)
        out, self.acc = self.acc[:n].copy(), self.acc[n:]
        self.acc_start += n
        keep_from = (self.next_frame - self.model.receptive_back) * hop  # frames later runs still read
        drop = max(0, keep_from - self.base)
        self.buf, self.base = self.buf[drop:], self.base + drop
        return out


def n_frames(n_samples: int, config: PostFilterConfig) -> int:
    """Frames of a signal of ``n_samples``: the last one covers its last sample (framed from ``n_fft - hop``
    zeros before the first)."""
    return (config.n_fft - config.hop + n_samples - 1) // config.hop + 1


def frame_log_magnitudes(wav: np.ndarray, config: PostFilterConfig) -> np.ndarray:
    """Audio ``[n]`` -> log-magnitudes ``[K, F]`` float32 of the frames :class:`PostFilterStream` makes of it
    (training pairs are framed the same way)."""
    pad = config.n_fft - config.hop
    k = n_frames(len(wav), config)
    x = np.zeros((k - 1) * config.hop + config.n_fft, np.float32)
    x[pad : pad + len(wav)] = wav
    frames = torch.from_numpy(x).unfold(0, config.n_fft, config.hop)
    return log_magnitude(frames, hann(config.n_fft))[1].numpy()


def postfilter(model: SpectralPostFilter, wav: np.ndarray, condition: int) -> np.ndarray:
    """Post-filter a whole signal ``[n]`` -> ``[n]`` (what :class:`PostFilterStream` gives block by block)."""
    stream = PostFilterStream(model, condition)
    head = stream.push(wav)
    return np.concatenate([head, stream.flush()])
