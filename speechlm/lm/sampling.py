"""Token sampling: temperature, top-k, top-p (nucleus), and VALL-E 2's repetition-aware sampling.

All functions take logits ``[N, V]`` and an explicit ``torch.Generator``, so a fixed seed reproduces the
output. ``allowed`` (a bool mask ``[V]`` or ``[N, V]``) removes tokens that are invalid at a position (e.g. the
stop token in a codebook that cannot stop).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingConfig:
    """``temperature`` 0 means greedy. ``top_k`` 0 and ``top_p`` 1 disable those filters.

    Repetition-aware sampling (VALL-E 2): when the token drawn for codebook 0 already fills at least
    ``rep_threshold`` of the last ``rep_window`` generated tokens, it is redrawn from the whole (temperature-
    scaled) distribution, which breaks the silence/stutter loops that nucleus sampling falls into.
    ``rep_window`` 0 disables it.
    """

    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 0.9
    rep_window: int = 10
    rep_threshold: float = 0.1

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.rep_window < 0 or not 0 < self.rep_threshold <= 1:
            raise ValueError("rep_window must be >= 0 and rep_threshold in (0, 1]")


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0,
                  allowed: torch.Tensor | None = None) -> torch.Tensor:
    """logits ``[N, V]`` with the tokens outside top-k / the top-p nucleus / ``allowed`` set to -inf.

    The most likely allowed token always survives.
    """
    out = logits.float().clone()
    if allowed is not None:
        out = out.masked_fill(~allowed.expand_as(out), float("-inf"))
    if top_k and top_k < out.shape[-1]:
        kth = torch.topk(out, top_k, dim=-1).values[..., -1:]
        out = out.masked_fill(out < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, idx = torch.sort(out, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # drop a token when the mass before it already reaches top_p (so the first token always stays)
        drop = (probs.cumsum(-1) - probs) >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        out = torch.full_like(out, float("-inf")).scatter(-1, idx, sorted_logits)
    return out


def sample(logits: torch.Tensor, cfg: SamplingConfig, generator: torch.Generator | None = None,
           allowed: torch.Tensor | None = None) -> torch.Tensor:
    """logits ``[N, V]`` -> tokens ``[N]`` (temperature, top-k, top-p)."""
    if cfg.temperature == 0:
        masked = filter_logits(logits, allowed=allowed)
        return masked.argmax(-1)
    x = logits.float() / cfg.temperature
    if allowed is not None:
        x = x.masked_fill(~allowed.expand_as(x), float("-inf"))
    if cfg.top_k and cfg.top_k < x.shape[-1]:
        # top-p only ever keeps a prefix of the top-k: filter and sample among the k (same distribution, cheaper)
        vals, idx = torch.topk(x, cfg.top_k, dim=-1)
        vals = filter_logits(vals, 0, cfg.top_p)
        pick = torch.multinomial(vals.softmax(-1), 1, generator=generator)
        return idx.gather(-1, pick)[:, 0]
    filtered = filter_logits(x, 0, cfg.top_p)
    return torch.multinomial(filtered.softmax(-1), 1, generator=generator)[:, 0]


def repetition_aware_sample(logits: torch.Tensor, history: list[list[int]], cfg: SamplingConfig,
                            generator: torch.Generator | None = None,
                            allowed: torch.Tensor | None = None) -> torch.Tensor:
    """logits ``[N, V]``, the tokens generated so far for each row -> tokens ``[N]`` (VALL-E 2, Alg. 1)."""
    tokens = sample(logits, cfg, generator, allowed)
    if cfg.rep_window == 0 or cfg.temperature == 0:
        return tokens
    redo = []
    for i, hist in enumerate(history):
        window = hist[-cfg.rep_window:]
        if window and sum(t == int(tokens[i]) for t in window) / cfg.rep_window >= cfg.rep_threshold:
            redo.append(i)
    if redo:
        sub = filter_logits(logits[redo] / cfg.temperature, allowed=None if allowed is None else (
            allowed if allowed.dim() == 1 else allowed[redo]))
        tokens[redo] = torch.multinomial(sub.softmax(-1), 1, generator=generator)[:, 0]
    return tokens
