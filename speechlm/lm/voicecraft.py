"""VoiceCraft's causal masking: spans to (re)generate become mask tokens and move to the end.

Frame-level layout (each "frame" is one column of ``K`` codes; special frames repeat one token over ``K``)::

    codes  Y0 [Y1] Y2 [Y3] Y4                  spans (s1, e1), (s3, e3)
    ->     Y0 M1 Y2 M2 Y4  M1 Y1 EOG  M2 Y3 EOG

so the model sees the audio on both sides of a span before generating it: one causal model does continuation
(TTS: a single span at the end, prompt = Y0) and infilling (editing). The delay pattern is applied to the whole
rearranged frame sequence afterwards. Pure functions; :func:`unmask` inverts :func:`mask_and_move` (and also
reassembles a generated sequence whose spans have new lengths).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AudioVocab:
    """Token ids of one codebook: codes ``0..card-1``, then ``eog``, ``pad`` and ``n_masks`` mask tokens.

    ``cards``: the codes each codebook really has (a source-filter codec's streams differ: f0 128, gain 32,
    ...); empty = ``card`` for all. Generation samples codebook k only among its first ``cards[k]`` codes."""

    card: int
    n_masks: int = 4
    cards: tuple[int, ...] = ()

    def code_mask(self, k: int) -> torch.Tensor:
        """bool ``[size]``: the codes codebook ``k`` may take (no special token)."""
        allowed = torch.zeros(self.size, dtype=torch.bool)
        allowed[: min(self.cards[k], self.card) if k < len(self.cards) else self.card] = True
        return allowed

    @property
    def eog(self) -> int:
        return self.card

    @property
    def pad(self) -> int:
        return self.card + 1

    def mask(self, i: int) -> int:
        if not 0 <= i < self.n_masks:
            raise ValueError(f"mask index {i} out of range (the model has {self.n_masks} mask tokens)")
        return self.card + 2 + i

    def is_mask(self, token: int) -> bool:
        return self.card + 2 <= token < self.card + 2 + self.n_masks

    @property
    def size(self) -> int:
        return self.card + 2 + self.n_masks


Span = tuple[int, int]


def check_spans(spans: Sequence[Span], n_frames: int, n_masks: int, allow_empty: bool = False) -> None:
    """Spans must be sorted, disjoint, inside ``[0, n_frames]``, at most ``n_masks`` of them."""
    if not spans:
        raise ValueError("at least one span is needed")
    if len(spans) > n_masks:
        raise ValueError(f"{len(spans)} spans but only {n_masks} mask tokens")
    prev = 0
    for s, e in spans:
        if s < prev or e > n_frames or e < s or (e == s and not allow_empty):
            raise ValueError(f"bad spans {list(spans)} for {n_frames} frames (sorted, disjoint, non-empty)")
        prev = e


def _special(k: int, token: int, like: torch.Tensor) -> torch.Tensor:
    return like.new_full((k, 1), token)


def mask_and_move(codes: torch.Tensor, spans: Sequence[Span], vocab: AudioVocab) -> torch.Tensor:
    """codes ``[K, T]``, spans -> rearranged frames ``[K, T + 3 * len(spans)]`` (see the module docstring)."""
    k = codes.shape[0]
    check_spans(spans, codes.shape[1], vocab.n_masks)
    ctx, moved, prev = [], [], 0
    for i, (s, e) in enumerate(spans):
        m = _special(k, vocab.mask(i), codes)
        ctx += [codes[:, prev:s], m]
        moved += [m, codes[:, s:e], _special(k, vocab.eog, codes)]
        prev = e
    ctx.append(codes[:, prev:])
    return torch.cat(ctx + moved, dim=1)


def infill_context(codes: torch.Tensor, spans: Sequence[Span], vocab: AudioVocab
                   ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The inference side of :func:`mask_and_move`: (prefix ``[K, F]``, forced frames after each EOG).

    The prefix is ``Y0 M1 Y2 ... Yn M1``: generation continues until EOG, then the next forced frame (``M2``)
    is inserted, and so on. Empty spans ``(s, s)`` are allowed (pure insertion; TTS is ``(T, T)``).
    """
    k = codes.shape[0]
    check_spans(spans, codes.shape[1], vocab.n_masks, allow_empty=True)
    ctx, prev = [], 0
    for i, (s, e) in enumerate(spans):
        ctx += [codes[:, prev:s], _special(k, vocab.mask(i), codes)]
        prev = e
    ctx += [codes[:, prev:], _special(k, vocab.mask(0), codes)]
    forced = [_special(k, vocab.mask(i), codes) for i in range(1, len(spans))]
    return torch.cat(ctx, dim=1), forced


def unmask(frames: torch.Tensor, vocab: AudioVocab) -> tuple[torch.Tensor, list[Span]]:
    """Rearranged frames ``[K, F]`` -> (codes ``[K, T]``, spans of the filled-in parts in the result).

    Reads the mask tokens from codebook 0: the context part up to the first repeated mask, then each moved
    ``M_i ... EOG`` segment is put back where ``M_i`` stood.
    """
    row = frames[0].tolist()
    first_seen: dict[int, int] = {}
    split = len(row)
    for j, t in enumerate(row):
        if vocab.is_mask(t):
            if t in first_seen:
                split = j
                break
            first_seen[t] = j
    fills: dict[int, torch.Tensor] = {}
    j = split
    while j < len(row):
        t = row[j]
        if not vocab.is_mask(t):
            raise ValueError(f"frame {j}: expected a mask token to start a moved span, got {t}")
        end = j + 1
        while end < len(row) and row[end] != vocab.eog:
            end += 1
        fills[t] = frames[:, j + 1 : end]
        j = end + 1
    out, spans, pos, start = [], [], 0, 0
    for j in range(split):
        t = row[j]
        if vocab.is_mask(t):
            out.append(frames[:, start:j])
            pos += j - start
            fill = fills.get(t, frames[:, :0])
            out.append(fill)
            spans.append((pos, pos + fill.shape[1]))
            pos += fill.shape[1]
            start = j + 1
    out.append(frames[:, start:split])
    return torch.cat(out, dim=1), spans
