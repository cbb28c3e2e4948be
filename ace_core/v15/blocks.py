"""Qwen3-style transformer blocks shared by every ACE-Step 1.5 model.

The DiT, the condition encoder (lyric and timbre encoders), the FSQ attention pooler, the
detokenizer, the Qwen3 text encoder and the 5 Hz LM are all built from these pieces:
RMSNorm (computed in float32), Qwen3 RoPE (half-split layout), grouped-query attention with
per-head ``q_norm``/``k_norm`` and a SwiGLU MLP. Submodule names follow the published
checkpoints (``q_proj``, ``q_norm``, ``input_layernorm``, ``mlp.gate_proj``, ...).

Masks are boolean with True = may attend, shaped to broadcast against (B, H, Lq, Lk).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

RMS_EPS = 1e-6
ROPE_THETA = 1_000_000.0


class RMSNorm(nn.Module):
    """Qwen3 RMSNorm over the last dim: normalised in float32, cast back, then scaled."""

    def __init__(self, dim: int, eps: float = RMS_EPS, *, dtype=None, device=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, dtype=dtype, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


_ROPE_CACHE: dict = {}


def rope_tables(length: int, head_dim: int, theta: float, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen3 RoPE ``(cos, sin)``, each (length, head_dim), for positions 0..length-1; cached.

    Angles are computed in float32 (as the reference) in the half-split layout cat(f, f),
    then cast to ``dtype``.
    """
    key = (length, head_dim, float(theta), str(device), dtype)
    tables = _ROPE_CACHE.get(key)
    if tables is None:
        exponent = torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim  # (hd/2,)
        inv_freq = 1.0 / (float(theta) ** exponent)  # (hd/2,)
        angles = torch.outer(torch.arange(length, dtype=torch.int64).float(), inv_freq)  # (L, hd/2)
        angles = torch.cat((angles, angles), dim=-1)  # (L, hd)
        tables = (angles.cos().to(device=device, dtype=dtype), angles.sin().to(device=device, dtype=dtype))
        if len(_ROPE_CACHE) >= 32:
            _ROPE_CACHE.clear()
        _ROPE_CACHE[key] = tables
    return tables


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, L, hd) rotated with cos/sin (L, hd): x·cos + rotate_half(x)·sin."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)  # (B, H, L, hd)
    return x * cos + rotated * sin


def band_mask(length: int, window: int, device) -> torch.Tensor:
    """Bidirectional sliding-window mask (length, length): True where |i - j| <= window."""
    pos = torch.arange(length, device=device)
    return (pos[:, None] - pos[None, :]).abs() <= window


def causal_mask(length: int, device) -> torch.Tensor:
    """Causal mask (length, length): True where j <= i."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def key_padding_mask(mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """(B, Lk) validity mask (any dtype, nonzero = valid) -> (B, 1, 1, Lk) bool, or None."""
    return None if mask is None else mask.bool()[:, None, None, :]


def combine_masks(*masks: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """Logical AND of the masks that are not None (broadcast); None when all are None."""
    out = None
    for m in masks:
        if m is not None:
            out = m if out is None else out & m
    return out


class Attention(nn.Module):
    """Grouped-query attention with per-head RMSNorm on q and k (Qwen3 / ACE-Step 1.5).

    ``hidden`` is the query stream width; keys/values come from ``x`` (self-attention) or from
    ``context`` (cross-attention, same width as ``x`` after any outer projection). RoPE, when
    given, rotates q and k after their norms. Scale is head_dim ** -0.5.
    """

    def __init__(self, hidden: int, num_heads: int, num_kv_heads: int, head_dim: int,
                 eps: float = RMS_EPS, bias: bool = False, *, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.q_proj = nn.Linear(hidden, num_heads * head_dim, bias=bias, **kw)
        self.k_proj = nn.Linear(hidden, num_kv_heads * head_dim, bias=bias, **kw)
        self.v_proj = nn.Linear(hidden, num_kv_heads * head_dim, bias=bias, **kw)
        self.o_proj = nn.Linear(num_heads * head_dim, hidden, bias=bias, **kw)
        self.q_norm = RMSNorm(head_dim, eps, **kw)
        self.k_norm = RMSNorm(head_dim, eps, **kw)

    def project_kv(self, context: torch.Tensor, rope=None) -> tuple[torch.Tensor, torch.Tensor]:
        """context (B, Lk, hidden) -> k, v each (B, Hkv, Lk, hd), k normed (and rotated)."""
        k = self.k_proj(context).unflatten(-1, (self.num_kv_heads, self.head_dim))  # (B, Lk, Hkv, hd)
        v = self.v_proj(context).unflatten(-1, (self.num_kv_heads, self.head_dim))
        k = self.k_norm(k).transpose(1, 2)  # (B, Hkv, Lk, hd)
        if rope is not None:
            k = apply_rope(k, *rope)
        return k, v.transpose(1, 2)

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None, *,
                rope: Optional[tuple] = None, mask: Optional[torch.Tensor] = None,
                kv: Optional[tuple] = None) -> torch.Tensor:
        """x (B, Lq, hidden) -> (B, Lq, hidden).

        ``context``: keys/values source (default ``x``); ``kv``: precomputed ``project_kv``
        output (cross-attention cache); ``rope``: (cos, sin) for q and k; ``mask``: bool,
        broadcastable to (B, H, Lq, Lk), True = attend.
        """
        q = self.q_proj(x).unflatten(-1, (self.num_heads, self.head_dim))  # (B, Lq, H, hd)
        q = self.q_norm(q).transpose(1, 2)  # (B, H, Lq, hd)
        if rope is not None:
            q = apply_rope(q, *rope)
        if kv is None:
            kv = self.project_kv(x if context is None else context, rope)
        k, v = kv
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             enable_gqa=self.num_heads != self.num_kv_heads)
        return self.o_proj(out.transpose(1, 2).flatten(2))  # (B, Lq, H*hd) -> (B, Lq, hidden)


class SwiGLU(nn.Module):
    """down(silu(gate(x)) · up(x)), no biases."""

    def __init__(self, hidden: int, intermediate: int, *, dtype=None, device=None):
        super().__init__()
        kw = dict(bias=False, dtype=dtype, device=device)
        self.gate_proj = nn.Linear(hidden, intermediate, **kw)
        self.up_proj = nn.Linear(hidden, intermediate, **kw)
        self.down_proj = nn.Linear(intermediate, hidden, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class EncoderLayer(nn.Module):
    """Pre-norm Qwen3 layer: x += SelfAttn(input_layernorm(x)); x += MLP(post_attention_layernorm(x)).

    The same layer serves the Qwen3 text encoder / LM (causal mask) and the ACE-Step 1.5 lyric,
    timbre, pooler and detokenizer stacks (bidirectional, sliding or full mask).
    """

    def __init__(self, hidden: int, intermediate: int, num_heads: int, num_kv_heads: int,
                 head_dim: int, eps: float = RMS_EPS, *, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.input_layernorm = RMSNorm(hidden, eps, **kw)
        self.self_attn = Attention(hidden, num_heads, num_kv_heads, head_dim, eps, **kw)
        self.post_attention_layernorm = RMSNorm(hidden, eps, **kw)
        self.mlp = SwiGLU(hidden, intermediate, **kw)

    def forward(self, x: torch.Tensor, rope: tuple, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, L, hidden) -> (B, L, hidden)."""
        x = x + self.self_attn(self.input_layernorm(x), rope=rope, mask=mask)
        return x + self.mlp(self.post_attention_layernorm(x))


def is_sliding_layer(index: int) -> bool:
    """ACE-Step 1.5 ``layer_types``: even layers use the sliding window, odd layers are full."""
    return index % 2 == 0
