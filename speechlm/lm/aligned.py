"""An aligned autoregressive codec LM (RALL-E-style): next-frame prediction of ``codec_sf`` tokens, guided by
durations and pitch.

A duration model (the NAR acoustic model's encoder and variance predictors, :mod:`speechlm.lm.acoustic`, frozen
inside this model) gives every input token (phone, pause, punctuation) a number of 20-ms frames, a pitch and an
energy. A causal transformer then runs over frames: the input at frame ``t`` is

    condition(t) = embed(phone of t) + proj(NAR encoder state of that phone) + proj(pitch, energy of that phone)
                   + embed(frames since the phone began) + embed(frames until it ends)
    input(t)     = condition(t) + sum_k embed_k(codes[k, t - 1])          (a BOS id per stream at t = 0)

and the output at ``t`` predicts the ``K`` tokens of frame ``t``: stream ``k`` from the transformer state plus
the embeddings of streams ``< k`` of the same frame (a small "depth" head: the residual envelope stages are
predicted knowing the earlier ones). Training is next-token cross-entropy with exact durations; generation
samples frame by frame with a KV cache (:mod:`speechlm.lm.transformer`). The number of frames is the sum of the
durations, so the model cannot skip, repeat or run on (the failure modes of unaligned VALL-E on small data).

With :attr:`AlignedConfig.draft` the condition also holds the duration model's own tokens for frame ``t`` (its
decoder's frames, quantised by the codec: :meth:`AlignedLM.nar_features`), a draft the LM refines:

    condition(t) += sum_k embed'_k(draft[k, t])

(RALL-E predicts durations and pitch first; this goes one step further and lets the NAR predict whole frames
first, so the LM need not learn phone-to-spectrum mapping from a few hours of speech, only what the draft lacks).

A voice prompt sits in context as a prefix: its frames carry the :attr:`AlignedConfig.prompt_id` phone and its
own codes (and no draft). Shapes: ``B`` utterances, ``N`` tokens, ``L`` frames (prompt + target), ``K`` codec
streams, ``D`` width, ``E`` the NAR encoder width.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from speechlm.lm.acoustic import AcousticConfig, AcousticModel
from speechlm.lm.sampling import SamplingConfig, sample
from speechlm.lm.transformer import KVCache, RMSNorm, Transformer
from speechlm.tokenizers.source_filter.quantizer import greedy_pick

KIND = "aligned_lm"


@dataclass
class AlignedConfig:
    vocab: int  # input token ids (the NAR model's); one more id, ``vocab``, marks prompt frames
    cardinalities: list[int] = field(default_factory=list)  # codebook size of every codec stream
    d_model: int = 192
    n_layers: int = 4
    n_heads: int = 4
    ffn_mult: float = 3.0
    dropout: float = 0.0
    nar_dim: int = 192  # width of the NAR encoder states used as conditioning
    max_rel: int = 32  # frames-since / frames-until positions are clamped to this
    voicing_stream: int = 0  # the stream whose id 0 means "unvoiced" (codec_sf's f0; -1: none), see greedy_pick
    draft: bool = False  # condition each frame on the duration model's tokens for it (module docstring)
    draft_kernel: int = 1  # odd; > 1: each frame also hears the drafts of its neighbours (a depthwise convolution)
    copy_bias: bool = False  # with draft: a learned logit bonus per stream for the draft's own code (a copy path)

    @property
    def prompt_id(self) -> int:
        return self.vocab

    @property
    def n_streams(self) -> int:
        return len(self.cardinalities)


def frame_alignment(dur: torch.Tensor, prompt_len: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames per token ``[N]`` (int) -> per frame of ``[prompt; target]`` (``L = prompt_len + sum(dur)``): the
    token index ``[L]`` (-1 on prompt frames), frames since the token began ``[L]`` and frames until it ends
    (0 on its last frame) ``[L]`` (both 0 on prompt frames)."""
    dur = dur.clamp(min=0).long()
    n = len(dur)
    owner = torch.repeat_interleave(torch.arange(n), dur)
    start = torch.cumsum(dur, 0) - dur
    since = torch.arange(len(owner)) - start[owner]
    until = dur[owner] - 1 - since
    pre = torch.zeros(prompt_len, dtype=torch.long)
    return torch.cat([pre - 1, owner]), torch.cat([pre, since]), torch.cat([pre, until])


@dataclass
class Guide:
    """What the duration model says about one utterance: ids ``[N]``, frames ``[N]``, pitch/energy ``[N]``
    (normalised as the NAR predicts them), its encoder states ``[N, E]`` and, for a draft-conditioned LM, its
    tokens ``[K, T]`` (``T = sum(dur)``; :meth:`AlignedLM.nar_features` quantised by the codec)."""

    ids: torch.Tensor
    dur: torch.Tensor
    pitch: torch.Tensor
    energy: torch.Tensor
    states: torch.Tensor
    draft: torch.Tensor | None = None


@torch.no_grad()
def draft_features(nar: AcousticModel, guide: Guide) -> torch.Tensor:
    """The duration model's decoded frames for ``guide`` (its durations, pitch, energy and encoder states):
    denormalised features ``[T * S, F]`` with voicing a probability, as :meth:`AcousticModel.infer` returns
    them. Quantised by the codec they are a draft-conditioned LM's :attr:`Guide.draft`."""
    pad = torch.zeros(1, len(guide.ids), dtype=torch.bool)
    feat, _ = nar.decode(guide.states[None], pad, guide.dur[None].long(), guide.pitch[None].float(),
                         guide.energy[None].float())
    feat = feat[0] * nar.feat_std + nar.feat_mean
    m = nar.cfg.n_mcep
    feat[:, m + 1] = torch.sigmoid(feat[:, m + 1])
    return feat


class AlignedLM(nn.Module):
    """The model (module docstring). ``nar`` is the frozen duration model (its decoder is not used)."""

    def __init__(self, cfg: AlignedConfig, nar: AcousticModel) -> None:
        super().__init__()
        if not cfg.cardinalities:
            raise ValueError("AlignedConfig.cardinalities is empty")
        self.cfg = cfg
        d = cfg.d_model
        self.nar = nar.eval().requires_grad_(False)
        self.phone = nn.Embedding(cfg.vocab + 1, d)
        self.nar_proj = nn.Linear(cfg.nar_dim, d)
        self.prosody = nn.Linear(2, d)
        self.since = nn.Embedding(cfg.max_rel + 1, d)
        self.until = nn.Embedding(cfg.max_rel + 1, d)
        # stream k's ids are offset into one table; id ``card_k`` is its BOS
        offs = [0]
        for c in cfg.cardinalities:
            offs.append(offs[-1] + c + 1)
        self.register_buffer("offsets", torch.tensor(offs[:-1]), persistent=False)
        self.tokens = nn.Embedding(offs[-1], d)
        self.inframe = nn.Embedding(offs[-1], d)  # embeddings of a frame's earlier streams for the depth heads
        self.draft = nn.Embedding(offs[-1], d) if cfg.draft else None  # the duration model's tokens (a draft)
        k = cfg.draft_kernel
        self.draft_conv = (nn.Conv1d(d, d, k, padding=k // 2, groups=d) if cfg.draft and k > 1 else None)
        # the draft's code gets this logit bonus in its stream: copying the draft is the starting point, and the
        # heads learn where to depart from it (without it a 1024-way head must learn the identity map from data)
        self.copy_gain = (nn.Parameter(torch.full((len(cfg.cardinalities),), 3.0))
                          if cfg.draft and cfg.copy_bias else None)
        self.transformer = Transformer(d, cfg.n_layers, cfg.n_heads, cfg.ffn_mult, cfg.dropout, causal=True)
        self.heads = nn.ModuleList(
            nn.Sequential(RMSNorm(d), nn.Linear(d, d), nn.GELU(), nn.Linear(d, c)) for c in cfg.cardinalities)

    def train(self, mode: bool = True) -> AlignedLM:
        super().train(mode)
        self.nar.eval()  # frozen: no dropout in the guide
        return self

    # --- the guide -----------------------------------------------------------------------------------
    @torch.no_grad()
    def guide(self, ids: torch.Tensor, pace: float = 1.0, dur: torch.Tensor | None = None) -> Guide:
        """ids ``[N]`` -> the NAR's durations (``pace`` > 1 slower; or ``dur`` given), pitch, energy, states."""
        h, pad = self.nar.encode(ids[None])
        v = self.nar.variances(h, pad)
        if dur is None:
            dur = torch.round((torch.exp(v["log_dur"][0]) - 1.0) * pace)
            dur = dur.clamp(0, self.nar.cfg.max_frames_per_token).long()
            if int(dur.sum()) == 0:
                dur[0] = 1
        return Guide(ids, dur.long(), v["pitch"][0], v["energy"][0], h[0])

    def nar_features(self, guide: Guide) -> torch.Tensor:
        """The frozen duration model's frames for ``guide``: :func:`draft_features`."""
        return draft_features(self.nar, guide)

    def condition(self, guides: list[Guide], prompt_lens: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per utterance a :class:`Guide` and prompt frames -> (condition ``[B, L, D]``, frame mask ``[B, L]``,
        True = real frame; ``L`` the longest prompt + target)."""
        d, dev = self.cfg.d_model, self.phone.weight.device
        rows = []
        for g, p in zip(guides, prompt_lens):
            owner, since, until = frame_alignment(g.dur, p)
            tgt = owner >= 0
            o = owner.clamp(min=0)
            phone = torch.where(tgt, g.ids[o], torch.full_like(o, self.cfg.prompt_id))
            pros = torch.stack([g.pitch[o], g.energy[o]], -1) * tgt[:, None]
            x = (self.phone(phone.to(dev)) + self.nar_proj(g.states[o].to(dev)) * tgt[:, None].to(dev)
                 + self.prosody(pros.to(dev)) * tgt[:, None].to(dev)
                 + self.since(since.clamp(max=self.cfg.max_rel).to(dev))
                 + self.until(until.clamp(max=self.cfg.max_rel).to(dev)))
            if self.draft is not None:
                if g.draft is None or g.draft.shape != (self.cfg.n_streams, int(tgt.sum())):
                    raise ValueError("a draft-conditioned LM needs the guide's draft codes [K, sum(dur)]")
                e = self.draft(g.draft.long().T.to(dev) + self.offsets).sum(1)  # [T, D]
                if self.draft_conv is not None:  # the whole draft is known before generation: look both ways
                    e = e + self.draft_conv(e.T[None])[0].T
                x = x + torch.cat([e.new_zeros(p, d), e])
            rows.append(x)
        n = max(len(r) for r in rows)
        cond = torch.zeros(len(rows), n, d, device=dev)
        mask = torch.zeros(len(rows), n, dtype=torch.bool, device=dev)
        for b, r in enumerate(rows):
            cond[b, : len(r)] = r
            mask[b, : len(r)] = True
        return cond, mask

    def draft_frames(self, guides: list[Guide], prompt_lens: list[int], length: int) -> torch.Tensor:
        """The draft's codes per frame of ``[prompt; target]``, ``[B, K, length]``, -1 where there is none
        (prompt frames, padding)."""
        out = torch.full((len(guides), self.cfg.n_streams, length), -1, dtype=torch.long)
        for b, (g, p) in enumerate(zip(guides, prompt_lens)):
            if g.draft is not None:
                out[b, :, p : p + g.draft.shape[1]] = g.draft.long()
        return out

    def _copy(self, logits: torch.Tensor, k: int, draft: torch.Tensor | None) -> torch.Tensor:
        """Stream ``k``'s logits ``[..., card]`` + the copy bonus at the draft's codes ``[...]`` (-1: none)."""
        if self.copy_gain is None or draft is None:
            return logits
        has = draft >= 0
        bonus = F.one_hot(draft.clamp(min=0), logits.shape[-1]).to(logits.dtype) * has[..., None].to(logits.dtype)
        return logits + self.copy_gain[k] * bonus

    # --- teacher-forced pass -------------------------------------------------------------------------
    def embed_frames(self, codes: torch.Tensor) -> torch.Tensor:
        """codes ``[B, K, L]`` -> the summed embedding of each frame's streams ``[B, L, D]``."""
        return self.tokens(codes.transpose(1, 2) + self.offsets).sum(2)

    def previous(self, codes: torch.Tensor) -> torch.Tensor:
        """codes ``[B, K, L]`` -> the codes of the frame before each ``[B, K, L]`` (BOS ids at frame 0)."""
        bos = torch.tensor(self.cfg.cardinalities, device=codes.device)[None, :, None].expand(codes.shape[0], -1, 1)
        return torch.cat([bos, codes[:, :, :-1]], 2)

    def head_logits(self, h: torch.Tensor, codes: torch.Tensor, draft: torch.Tensor | None = None
                    ) -> list[torch.Tensor]:
        """States ``[B, L, D]`` and the frame's codes ``[B, K, L]`` (teacher forcing for the depth heads) ->
        logits per stream, ``[B, L, card_k]`` each; ``draft`` ``[B, K, L]`` (-1: none) for the copy bonus."""
        e = self.inframe(codes.transpose(1, 2) + self.offsets)  # [B, L, K, D]
        out, before = [], torch.zeros_like(h)  # before: the sum over streams < k (a running sum: cheaper than cumsum)
        for k, head in enumerate(self.heads):
            out.append(self._copy(head(h + before), k, None if draft is None else draft[:, k]))
            before = before + e[:, :, k]
        return out

    def forward(self, cond: torch.Tensor, codes: torch.Tensor, mask: torch.Tensor,
                prev_keep: torch.Tensor | None = None, draft: torch.Tensor | None = None) -> list[torch.Tensor]:
        """cond ``[B, L, D]``, codes ``[B, K, L]`` (values at padding ignored), mask ``[B, L]`` -> logits per
        stream ``[B, L, card_k]``; position ``t`` predicts frame ``t`` from frames ``< t``. ``prev_keep``
        ``[B, L]`` (training only): False hides frame ``t - 1``'s codes from position ``t``'s input, so the model
        cannot lean on copying the previous frame alone. ``draft`` ``[B, K, L]``: :meth:`draft_frames`, for a
        model with the copy bonus."""
        codes = codes.masked_fill(~mask[:, None], 0)
        prev = self.embed_frames(self.previous(codes))
        if prev_keep is not None:
            prev = prev * prev_keep[..., None].to(prev.dtype)
        x = cond + prev
        h = self.transformer(x, key_mask=mask)
        return self.head_logits(h, codes, draft)

    # --- generation ----------------------------------------------------------------------------------
    def sample_frame(self, h: torch.Tensor, cfg: SamplingConfig, gen: torch.Generator | None,
                     draft: torch.Tensor | None = None) -> torch.Tensor:
        """One state ``[D]`` -> the frame's codes ``[K]``, stream by stream (each conditions the next);
        ``draft`` ``[K]``: the frame's draft codes, for the copy bonus."""
        out = []
        acc = torch.zeros_like(h)
        for k, head in enumerate(self.heads):
            logits = self._copy(head(h + acc)[None], k, None if draft is None else draft[k : k + 1])
            if cfg.temperature == 0:
                tok = greedy_pick(logits, k == self.cfg.voicing_stream)[0]
            else:
                tok = sample(logits, cfg, gen)[0]
            out.append(tok)
            acc = acc + self.inframe.weight[self.offsets[k] + tok]
        return torch.stack(out)

    @torch.inference_mode()
    def generate_frames(self, guide: Guide, prompt: torch.Tensor | None = None,
                        sampling: SamplingConfig | None = None, seed: int | None = None) -> Iterator[torch.Tensor]:
        """Yield the codes ``[K]`` of every target frame in turn (``sum(guide.dur)`` of them), after a prompt
        ``[K, P]`` in context; one transformer step per frame with a KV cache."""
        cfg = sampling or SamplingConfig(temperature=0.0)
        gen = None
        if seed is not None:
            gen = torch.Generator().manual_seed(seed)
        p = 0 if prompt is None else prompt.shape[1]
        cond, _ = self.condition([guide], [p])
        cond = cond[0]
        total = cond.shape[0] - p
        if total <= 0:
            return
        cache: KVCache = self.transformer.new_cache()
        # prefill: the prompt frames and the first target frame (whose input holds the last prompt frame)
        ctx = (prompt.long()[None] if p else torch.zeros(1, self.cfg.n_streams, 0, dtype=torch.long))
        prev = self.previous(torch.cat([ctx, torch.zeros(1, self.cfg.n_streams, 1, dtype=torch.long)], 2))
        h = self.transformer((cond[: p + 1] + self.embed_frames(prev)[0])[None], cache=cache)[0, -1]
        for t in range(total):
            frame = self.sample_frame(h, cfg, gen, None if guide.draft is None else guide.draft[:, t].long())
            yield frame
            if t + 1 < total:
                x = cond[p + t + 1] + self.tokens(frame + self.offsets).sum(0)
                h = self.transformer(x[None, None], cache=cache)[0, -1]

    def generate(self, guide: Guide, prompt: torch.Tensor | None = None, sampling: SamplingConfig | None = None,
                 seed: int | None = None) -> torch.Tensor:
        """:meth:`generate_frames` collected: codes ``[K, sum(guide.dur)]``."""
        frames = list(self.generate_frames(guide, prompt, sampling, seed))
        if not frames:
            return torch.zeros(self.cfg.n_streams, 0, dtype=torch.long)
        return torch.stack(frames, 1)


def build(cfg: AlignedConfig, nar_cfg: AcousticConfig) -> AlignedLM:
    """The model with an untrained duration model of ``nar_cfg`` (weights are loaded after)."""
    return AlignedLM(cfg, AcousticModel(nar_cfg))


@dataclass
class LoadedAligned:
    """A loaded aligned LM: the model (with its duration model), the codec id, phoneme table hash and the
    training voice's statistics (``extra.voice_stats``), its folder and ``config.json``."""

    model: AlignedLM
    tokenizer: str
    symbols: str
    path: Path
    meta: dict[str, Any]

    @property
    def model_id(self) -> str:
        from speechlm.utils.checkpoint import model_id

        return model_id(self.meta, self.path)


def load_aligned(name_or_dir: str | os.PathLike) -> LoadedAligned:
    """A checkpoint folder or a run folder (its newest checkpoint) -> :class:`LoadedAligned` (eval mode)."""
    from speechlm.errors import CheckpointError, SpeechLMError
    from speechlm.utils.checkpoint import load_checkpoint, resolve_model_dir
    from speechlm.utils.config import load_config

    path = resolve_model_dir(name_or_dir, "tts", "aligned_lm", "aligned LM")
    ckpt = load_checkpoint(path)
    extra = ckpt.meta.get("extra") or {}
    if extra.get("kind") != KIND:
        raise CheckpointError(f"{path}: not an aligned LM checkpoint")
    try:
        model = build(load_config(ckpt.config["model"], AlignedConfig), load_config(ckpt.config["nar"], AcousticConfig))
        model.load_state_dict({k: v.float() for k, v in ckpt.state_dict.items()})
    except (KeyError, TypeError, ValueError, RuntimeError, SpeechLMError) as exc:
        raise CheckpointError(f"{path}: not a loadable aligned LM ({str(exc)[:200]})") from None
    return LoadedAligned(model.eval(), str(extra.get("tokenizer", "")), str(extra.get("symbols", "")), path,
                         ckpt.meta)


def stream_losses(logits: list[torch.Tensor], codes: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per stream ``[K]``: logits (``[B, L, card_k]`` each), codes ``[B, K, L]``, weight ``[B, L]``
    (1 on target frames, 0 on prompt and padding)."""
    n = weight.sum().clamp(min=1)
    out = []
    for k, lg in enumerate(logits):
        ce = F.cross_entropy(lg.transpose(1, 2), codes[:, k].clamp(min=0), reduction="none")
        out.append((ce * weight).sum() / n)
    return torch.stack(out)
