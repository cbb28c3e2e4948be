"""ACE-Step v1 lyric encoder: a pre-norm relative-position Transformer ("Conformer" in name only).

The official model builds ``ConformerEncoder(input_size=lyric_hidden_size, static_chunk_size=0)``
from its lyric utilities (an ESPnet/CosyVoice encoder). With its defaults that is:

- input layer ``embed.out`` = Linear(input -> d) + LayerNorm(d, eps 1e-5) (+ dropout), then the
  ESPnet relative positional encoding, which scales x by sqrt(d) and returns the table of relative
  position vectors for offsets +(T-1) ... -(T-1);
- ``num_blocks`` layers of: x += MHSA_relpos(LayerNorm(x)); x += FFN_SiLU(LayerNorm(x))
  (no macaron FFN, no convolution module);
- ``after_norm`` LayerNorm.

Attention is full attention over the valid (unpadded) tokens. Module and parameter names follow
the published checkpoint keys (``encoders.N.self_attn.linear_q``, ``pos_bias_u``, ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..linear import Linear

# Rows of queries per block when building the relative-position scores: bounds the
# (B, H, rows, T + rows - 1) temporary for long lyrics.
_QUERY_BLOCK = 512


@dataclass
class LyricEncoderConfig:
    """Sizes of the lyric encoder (official ConformerEncoder argument names)."""

    input_size: int = 1024
    output_size: int = 1024
    attention_heads: int = 16
    linear_units: int = 4096
    num_blocks: int = 6
    layer_norm_eps: float = 1e-5


def materialize_empty(module: nn.Module, device) -> None:
    """Move a module built on ``meta`` to ``device`` and fill it deterministically.

    Weights are meant to be loaded from a checkpoint; this avoids the default random init
    (which would draw from the global RNG and is slow for billions of parameters). Every
    tensor becomes 0, except norm scales which become 1.
    """
    module.to_empty(device=device)
    with torch.no_grad():
        for sub in module.modules():
            for name, param in sub.named_parameters(recurse=False):
                is_norm_scale = isinstance(sub, (nn.LayerNorm, nn.GroupNorm)) and name == "weight"
                param.fill_(1.0 if is_norm_scale else 0.0)


_REL_POS_CACHE: dict = {}


def relative_position_table(length: int, dim: int, device, dtype) -> torch.Tensor:
    """ESPnet relative positional encoding for offsets (length-1) down to -(length-1).

    Returns (1, 2*length-1, dim): row j holds the sinusoid of relative position r = length-1-j,
    with sin at even channels and cos at odd channels (base 10000). Built in float32 on CPU, as
    the reference does, then cast.
    """
    key = (length, dim, str(device), dtype)
    table = _REL_POS_CACHE.get(key)
    if table is None:
        offsets = torch.arange(length - 1, -length, -1, dtype=torch.float32)[:, None]  # (2L-1, 1)
        exponent = torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim)  # (dim/2,)
        inv_freq = torch.exp(exponent.double()).float()  # correctly rounded: platform independent
        angles = offsets * inv_freq  # (2L-1, dim/2)
        table = torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(1)  # (2L-1, dim) interleaved
        table = table[None].to(device=device, dtype=dtype)
        if len(_REL_POS_CACHE) >= 8:
            _REL_POS_CACHE.clear()
        _REL_POS_CACHE[key] = table
    return table


class LinearEmbed(nn.Module):
    """``embed``: ``out`` = Sequential(Linear, LayerNorm); then x * sqrt(d).

    (B, T, input_size) -> (B, T, output_size)
    """

    def __init__(self, config: LyricEncoderConfig, dtype=None, device=None):
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        d = config.output_size
        self.out = nn.Sequential(
            Linear(config.input_size, d, **kw),
            nn.LayerNorm(d, eps=config.layer_norm_eps, **kw),
        )
        self.xscale = math.sqrt(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(x) * self.xscale


class RelPositionSelfAttention(nn.Module):
    """Transformer-XL style self-attention with learned biases ``pos_bias_u`` / ``pos_bias_v``.

    score(i, j) = [(q_i + u)·k_j + (q_i + v)·p(i-j)] / sqrt(d_k), softmax over valid keys j;
    p(r) = linear_pos(relative sinusoid of r).
    """

    def __init__(self, config: LyricEncoderConfig, dtype=None, device=None):
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        d, h = config.output_size, config.attention_heads
        if d % h:
            raise ValueError(f"lyric encoder output_size {d} is not divisible by attention_heads {h}")
        self.heads, self.head_dim = h, d // h
        self.linear_q = Linear(d, d, **kw)
        self.linear_k = Linear(d, d, **kw)
        self.linear_v = Linear(d, d, **kw)
        self.linear_out = Linear(d, d, **kw)
        self.linear_pos = Linear(d, d, bias=False, **kw)
        self.pos_bias_u = nn.Parameter(torch.empty(h, self.head_dim, **kw))
        self.pos_bias_v = nn.Parameter(torch.empty(h, self.head_dim, **kw))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        # (B, T, H*dk) -> (B, H, T, dk)
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def forward(self, x: torch.Tensor, key_valid: torch.Tensor | None, pos_table: torch.Tensor) -> torch.Tensor:
        """x (B, T, d); key_valid (B, T) bool or None (all valid); pos_table (1, 2T-1, d) -> (B, T, d)."""
        T = x.shape[1]
        q = self.linear_q(x).unflatten(-1, (self.heads, self.head_dim))  # (B, T, H, dk)
        k = self._heads(self.linear_k(x))  # (B, H, T, dk)
        v = self._heads(self.linear_v(x))  # (B, H, T, dk)
        p = self._heads(self.linear_pos(pos_table))  # (1, H, 2T-1, dk)
        q_u = (q + self.pos_bias_u).transpose(1, 2)  # (B, H, T, dk)
        q_v = (q + self.pos_bias_v).transpose(1, 2)  # (B, H, T, dk)
        masked = None if key_valid is None else ~key_valid[:, None, None, :]  # (B, 1, 1, T)
        scale = math.sqrt(self.head_dim)

        outputs = []
        for start in range(0, T, _QUERY_BLOCK):
            stop = min(start + _QUERY_BLOCK, T)
            n = stop - start
            content = q_u[:, :, start:stop] @ k.transpose(-2, -1)  # (B, H, n, T)
            # Query i needs p rows T-1-i+j for keys j = 0..T-1: for this block, rows T-stop .. 2T-2-start.
            p_rows = p[:, :, T - stop : 2 * T - 1 - start]  # (1, H, T+n-1, dk)
            position = q_v[:, :, start:stop] @ p_rows.transpose(-2, -1)  # (B, H, n, T+n-1)
            # Local row r, key j -> column (n-1-r) + j (the "relative shift").
            cols = (n - 1 - torch.arange(n, device=x.device))[:, None] + torch.arange(T, device=x.device)  # (n, T)
            position = position.gather(-1, cols.expand(*position.shape[:2], n, T))  # (B, H, n, T)
            scores = (content + position) / scale
            if masked is None:
                weights = scores.softmax(dim=-1)
            else:
                weights = scores.masked_fill(masked, float("-inf")).softmax(dim=-1)
                weights = weights.masked_fill(masked, 0.0)  # all-masked rows -> 0
            outputs.append(weights @ v)  # (B, H, n, dk)
        out = torch.cat(outputs, dim=2).transpose(1, 2).flatten(2)  # (B, T, H*dk)
        return self.linear_out(out)


class FeedForward(nn.Module):
    """w_2(SiLU(w_1(x))): (B, T, d) -> (B, T, d)."""

    def __init__(self, config: LyricEncoderConfig, dtype=None, device=None):
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        self.w_1 = Linear(config.output_size, config.linear_units, **kw)
        self.w_2 = Linear(config.linear_units, config.output_size, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(F.silu(self.w_1(x)))


class EncoderLayer(nn.Module):
    """Pre-norm layer: x + MHSA(norm_mha(x)), then x + FFN(norm_ff(x))."""

    def __init__(self, config: LyricEncoderConfig, dtype=None, device=None):
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        d = config.output_size
        self.self_attn = RelPositionSelfAttention(config, **kw)
        self.feed_forward = FeedForward(config, **kw)
        self.norm_ff = nn.LayerNorm(d, eps=config.layer_norm_eps, **kw)
        self.norm_mha = nn.LayerNorm(d, eps=config.layer_norm_eps, **kw)

    def forward(self, x: torch.Tensor, key_valid: torch.Tensor | None, pos_table: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.norm_mha(x), key_valid, pos_table)
        return x + self.feed_forward(self.norm_ff(x))


class LyricConformerEncoder(nn.Module):
    """The lyric encoder: (B, T, input_size) embeddings + (B, T) mask -> (B, T, output_size).

    Keys: ``embed.out.{0,1}``, ``encoders.N.{self_attn,feed_forward,norm_ff,norm_mha}``, ``after_norm``.
    Padded positions (mask 0) are never attended to; their own outputs are computed but meaningless.
    """

    def __init__(self, config: LyricEncoderConfig, dtype=None, device=None):
        super().__init__()
        self.config = config
        build = "meta" if device is None or torch.device(device).type != "meta" else device
        kw = {"dtype": dtype, "device": build}
        self.embed = LinearEmbed(config, **kw)
        self.encoders = nn.ModuleList(EncoderLayer(config, **kw) for _ in range(config.num_blocks))
        self.after_norm = nn.LayerNorm(config.output_size, eps=config.layer_norm_eps, **kw)
        if build != device:
            materialize_empty(self, device if device is not None else "cpu")

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, input_size) float; mask (B, T) (nonzero = valid) -> (B, T, output_size)."""
        key_valid = mask.to(torch.bool)
        if bool(key_valid.all()):
            key_valid = None  # nothing to mask: skip the two masked fills per layer (same result)
        x = self.embed(x)
        pos_table = relative_position_table(x.shape[1], self.config.output_size, x.device, x.dtype)
        for layer in self.encoders:
            x = layer(x, key_valid, pos_table)
        return self.after_norm(x)
