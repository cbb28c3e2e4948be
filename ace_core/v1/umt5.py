"""UMT5 text encoder (the encoder half of google/umt5-base), our own implementation.

ACE-Step v1 conditions its DiT on ``last_hidden_state`` of the UMT5-base encoder. The math is that of
the T5 v1.1 / UMT5 encoder:

* token embedding ``shared`` (no scaling);
* ``num_layers`` pre-norm blocks, each: RMS norm (no mean subtraction, no bias) -> self-attention with
  a learned relative-position bias of its own (UMT5 has one per layer, T5 only in layer 0), no
  ``1/sqrt(d)`` scaling of the scores -> residual; RMS norm -> gated feed-forward
  ``wo(act(wi_0 x) * wi_1 x)`` -> residual;
* a final RMS norm.

Parameter names follow the published HF checkpoint (``shared.weight``,
``encoder.block.N.layer.0.SelfAttention.q.weight`` ... ``encoder.final_layer_norm.weight``) so a
state dict loads by prefix stripping only. The tied ``encoder.embed_tokens.weight`` is not a separate
parameter here (the loader accepts it as an alias of ``shared.weight``).

Half precision: in float16 the feed-forward output projections ``wo`` are kept in float32 and the
residual stream is clamped to the finite range after every sub-layer, as the reference does; in
bfloat16 no special handling is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..linear import Linear

__all__ = ["UMT5Config", "UMT5Encoder", "relative_position_buckets"]


@dataclass
class UMT5Config:
    """UMT5 encoder hyper-parameters (HF ``UMT5Config`` names); defaults are google/umt5-base."""

    vocab_size: int = 256384
    d_model: int = 768
    d_kv: int = 64
    d_ff: int = 2048
    num_layers: int = 12
    num_heads: int = 12
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "gated-gelu"
    pad_token_id: int = 0
    eos_token_id: int = 1

    @classmethod
    def from_reference(cls, cfg: dict) -> "UMT5Config":
        """Build from a HF ``config.json`` / fixture ``config`` dict; unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in cfg.items() if k in names and v is not None}
        config = cls(**kwargs)
        config.activation()  # validates feed_forward_proj
        return config

    @property
    def inner_dim(self) -> int:
        """Width of the attention projections, ``num_heads * d_kv``."""
        return self.num_heads * self.d_kv

    @property
    def is_gated(self) -> bool:
        return self.feed_forward_proj.startswith("gated-")

    def activation(self) -> str:
        """Name of the feed-forward activation, as HF resolves ``feed_forward_proj``."""
        act = self.feed_forward_proj.split("-")[-1]
        parts = self.feed_forward_proj.split("-")
        if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
            raise ValueError(
                f"UMT5Config.feed_forward_proj={self.feed_forward_proj!r}: expected 'ACT' or 'gated-ACT'"
            )
        # HF maps the legacy "gated-gelu" to the tanh approximation ("gelu_new").
        if act == "gelu" and self.is_gated:
            return "gelu_new"
        if act not in ("gelu", "gelu_new", "relu", "silu"):
            raise ValueError(
                f"UMT5Config.feed_forward_proj={self.feed_forward_proj!r}: activation {act!r} not supported "
                "(gelu, gelu_new, relu, silu)"
            )
        return act


def _activate(name: str, x: torch.Tensor) -> torch.Tensor:
    if name == "gelu_new":
        return F.gelu(x, approximate="tanh")
    if name == "gelu":
        return F.gelu(x)
    if name == "relu":
        return F.relu(x)
    return F.silu(x)


def relative_position_buckets(
    query_length: int, key_length: int, num_buckets: int, max_distance: int, device=None
) -> torch.Tensor:
    """Bidirectional T5 relative-position buckets, (query_length, key_length) int64.

    Half of the buckets are for keys after the query. Within each half, distances below
    ``num_buckets // 4`` get a bucket each; larger distances are binned logarithmically up to
    ``max_distance`` and clipped to the last bucket.
    """
    query = torch.arange(query_length, dtype=torch.long, device=device)
    key = torch.arange(key_length, dtype=torch.long, device=device)
    rel = key[None, :] - query[:, None]  # (Sq, Sk): memory position - query position
    half = num_buckets // 2
    base = (rel > 0).long() * half
    dist = rel.abs()
    exact = half // 2
    # log-spaced bins; the clamp keeps log() finite where the exact branch is used instead
    scaled = torch.log(dist.clamp(min=1).float() / exact) / math.log(max_distance / exact)
    large = exact + (scaled * (half - exact)).long()
    large = large.clamp(max=half - 1)
    return base + torch.where(dist < exact, dist, large)


class UMT5LayerNorm(nn.Module):
    """T5 RMS norm: ``w * x / sqrt(mean(x^2) + eps)``, statistics in float32. x (..., d)."""

    def __init__(self, dim: int, eps: float, dtype=None, device=None):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim, dtype=dtype, device=device))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.float().pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(var + self.variance_epsilon)
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            x = x.to(self.weight.dtype)
        return self.weight * x


class UMT5SelfAttention(nn.Module):
    """Multi-head self-attention with a per-layer relative-position bias and no score scaling."""

    def __init__(self, config: UMT5Config, dtype=None, device=None):
        super().__init__()
        kw = dict(bias=False, dtype=dtype, device=device)
        self.n_heads = config.num_heads
        self.d_kv = config.d_kv
        self.num_buckets = config.relative_attention_num_buckets
        self.max_distance = config.relative_attention_max_distance
        self.q = Linear(config.d_model, config.inner_dim, **kw)
        self.k = Linear(config.d_model, config.inner_dim, **kw)
        self.v = Linear(config.d_model, config.inner_dim, **kw)
        self.o = Linear(config.inner_dim, config.d_model, **kw)
        self.relative_attention_bias = nn.Embedding(
            config.relative_attention_num_buckets, config.num_heads, dtype=dtype, device=device
        )

    def position_bias(self, length: int, device) -> torch.Tensor:
        """(1, H, S, S) additive bias from the learned bucket table."""
        buckets = relative_position_buckets(length, length, self.num_buckets, self.max_distance, device)
        bias = self.relative_attention_bias(buckets)  # (S, S, H)
        return bias.permute(2, 0, 1).unsqueeze(0)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        """x (B, S, d_model); mask_bias (B, 1, 1, S) additive (0 keep, dtype-min masked) -> (B, S, d_model)."""
        b, s, _ = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, s, self.n_heads, self.d_kv).transpose(1, 2)  # (B, H, S, d_kv)

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        scores = q @ k.transpose(-1, -2)  # (B, H, S, S), no 1/sqrt(d_kv)
        scores = scores + (self.position_bias(s, x.device).to(scores.dtype) + mask_bias.to(scores.dtype))
        weights = torch.softmax(scores.float(), dim=-1).to(scores.dtype)
        ctx = (weights @ v).transpose(1, 2).reshape(b, s, self.n_heads * self.d_kv)  # (B, S, H*d_kv)
        return self.o(ctx)


class UMT5LayerSelfAttention(nn.Module):
    """Pre-norm self-attention sub-layer (checkpoint names ``SelfAttention``, ``layer_norm``)."""

    def __init__(self, config: UMT5Config, dtype=None, device=None):
        super().__init__()
        self.SelfAttention = UMT5SelfAttention(config, dtype=dtype, device=device)
        self.layer_norm = UMT5LayerNorm(config.d_model, config.layer_norm_epsilon, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        return x + self.SelfAttention(self.layer_norm(x), mask_bias)


class UMT5DenseGatedActDense(nn.Module):
    """Feed-forward ``wo(act(wi_0 x) * wi_1 x)`` (gated) or ``wo(act(wi x))``. x (B, S, d_model)."""

    def __init__(self, config: UMT5Config, dtype=None, device=None):
        super().__init__()
        kw = dict(bias=False, dtype=dtype, device=device)
        self.act = config.activation()
        self.gated = config.is_gated
        if self.gated:
            self.wi_0 = Linear(config.d_model, config.d_ff, **kw)
            self.wi_1 = Linear(config.d_model, config.d_ff, **kw)
        else:
            self.wi = Linear(config.d_model, config.d_ff, **kw)
        # float16 overflows in wo for the real weights: keep it in float32 as the reference does
        wo_dtype = torch.float32 if dtype == torch.float16 else dtype
        self.wo = Linear(config.d_ff, config.d_model, bias=False, dtype=wo_dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:
            h = _activate(self.act, self.wi_0(x)) * self.wi_1(x)  # (B, S, d_ff)
        else:
            h = _activate(self.act, self.wi(x))
        if h.dtype != self.wo.weight.dtype:
            h = h.to(self.wo.weight.dtype)
        return self.wo(h)


class UMT5LayerFF(nn.Module):
    """Pre-norm feed-forward sub-layer (checkpoint names ``DenseReluDense``, ``layer_norm``)."""

    def __init__(self, config: UMT5Config, dtype=None, device=None):
        super().__init__()
        self.DenseReluDense = UMT5DenseGatedActDense(config, dtype=dtype, device=device)
        self.layer_norm = UMT5LayerNorm(config.d_model, config.layer_norm_epsilon, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.DenseReluDense(self.layer_norm(x))


def _clamp_fp16(x: torch.Tensor) -> torch.Tensor:
    """Keep a float16 residual stream finite (as the reference does); other dtypes untouched."""
    if x.dtype != torch.float16:
        return x
    top = torch.finfo(torch.float16).max
    limit = top - 1000 if bool(torch.isinf(x).any()) else top
    return x.clamp(-limit, limit)


class UMT5Block(nn.Module):
    """One encoder block: ``layer[0]`` self-attention, ``layer[1]`` feed-forward."""

    def __init__(self, config: UMT5Config, dtype=None, device=None):
        super().__init__()
        self.layer = nn.ModuleList(
            [
                UMT5LayerSelfAttention(config, dtype=dtype, device=device),
                UMT5LayerFF(config, dtype=dtype, device=device),
            ]
        )

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        x = _clamp_fp16(self.layer[0](x, mask_bias))
        return _clamp_fp16(self.layer[1](x))


class UMT5Stack(nn.Module):
    """``encoder.block.*`` + ``encoder.final_layer_norm``."""

    def __init__(self, config: UMT5Config, dtype=None, device=None):
        super().__init__()
        self.block = nn.ModuleList([UMT5Block(config, dtype=dtype, device=device) for _ in range(config.num_layers)])
        self.final_layer_norm = UMT5LayerNorm(config.d_model, config.layer_norm_epsilon, dtype=dtype, device=device)


class UMT5Encoder(nn.Module):
    """UMT5 encoder: token ids -> ``last_hidden_state``.

    Keys: ``shared.weight`` (vocab, d_model), ``encoder.block.N.layer.0.SelfAttention.{q,k,v,o}.weight``,
    ``encoder.block.N.layer.0.SelfAttention.relative_attention_bias.weight`` (buckets, heads),
    ``encoder.block.N.layer.0.layer_norm.weight``, ``encoder.block.N.layer.1.DenseReluDense.{wi_0,wi_1,wo}.weight``,
    ``encoder.block.N.layer.1.layer_norm.weight``, ``encoder.final_layer_norm.weight``.
    """

    def __init__(self, config: UMT5Config, dtype=None, device=None):
        super().__init__()
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.d_model, dtype=dtype, device=device)
        self.encoder = UMT5Stack(config, dtype=dtype, device=device)

    @property
    def dtype(self) -> torch.dtype:
        return self.shared.weight.dtype

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                fork_at: Optional[int] = None) -> torch.Tensor:
        """input_ids (B, S) int; attention_mask (B, S) 1 = token, 0 = padding -> (B, S, d_model).

        Padded positions are computed too (they only are masked as keys), as in the reference.
        ``fork_at`` = k: blocks before k run once, then the batch is doubled -> (2B, S, d_model), so a
        variant that differs only from block k on (ERG's softened queries on rows B..2B-1) shares
        the work of the first k blocks.
        """
        if input_ids.dim() != 2:
            raise ValueError(f"UMT5Encoder: input_ids must be (B, S), got shape {tuple(input_ids.shape)}")
        x = self.shared(input_ids)  # (B, S, d_model)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        # additive key mask in the compute dtype: 0 where kept, the dtype's minimum where padded
        neg = torch.finfo(x.dtype).min
        keep = attention_mask.to(device=x.device)[:, None, None, :].to(x.dtype)  # (B, 1, 1, S)
        mask_bias = (1.0 - keep) * neg
        if fork_at is not None and not 0 <= fork_at <= len(self.encoder.block):
            raise ValueError(f"UMT5Encoder: fork_at must be in [0, {len(self.encoder.block)}], got {fork_at}")
        for i, block in enumerate(self.encoder.block):
            if i == fork_at:
                x, mask_bias = torch.cat([x, x]), torch.cat([mask_bias, mask_bias])  # (2B, S, d_model)
            x = block(x, mask_bias)
        if fork_at == len(self.encoder.block):
            x = torch.cat([x, x])
        return self.encoder.final_layer_norm(x)
