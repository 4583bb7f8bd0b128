"""Stage 4, segment: voice activity (Silero VAD v6) -> single-speaker utterances of 3-30 s cut at pauses.

The VAD is Silero's v6 ONNX model as bundled inside ``faster-whisper`` (``faster_whisper/assets/
silero_vad_v6.onnx``; nothing is downloaded), run by onnxruntime on one thread. :class:`StreamingVAD` carries the
model's recurrent state and 64-sample context from block to block, so a long file is scored in bounded memory and
the probabilities equal one pass over the whole signal. One probability per 512 samples (32 ms at 16 kHz).

:func:`speech_regions` turns probabilities into speech regions (hysteresis: on at ``threshold``, off below
``threshold - 0.15``; regions shorter than ``min_speech_s`` dropped, gaps shorter than ``min_pause_s`` bridged), so
every gap between regions is a pause at least ``min_pause_s`` long: the only places an utterance may end.

:func:`make_utterances` intersects the regions with diarisation turns (time covered by two speakers at once is
dropped: overlapped speech makes bad training data), then greedily joins consecutive pieces of one speaker while
the pause between them is at most ``max_gap_s`` and the result stays within ``max_utt_s``. A single piece longer
than ``max_utt_s`` is split at its least speech-like frame, recursively. Each utterance gets up to ``pad_s`` of
the silence around it (never more than half the pause to a neighbour). Utterances shorter than ``min_utt_s`` are
rejected and counted.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from speechlm.errors import MissingDependencyError
from speechlm.pipeline.config import PIPELINE_SR

FRAME = 512  # samples per VAD decision at 16 kHz
CONTEXT = 64
FRAME_S = FRAME / PIPELINE_SR
HYSTERESIS = 0.15
MAX_GAP_S = 1.5


@dataclass(frozen=True)
class Segment:
    """One utterance: seconds within the (standardised) source and a speaker label local to that source."""

    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@functools.lru_cache(maxsize=1)
def _session():
    try:
        import onnxruntime as ort
        from faster_whisper.utils import get_assets_path
    except ImportError as exc:
        raise MissingDependencyError(
            "the VAD needs onnxruntime and faster-whisper (its bundled Silero model): pip install 'speechlm[eval]'"
        ) from exc
    import os

    opts = ort.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 4
    path = os.path.join(get_assets_path(), "silero_vad_v6.onnx")
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"], sess_options=opts)


class StreamingVAD:
    """Speech probability per 32 ms frame of 16 kHz audio fed in blocks of any size.

    ``feed(x [t]) -> probs [n]`` for each complete frame so far; ``flush()`` scores the zero-padded tail.
    """

    def __init__(self) -> None:
        self.session = _session()
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._ctx = np.zeros(CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)

    def _run(self, frames: np.ndarray) -> np.ndarray:  # frames [n, 512]
        ctx = np.concatenate([self._ctx[None], frames[:-1, -CONTEXT:]], axis=0)  # each frame's preceding 64
        batch = np.concatenate([ctx, frames], axis=1)
        out: list[np.ndarray] = []
        for i in range(0, len(batch), 10000):
            p, self._h, self._c = self.session.run(None, {"input": batch[i:i + 10000], "h": self._h, "c": self._c})
            out.append(np.asarray(p, np.float32).reshape(-1))
        self._ctx = frames[-1, -CONTEXT:].copy()
        return np.concatenate(out)

    def feed(self, x: np.ndarray) -> np.ndarray:
        x = np.concatenate([self._pending, np.asarray(x, np.float32).reshape(-1)])
        n = len(x) // FRAME
        self._pending = x[n * FRAME:]
        if n == 0:
            return np.zeros(0, np.float32)
        return self._run(x[: n * FRAME].reshape(n, FRAME))

    def flush(self) -> np.ndarray:
        if self._pending.size == 0:
            return np.zeros(0, np.float32)
        frame = np.zeros(FRAME, np.float32)
        frame[: self._pending.size] = self._pending
        self._pending = np.zeros(0, np.float32)
        return self._run(frame[None])


def speech_probs(blocks: Iterable[np.ndarray]) -> np.ndarray:
    """VAD probabilities ``[n_frames]`` (one per 32 ms) of 16 kHz mono audio given as blocks ``[t]``."""
    vad = StreamingVAD()
    out = [vad.feed(b) for b in blocks]
    out.append(vad.flush())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def speech_regions(probs: np.ndarray, threshold: float = 0.5, min_speech_s: float = 0.25,
                   min_pause_s: float = 0.3) -> list[tuple[float, float]]:
    """Speech regions ``[(start_s, end_s)]`` from frame probabilities ``[n]`` (see the module docstring)."""
    regions: list[list[float]] = []
    on = False
    start = 0
    off = threshold - HYSTERESIS
    for i, p in enumerate(np.asarray(probs, np.float32)):
        if not on and p >= threshold:
            on, start = True, i
        elif on and p < off:
            on = False
            regions.append([start * FRAME_S, i * FRAME_S])
    if on:
        regions.append([start * FRAME_S, len(probs) * FRAME_S])
    merged: list[list[float]] = []
    for r in regions:
        if merged and r[0] - merged[-1][1] < min_pause_s:
            merged[-1][1] = r[1]
        else:
            merged.append(r)
    return [(round(s, 3), round(e, 3)) for s, e in merged if e - s >= min_speech_s]


def _single_speaker_pieces(regions: Sequence[tuple[float, float]],
                           turns: Sequence[tuple[float, float, str]] | None,
                           min_speech_s: float) -> list[Segment]:
    """Regions cut by diarisation turns; time where turns of different speakers overlap is dropped."""
    if not turns:
        return [Segment(s, e, "spk0") for s, e in regions]
    # Elementary intervals between all turn edges: each is covered by a set of speakers.
    edges = sorted({t for s, e, _ in turns for t in (s, e)})
    owned: list[tuple[float, float, str]] = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        who = {spk for s, e, spk in turns if s < b and e > a}
        if len(who) == 1:
            spk = next(iter(who))
            if owned and owned[-1][2] == spk and abs(owned[-1][1] - a) < 1e-9:
                owned[-1] = (owned[-1][0], b, spk)
            else:
                owned.append((a, b, spk))
    pieces: list[Segment] = []
    for rs, re_ in regions:
        for ts, te, spk in owned:
            s, e = max(rs, ts), min(re_, te)
            if e - s >= min_speech_s:
                pieces.append(Segment(round(s, 3), round(e, 3), spk))
    return pieces


def _split_long(seg: Segment, probs: np.ndarray | None, max_s: float) -> list[Segment]:
    """Split ``seg`` at its least speech-like frame (middle 60 %) until every part is at most ``max_s``."""
    if seg.duration <= max_s:
        return [seg]
    lo, hi = seg.start + 0.2 * seg.duration, seg.end - 0.2 * seg.duration
    if probs is not None and len(probs):
        a, b = int(lo / FRAME_S), min(int(hi / FRAME_S), len(probs))
        cut = (a + int(np.argmin(probs[a:b]))) * FRAME_S if b > a else (lo + hi) / 2
    else:
        cut = (lo + hi) / 2
    cut = round(cut, 3)
    return (_split_long(Segment(seg.start, cut, seg.speaker), probs, max_s)
            + _split_long(Segment(cut, seg.end, seg.speaker), probs, max_s))


def make_utterances(
    regions: Sequence[tuple[float, float]],
    turns: Sequence[tuple[float, float, str]] | None = None,
    probs: np.ndarray | None = None,
    *,
    duration: float | None = None,
    min_utt_s: float = 3.0,
    max_utt_s: float = 30.0,
    max_gap_s: float = MAX_GAP_S,
    pad_s: float = 0.1,
    min_speech_s: float = 0.25,
) -> tuple[list[Segment], Counter]:
    """Single-speaker utterances from speech regions and diarisation turns (see the module docstring).

    Args:
        regions: speech regions ``[(start_s, end_s)]`` in time order, separated by pauses.
        turns: diarisation ``[(start_s, end_s, speaker)]``; None = one speaker ``spk0``.
        probs: VAD frame probabilities ``[n]``, to split over-long regions at their quietest frame.
        duration: the source's length in seconds (padding stops there).

    Returns:
        (utterances in time order, rejected counts by reason: ``too_short``).
    """
    limit = max_utt_s - 2 * pad_s  # room for the padding
    pieces = []
    for p in _single_speaker_pieces(regions, turns, min_speech_s):
        pieces += _split_long(p, probs, limit)
    groups: list[list[Segment]] = []
    for p in pieces:
        g = groups[-1] if groups else None
        if g and g[-1].speaker == p.speaker and p.start - g[-1].end <= max_gap_s and p.end - g[0].start <= limit:
            g.append(p)
        else:
            groups.append([p])
    joined = [Segment(g[0].start, g[-1].end, g[0].speaker) for g in groups]
    rejects: Counter = Counter()
    out: list[Segment] = []
    for i, u in enumerate(joined):
        prev_end = joined[i - 1].end if i else 0.0
        last = duration if duration is not None else u.end + pad_s
        next_start = joined[i + 1].start if i + 1 < len(joined) else last
        s = max(0.0, u.start - min(pad_s, max(0.0, (u.start - prev_end) / 2)))
        e = u.end + min(pad_s, max(0.0, (next_start - u.end) / 2))
        if duration is not None:
            e = min(e, duration)
        if e - s < min_utt_s:
            rejects["too_short"] += 1
            continue
        out.append(Segment(round(s, 3), round(e, 3), u.speaker))
    return out, rejects
