"""A pre-norm decoder-only transformer with rotary position embeddings and a KV cache.

Building blocks only (no config objects, no I/O). ``Transformer(x, positions, cache, key_mask)``:
``x [B, T, D]`` -> ``[B, T, D]``. With a :class:`KVCache` the call appends its keys/values, so a prompt can be
run once (prefill) and then one step at a time; the cached logits equal a full forward pass (tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_angles(positions: torch.Tensor, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """positions ``[B, T]`` -> (cos, sin) ``[B, 1, T, head_dim / 2]``."""
    inv = 1.0 / base ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    ang = positions.float()[..., None] * inv
    return ang.cos()[:, None], ang.sin()[:, None]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x ``[B, H, T, Dh]`` rotated pairwise (first half with second half)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).type_as(x)


class KVCache:
    """Keys/values of every layer so far (``[B, H, T, Dh]`` each) and the key mask ``[B, T]`` (True = attend).

    Stored in buffers that grow by doubling, so appending one step costs O(1) copies, not O(T).
    """

    def __init__(self, n_layers: int) -> None:
        self._k: list[torch.Tensor | None] = [None] * n_layers
        self._v: list[torch.Tensor | None] = [None] * n_layers
        self._len = [0] * n_layers
        self.key_mask: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return self._len[0]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, t = self._len[layer], k.shape[2]
        buf = self._k[layer]
        if buf is None or n + t > buf.shape[2]:
            cap = max(2 * (n + t), 64)
            new_k = k.new_empty(k.shape[0], k.shape[1], cap, k.shape[3])
            new_v = v.new_empty(v.shape[0], v.shape[1], cap, v.shape[3])
            if buf is not None:
                new_k[:, :, :n] = buf[:, :, :n]
                new_v[:, :, :n] = self._v[layer][:, :, :n]
            self._k[layer], self._v[layer] = new_k, new_v
        self._k[layer][:, :, n : n + t] = k
        self._v[layer][:, :, n : n + t] = v
        self._len[layer] = n + t
        return self._k[layer][:, :, : n + t], self._v[layer][:, :, : n + t]


class Attention(nn.Module):
    def __init__(self, dim: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim {dim} is not a multiple of n_heads {n_heads}")
        self.n_heads, self.head_dim, self.dropout = n_heads, dim // n_heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                cache: KVCache | None, layer: int) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.append(layer, k, v)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, dim: int, n_heads: int, ffn_mult: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = int(dim * ffn_mult)
        self.norm1, self.norm2 = RMSNorm(dim), RMSNorm(dim)
        self.attn = Attention(dim, n_heads, dropout)
        self.ff = nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.GELU(), nn.Linear(hidden, dim, bias=False))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                cache: KVCache | None, layer: int) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), cos, sin, mask, cache, layer))
        return x + self.drop(self.ff(self.norm2(x)))


class Transformer(nn.Module):
    """A stack of pre-norm blocks with RoPE; ``causal=False`` for a bidirectional (NAR) model."""

    def __init__(self, dim: int, n_layers: int, n_heads: int, ffn_mult: float = 4.0, dropout: float = 0.0,
                 causal: bool = True) -> None:
        super().__init__()
        self.dim, self.n_layers, self.n_heads, self.causal = dim, n_layers, n_heads, causal
        self.blocks = nn.ModuleList(Block(dim, n_heads, ffn_mult, dropout) for _ in range(n_layers))
        self.norm = RMSNorm(dim)

    def new_cache(self) -> KVCache:
        return KVCache(self.n_layers)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None, cache: KVCache | None = None,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x ``[B, T, D]``, positions ``[B, T]`` (default: continuing after the cache), key_mask ``[B, T]``
        (False = padding that no position may attend to; with a cache it is appended to the cached mask)
        -> ``[B, T, D]``."""
        b, t, _ = x.shape
        past = cache.length if cache is not None else 0
        if positions is None:
            positions = torch.arange(past, past + t, device=x.device).expand(b, t)
        cos, sin = rope_angles(positions, self.dim // self.n_heads)
        if key_mask is None:
            key_mask = torch.ones(b, t, dtype=torch.bool, device=x.device)
        if cache is not None:
            if cache.key_mask is not None:
                key_mask = torch.cat([cache.key_mask, key_mask], dim=1)
            cache.key_mask = key_mask
        total = past + t
        if t == 1 and bool(key_mask.all()):
            mask = None  # one query, nothing padded: attending to every key is exactly the causal mask
        else:
            mask = key_mask[:, None, None, :].expand(b, 1, t, total)
            if self.causal:
                causal = torch.ones(t, total, dtype=torch.bool, device=x.device).tril(past)
                mask = mask & causal
            # A padded query row with nothing to attend to would give NaN: let every row see its own key.
            diag = torch.zeros(t, total, dtype=torch.bool, device=x.device)
            diag[torch.arange(t), past + torch.arange(t)] = True
            mask = mask | diag
        for i, blk in enumerate(self.blocks):
            x = blk(x, cos, sin, mask, cache, i)
        return self.norm(x)
