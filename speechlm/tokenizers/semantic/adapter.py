"""A phone-supervised adapter between the ASR block and k-means (``semantic cluster-asr --adapter-epochs``).

A small convolutional network over the (frozen, normalised) block output, trained with:

- frame phone cross-entropy against forced-aligned phones (the aligner of ``speechlm.asr``). The CTC-trained
  block only has to make phones *decodable* by the layers above it; the adapter makes every frame name its phone,
  which k-means then finds (README: PNMI and held-out purity on held-out voices well up);
- optionally (``adv > 0``) speaker confusion (Tzeng et al. 2015's domain confusion, with speakers as domains):
  speaker heads, one per frame and one on the utterance's pooled mean/std, learn to tell the training voices
  apart from the adapter's (detached) output, while the adapter is scored by those heads against a uniform guess.
  The heads choose only among the speakers of the utterance's language: across languages the phones themselves
  name the speaker's language, and an adapter told to hide that must hide the phones (tests show it; on the real
  corpus the phone loss rose above chance in a run over all 350 training speakers at weight 1).

Why the second loss exists and is off by default: k-means over the ASR block keeps too much of the voice (pooled
unit histograms name held-out speakers within a language at 2.6x chance, aligned phones at chance; mapping every
unit to its majority phone still leaves 2.3x, so the leak is in *which* phone a voice's frames fall into). On
the real corpus the confusion loss (weight 1) and, before it, a gradient-reversal layer (Ganin & Lempitsky 2015;
weights 0.3 / 0.6; at 1.0 the features blew up) left that probe where the phone loss alone puts it, within the
probe's own run-to-run spread, at a cost in PNMI. Gradient reversal also fails in principle here: the heads'
loss is maximised by making them *confidently wrong*, which keeps the voice. The output is layer-normalised (no
gain), so no loss can be bought by scaling the features.

Shapes: adapter input/output ``[B, T, d]`` (d = the ASR's ``d_model``), 50 Hz frames; receptive field
``2 * AdapterConfig.context + 1`` frames. The classifier heads are used in training only and not saved.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from speechlm.errors import SpeechLMError


@dataclass(frozen=True)
class AdapterConfig:
    """The shipped part: ``dim`` in/out (the ASR's d_model), ``hidden`` channels, ``kernel`` (odd) frames,
    ``dilations``: one per hidden convolution (their number is the depth)."""

    dim: int = 128
    hidden: int = 256
    kernel: int = 5
    dilations: tuple[int, ...] = (1, 1)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "dilations": list(self.dilations)}

    @classmethod
    def from_dict(cls, d: dict) -> AdapterConfig:
        try:
            if isinstance(d.get("dilations"), str):  # "12" must not become (1, 2)
                raise TypeError("dilations must be a list of integers")
            kw = {k: (tuple(int(x) for x in v) if k == "dilations" else int(v)) for k, v in d.items()}
            cfg = cls(**kw)
        except (TypeError, ValueError) as exc:
            raise SpeechLMError(f"bad adapter config {d!r} ({exc})") from None
        if (cfg.kernel < 1 or cfg.kernel % 2 == 0 or cfg.dim < 1 or cfg.hidden < 1 or not cfg.dilations
                or min(cfg.dilations) < 1):
            raise SpeechLMError(f"adapter kernel must be odd, sizes and dilations positive, got {cfg}")
        return cfg

    @property
    def context(self) -> int:
        """Frames of context the output needs on each side: ``sum(kernel // 2 * d)``."""
        return sum(self.kernel // 2 * d for d in self.dilations)


@dataclass(frozen=True)
class AdapterTrainConfig:
    """``adv``: weight of the speaker-confusion loss (0: off; ramped up linearly over the first ``ramp`` of
    training)."""

    epochs: int = 3
    adv: float = 0.0
    ramp: float = 0.3
    batch: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0


class UnitAdapter(nn.Module):
    """[Conv1d(k, dilation d_i), GELU] per dilation (d -> h, then h -> h), Conv1d(h -> d, 1), layer norm without
    gain."""

    def __init__(self, cfg: AdapterConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        for i, d in enumerate(cfg.dilations):
            layers += [nn.Conv1d(cfg.dim if i == 0 else cfg.hidden, cfg.hidden, cfg.kernel, dilation=d,
                                 padding=cfg.kernel // 2 * d), nn.GELU()]
        self.net = nn.Sequential(*layers, nn.Conv1d(cfg.hidden, cfg.dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, d]`` -> ``[B, T, d]`` (each frame layer-normalised)."""
        y = self.net(x.transpose(1, 2)).transpose(1, 2)
        return nn.functional.layer_norm(y, (self.cfg.dim,))


def _batch(items: list[tuple[np.ndarray, np.ndarray, int]], dim: int
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> features ``[B, T, d]``, phone ids ``[B, T]`` (-100 = padding), mask ``[B, T]``, speakers ``[B]``."""
    t = max(len(f) for f, _, _ in items)
    x = torch.zeros(len(items), t, dim)
    y = torch.full((len(items), t), -100, dtype=torch.long)
    m = torch.zeros(len(items), t)
    for i, (f, p, _) in enumerate(items):
        x[i, : len(f)] = torch.from_numpy(np.asarray(f, np.float32))
        y[i, : len(p)] = torch.from_numpy(np.asarray(p, np.int64))
        m[i, : len(f)] = 1.0
    return x, y, m, torch.tensor([s for _, _, s in items])


def _speaker_losses(spk_frame: nn.Module, spk_utt: nn.Module, h: torch.Tensor, m: torch.Tensor,
                    speakers: torch.Tensor, allowed: torch.Tensor, confusion: bool
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(frame, utterance) speaker losses of ``h [B, T, d]`` (mask ``m [B, T]``), each utterance's logits limited
    to its ``allowed [B, S]`` speakers (its language's): cross-entropy against ``speakers [B]``, or with
    ``confusion`` against the uniform distribution over the allowed speakers, minus its floor ``ln |allowed|`` (0
    when the heads cannot tell those voices apart)."""
    n = m.sum(1, keepdim=True)
    mu = (h * m[..., None]).sum(1) / n
    sd = (((h - mu[:, None]) ** 2 * m[..., None]).sum(1) / n).clamp_min(1e-6).sqrt()
    off = torch.finfo(h.dtype).min
    frame_lp = spk_frame(h).masked_fill(~allowed[:, None], off).log_softmax(-1)  # [B, T, S]
    utt_lp = spk_utt(torch.cat([mu, sd], 1)).masked_fill(~allowed, off).log_softmax(-1)  # [B, S]
    if confusion:
        k = allowed.sum(1, keepdim=True).float()  # [B, 1]
        floor = k.log()
        frame_u = -torch.where(allowed[:, None], frame_lp, 0.0).sum(-1) / k - floor  # [B, T]
        utt_u = -torch.where(allowed, utt_lp, 0.0).sum(-1, keepdim=True) / k - floor
        return (frame_u * m).sum() / m.sum(), utt_u.mean()
    frame = -(frame_lp.gather(-1, speakers[:, None, None].expand(-1, m.shape[1], 1))[..., 0] * m).sum() / m.sum()
    return frame, -utt_lp.gather(-1, speakers[:, None])[:, 0].mean()


def train_adapter(feats: Sequence[np.ndarray], phones: Sequence[np.ndarray], speakers: Sequence[int],
                  n_phones: int, n_speakers: int, cfg: AdapterTrainConfig = AdapterTrainConfig(),
                  adapter_cfg: AdapterConfig | None = None, groups: Sequence[int] | None = None,
                  show_progress: bool = True) -> tuple[UnitAdapter, dict]:
    """Train the adapter on utterances: ``feats[i] [T_i, d]`` (block output), ``phones[i] [T_i]`` int phone ids
    per frame, ``speakers[i]`` an id < ``n_speakers``; ``groups[j]`` (per speaker; e.g. the language): the heads
    tell speakers apart only within a group, so what the phones themselves say (which language) is not what the
    adapter must hide. Returns (adapter in eval mode, last-epoch mean losses)."""
    from tqdm import tqdm

    if not feats or len(feats) != len(phones) or len(feats) != len(speakers):
        raise SpeechLMError("the adapter needs as many phone labels and speakers as feature sequences (> 0)")
    if cfg.adv > 0 and n_speakers < 2:
        raise SpeechLMError("the speaker-confusion loss needs at least 2 training speakers")
    for f, p in zip(feats, phones):
        if len(f) != len(p):
            raise SpeechLMError(f"phone labels ({len(p)}) do not match the features ({len(f)} frames)")
    grp = torch.as_tensor(list(groups) if groups is not None else [0] * n_speakers)
    if len(grp) != n_speakers:
        raise SpeechLMError(f"groups has {len(grp)} entries for {n_speakers} speakers")
    same_group = grp[:, None] == grp[None, :]  # [S, S]
    dim = int(feats[0].shape[1])
    acfg = adapter_cfg or AdapterConfig(dim=dim)
    if acfg.dim != dim:
        raise SpeechLMError(f"adapter dim {acfg.dim} != feature dim {dim}")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    adapter = UnitAdapter(acfg)
    phone_head = nn.Linear(dim, n_phones)
    spk_frame = nn.Sequential(nn.Linear(dim, 256), nn.GELU(), nn.Linear(256, n_speakers))
    spk_utt = nn.Sequential(nn.Linear(2 * dim, 256), nn.GELU(), nn.Linear(256, n_speakers))
    speaker_params = [*spk_frame.parameters(), *spk_utt.parameters()]
    params = [*adapter.parameters(), *phone_head.parameters(), *speaker_params]
    opt = torch.optim.AdamW(params, cfg.lr, weight_decay=cfg.weight_decay)
    items = list(zip(feats, phones, speakers))
    per_epoch = max(1, len(items) // cfg.batch)
    total, step = cfg.epochs * per_epoch, 0
    last: dict = {}
    desc = f"adapter (phones{' + speaker confusion' if cfg.adv > 0 else ''})"
    bar = tqdm(total=total, desc=desc, disable=not show_progress, unit="step")
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(items), generator=gen).tolist()
        sums = {"phone": 0.0, "spk_frame": 0.0, "spk_utt": 0.0, "confusion": 0.0}
        for b in range(per_epoch):
            x, y, m, s = _batch([items[j] for j in perm[b * cfg.batch:(b + 1) * cfg.batch]], dim)
            h = adapter(x)
            l_ph = nn.functional.cross_entropy(phone_head(h).reshape(-1, n_phones), y.reshape(-1))
            # the speaker heads learn on detached features; the adapter is scored by the same heads (frozen for
            # that pass) against a uniform guess
            allowed = same_group[s]  # [B, S]
            l_sf, l_su = _speaker_losses(spk_frame, spk_utt, h.detach(), m, s, allowed, False)
            for p in speaker_params:
                p.requires_grad_(False)
            c_sf, c_su = _speaker_losses(spk_frame, spk_utt, h, m, s, allowed, True)
            for p in speaker_params:
                p.requires_grad_(True)
            weight = cfg.adv * min(1.0, step / max(1.0, cfg.ramp * total))
            loss = l_ph + l_sf + l_su + weight * (c_sf + c_su)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            step += 1
            for k, v in (("phone", l_ph), ("spk_frame", l_sf), ("spk_utt", l_su), ("confusion", c_sf + c_su)):
                sums[k] += float(v.detach())
            bar.update(1)
            bar.set_postfix(phone=f"{float(l_ph.detach()):.3f}", spk=f"{float(l_sf.detach()):.3f}")
        last = {k: round(v / per_epoch, 4) for k, v in sums.items()}
    bar.close()
    if not np.isfinite(list(last.values())).all():
        raise SpeechLMError(f"adapter training diverged (losses {last}); lower the adversarial weight")
    return adapter.eval(), last
