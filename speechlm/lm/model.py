"""Codec language models over ``[phoneme tokens ; codec tokens]``: the config, the modules, the losses.

* :class:`CodecLM` — one decoder-only transformer. Text (a language token, ``<bos>``, phonemes, ``<eos>``) is
  left-padded to a common length; the audio that follows is a sequence of columns, each the sum of ``K``
  per-codebook embeddings, with ``K`` output heads. Used with the delay pattern and VoiceCraft causal masking
  (``layout="voicecraft"``), and, with ``K = 1``, as VALL-E's autoregressive first-codebook model.
* :class:`NARModel` — VALL-E's non-autoregressive model: a bidirectional transformer that predicts codebook
  ``k`` of every target frame from the text, the full prompt frames and codebooks ``< k`` of the target frames.
* :class:`VallE` — the pair (``layout="valle"``).

Building blocks only: no file I/O; :func:`build_lm` turns an :class:`LMConfig` into modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from speechlm.lm.transformer import KVCache, Transformer
from speechlm.lm.voicecraft import AudioVocab

LAYOUTS = ("voicecraft", "valle")


@dataclass(frozen=True)
class LMConfig:
    """Model settings (``model:`` in ``configs/lm/*.yaml``). ``text_vocab`` is filled from the phoneme table
    plus one token per language in ``langs``; ``codebook_weights`` are per-codebook loss weights (the last one
    repeats for further codebooks)."""

    layout: str = "voicecraft"
    dim: int = 256
    n_layers: int = 4
    n_heads: int = 4
    ffn_mult: float = 4.0
    dropout: float = 0.0
    n_codebooks: int = 4
    card: int = 1024
    n_masks: int = 4
    text_vocab: int = 0
    langs: tuple[str, ...] = ("en", "de", "fr", "es", "it", "ru", "cs", "fi", "nl", "pt", "pl", "cmn", "ja")
    codebook_weights: tuple[float, ...] = (3.0, 1.0, 1.0, 1.0)
    nar_layers: int = 0  # valle: layers of the NAR model (0: n_layers)
    cards: tuple[int, ...] = ()  # codes of each codebook when they differ (filled from the shards); () = card

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"model.layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.n_codebooks < 1 or self.card < 2:
            raise ValueError("model.n_codebooks must be >= 1 and model.card >= 2")
        if self.cards and (len(self.cards) < self.n_codebooks or max(self.cards) > self.card):
            raise ValueError("model.cards must give every codebook's size, each at most model.card")

    @property
    def vocab(self) -> AudioVocab:
        return AudioVocab(self.card, self.n_masks, tuple(self.cards))

    def weights(self, k: int) -> list[float]:
        w = list(self.codebook_weights) or [1.0]
        return [w[min(i, len(w) - 1)] for i in range(k)]


class CodecLM(nn.Module):
    """Decoder-only LM: text prefix, then audio columns of ``K`` codes (see the module docstring)."""

    def __init__(self, text_vocab: int, n_codebooks: int, audio_vocab: int, dim: int, n_layers: int,
                 n_heads: int, ffn_mult: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_codebooks, self.audio_vocab = n_codebooks, audio_vocab
        self.text_emb = nn.Embedding(text_vocab, dim)
        self.audio_emb = nn.ModuleList(nn.Embedding(audio_vocab, dim) for _ in range(n_codebooks))
        self.transformer = Transformer(dim, n_layers, n_heads, ffn_mult, dropout, causal=True)
        self.head = nn.Linear(dim, n_codebooks * audio_vocab, bias=False)
        self.apply(_init)

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """audio ``[B, K, S]`` -> ``[B, S, D]`` (sum over codebooks)."""
        return sum(emb(audio[:, k]) for k, emb in enumerate(self.audio_emb))

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """hidden ``[B, S, D]`` -> logits ``[B, K, S, V]``."""
        b, s, _ = h.shape
        return self.head(h).view(b, s, self.n_codebooks, self.audio_vocab).transpose(1, 2)

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """text ``[B, L]`` (left-padded), text_mask ``[B, L]`` (True = real token), audio ``[B, K, S]``
        -> logits ``[B, K, S, V]``: entry ``s`` predicts audio column ``s`` from the text and columns ``< s``."""
        x = torch.cat([self.text_emb(text), self.embed_audio(audio[:, :, :-1])], dim=1)
        mask = torch.cat([text_mask, text_mask.new_ones(audio.shape[0], audio.shape[2] - 1)], dim=1)
        h = self.transformer(x, key_mask=mask)
        return self.logits(h[:, text.shape[1] - 1 :])

    # --- incremental decoding ---------------------------------------------------------------------
    def prefill(self, text: torch.Tensor, text_mask: torch.Tensor, audio: torch.Tensor
                ) -> tuple[torch.Tensor, KVCache]:
        """Run the text and the known columns ``[B, K, S]`` once: (logits ``[B, K, V]`` for column ``S``, cache)."""
        cache = self.transformer.new_cache()
        x = torch.cat([self.text_emb(text), self.embed_audio(audio)], dim=1)
        mask = torch.cat([text_mask, text_mask.new_ones(audio.shape[0], audio.shape[2])], dim=1)
        h = self.transformer(x, cache=cache, key_mask=mask)
        return self.logits(h[:, -1:])[:, :, 0], cache

    def step(self, column: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """One column ``[B, K]`` -> logits ``[B, K, V]`` for the next column (appends to ``cache``)."""
        h = self.transformer(self.embed_audio(column[:, :, None]), cache=cache)
        return self.logits(h)[:, :, 0]


class NARModel(nn.Module):
    """VALL-E's NAR stage model: predicts codebook ``k >= 1`` of the target frames in one pass."""

    def __init__(self, text_vocab: int, n_codebooks: int, audio_vocab: int, dim: int, n_layers: int,
                 n_heads: int, ffn_mult: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_codebooks, self.audio_vocab = n_codebooks, audio_vocab
        self.text_emb = nn.Embedding(text_vocab, dim)
        self.audio_emb = nn.ModuleList(nn.Embedding(audio_vocab, dim) for _ in range(n_codebooks))
        self.stage_emb = nn.Embedding(n_codebooks, dim)
        self.transformer = Transformer(dim, n_layers, n_heads, ffn_mult, dropout, causal=False)
        self.heads = nn.ModuleList(nn.Linear(dim, audio_vocab, bias=False) for _ in range(n_codebooks))
        self.apply(_init)

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor, audio: torch.Tensor, prompt_len: torch.Tensor,
                audio_mask: torch.Tensor, stage: int) -> torch.Tensor:
        """text ``[B, L]``, audio ``[B, K, S]`` (prompt frames then target frames; target codebooks ``>= stage``
        are ignored), prompt_len ``[B]``, audio_mask ``[B, S]`` -> logits ``[B, S, V]`` for codebook ``stage``."""
        b, k_cb, s = audio.shape
        is_prompt = torch.arange(s, device=audio.device)[None] < prompt_len[:, None]  # [B, S]
        x = 0
        for k in range(k_cb):
            e = self.audio_emb[k](audio[:, k])
            use = is_prompt if k >= stage else torch.ones_like(is_prompt)
            x = x + e * use[..., None]
        x = x + self.stage_emb.weight[stage]
        h = self.transformer(torch.cat([self.text_emb(text), x], dim=1),
                             key_mask=torch.cat([text_mask, audio_mask], dim=1))
        return self.heads[stage](h[:, text.shape[1]:])


class VallE(nn.Module):
    """VALL-E: an AR :class:`CodecLM` over codebook 0 and a :class:`NARModel` for the rest."""

    def __init__(self, ar: CodecLM, nar: NARModel) -> None:
        super().__init__()
        self.ar, self.nar = ar, nar


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear | nn.Embedding):
        nn.init.normal_(m.weight, std=0.02)


def build_lm(cfg: LMConfig) -> nn.Module:
    """:class:`CodecLM` (voicecraft) or :class:`VallE` (valle) from the config."""
    if cfg.text_vocab < 1:
        raise ValueError("model.text_vocab is not set (the recipe fills it from the phoneme table)")
    v = cfg.vocab.size
    args = (cfg.dim, cfg.n_layers, cfg.n_heads, cfg.ffn_mult, cfg.dropout)
    if cfg.layout == "voicecraft":
        return CodecLM(cfg.text_vocab, cfg.n_codebooks, v, *args)
    nar_args = (cfg.dim, cfg.nar_layers or cfg.n_layers, cfg.n_heads, cfg.ffn_mult, cfg.dropout)
    return VallE(CodecLM(cfg.text_vocab, 1, v, *args), NARModel(cfg.text_vocab, cfg.n_codebooks, v, *nar_args))


@dataclass
class LMBatch:
    """A training batch. text ``[B, L]`` left-padded, text_mask ``[B, L]``; voicecraft: audio = delayed
    rearranged columns ``[B, K, S]`` right-padded with the pad token; valle: audio = frames ``[B, K, S]``
    right-padded, prompt_len ``[B]``, n_frames ``[B]``."""

    text: torch.Tensor
    text_mask: torch.Tensor
    audio: torch.Tensor
    prompt_len: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    n_frames: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    def to(self, device: torch.device | str, non_blocking: bool = False) -> LMBatch:
        return LMBatch(*(t.to(device, non_blocking=non_blocking) for t in
                         (self.text, self.text_mask, self.audio, self.prompt_len, self.n_frames)))


def voicecraft_loss(model: CodecLM, batch: LMBatch, weights: list[float], pad: int) -> dict[str, torch.Tensor]:
    """Per-codebook cross entropy ``lm/ce_k`` (pads ignored) and their weighted mean ``lm/loss``."""
    logits = model(batch.text, batch.text_mask, batch.audio)  # [B, K, S, V]
    out: dict[str, torch.Tensor] = {}
    total = logits.new_zeros(())
    for k in range(logits.shape[1]):
        ce = F.cross_entropy(logits[:, k].reshape(-1, logits.shape[-1]).float(), batch.audio[:, k].reshape(-1),
                             ignore_index=pad)
        out[f"lm/ce_{k}"] = ce
        total = total + weights[k] * ce
    out["lm/loss"] = total / sum(weights[: logits.shape[1]])
    return out


def valle_loss(model: VallE, batch: LMBatch, pad: int, eog: int, stage: int) -> dict[str, torch.Tensor]:
    """AR loss on codebook 0 (with an EOG after the last frame) + NAR loss of one ``stage`` (target frames)."""
    b, _, s = batch.audio.shape
    idx = torch.arange(s + 1, device=batch.audio.device)[None]
    c0 = torch.cat([batch.audio[:, :1], batch.audio.new_full((b, 1, 1), pad)], dim=2)
    c0[:, 0] = torch.where(idx == batch.n_frames[:, None], eog, c0[:, 0])
    c0[:, 0] = torch.where(idx > batch.n_frames[:, None], pad, c0[:, 0])
    ar_logits = model.ar(batch.text, batch.text_mask, c0)[:, 0]
    ar = F.cross_entropy(ar_logits.reshape(-1, ar_logits.shape[-1]).float(), c0[:, 0].reshape(-1),
                         ignore_index=pad)
    out = {"ar/ce": ar}
    total = ar
    if stage >= 1:
        valid = idx[:, :s] < batch.n_frames[:, None]
        nar_logits = model.nar(batch.text, batch.text_mask, batch.audio, batch.prompt_len, valid, stage)
        target = batch.audio[:, stage].masked_fill(~valid | (idx[:, :s] < batch.prompt_len[:, None]), pad)
        nar = F.cross_entropy(nar_logits.reshape(-1, nar_logits.shape[-1]).float(), target.reshape(-1),
                              ignore_index=pad)
        out["nar/ce"] = nar
        total = total + nar
    out["lm/loss"] = total
    return out
