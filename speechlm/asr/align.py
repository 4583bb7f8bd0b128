"""CTC Viterbi forced alignment: the single best CTC path that spells a known label sequence.

:func:`viterbi_align` is the pure core (log-probabilities and target ids in, a frame-level path out);
:func:`spans_from_path` turns the path into per-token frame spans; :func:`build_alignment` groups tokens into
words and converts frames to seconds, returning the typed :class:`Alignment` that speech editing (word spans)
and tokenizer analysis (frame-level phone labels) consume.

CTC posteriors are "peaky": a phone is usually emitted on one or two frames with blanks around it. The raw
spans (first to last emitting frame) are therefore widened into contiguous segments: inside a word, a phone
lasts until the next phone starts; at a word edge the word takes up to ``edge_pad_s`` of the neighbouring
blank run (half of the gap at most) and the rest of a long gap is silence.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from speechlm.errors import SpeechLMError

BLANK = 0
SILENCE = "sil"


class AlignmentError(SpeechLMError):
    """The audio is too short for the text (CTC needs one frame per label plus one between repeats)."""


@dataclass(frozen=True)
class PhoneSpan:
    label: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class WordSpan:
    word: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Alignment:
    """A forced alignment. Spans are contiguous within a word, in order, and never overlap.

    Attributes:
        phones: one span per phone of the transcript, in order.
        words: one span per word, from its first phone's start to its last phone's end.
        frame_rate: the aligner's output frames per second (50 for the shipped model).
        n_frames: aligner frames in the utterance (duration = n_frames / frame_rate).
        score: mean log-probability per frame of the best path (a confidence; near 0 is good, below ~-1.5 is
            usually a wrong transcript).
    """

    phones: list[PhoneSpan]
    words: list[WordSpan]
    frame_rate: float
    n_frames: int
    score: float

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.frame_rate

    def frame_labels(
        self, frame_rate: float | None = None, n_frames: int | None = None, silence: str = SILENCE
    ) -> list[str]:
        """The phone label at the centre of each frame of a grid at ``frame_rate`` (default: the aligner's).

        Frames outside every phone span get ``silence``. ``n_frames`` defaults to covering the utterance, so a
        tokenizer's frames (e.g. 75 Hz codec frames) can be labelled by passing its rate and frame count.
        """
        rate = float(frame_rate or self.frame_rate)
        n = int(n_frames if n_frames is not None else round(self.duration_s * rate))
        labels = [silence] * n
        centres = (np.arange(n) + 0.5) / rate
        for span in self.phones:
            lo = int(np.searchsorted(centres, span.start_s, side="left"))
            hi = int(np.searchsorted(centres, span.end_s, side="left"))
            for j in range(lo, min(hi, n)):
                labels[j] = span.label
        return labels

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=1)


def viterbi_align(
    logprobs: np.ndarray, targets: Sequence[int], blank: int = BLANK
) -> tuple[np.ndarray, float]:
    """The best CTC path through ``logprobs`` that collapses to ``targets``.

    Args:
        logprobs: ``[T, V]`` log-probabilities (numpy or anything ``np.asarray`` accepts).
        targets: ``[L]`` label ids (none equal to ``blank``).
        blank: the blank index.
    Returns:
        (``path`` int64 ``[T]``: for each frame the index into ``targets`` it emits, or -1 for blank;
        total log-probability of the path).
    Raises:
        AlignmentError: T is smaller than L plus the number of adjacent repeated labels.
    """
    lp = np.asarray(logprobs, dtype=np.float64)
    if lp.ndim != 2:
        raise ValueError(f"logprobs must be [T, V], got shape {lp.shape}")
    tgt = np.asarray(list(targets), dtype=np.int64)
    T, V = lp.shape
    L = len(tgt)
    if L and (tgt.min() < 0 or tgt.max() >= V or (tgt == blank).any()):
        raise ValueError("targets must be non-blank ids inside the vocabulary")
    repeats = int((tgt[1:] == tgt[:-1]).sum()) if L > 1 else 0
    if T < L + repeats:
        raise AlignmentError(
            f"audio too short to align: {T} frames for {L} labels ({repeats} repeated pairs "
            f"need a blank between them)"
        )
    S = 2 * L + 1
    ext = np.full(S, blank, dtype=np.int64)
    ext[1::2] = tgt
    # Skipping a blank (s-2 -> s) is allowed into a label that differs from the label two states back.
    can_skip = np.zeros(S, dtype=bool)
    if L > 1:
        can_skip[3::2] = tgt[1:] != tgt[:-1]
    neg = -np.inf
    alpha = np.full(S, neg)
    alpha[0] = lp[0, blank]
    if L:
        alpha[1] = lp[0, ext[1]]
    back = np.zeros((T, S), dtype=np.int8)
    emit = lp[:, ext]  # [T, S]
    for t in range(1, T):
        stay = alpha
        step = np.concatenate(([neg], alpha))[:S]
        skip = np.where(can_skip, np.concatenate(([neg, neg], alpha))[:S], neg)
        cand = np.stack([stay, step, skip])  # [3, S]
        arg = cand.argmax(0)
        back[t] = arg
        alpha = cand[arg, np.arange(S)] + emit[t]
    # A path ends on the final blank or the final label.
    if L and alpha[S - 2] > alpha[S - 1]:
        s = S - 2
    else:
        s = S - 1
    score = float(alpha[s])
    if not np.isfinite(score):
        raise AlignmentError("no valid alignment path (the model gives zero probability to the transcript)")
    states = np.empty(T, dtype=np.int64)
    for t in range(T - 1, -1, -1):
        states[t] = s
        s -= int(back[t, s])
    path = np.where(states % 2 == 1, (states - 1) // 2, -1)
    return path, score


def spans_from_path(path: np.ndarray, n_tokens: int) -> list[tuple[int, int]]:
    """Raw ``(first_frame, last_frame + 1)`` of each token in a :func:`viterbi_align` path."""
    path = np.asarray(path)
    spans = []
    for k in range(n_tokens):
        idx = np.flatnonzero(path == k)
        if len(idx) == 0:
            raise ValueError(f"token {k} is never emitted in the path")
        spans.append((int(idx[0]), int(idx[-1]) + 1))
    return spans


def fill_spans(
    raw: list[tuple[int, int]], word_of_token: Sequence[int], n_frames: int, edge_pad: int
) -> list[tuple[int, int]]:
    """Widen raw CTC token spans into contiguous phone segments (frames).

    Inside a word a token runs until the next token starts. A word's first token starts up to ``edge_pad``
    frames early and its last token ends up to ``edge_pad`` frames late, taking at most half of the blank gap
    to the neighbouring word (or all of the gap to the utterance edge, capped at ``edge_pad``).
    """
    n = len(raw)
    out = [list(s) for s in raw]
    for k in range(n):
        last_in_word = k == n - 1 or word_of_token[k + 1] != word_of_token[k]
        if not last_in_word:
            out[k][1] = raw[k + 1][0]
    for k in range(n):
        first_in_word = k == 0 or word_of_token[k - 1] != word_of_token[k]
        last_in_word = k == n - 1 or word_of_token[k + 1] != word_of_token[k]
        if first_in_word:
            if k == 0:
                out[k][0] = max(0, raw[k][0] - edge_pad)
            else:
                gap = raw[k][0] - raw[k - 1][1]
                out[k][0] = raw[k][0] - min(gap - gap // 2, edge_pad)
        if last_in_word:
            if k == n - 1:
                out[k][1] = min(n_frames, raw[k][1] + edge_pad)
            else:
                gap = raw[k + 1][0] - raw[k][1]
                out[k][1] = raw[k][1] + min(gap // 2, edge_pad)
    return [(int(a), int(b)) for a, b in out]


def build_alignment(
    path: np.ndarray,
    score: float,
    labels: Sequence[str],
    word_of_token: Sequence[int],
    words: Sequence[str],
    frame_rate: float,
    edge_pad_s: float = 0.06,
) -> Alignment:
    """Assemble an :class:`Alignment` from a Viterbi path.

    Args:
        path: ``[T]`` from :func:`viterbi_align`.
        score: its total log-probability.
        labels: ``[L]`` phone label of each target token.
        word_of_token: ``[L]`` index into ``words`` of each token (non-decreasing).
        words: the words; every word must own at least one token.
        frame_rate: aligner frames per second.
        edge_pad_s: how far a word may extend into neighbouring blank frames.
    """
    n_frames = len(path)
    if len(labels) != len(word_of_token):
        raise ValueError("labels and word_of_token must have the same length")
    if list(word_of_token) != sorted(word_of_token):
        raise ValueError("word_of_token must be non-decreasing")
    if sorted(set(word_of_token)) != list(range(len(words))):
        raise ValueError("every word must own at least one token")
    raw = spans_from_path(path, len(labels))
    filled = fill_spans(raw, word_of_token, n_frames, int(round(edge_pad_s * frame_rate)))
    phones = [PhoneSpan(lab, a / frame_rate, b / frame_rate) for lab, (a, b) in zip(labels, filled)]
    word_spans = []
    for w, word in enumerate(words):
        ks = [k for k, ww in enumerate(word_of_token) if ww == w]
        word_spans.append(WordSpan(word, filled[ks[0]][0] / frame_rate, filled[ks[-1]][1] / frame_rate))
    return Alignment(
        phones=phones,
        words=word_spans,
        frame_rate=float(frame_rate),
        n_frames=n_frames,
        score=score / max(1, n_frames),
    )
