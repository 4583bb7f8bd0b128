"""Lossless entropy coding of token streams: a fitted frequency model per stream, and a range coder over it.

A codec's tokens are stored at ``log2(cardinality)`` bits each, but they are far from uniform and far from
independent in time: the source-filter codec's F0 code moves by a step or two between 20-ms frames, the gain and
the first envelope stage repeat through pauses. :class:`TokenEntropyModel` gives each stream a static table of
integer frequencies, either one table (``context="none"``) or one per value of the same stream in the previous
frame (``context="previous"``), fitted by counting the tokens of training speech and smoothed towards the stream's
overall frequencies. :func:`pack` codes a ``[K, T]`` array frame by frame (all streams of frame 0, then frame 1,
...) with :mod:`speechlm.tokenizers.rangecoder`; :func:`unpack` recovers it exactly. The tokens, and therefore
the audio, do not change: only the number of bits that carries them. The one lossy option, :class:`FrameDepth`,
leaves the deeper streams of quiet frames out (a decoder infers which from the frame's own gain code).

File format of a model (``.safetensors``; metadata as JSON strings in the header): per stream ``NAME.unigram``
int64 ``[K]`` counts, and for ``previous`` streams ``NAME.pair_index`` uint16 ``[N, 2]`` (previous value, value)
and ``NAME.pair_count`` int32 ``[N]`` of the pairs seen; metadata ``format``, ``tokenizer`` (the ``NAME@HASH``
of the codec whose tokens were counted), ``streams`` (name, cardinality, context), ``smoothing``. The coding
tables are built from the counts with integer arithmetic only, so every machine codes the same bits.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechlm.errors import SpeechLMError
from speechlm.tokenizers.rangecoder import MAX_TOTAL, RangeDecoder, RangeEncoder

FORMAT = "speechlm-token-entropy/1"
CONTEXTS = ("none", "previous")
TOTAL = MAX_TOTAL  # every row of frequencies sums to this


class EntropyModelError(SpeechLMError):
    """A token entropy model that cannot be read, or tokens it cannot code."""


@dataclass(frozen=True)
class StreamSpec:
    """One token stream: its name, cardinality and the context its probabilities depend on."""

    name: str
    cardinality: int
    context: str = "none"


def quantise_rows(weights: np.ndarray, total: int = TOTAL) -> np.ndarray:
    """Integer frequencies ``[R, K]`` (each >= 1, each row summing to ``total``) proportional to non-negative int64
    ``weights [R, K]``; integer arithmetic only. The rounding remainder goes to each row's largest entry."""
    w = np.asarray(weights, dtype=np.int64)
    k = w.shape[1]
    if k > total // 2:
        raise EntropyModelError(f"cardinality {k} too large for frequency total {total}")
    s = np.maximum(w.sum(1, keepdims=True), 1)
    f = 1 + (w * (total - k)) // s
    rest = total - f.sum(1)
    f[np.arange(len(f)), w.argmax(1)] += rest
    return f


@dataclass(frozen=True)
class FrameDepth:
    """Fewer streams in quiet frames: a lossy option of packing, no side information.

    In a frame whose stream ``by`` has a code ``<= rules[j][0]`` (the first such rule, rules by ascending code),
    only the first ``rules[j][1]`` streams are coded; the others take ``fill`` (one code per stream, e.g. a
    codebook's entry nearest zero, for residual stages). Stream ``by`` must itself be kept by every rule, so a
    decoder reads it before it needs the frame's depth. Frames no rule covers keep every stream.
    """

    by: int
    rules: tuple[tuple[int, int], ...]
    fill: tuple[int, ...]

    def kept_for(self, code: int) -> int:
        for top, n in self.rules:
            if code <= top:
                return n
        return len(self.fill)

    def kept(self, codes: np.ndarray) -> np.ndarray:
        """Streams coded in each frame of ``codes [k, T]``: ``[T]`` int64."""
        out = np.full(codes.shape[1], codes.shape[0], np.int64)
        x = np.asarray(codes[self.by])
        for top, n in reversed(self.rules):
            out[x <= top] = min(n, codes.shape[0])
        return out

    def apply(self, codes: np.ndarray) -> np.ndarray:
        """``codes [k, T]`` with every stream a frame does not keep set to its fill code (a copy)."""
        out = np.array(codes, np.int64, copy=True)
        kept = self.kept(out)
        for i in range(out.shape[0]):
            out[i, kept <= i] = self.fill[i]
        return out

    def check(self, k: int, cardinalities: list[int]) -> None:
        """Refuse a depth that cannot describe ``k`` streams of these cardinalities (a corrupt header)."""
        ok = (0 <= self.by < k and len(self.fill) >= k and all(self.by < n for _, n in self.rules)
              and all(0 <= self.fill[i] < c for i, c in enumerate(cardinalities))
              and list(self.rules) == sorted(self.rules))
        if not ok:
            raise EntropyModelError("malformed frame depth")

    def to_json(self) -> dict:
        return {"by": self.by, "rules": [list(r) for r in self.rules], "fill": list(self.fill)}

    @classmethod
    def from_json(cls, d: dict) -> FrameDepth:
        try:
            return cls(int(d["by"]), tuple((int(a), int(b)) for a, b in d["rules"]), tuple(int(v) for v in d["fill"]))
        except (KeyError, TypeError, ValueError):
            raise EntropyModelError("malformed frame depth") from None


class _Table:
    """Cumulative frequencies of one stream: row ``c`` for context ``c`` (the last row: no context)."""

    def __init__(self, freqs: np.ndarray) -> None:
        self.freqs = freqs.astype(np.int64)
        self.cums = np.concatenate([np.zeros((len(freqs), 1), np.int64), np.cumsum(self.freqs, 1)], 1)
        self._rows: dict[int, list[int]] = {}

    def row(self, c: int) -> list[int]:
        r = self._rows.get(c)
        if r is None:
            r = self._rows[c] = self.cums[c].tolist()
        return r


class TokenEntropyModel:
    """Static frequency tables for the token streams of one codec (see the module docstring)."""

    def __init__(self, streams: list[StreamSpec], unigram: list[np.ndarray], pairs: list[np.ndarray | None],
                 tokenizer: str, smoothing: int = 32) -> None:
        if not (len(streams) == len(unigram) == len(pairs)):
            raise EntropyModelError("streams, unigram and pairs must have one entry per stream")
        for s, u, p in zip(streams, unigram, pairs):
            if s.context not in CONTEXTS:
                raise EntropyModelError(f"stream {s.name}: unknown context {s.context!r}")
            if u.shape != (s.cardinality,) or (s.context == "previous") != (p is not None):
                raise EntropyModelError(f"stream {s.name}: counts do not match its cardinality or context")
        self.streams, self.unigram, self.pairs = list(streams), unigram, pairs
        self.tokenizer, self.smoothing = tokenizer, int(smoothing)
        # packed kbps the fit measured on its held-back files per number of streams coded ({"6": 1.05, ...}):
        # descriptive (not part of the id), for choosing a depth by packed rate
        self.expected_kbps: dict[str, float] = {}
        self._tables = [self._build(s, u, p) for s, u, p in zip(streams, unigram, pairs)]

    # --- fitting ---------------------------------------------------------------------------------

    @classmethod
    def fit(cls, codes: list[np.ndarray], streams: list[StreamSpec], tokenizer: str,
            smoothing: int = 32) -> TokenEntropyModel:
        """Count ``codes`` (a list of ``[k, T]`` arrays, ``k <= len(streams)``: the first ``k`` streams; fewer
        rows when a file was encoded at a lower bitrate)."""
        unigram = [np.zeros(s.cardinality, np.int64) for s in streams]
        dense = [np.zeros((s.cardinality, s.cardinality), np.int64) if s.context == "previous" else None
                 for s in streams]
        for c in codes:
            c = np.asarray(c, dtype=np.int64)
            for i in range(min(len(streams), c.shape[0])):
                x = c[i]
                if x.size and (x.min() < 0 or x.max() >= streams[i].cardinality):
                    raise EntropyModelError(f"stream {streams[i].name}: codes outside 0..{streams[i].cardinality - 1}")
                unigram[i] += np.bincount(x, minlength=streams[i].cardinality)
                if dense[i] is not None and x.size > 1:
                    np.add.at(dense[i], (x[:-1], x[1:]), 1)
        pairs = [None if d is None else _sparse(d) for d in dense]
        return cls(streams, unigram, pairs, tokenizer, smoothing)

    def _build(self, s: StreamSpec, u: np.ndarray, p: np.ndarray | None) -> _Table:
        uni = quantise_rows((2 * u + 1)[None])  # add-one-half smoothing
        if p is None:
            return _Table(uni)
        k = s.cardinality
        w = np.zeros((k, k), np.int64)
        w[p[:, 0], p[:, 1]] = p[:, 2]
        # p(x | prev) = (n(prev, x) + a * u(x)) / (n(prev) + a), in units of 1/TOTAL
        rows = quantise_rows(w * TOTAL + self.smoothing * uni)
        return _Table(np.concatenate([rows, uni]))

    # --- coding ------------------------------------------------------------------------------------

    def _check(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[0] > len(self.streams) or codes.shape[0] < 1:
            raise EntropyModelError(f"codes must be [k, T] with 1 <= k <= {len(self.streams)}, got "
                                    f"{tuple(codes.shape)}")
        for i in range(codes.shape[0]):
            if codes[i].size and (codes[i].min() < 0 or codes[i].max() >= self.streams[i].cardinality):
                raise EntropyModelError(f"stream {self.streams[i].name}: codes outside "
                                        f"0..{self.streams[i].cardinality - 1}")
        return codes.astype(np.int64)

    def _context(self, i: int, prev: int | None) -> int:
        t = self._tables[i]
        return len(t.freqs) - 1 if prev is None or self.streams[i].context == "none" else prev

    def bits(self, codes: np.ndarray, kept: np.ndarray | None = None) -> np.ndarray:
        """Ideal code length in bits of each stream of ``codes [k, T]`` under this model: ``[k]`` float. With
        ``kept [T]`` (streams coded per frame, see :meth:`pack`), only the coded ones count."""
        codes = self._check(codes)
        out = np.zeros(codes.shape[0])
        for i, x in enumerate(codes):
            t = self._tables[i]
            ctx = np.full(len(x), len(t.freqs) - 1)
            if self.streams[i].context == "previous" and len(x) > 1:
                ctx[1:] = x[:-1]
            b = -np.log2(t.freqs[ctx, x] / TOTAL)
            out[i] = (b if kept is None else b[np.asarray(kept) > i]).sum()
        return out

    def pack(self, codes: np.ndarray, kept: np.ndarray | None = None) -> bytes:
        """Range-code ``codes [k, T]`` frame by frame. The caller keeps ``k`` and ``T`` (see :meth:`unpack`).
        With ``kept [T]``, frame ``t`` codes only its first ``kept[t]`` streams (the others are implied: see
        :class:`FrameDepth`); a stream's context is still the previous frame's code, coded or implied."""
        codes = self._check(codes)
        enc = RangeEncoder()
        k, n = codes.shape
        cols = codes.T.tolist()
        limit = [k] * n if kept is None else np.minimum(np.asarray(kept, np.int64), k).tolist()
        prev: list[int | None] = [None] * k
        for t in range(n):
            for i, v in enumerate(cols[t]):
                if i < limit[t]:
                    row = self._tables[i].row(self._context(i, prev[i]))
                    enc.encode(row[v], row[v + 1] - row[v], TOTAL)
                prev[i] = v
        return enc.finish()

    def unpack(self, data: bytes, k: int, n: int, depth: FrameDepth | None = None) -> np.ndarray:
        """The ``[k, n]`` int64 codes :meth:`pack` turned into ``data`` (with the ``depth`` it was packed under)."""
        if not 1 <= k <= len(self.streams) or n < 0:
            raise EntropyModelError(f"cannot unpack {k} streams x {n} frames with a {len(self.streams)}-stream model")
        if depth is not None:
            depth.check(k, [s.cardinality for s in self.streams[:k]])
        dec = RangeDecoder(data)
        out = np.zeros((n, k), np.int64)
        prev: list[int | None] = [None] * k
        for t in range(n):
            limit = k
            for i in range(k):
                if i < limit:
                    row = self._tables[i].row(self._context(i, prev[i]))
                    v = bisect.bisect_right(row, dec.target(TOTAL)) - 1
                    dec.consume(row[v], row[v + 1] - row[v])
                    if depth is not None and i == depth.by:
                        limit = min(k, depth.kept_for(v))
                else:
                    v = depth.fill[i]
                out[t, i] = v
                prev[i] = v
        return out.T.copy()

    # --- storage -----------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """First 16 hex digits of a hash over the counts and settings: what a packed file records."""
        h = hashlib.sha256(json.dumps(self._meta(), sort_keys=True).encode())
        for u, p in zip(self.unigram, self.pairs):
            h.update(np.ascontiguousarray(u, np.int64).tobytes())
            if p is not None:
                h.update(np.ascontiguousarray(p, np.int64).tobytes())
        return h.hexdigest()[:16]

    def _meta(self) -> dict:
        return {"format": FORMAT, "tokenizer": self.tokenizer, "smoothing": self.smoothing,
                "streams": [[s.name, s.cardinality, s.context] for s in self.streams]}

    def save(self, path: str | os.PathLike) -> None:
        """Write the counts and settings as ``.safetensors`` (atomically)."""
        from safetensors.numpy import save_file

        from speechlm.utils.atomic import atomic_path

        tensors = {}
        for s, u, p in zip(self.streams, self.unigram, self.pairs):
            tensors[f"{s.name}.unigram"] = np.ascontiguousarray(u, np.int64)
            if p is not None:
                if s.cardinality > 1 << 16 or (p.size and p[:, 2].max() >= 1 << 31):
                    raise EntropyModelError(f"stream {s.name}: too many values or counts to store")
                tensors[f"{s.name}.pair_index"] = np.ascontiguousarray(p[:, :2], np.uint16)
                tensors[f"{s.name}.pair_count"] = np.ascontiguousarray(p[:, 2], np.int32)
        meta = {k: json.dumps(v) for k, v in self._meta().items()}
        meta["expected_kbps"] = json.dumps(self.expected_kbps)
        with atomic_path(path, suffix=".safetensors") as tmp:
            save_file(tensors, str(tmp), metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TokenEntropyModel:
        """Read a model :meth:`save` wrote; anything else raises :class:`EntropyModelError` (no pickle involved)."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise EntropyModelError(f"{path}: no token entropy model there")
        try:
            with safe_open(str(path), framework="np") as f:
                meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
                if meta.get("format") != FORMAT:
                    raise EntropyModelError(f"{path}: not a token entropy model (format {meta.get('format')!r})")
                streams = [StreamSpec(str(n), int(c), str(x)) for n, c, x in meta["streams"]]
                unigram = [f.get_tensor(f"{s.name}.unigram").astype(np.int64) for s in streams]
                pairs = [np.concatenate([f.get_tensor(f"{s.name}.pair_index").astype(np.int64),
                                         f.get_tensor(f"{s.name}.pair_count").astype(np.int64)[:, None]], 1)
                         if s.context == "previous" else None for s in streams]
        except EntropyModelError:
            raise
        except Exception as e:  # safetensors' own errors, a missing key, malformed metadata
            raise EntropyModelError(f"{path}: unreadable token entropy model ({type(e).__name__}: {e})") from None
        for s, p in zip(streams, pairs):
            bad_shape = p is not None and (p.ndim != 2 or p.shape[1] != 3)
            bad_values = p is not None and p.size and (p.min() < 0 or p[:, :2].max() >= s.cardinality)
            if bad_shape or bad_values:
                raise EntropyModelError(f"{path}: stream {s.name}: malformed pair counts")
        model = cls(streams, unigram, pairs, str(meta.get("tokenizer", "")), int(meta.get("smoothing", 32)))
        exp = meta.get("expected_kbps") or {}
        if isinstance(exp, dict):
            model.expected_kbps = {str(k): float(v) for k, v in exp.items()}
        return model

    def streams_for_kbps(self, kbps: float, choices: list[int]) -> int | None:
        """The most streams among ``choices`` whose expected packed rate is at most ``kbps`` (None: none fits,
        or the fit recorded no rates)."""
        fits = [k for k in choices if str(k) in self.expected_kbps and self.expected_kbps[str(k)] <= kbps + 1e-9]
        return max(fits) if fits else None


def _sparse(dense: np.ndarray) -> np.ndarray:
    """``[N, 3]`` (row, column, count) of the non-zero entries of a square count matrix."""
    r, c = np.nonzero(dense)
    return np.stack([r, c, dense[r, c]], 1).astype(np.int64)
