"""Residual vector quantizer with factorised, L2-normalised codes (as in DAC / "Improved VQGAN").

Each stage projects the residual to a low-dimensional code space, L2-normalises it, finds the nearest
unit-norm code (cosine similarity keeps all codes in play), and projects back. Codebooks are initialised by
k-means on the first training batch; codes unused for a while are restarted from random encoder outputs of the
current batch.
Quantizer dropout trains every prefix of codebooks, so one model serves every bitrate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


@dataclass(frozen=True)
class QuantizerOutput:
    """Result of :meth:`ResidualVQ.forward`.

    Attributes:
        z: quantized latent ``[B, D, T]`` (straight-through gradient to the encoder).
        codes: ``[B, K, T]`` long, all K stages (stages beyond an item's n_q were not added to ``z``).
        commit_loss: commitment loss (encoder towards codes), scalar.
        codebook_loss: codebook loss (codes towards encoder outputs), scalar.
        n_q: ``[B]`` number of stages used per item.
    """

    z: torch.Tensor
    codes: torch.Tensor
    commit_loss: torch.Tensor
    codebook_loss: torch.Tensor
    n_q: torch.Tensor


def _kmeans(x: torch.Tensor, k: int, iters: int = 10) -> torch.Tensor:
    """Spherical k-means of ``x [N, d]`` (unit vectors) into ``k`` centroids ``[k, d]``."""
    n = x.shape[0]
    idx = torch.randperm(n, device=x.device)[:k] if n >= k else torch.randint(0, n, (k,), device=x.device)
    c = x[idx].clone()
    for _ in range(iters):
        assign = (x @ c.t()).argmax(dim=1)
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        empty = counts == 0
        c = torch.where(empty[:, None], c, sums / counts.clamp(min=1)[:, None])
        c = F.normalize(c, dim=1)
    return c


class VectorQuantizer(nn.Module):
    """One factorised VQ stage: ``[B, D, T] -> (quantized [B, D, T], codes [B, T], ...)``."""

    def __init__(self, dim: int, codebook_size: int, codebook_dim: int = 8, restart_after: int = 200) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        self.in_proj = weight_norm(nn.Conv1d(dim, codebook_dim, 1))
        self.out_proj = weight_norm(nn.Conv1d(codebook_dim, dim, 1))
        self.codebook = nn.Embedding(codebook_size, codebook_dim)
        self.restart_after = restart_after
        # Steps since each code was last chosen (training only); saved so resume keeps restarting correctly.
        self.register_buffer("unused_steps", torch.zeros(codebook_size, dtype=torch.long))
        self.register_buffer("initialized", torch.tensor(False))
        # Frozen (fine-tuning a decoder on a fixed token space): no k-means init, no dead-code restarts.
        self.frozen = False

    def _lookup(self, ze: torch.Tensor) -> torch.Tensor:
        """ze ``[N, d]`` -> nearest codes ``[N]`` by cosine similarity."""
        return (F.normalize(ze, dim=1) @ F.normalize(self.codebook.weight, dim=1).t()).argmax(dim=1)

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """z ``[B, D, T]`` -> codes ``[B, T]``."""
        ze = self.in_proj(z)
        b, d, t = ze.shape
        return self._lookup(ze.transpose(1, 2).reshape(-1, d)).view(b, t)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes ``[B, T]`` -> ``[B, D, T]``."""
        return self.out_proj(F.normalize(self.codebook(codes), dim=-1).transpose(1, 2))

    @torch.no_grad()
    def _maintain(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        """k-means init on the first batch; restart codes unused for ``restart_after`` steps."""
        if not bool(self.initialized):
            self.codebook.weight.data.copy_(_kmeans(F.normalize(flat, dim=1), self.codebook_size))
            self._sync()
            self.initialized.fill_(True)
            return
        used = torch.bincount(codes, minlength=self.codebook_size) > 0
        if dist.is_available() and dist.is_initialized():
            used_i = used.long()
            dist.all_reduce(used_i)
            used = used_i > 0
        self.unused_steps.add_(1).masked_fill_(used, 0)
        dead = self.unused_steps >= self.restart_after
        n_dead = int(dead.sum())
        if n_dead:
            pick = torch.randint(0, flat.shape[0], (n_dead,), device=flat.device)
            new = F.normalize(flat[pick], dim=1) + 0.01 * torch.randn_like(flat[pick])
            self.codebook.weight.data[dead] = new
            self.unused_steps[dead] = 0
            self._sync()

    def _sync(self) -> None:
        # Replicas must keep identical codebooks: rank 0's choice wins.
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(self.codebook.weight.data, 0)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """z ``[B, D, T]`` -> (zq ``[B, D, T]``, codes ``[B, T]``, commit, codebook losses ``[B]``)."""
        ze = self.in_proj(z)  # [B, d, T]
        b, d, t = ze.shape
        flat = ze.transpose(1, 2).reshape(-1, d)
        if self.training and not self.frozen:
            self._maintain(flat.detach(), self._lookup(flat.detach()))
        codes = self._lookup(flat.detach())
        # Codes and latents both live on the unit sphere: the losses stay bounded whatever scale the encoder
        # drifts to (raw-norm codes trained by Adam lag far behind a growing encoder and the losses explode);
        # out_proj restores the scale.
        zn = F.normalize(ze, dim=1)
        zq = F.normalize(self.codebook(codes), dim=-1).view(b, t, d).transpose(1, 2)
        commit = F.mse_loss(zn, zq.detach(), reduction="none").mean(dim=(1, 2))
        cb = F.mse_loss(zq, zn.detach(), reduction="none").mean(dim=(1, 2))
        zq = zn + (zq - zn).detach()  # straight-through
        return self.out_proj(zq), codes.view(b, t), commit, cb


def stage_counts(b: int, total: int, n_q: int | None, dropout: float, device: torch.device) -> torch.Tensor:
    """Stages per item ``[B]``: ``n_q`` when given, else ``total``, except that with probability ``dropout`` an
    item draws 1..``total`` uniformly (quantizer dropout; pass 0 outside training)."""
    if n_q is not None:
        return torch.full((b,), n_q, device=device)
    nq = torch.full((b,), total, device=device)
    if dropout > 0:
        drop = torch.rand(b, device=device) < dropout
        nq = torch.where(drop, torch.randint(1, total + 1, (b,), device=device), nq)
    return nq


class ResidualVQ(nn.Module):
    """K stages of :class:`VectorQuantizer` on successive residuals.

    Args:
        dim: latent size.
        n_q: number of codebooks (the highest bitrate).
        codebook_size: codes per codebook.
        codebook_dim: size of the factorised code space.
        dropout: probability that a training item uses a random prefix of 1..n_q stages (quantizer dropout).
    """

    def __init__(
        self,
        dim: int,
        n_q: int,
        codebook_size: int,
        codebook_dim: int = 8,
        dropout: float = 0.5,
        restart_after: int = 200,
    ) -> None:
        super().__init__()
        self.n_q = n_q
        self.codebook_size = codebook_size
        self.dropout = dropout
        self.layers = nn.ModuleList(
            [VectorQuantizer(dim, codebook_size, codebook_dim, restart_after) for _ in range(n_q)]
        )

    def forward(self, z: torch.Tensor, n_q: int | None = None, nq: torch.Tensor | None = None) -> QuantizerOutput:
        """z ``[B, D, T]`` -> :class:`QuantizerOutput`; ``n_q`` fixes the stages (else: dropout); ``nq`` ``[B]``
        gives each item its own number of stages (0..n_q; overrides both)."""
        if nq is None:
            nq = stage_counts(z.shape[0], self.n_q, n_q, self.training * self.dropout, z.device)
        nq = nq.to(z.device)
        residual = z
        out = torch.zeros_like(z)
        codes, commit, cbl = [], z.new_zeros(()), z.new_zeros(())
        for i, layer in enumerate(self.layers):
            mask = (nq > i).to(z.dtype)
            if n_q is not None and i >= n_q:
                break
            zq, c, cl, bl = layer(residual)
            out = out + zq * mask[:, None, None]
            residual = residual - zq.detach()
            codes.append(c)
            denom = mask.sum().clamp(min=1)
            commit = commit + (cl * mask).sum() / denom
            cbl = cbl + (bl * mask).sum() / denom
        return QuantizerOutput(
            z=out, codes=torch.stack(codes, 1), commit_loss=commit, codebook_loss=cbl, n_q=nq
        )

    def encode(self, z: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """z ``[B, D, T]`` -> codes ``[B, n_q, T]``."""
        n_q = n_q or self.n_q
        codes, residual = [], z
        for layer in self.layers[:n_q]:
            c = layer.encode(residual)
            residual = residual - layer.decode(c)
            codes.append(c)
        return torch.stack(codes, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes ``[B, K, T]`` (K <= n_q) -> ``[B, D, T]``."""
        out = None
        for i in range(codes.shape[1]):
            q = self.layers[i].decode(codes[:, i])
            out = q if out is None else out + q
        return out
