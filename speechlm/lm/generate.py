"""Batched generation with a :class:`~speechlm.lm.model.CodecLM` over delayed columns, and VALL-E's AR+NAR.

A request is a text, a prefix of known frames (``[K, F]``, already rearranged by
:func:`~speechlm.lm.voicecraft.infill_context`) and frames to force after each EOG. Each step fills one delayed
column: entries whose frame is known are copied, the others are sampled (codebook 0 with repetition-aware
sampling; it alone may emit EOG, which then fills the whole frame). A row ends when its last EOG frame is
complete; a row that reaches ``max_frames`` generated frames is ended with a forced EOG and flagged ``hit_cap``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from speechlm.lm.delay import delay
from speechlm.lm.model import CodecLM, VallE
from speechlm.lm.sampling import SamplingConfig, repetition_aware_sample, sample
from speechlm.lm.voicecraft import AudioVocab


@dataclass
class GenRequest:
    """text: token ids ``[L]``; prefix: known frames ``[K, F]`` (F >= 1); forced: frames ``[K, n]`` inserted
    after each EOG but the last; max_frames: cap on generated frames (all spans together); min_frames: EOG is
    not allowed before this many frames of the current span (a floor from the phoneme count: an undertrained
    model otherwise stops at the stop token's marginal rate, long before the text is read)."""

    text: list[int]
    prefix: torch.Tensor
    forced: list[torch.Tensor] = field(default_factory=list)
    max_frames: int = 1000
    min_frames: int = 0


@dataclass
class GenResult:
    """frames: the whole rearranged sequence ``[K, F']`` (prefix, generated spans, EOGs, forced frames);
    generated: frames sampled; hit_cap: ended by the length cap instead of an EOG."""

    frames: torch.Tensor
    generated: int
    hit_cap: bool


def max_frames_for(n_phones: int, frames_per_phone: float, factor: float = 3.0, extra: int = 25) -> int:
    """A generous length cap from the phoneme count (``factor`` x the training data's mean rate)."""
    return int(math.ceil(factor * frames_per_phone * max(n_phones, 1))) + extra


def min_frames_for(n_phones: int, frames_per_phone: float, factor: float = 0.5) -> int:
    """A length floor from the phoneme count (``factor`` x the training data's mean rate)."""
    return int(factor * frames_per_phone * max(n_phones, 0))


def pad_text(texts: Sequence[Sequence[int]], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists -> (ids ``[B, L]``, mask ``[B, L]``)."""
    n = max(len(t) for t in texts)
    ids = torch.full((len(texts), n), pad, dtype=torch.long)
    mask = torch.zeros(len(texts), n, dtype=torch.bool)
    for i, t in enumerate(texts):
        if t:
            ids[i, n - len(t):] = torch.tensor(list(t), dtype=torch.long)
            mask[i, n - len(t):] = True
    return ids, mask


class _Row:
    def __init__(self, req: GenRequest, k: int, card: int) -> None:
        cap = req.prefix.shape[1] + req.max_frames + sum(f.shape[1] for f in req.forced) + len(req.forced) + 2
        self.grid = np.full((k, cap), -1, dtype=np.int64)  # numpy: cheap element access in the step loop
        self.grid[:, : req.prefix.shape[1]] = req.prefix.numpy()
        self.n = req.prefix.shape[1]  # frames whose codebook 0 is known
        self.forced = list(req.forced)
        self.max_frames, self.min_frames = req.max_frames, req.min_frames
        self.generated = 0
        self.span_len = 0
        self.history: list[int] = []
        self.end: int | None = None  # index of the final EOG frame
        self.hit_cap = False


@torch.no_grad()
def generate(model: CodecLM, requests: Sequence[GenRequest], vocab: AudioVocab, cfg: SamplingConfig,
             generator: torch.Generator | None = None) -> list[GenResult]:
    """Generate every request in one batch (see the module docstring)."""
    model.eval()
    k_cb = model.n_codebooks
    rows = [_Row(r, k_cb, vocab.card) for r in requests]
    text, text_mask = pad_text([r.text for r in requests])
    common = min(r.prefix.shape[1] for r in requests)
    known = torch.stack([delay(r.prefix[:, :common], vocab.pad)[:, :common] for r in requests])
    logits, cache = model.prefill(text, text_mask, known)
    masks = torch.stack([vocab.code_mask(k) for k in range(k_cb)])  # [K, V]: each codebook's own codes
    allowed0 = masks[0].clone()
    allowed0[vocab.eog] = True
    c = common
    while any(r.end is None or c <= r.end + k_cb - 2 for r in rows):
        need0 = [b for b, r in enumerate(rows) if r.end is None and r.n == c]
        if need0:
            allowed = allowed0.expand(len(need0), -1).clone()
            for i, b in enumerate(need0):
                allowed[i, vocab.eog] = rows[b].span_len >= rows[b].min_frames
            toks = repetition_aware_sample(logits[need0, 0], [rows[b].history for b in need0], cfg, generator,
                                           allowed)
            for b, t in zip(need0, toks.tolist()):
                r = rows[b]
                if t != vocab.eog and r.generated >= r.max_frames:
                    t, r.hit_cap = vocab.eog, True
                if t == vocab.eog:
                    r.grid[:, c] = vocab.eog
                    r.n += 1
                    r.history = []
                    r.span_len = 0
                    if r.forced:
                        f = r.forced.pop(0)
                        r.grid[:, r.n : r.n + f.shape[1]] = f.numpy()
                        r.n += f.shape[1]
                    else:
                        r.end = c
                else:
                    r.grid[0, c] = t
                    r.n += 1
                    r.generated += 1
                    r.span_len += 1
                    r.history.append(t)
        need = [(b, k) for k in range(1, k_cb) for b, r in enumerate(rows)
                if 0 <= c - k < r.n and r.grid[k, c - k] < 0]
        if need:  # all codebooks > 0 in one call
            ks = [k for _, k in need]
            toks = sample(logits[[b for b, _ in need], ks], cfg, generator, masks[ks])
            for (b, k), t in zip(need, toks.tolist()):
                rows[b].grid[k, c - k] = t
        cols = np.full((len(rows), k_cb), vocab.pad, dtype=np.int64)
        for b, r in enumerate(rows):
            for k in range(k_cb):
                f = c - k
                if 0 <= f < r.grid.shape[1] and r.grid[k, f] >= 0:
                    cols[b, k] = r.grid[k, f]
        col = torch.from_numpy(cols)
        if all(r.end is not None and c >= r.end + k_cb - 2 for r in rows):
            break
        logits = model.step(col, cache)
        c += 1
    return [GenResult(torch.from_numpy(r.grid[:, : (r.end or 0) + 1].copy()), r.generated, r.hit_cap)
            for r in rows]


@torch.no_grad()
def generate_until_stop(model: CodecLM, requests: Sequence[GenRequest], vocab: AudioVocab, cfg: SamplingConfig,
                        generator: torch.Generator | None = None, retries: int = 2) -> list[GenResult]:
    """:func:`generate`, then resample (batched, same generator: still seeded) the rows that ran to their cap,
    up to ``retries`` times; a row keeps the first draw that ends with its own EOG (else the last, ``hit_cap``).

    A draw that reaches the cap is usually a loop the sampler fell into; a fresh draw rarely repeats it.
    """
    results = generate(model, requests, vocab, cfg, generator)
    for _ in range(max(0, retries)):
        todo = [i for i, r in enumerate(results) if r.hit_cap]
        if not todo:
            break
        for i, r in zip(todo, generate(model, [requests[i] for i in todo], vocab, cfg, generator)):
            results[i] = r
    return results


@torch.no_grad()
def generate_valle(model: VallE, text: list[int], prompt: torch.Tensor, vocab: AudioVocab, cfg: SamplingConfig,
                   max_frames: int, generator: torch.Generator | None = None, min_frames: int = 0,
                   retries: int = 0) -> tuple[torch.Tensor, bool]:
    """VALL-E TTS: prompt codes ``[K, P]`` (P >= 1) -> (generated codes ``[K, G]``, hit_cap)."""
    model.eval()
    res = generate_until_stop(model.ar, [GenRequest(text, prompt[:1], [], max_frames, min_frames)], vocab, cfg,
                              generator, retries)[0]
    c0 = res.frames[0, prompt.shape[1]:-1]  # drop the prompt and the EOG
    k_cb, p = prompt.shape[0], prompt.shape[1]
    audio = torch.full((1, k_cb, p + len(c0)), 0, dtype=torch.long)
    audio[0, :, :p] = prompt
    audio[0, 0, p:] = c0
    ids, mask = pad_text([text])
    plen = torch.tensor([p])
    amask = torch.ones(1, audio.shape[2], dtype=torch.bool)
    for stage in range(1, k_cb):
        logits = model.nar(ids, mask, audio, plen, amask, stage)[0, p:]  # [G, V]
        logits[:, ~vocab.code_mask(stage)] = float("-inf")
        audio[0, stage, p:] = logits.argmax(-1)
    return audio[0, :, p:], res.hit_cap
