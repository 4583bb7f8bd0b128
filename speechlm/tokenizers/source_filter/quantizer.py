"""Quantisers of the source-filter parameters: one token stream per parameter group.

Streams (rows of the codes ``[K, T]``), in order:

- ``f0``: 0 = unvoiced, 1..127 = log-F0 uniform between ``F0_MIN`` and ``F0_MAX`` (30-cent steps);
- ``gain``: the log gain (mel-cepstral coefficient 0), uniform in 32 levels over the training range;
- ``aperiodicity``: band aperiodicity, a 32-entry VQ codebook;
- ``envelope.1`` .. ``envelope.N``: residual VQ of the envelope shape (coefficients 1..), 1024 entries a stage;
- ``f0.mid`` (when the codec has it, after every envelope stage): the F0 knot halfway to the next frame, as its
  offset from the straight line between the two frames' F0 in ``f0_mid_levels`` uniform steps of ``f0_mid_step``
  octaves (the middle code = on the line; ignored unless both frames are voiced).

A prefix of the streams is a lower bitrate (streams of different cardinality; ``cardinality`` is the largest).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from speechlm.errors import SpeechLMError
from speechlm.tokenizers.source_filter.world import Frames

F0_LEVELS = 128
F0_MIN, F0_MAX = 55.0, 500.0
STREAM_PREFIX = ("f0", "gain", "aperiodicity")


def greedy_pick(logits: torch.Tensor, voicing: bool = False) -> torch.Tensor:
    """Greedy tokens of logits ``[N, V]`` -> ``[N]``. With ``voicing`` (an F0 stream: id 0 = unvoiced, the rest
    pitch bins) the voicing is decided first (voiced when P(id != 0) > 0.5) and then the likeliest pitch bin is
    taken: a plain argmax almost never picks a voiced bin, because the voiced mass is spread over ~127 of them
    (it made every frame unvoiced: whispered speech)."""
    if not voicing:
        return logits.argmax(-1)
    p = logits.float().softmax(-1)
    voiced = p[:, 0] < 0.5
    return torch.where(voiced, logits[:, 1:].argmax(-1) + 1, torch.zeros_like(voiced, dtype=torch.long))


def nearest(x: np.ndarray, codebook: np.ndarray, chunk: int = 32768) -> np.ndarray:
    """Index of the nearest row of ``codebook [K, D]`` for every row of ``x [N, D]`` -> int64 ``[N]``."""
    c2 = (codebook * codebook).sum(1)
    out = [np.argmin(c2[None] - 2.0 * x[i : i + chunk] @ codebook.T, axis=1) for i in range(0, len(x), chunk)]
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def quantize_f0(f0: np.ndarray) -> np.ndarray:
    """Hz ``[T]`` (0 = unvoiced) -> codes 0..127."""
    span = math.log(F0_MAX / F0_MIN)
    q = np.round(np.log(np.clip(f0, F0_MIN, F0_MAX) / F0_MIN) / span * (F0_LEVELS - 2)).astype(np.int64) + 1
    return np.where(f0 > 0, q, 0)


def dequantize_f0(q: np.ndarray) -> np.ndarray:
    """codes 0..127 -> Hz (0 = unvoiced)."""
    span = math.log(F0_MAX / F0_MIN)
    return np.where(q > 0, F0_MIN * np.exp((np.asarray(q) - 1) / (F0_LEVELS - 2) * span), 0.0)


def search_weights(dim: int, tilt: float) -> np.ndarray:
    """Per mel-cepstral coefficient ``c_1 .. c_dim`` the weight ``1 / (1 + k / tilt)`` of its squared error in the
    envelope search ``[dim]`` float32: the low coefficients (the spectral tilt and the formant pattern) count more
    than the fine detail. Chosen on development clips (docs/experiments/2026-12-05-weighted-envelope-search.md)."""
    return (1.0 / (1.0 + np.arange(1, dim + 1) / tilt)).astype(np.float32)


def beam_rvq(x: np.ndarray, books: np.ndarray, beam: int) -> np.ndarray:
    """Residual VQ of ``x [N, D]`` through every stage of ``books [S, C, D]`` by beam search -> indices ``[S, N]``.

    Keeps the ``beam`` paths with the least residual error after each stage and returns the best full path:
    a lower error at the full depth than stage-by-stage nearest entries (``beam=1``), same codebooks. A prefix
    of the result is tuned for the full depth, not for itself."""
    n = len(x)
    res = x.astype(np.float32)[:, None, :]  # [N, b, D]
    err = (res * res).sum(-1)  # [N, b]
    paths = np.zeros((n, 1, 0), np.int64)
    for book in books:
        b, c = res.shape[1], len(book)
        # |r - e|^2 of every path and entry: [N, b, C]
        cross = (res.reshape(n * b, -1) @ book.T).reshape(n, b, c)
        d = (err[:, :, None] + (book * book).sum(1)[None, None] - 2.0 * cross).reshape(n, b * c)
        k = min(beam, b * c)
        if k < b * c:  # torch's top-k is ~9x faster than numpy's argpartition on [N, 8192] rows
            top = torch.topk(torch.from_numpy(d), k, dim=1, largest=False, sorted=False).indices.numpy()
        else:
            top = np.tile(np.arange(b * c), (n, 1))
        src, entry = top // c, top % c
        res = np.take_along_axis(res, src[:, :, None], 1) - book[entry]
        err = (res * res).sum(-1)
        paths = np.concatenate([np.take_along_axis(paths, src[:, :, None], 1), entry[:, :, None]], axis=2)
    return paths[np.arange(n), err.argmin(1)].T


@dataclass(frozen=True)
class SourceFilterQuantizer:
    """Learned codebooks and ranges (all float32 numpy arrays; see the module docstring for the streams).

    Attributes:
        gain_range: ``[2]`` (low, high) log gain mapped to levels 0 and ``gain_levels - 1``.
        ap_codebook: ``[A, n_bands]`` band-aperiodicity codebook (dB).
        env_codebooks: ``[S, C, MCEP_DIM - 1]`` residual VQ stages of the envelope shape.
        gain_levels: number of gain levels.
        f0_mid_levels: levels of the ``f0.mid`` stream (0: the codec has none).
        f0_mid_step: octaves a level of ``f0.mid``.
    """

    gain_range: np.ndarray
    ap_codebook: np.ndarray
    env_codebooks: np.ndarray
    gain_levels: int = 32
    f0_mid_levels: int = 0
    f0_mid_step: float = 0.075

    @property
    def n_env_stages(self) -> int:
        return int(self.env_codebooks.shape[0])

    @property
    def cardinalities(self) -> list[int]:
        """Codebook size of every stream, in stream order."""
        mid = [self.f0_mid_levels] if self.f0_mid_levels else []
        env = [self.env_codebooks.shape[1]] * self.n_env_stages
        return [F0_LEVELS, self.gain_levels, len(self.ap_codebook)] + env + mid

    @property
    def stream_names(self) -> list[str]:
        mid = ["f0.mid"] if self.f0_mid_levels else []
        return list(STREAM_PREFIX) + [f"envelope.{i + 1}" for i in range(self.n_env_stages)] + mid

    @property
    def f0_mid_zero(self) -> int:
        """The ``f0.mid`` code of a knot on the straight line."""
        return self.f0_mid_levels // 2

    @property
    def rest_codes(self) -> list[int]:
        """Per envelope stage, the entry nearest zero: what a stage left out of a frame is filled with."""
        return [int(np.argmin((b.astype(np.float64) ** 2).sum(1))) for b in self.env_codebooks]

    def bits_per_frame(self, n_env: int, f0_mid: bool = False) -> float:
        """Nominal bits of a frame with ``n_env`` envelope stages (and ``f0.mid``)."""
        bits = sum(math.log2(c) for c in self.cardinalities[: len(STREAM_PREFIX) + n_env])
        return float(bits + (math.log2(self.f0_mid_levels) if f0_mid else 0.0))

    def encode(self, frames: Frames, n_env: int, beam: int = 1, tilt: float = 0.0, f0_mid: bool = False) -> np.ndarray:
        """Token-rate :class:`Frames` -> codes ``[3 + n_env (+ 1), T]`` int64; the envelope stages by
        :func:`beam_rvq` when ``beam`` > 1, else stage by stage (nearest entry). ``tilt`` > 0 searches the envelope
        under :func:`search_weights` (same codebooks: only which entries are chosen changes). ``f0_mid`` (all
        envelope stages only): the ``f0.mid`` row last, from ``frames.f0_mid``."""
        if f0_mid and (not self.f0_mid_levels or n_env != self.n_env_stages or frames.f0_mid is None):
            raise SpeechLMError("f0.mid needs a codec with that stream, every envelope stage and Frames.f0_mid")
        lo, hi = (float(v) for v in self.gain_range)
        gain = np.clip(np.round((frames.mcep[:, 0] - lo) / (hi - lo) * (self.gain_levels - 1)), 0, self.gain_levels - 1)
        rows = [quantize_f0(frames.f0), gain.astype(np.int64), nearest(frames.bap, self.ap_codebook)]
        residual = frames.mcep[:, 1:].astype(np.float32)
        books = self.env_codebooks[:n_env]
        if tilt > 0:
            w = np.sqrt(search_weights(residual.shape[1], tilt))
            residual, books = residual * w, books * w
        if beam > 1 and n_env > 1:
            rows += list(beam_rvq(residual, books, beam))
        else:
            for s in range(n_env):
                idx = nearest(residual, books[s])
                rows.append(idx)
                residual = residual - books[s][idx]
        if f0_mid:
            q = np.round(np.asarray(frames.f0_mid, np.float64) / self.f0_mid_step) + self.f0_mid_zero
            rows.append(np.clip(q, 0, self.f0_mid_levels - 1).astype(np.int64))
        return np.stack(rows)

    def decode(self, codes: np.ndarray) -> Frames:
        """codes ``[3 + n (+ 1), T]`` -> token-rate :class:`Frames` (the envelope is the sum of the n stages'
        entries; ``f0_mid`` from the ``f0.mid`` row when there is one)."""
        lo, hi = (float(v) for v in self.gain_range)
        gain = lo + codes[1] / (self.gain_levels - 1) * (hi - lo)
        n_env = min(len(codes) - len(STREAM_PREFIX), self.n_env_stages)
        shape = np.zeros((codes.shape[1], self.env_codebooks.shape[2]), np.float32)
        for s, row in enumerate(codes[len(STREAM_PREFIX) : len(STREAM_PREFIX) + n_env]):
            shape += self.env_codebooks[s][row]
        mcep = np.concatenate([gain[:, None].astype(np.float32), shape], axis=1)
        mid = None
        if len(codes) > len(STREAM_PREFIX) + self.n_env_stages:
            mid = ((codes[-1] - self.f0_mid_zero) * self.f0_mid_step).astype(np.float32)
        return Frames(dequantize_f0(codes[0]).astype(np.float32), mcep, self.ap_codebook[codes[2]], mid)
