"""ACE-Step v1 diffusion transformer (the official ``ACEStepTransformer2DModel``), our implementation.

Data flow (D = inner_dim = heads * head_dim):

- ``encode``: cross-attention context = [speaker (1 token), text (S_txt), lyrics (S_lyr)], each D wide,
  with mask [1, text_mask, lyric_mask].
- ``decode``: latent (B, 8, 16, T) -> PatchEmbed -> T tokens of width D -> ``num_layers`` Sana-style
  blocks (adaLN-single modulation from the timestep; ReLU linear self-attention; softmax
  cross-attention; GLU conv FFN mixing neighbouring frames) -> final layer -> velocity (B, 8, 16, T).

Reference quirks reproduced on purpose:

- RoPE tables are built half-split (``cat(freqs, freqs)``) but applied to interleaved pairs, so
  element 2i uses frequency index (2i mod D/2) and 2i+1 uses (2i+1 mod D/2).
- The cross-attention also gets RoPE: queries at latent positions, keys at encoder positions.
- Linear attention runs in float32 with a normaliser from a padded row of ones and eps 1e-15.
- The final layer is modulated with ``embedded_timestep`` (before ``t_block``).

Speed (inference): the kernel-1 convolutions (FFN, PatchEmbed projection) run as matmuls on
channels-last tokens (the weights are viewed, never copied or upcast), float32 CPU matmuls on
oneDNN (:mod:`ace_core.linear`), the FFN's depthwise convolution channels-last (no transposed
copies); RoPE tables are cached per length; the cross-attention keys/values depend only on the
encoder states, so ``precompute_cross_kv`` can build them once per generation and
``decode(..., cross_kv=cache)`` reuses them at every step (same result). Only activations are
upcast to float32, where the reference does it (RMSNorm, RoPE, the linear attention).

The published files also hold training-only ``projectors.*`` and the never-used
``cross_attn.{add_q_proj,add_k_proj,add_v_proj,to_add_out}``; this module does not create them,
``AceStepDiT.ignored_checkpoint_keys`` lists them so a loader can check and skip them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..linear import Linear, linear
from .lyric_encoder import LyricConformerEncoder, LyricEncoderConfig, materialize_empty

TIMESTEP_CHANNELS = 256
LINEAR_ATTENTION_EPS = 1e-15
RMS_EPS = 1e-6

_LYRIC_OVERRIDES = {
    "output_size": "lyric_output_size",
    "attention_heads": "lyric_attention_heads",
    "linear_units": "lyric_linear_units",
    "num_blocks": "lyric_num_blocks",
}


@dataclass
class DiTConfig:
    """DiT sizes under the official config.json names; defaults = the published 3.5B model.

    ``inner_dim`` is always recomputed as ``num_attention_heads * attention_head_dim`` (the
    reference ignores the stored value). ``lyric_*`` fields size the lyric encoder, which the
    reference hard-codes (output 1024, 16 heads, 4096 FFN units, 6 blocks).
    """

    in_channels: int = 8
    num_layers: int = 24
    inner_dim: int = 2560
    attention_head_dim: int = 128
    num_attention_heads: int = 20
    mlp_ratio: float = 2.5
    out_channels: int = 8
    max_position: int = 32768
    rope_theta: float = 1_000_000.0
    speaker_embedding_dim: int = 512
    text_embedding_dim: int = 768
    ssl_encoder_depths: tuple = (8, 8)
    ssl_names: tuple = ("mert", "m-hubert")
    ssl_latent_dims: tuple = (1024, 768)
    lyric_encoder_vocab_size: int = 6693
    lyric_hidden_size: int = 1024
    patch_size: tuple = (16, 1)
    max_height: int = 16
    max_width: int = 32768
    lyric_output_size: int = 1024
    lyric_attention_heads: int = 16
    lyric_linear_units: int = 4096
    lyric_num_blocks: int = 6

    def __post_init__(self):
        self.inner_dim = self.num_attention_heads * self.attention_head_dim
        self.ssl_encoder_depths = tuple(self.ssl_encoder_depths)
        self.ssl_names = tuple(self.ssl_names)
        self.ssl_latent_dims = tuple(self.ssl_latent_dims)
        self.patch_size = tuple(self.patch_size)

    @classmethod
    def from_reference(cls, cfg: dict) -> "DiTConfig":
        """Build from an official ``config.json`` dict or a golden fixture ``config``.

        Unknown keys (``_class_name``, ``_diffusers_version``, ...) are ignored. An optional
        ``lyric_encoder_overrides`` dict sets {output_size, attention_heads, linear_units, num_blocks}.
        """
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in cfg.items() if k in names}
        for key, value in (cfg.get("lyric_encoder_overrides") or {}).items():
            if key not in _LYRIC_OVERRIDES:
                raise InputError(
                    f"lyric_encoder_overrides: unknown key {key!r}; allowed: {sorted(_LYRIC_OVERRIDES)}"
                )
            kwargs[_LYRIC_OVERRIDES[key]] = value
        return cls(**kwargs)

    @property
    def lyric_encoder_config(self) -> LyricEncoderConfig:
        return LyricEncoderConfig(
            input_size=self.lyric_hidden_size,
            output_size=self.lyric_output_size,
            attention_heads=self.lyric_attention_heads,
            linear_units=self.lyric_linear_units,
            num_blocks=self.lyric_num_blocks,
        )

    @property
    def ffn_hidden(self) -> int:
        return int(self.inner_dim * self.mlp_ratio)


# --------------------------------------------------------------------------------------------
# Functional pieces
# --------------------------------------------------------------------------------------------


def rms_norm(x: torch.Tensor, eps: float = RMS_EPS) -> torch.Tensor:
    """RMSNorm without a scale over the last dim, computed in float32, returned in x's dtype."""
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def timestep_sinusoid(timestep: torch.Tensor, channels: int = TIMESTEP_CHANNELS) -> torch.Tensor:
    """(B,) timesteps (sigma * 1000) -> (B, channels) float32 as [cos | sin], max period 10000.

    The reference computes the frequencies with float32 ``exp``. Angles reach ~1000 rad, so a
    1-ulp difference in a frequency (platform-dependent exp) moves the output by ~1e-4: we use
    the correctly rounded float32 frequencies, which are the same on every device.
    """
    half = channels // 2
    exponent = -math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half  # (half,)
    freqs = torch.exp(exponent.double()).float().to(timestep.device)  # (half,)
    angles = timestep[:, None].float() * freqs[None]  # (B, half)
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def rope_cos_sin(length: int, dim: int, theta: float, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE tables for positions 0..length-1: cos, sin each (length, dim) in ``dtype``.

    Angles are built in float32 on CPU as the reference does, in the half-split layout
    cat(freqs, freqs). Not cached here: :func:`rotary_tables` caches what the model uses.
    """
    exponent = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim  # (dim/2,)
    # theta**exponent correctly rounded to float32 (platform independent), then 1/x in float32.
    inv_freq = 1.0 / torch.pow(float(theta), exponent.double()).float()  # (dim/2,)
    angles = torch.outer(torch.arange(length, dtype=torch.int64).float(), inv_freq)  # (L, dim/2)
    angles = torch.cat((angles, angles), dim=-1)  # (L, dim)
    return angles.cos().to(device=device, dtype=dtype), angles.sin().to(device=device, dtype=dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs (x[2i], x[2i+1]) of x (B, H, S, hd) with cos/sin (S, hd).

    out = x * cos + rot(x) * sin with rot(x)[2i] = -x[2i+1], rot(x)[2i+1] = x[2i]; computed in
    float32 and returned in x's dtype.
    """
    pairs = x.unflatten(-1, (-1, 2))  # (B, H, S, hd/2, 2)
    rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)  # (B, H, S, hd)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


class RotaryTables:
    """RoPE tables prepared for :func:`_rotate_tokens`: ``cos`` and ``sin_signed`` (S, 1, hd) float32.

    The values are the reference tables (rounded to the model dtype, as the reference casts
    them) promoted to float32, with the sign of ``rot(x)`` folded into the even entries of
    ``sin_signed``; x * cos + swap(x) * sin_signed is then bit-identical to :func:`apply_rope`.
    Accepts the ``(cos, sin)`` pair returned by :func:`rope_cos_sin`.
    """

    __slots__ = ("cos", "sin_signed")

    def __init__(self, cos: torch.Tensor, sin: torch.Tensor):
        sin_signed = sin.float().clone()  # (S, hd)
        sin_signed[:, 0::2] = -sin_signed[:, 0::2]
        self.cos = cos.float()[:, None]  # (S, 1, hd)
        self.sin_signed = sin_signed[:, None]  # (S, 1, hd)

    @classmethod
    def of(cls, rope) -> "RotaryTables":
        return rope if isinstance(rope, cls) else cls(*rope)


_ROTARY_CACHE: dict = {}


def rotary_tables(length: int, dim: int, theta: float, device, dtype) -> RotaryTables:
    """:class:`RotaryTables` for ``rope_cos_sin(length, dim, theta, device, dtype)``; cached."""
    key = (length, dim, float(theta), str(device), dtype)
    tables = _ROTARY_CACHE.get(key)
    if tables is None:
        tables = RotaryTables(*rope_cos_sin(length, dim, theta, device, dtype))
        if len(_ROTARY_CACHE) >= 16:
            _ROTARY_CACHE.clear()
        _ROTARY_CACHE[key] = tables
    return tables


def _rotate_tokens(x: torch.Tensor, rope: RotaryTables) -> torch.Tensor:
    """:func:`apply_rope` for the token-major layout x (B, S, H, hd) (contiguous: cheaper).

    Same float32 operations in the same order as the reference (exact), returned in x's dtype.
    """
    xf = x.float()  # one upcast (a no-op in float32); the swap below is exact
    swapped = xf.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # (B, S, H, hd): x[2i+1], x[2i], ...
    out = xf * rope.cos  # (B, S, H, hd) float32
    out += swapped * rope.sin_signed
    return out.to(x.dtype)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    # (B, H, S, hd) -> (B, S, H*hd)
    return x.transpose(1, 2).flatten(2)


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


class TimestepEmbedding(nn.Module):
    """linear_2(SiLU(linear_1(x))): (B, 256) -> (B, D)."""

    def __init__(self, in_channels: int, dim: int, dtype=None, device=None):
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        self.linear_1 = Linear(in_channels, dim, **kw)
        self.linear_2 = Linear(dim, dim, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class PatchEmbed(nn.Module):
    """Conv2d(C -> 256C, kernel = stride = patch) -> GroupNorm(32, eps 1e-6) -> Conv2d 1x1 (-> D).

    (B, C, H, W) -> (B, H/p0 * W/p1, D); for the v1 latent (B, 8, 16, T) -> (B, T, D).
    """

    def __init__(self, config: DiTConfig, dtype=None, device=None):
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        hidden = config.in_channels * 256
        patch = config.patch_size
        self.early_conv_layers = nn.Sequential(
            nn.Conv2d(config.in_channels, hidden, kernel_size=patch, stride=patch, **kw),
            nn.GroupNorm(32, hidden, eps=1e-6, **kw),
            nn.Conv2d(hidden, config.inner_dim, kernel_size=1, **kw),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patch_conv, norm, proj = self.early_conv_layers
        h = norm(patch_conv(x)).flatten(2).transpose(1, 2).contiguous()  # (B, 256C, H', W') -> (B, H'W', 256C)
        # The 1x1 conv as a Linear on channels-last tokens (a plain matmul; the weight is viewed).
        return linear(h, proj.weight.flatten(1), proj.bias)  # (B, H'W', D)


class _AttentionProjections(nn.Module):
    """The q/k/v/out projections of one attention layer (D -> D each, with bias), under the
    checkpoint names ``to_q``, ``to_k``, ``to_v``, ``to_out.0``."""

    def __init__(self, dim: int, heads: int, dtype=None, device=None):
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        self.heads = heads
        self.to_q = Linear(dim, dim, **kw)
        self.to_k = Linear(dim, dim, **kw)
        self.to_v = Linear(dim, dim, **kw)
        self.to_out = nn.ModuleList([Linear(dim, dim, **kw)])


class LinearSelfAttention(_AttentionProjections):
    """ReLU-kernel linear attention with RoPE on q and k ("LiteLA").

    out_i = sum_j (relu(q_i)·relu(k_j)) v_j / (sum_j relu(q_i)·relu(k_j) + 1e-15), in float32.
    The latent mask multiplies q, k and v, so masked frames neither attend nor are attended to
    (their output is to_out's bias).
    """

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, rope) -> torch.Tensor:
        """x (B, S, D); mask (B, S) (1 = valid) or None (all valid); rope = (cos, sin) each (S, hd)
        from :func:`rope_cos_sin` or :class:`RotaryTables` -> (B, S, D)."""
        rope = RotaryTables.of(rope)
        heads = (self.heads, -1)
        q = _rotate_tokens(self.to_q(x).unflatten(-1, heads), rope)  # (B, S, H, hd)
        k = _rotate_tokens(self.to_k(x).unflatten(-1, heads), rope)  # (B, S, H, hd)
        v = self.to_v(x).unflatten(-1, heads)  # (B, S, H, hd)
        if mask is not None:
            m = mask[:, :, None, None].to(x.dtype)  # (B, S, 1, 1); 0/1 factors are exact
            q, k, v = q * m, k * m, v * m
        # The attention itself in float32, as the reference does (its matmuls upcast q, k, v).
        q, k = F.relu(q).float().transpose(1, 2), F.relu(k).float().transpose(1, 2)  # (B, H, S, hd)
        v = F.pad(v.float(), (0, 1), value=1.0).transpose(1, 2)  # (B, H, S, hd+1): ones column -> normaliser
        kv = k.transpose(-2, -1) @ v  # (B, H, hd, hd+1)
        out = q @ kv  # (B, H, S, hd+1)
        out = out[..., :-1] / (out[..., -1:] + LINEAR_ATTENTION_EPS)  # (B, H, S, hd)
        return self.to_out[0](_merge_heads(out.to(x.dtype)))


class CrossAttention(_AttentionProjections):
    """Softmax cross-attention (SDPA) from latent tokens to the encoder context, RoPE on q and k.

    The context side (k with RoPE, v) depends only on the encoder states: :meth:`project_context`
    computes it once, so it can be cached across sampling steps (see :class:`CrossAttentionCache`).
    """

    def project_context(self, context: torch.Tensor, rope_k) -> tuple[torch.Tensor, torch.Tensor]:
        """context (B, S, D), rope_k for S positions -> k (with RoPE), v: each (B, H, S, hd)."""
        rope_k = RotaryTables.of(rope_k)
        k = _rotate_tokens(self.to_k(context).unflatten(-1, (self.heads, -1)), rope_k)  # (B, S, H, hd)
        v = self.to_v(context).unflatten(-1, (self.heads, -1))  # (B, S, H, hd)
        return k.transpose(1, 2), v.transpose(1, 2)  # (B, H, S, hd) views

    def forward(
        self,
        x: torch.Tensor,
        kv: tuple[torch.Tensor, torch.Tensor],
        allowed: torch.Tensor | None,
        row_keep: torch.Tensor | None,
        rope_q,
    ) -> torch.Tensor:
        """x (B, T, D); kv from :meth:`project_context`; allowed (B, 1, T, S) bool or None (all);
        row_keep (B, 1, T, 1) or None (all rows) -> (B, T, D).

        ``row_keep`` zeroes the rows that may attend to nothing (the reference's fully masked
        rows give 0 there); ``allowed`` lets those rows see everything to avoid NaN.
        """
        q = _rotate_tokens(self.to_q(x).unflatten(-1, (self.heads, -1)), RotaryTables.of(rope_q))  # (B, T, H, hd)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), *kv, attn_mask=allowed)  # (B, H, T, hd)
        if row_keep is not None:
            out = out * row_keep
        return self.to_out[0](_merge_heads(out))


class ConvLayer(nn.Module):
    """Holds one Conv1d as ``conv`` (the checkpoint nests it that way)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, groups: int = 1, bias: bool = True,
                 dtype=None, device=None):
        super().__init__()
        self.conv = nn.Conv1d(in_ch, out_ch, kernel, padding=kernel // 2, groups=groups, bias=bias,
                              dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def pointwise(self, x: torch.Tensor) -> torch.Tensor:
        """The kernel-1 conv as a Linear on channels-last x (B, T, C_in) -> (B, T, C_out).

        Same result as ``conv(x.transpose(1, 2)).transpose(1, 2)`` up to summation order, but a
        plain matmul (on CPU about twice as fast as the 1x1 convolution); the weight is viewed,
        not copied.
        """
        return linear(x, self.conv.weight.squeeze(-1), self.conv.bias)  # (C_out, C_in, 1) -> (C_out, C_in)


class GLUMBConv(nn.Module):
    """FFN along time: 1x1 conv (D -> 2F) + SiLU, depthwise k=3 conv, x * SiLU(gate), 1x1 conv (F -> D).

    (B, T, D) -> (B, T, D); the depthwise conv mixes each frame with its two neighbours.
    """

    def __init__(self, dim: int, hidden: int, dtype=None, device=None):
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        self.inverted_conv = ConvLayer(dim, 2 * hidden, 1, **kw)
        self.depth_conv = ConvLayer(2 * hidden, 2 * hidden, 3, groups=2 * hidden, **kw)
        self.point_conv = ConvLayer(hidden, dim, 1, bias=False, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.inverted_conv.pointwise(x))  # (B, T, 2F)
        h = self.depthwise_channels_last(h)  # (B, T, 2F)
        h, gate = h.chunk(2, dim=-1)  # (B, T, F) each
        return self.point_conv.pointwise(h * F.silu(gate))  # (B, T, D)

    def depthwise_channels_last(self, h: torch.Tensor) -> torch.Tensor:
        """``depth_conv`` on channels-last h (B, T, C) -> (B, T, C), without a transposed copy.

        (B, C, 1, T) with channel stride 1 is the channels-last layout of a 2-D convolution,
        whose depthwise kernels are several times faster on CPU than the 1-D convolution of a
        (B, C, T) copy (same sums, up to float rounding).
        """
        conv = self.depth_conv.conv
        pad = conv.padding[0]
        weight = conv.weight.unsqueeze(2)  # (C, 1, 1, k), a view
        out = F.conv2d(h.transpose(1, 2).unsqueeze(2), weight, conv.bias, padding=(0, pad), groups=conv.groups)
        return out.squeeze(2).transpose(1, 2)  # (B, T, C); contiguous when the kernel kept channels-last


class LinearTransformerBlock(nn.Module):
    """One block: modulated linear self-attention (gated), cross-attention (plain residual),
    modulated GLUMBConv FFN (gated). Modulation: scale_shift_table (6, D) + temb (B, 6D)."""

    def __init__(self, config: DiTConfig, dtype=None, device=None):
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        dim, heads = config.inner_dim, config.num_attention_heads
        self.dim = dim
        self.scale_shift_table = nn.Parameter(torch.empty(6, dim, **kw))
        self.attn = LinearSelfAttention(dim, heads, **kw)
        self.cross_attn = CrossAttention(dim, heads, **kw)
        self.ff = GLUMBConv(dim, config.ffn_hidden, **kw)

    def forward(self, x, temb, mask, cross_kv, allowed, row_keep, rope_x) -> torch.Tensor:
        """x (B, T, D); temb (B, 6D); mask (B, T) or None; cross_kv = this block's context (k, v);
        see CrossAttention for ``allowed`` / ``row_keep``."""
        mods = self.scale_shift_table[None] + temb.unflatten(1, (6, self.dim))  # (B, 6, D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods.chunk(6, dim=1)  # (B, 1, D) each
        h = rms_norm(x) * (1 + scale_msa) + shift_msa
        x = x + gate_msa * self.attn(h, mask, rope_x)
        x = x + self.cross_attn(x, cross_kv, allowed, row_keep, rope_x)
        h = rms_norm(x) * (1 + scale_mlp) + shift_mlp
        return x + gate_mlp * self.ff(h)


class CrossAttentionCache:
    """Per-block cross-attention keys/values of fixed encoder states (from
    :meth:`AceStepDiT.precompute_cross_kv`); pass as ``decode(..., cross_kv=cache)``.

    Holds, for every transformer block, k (RoPE applied) and v, each (B, H, S, hd) in the model
    dtype, plus the encoder mask (B, S) float32. Valid only for the model (and weights) that built
    it; about 2 * num_layers * B * S * D elements (24 blocks, S = 321, D = 2560: 79 MB per batch
    item in bf16). Treat as opaque.
    """

    __slots__ = ("kv", "mask", "_all_valid", "_owner")

    def __init__(self, kv: tuple, mask: torch.Tensor, owner: int):
        self.kv = kv  # tuple over blocks of (k, v), each (B, H, S, hd)
        self.mask = mask  # (B, S) float32
        self._all_valid = bool((mask == 1).all())
        self._owner = owner

    @property
    def batch_size(self) -> int:
        return self.mask.shape[0]

    @property
    def length(self) -> int:
        return self.mask.shape[1]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for pair in self.kv for t in pair) + self.mask.numel() * 4

    @classmethod
    def cat(cls, caches: "list[CrossAttentionCache]") -> "CrossAttentionCache":
        """Concatenate caches of the same model and length along the batch (e.g. cond + uncond)."""
        caches = list(caches)
        if not caches:
            raise InputError("CrossAttentionCache.cat: no caches given")
        first = caches[0]
        for c in caches[1:]:
            if c._owner != first._owner or c.length != first.length:
                raise InputError(
                    "CrossAttentionCache.cat: caches must come from the same model with the same "
                    f"encoder length; got lengths {[x.length for x in caches]}"
                )
        kv = tuple(
            tuple(torch.cat([c.kv[i][j] for c in caches], dim=0) for j in range(2)) for i in range(len(first.kv))
        )
        return cls(kv, torch.cat([c.mask for c in caches], dim=0), first._owner)

    def rows(self, start: int, stop: int) -> "CrossAttentionCache":
        """The cache of batch items ``start:stop`` as views (no copy), e.g. the conditional part
        of a cond + uncond cache for the steps that run unguided."""
        if not 0 <= start < stop <= self.batch_size:
            raise InputError(
                f"CrossAttentionCache.rows: need 0 <= start < stop <= {self.batch_size}, got {start}:{stop}"
            )
        kv = tuple((k[start:stop], v[start:stop]) for k, v in self.kv)
        return type(self)(kv, self.mask[start:stop], self._owner)


class T2IFinalLayer(nn.Module):
    """RMSNorm, modulate with scale_shift_table (2, D) + embedded_timestep, Linear, unpatchify."""

    def __init__(self, config: DiTConfig, dtype=None, device=None):
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        self.patch_size = config.patch_size
        self.out_channels = config.out_channels
        p0, p1 = config.patch_size
        self.scale_shift_table = nn.Parameter(torch.empty(2, config.inner_dim, **kw))
        self.linear = Linear(config.inner_dim, p0 * p1 * config.out_channels, **kw)

    def forward(self, x: torch.Tensor, emb_t: torch.Tensor, output_length: int) -> torch.Tensor:
        """x (B, T, D); emb_t (B, D) -> (B, C_out, p0, output_length) (zero-padded or cropped)."""
        shift, scale = (self.scale_shift_table[None] + emb_t[:, None]).chunk(2, dim=1)  # (B, 1, D) each
        x = self.linear(rms_norm(x) * (1 + scale) + shift)  # (B, T, p0*p1*C)
        B, T = x.shape[:2]
        p0, p1 = self.patch_size
        x = x.view(B, T, p0, p1, self.out_channels).permute(0, 4, 2, 1, 3)  # (B, C, p0, T, p1)
        x = x.reshape(B, self.out_channels, p0, T * p1)
        width = x.shape[-1]
        if output_length > width:
            return F.pad(x, (0, output_length - width))
        return x[..., :output_length].contiguous()


class AceStepDiT(nn.Module):
    """ACE-Step v1 DiT. Parameter names = the published ``ace_step_transformer`` keys (bare).

    Built without random init (every weight 0, norm scales 1) unless ``device="meta"``; load
    weights with ``load_state_dict`` after dropping ``ignored_checkpoint_keys``.
    """

    def __init__(self, config: DiTConfig, dtype=None, device=None):
        super().__init__()
        self.config = config
        build = device if device is not None and torch.device(device).type == "meta" else "meta"
        kw = {"dtype": dtype, "device": build}
        dim = config.inner_dim
        self.transformer_blocks = nn.ModuleList(
            LinearTransformerBlock(config, **kw) for _ in range(config.num_layers)
        )
        self.timestep_embedder = TimestepEmbedding(TIMESTEP_CHANNELS, dim, **kw)
        self.t_block = nn.Sequential(nn.SiLU(), Linear(dim, 6 * dim, **kw))
        self.speaker_embedder = Linear(config.speaker_embedding_dim, dim, **kw)
        self.genre_embedder = Linear(config.text_embedding_dim, dim, **kw)
        self.lyric_embs = nn.Embedding(config.lyric_encoder_vocab_size, config.lyric_hidden_size, **kw)
        self.lyric_encoder = LyricConformerEncoder(config.lyric_encoder_config, **kw)
        self.lyric_proj = Linear(config.lyric_output_size, dim, **kw)
        self.proj_in = PatchEmbed(config, **kw)
        self.final_layer = T2IFinalLayer(config, **kw)
        if build != device:
            materialize_empty(self, device if device is not None else "cpu")

    # ---- checkpoint support ------------------------------------------------------------------
    @staticmethod
    def ignored_checkpoint_keys(config: DiTConfig) -> dict[str, tuple]:
        """Keys present in the published files that this module does not create -> shape.

        ``transformer_blocks.N.cross_attn.{add_q_proj,add_k_proj,add_v_proj,to_add_out}.{weight,bias}``
        (never used by the reference) and ``projectors.I.{0,2,4}.{weight,bias}`` (training-only
        REPA heads: Linear(D, 2D), SiLU, Linear(2D, 2D), SiLU, Linear(2D, ssl_dim)).
        """
        dim = config.inner_dim
        keys: dict[str, tuple] = {}
        for i in range(config.num_layers):
            for name in ("add_k_proj", "add_v_proj", "add_q_proj", "to_add_out"):
                keys[f"transformer_blocks.{i}.cross_attn.{name}.weight"] = (dim, dim)
                keys[f"transformer_blocks.{i}.cross_attn.{name}.bias"] = (dim,)
        hidden = 2 * dim
        for i, ssl_dim in enumerate(config.ssl_latent_dims):
            for j, (out_f, in_f) in ((0, (hidden, dim)), (2, (hidden, hidden)), (4, (ssl_dim, hidden))):
                keys[f"projectors.{i}.{j}.weight"] = (out_f, in_f)
                keys[f"projectors.{i}.{j}.bias"] = (out_f,)
        return keys

    @property
    def dtype(self) -> torch.dtype:
        return self.final_layer.linear.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.final_layer.linear.weight.device

    # ---- conditioning ------------------------------------------------------------------------
    def encode(
        self,
        text_states: torch.Tensor,
        text_mask: torch.Tensor,
        speaker_embeds: torch.Tensor | None,
        lyric_ids: torch.Tensor,
        lyric_mask: torch.Tensor,
        lyrics_strength: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-attention context.

        text_states (B, S_txt, text_embedding_dim); text_mask (B, S_txt); speaker_embeds
        (B, speaker_embedding_dim) or None (= zeros, as the released pipeline always uses);
        lyric_ids (B, S_lyr) int; lyric_mask (B, S_lyr). ``lyrics_strength`` scales the projected
        lyric states (1.0 = official).
        Returns states (B, 1+S_txt+S_lyr, D) in the model dtype and mask (B, 1+S_txt+S_lyr) float32.
        """
        B = text_states.shape[0]
        if text_mask.shape != text_states.shape[:2]:
            raise InputError(
                f"text_mask shape {tuple(text_mask.shape)} != text_states (B, S) {tuple(text_states.shape[:2])}"
            )
        if lyric_mask.shape != lyric_ids.shape or lyric_ids.shape[0] != B:
            raise InputError(
                f"lyric_ids {tuple(lyric_ids.shape)} and lyric_mask {tuple(lyric_mask.shape)} must both be (B={B}, S_lyr)"
            )
        dtype, device = self.dtype, self.device
        if speaker_embeds is None:
            speaker_embeds = torch.zeros(B, self.config.speaker_embedding_dim, device=device, dtype=dtype)
        speaker = self.speaker_embedder(speaker_embeds.to(device, dtype))[:, None]  # (B, 1, D)
        text = self.genre_embedder(text_states.to(device, dtype))  # (B, S_txt, D)
        lyric_ids, lyric_mask = lyric_ids.to(device), lyric_mask.to(device)
        lyric = self.lyric_encoder(self.lyric_embs(lyric_ids), lyric_mask)  # (B, S_lyr, lyric_output_size)
        lyric = self.lyric_proj(lyric) * lyrics_strength  # (B, S_lyr, D)
        states = torch.cat([speaker, text, lyric], dim=1)
        ones = torch.ones(B, 1, device=device, dtype=torch.float32)
        mask = torch.cat([ones, text_mask.to(device, torch.float32), lyric_mask.to(torch.float32)], dim=1)
        return states, mask

    # ---- denoiser ----------------------------------------------------------------------------
    def _check_context(self, enc_states: torch.Tensor, enc_mask: torch.Tensor) -> None:
        if enc_states.ndim != 3 or enc_states.shape[-1] != self.config.inner_dim:
            raise InputError(
                f"enc_states must be (B, S, {self.config.inner_dim}) from encode(); got {tuple(enc_states.shape)}"
            )
        if tuple(enc_mask.shape) != tuple(enc_states.shape[:2]):
            raise InputError(
                f"enc_mask shape {tuple(enc_mask.shape)} != enc_states (B, S) = {tuple(enc_states.shape[:2])}"
            )

    def precompute_cross_kv(self, enc_states: torch.Tensor, enc_mask: torch.Tensor) -> CrossAttentionCache:
        """Project the encoder states to every block's cross-attention keys/values once.

        enc_states (B, S, D) and enc_mask (B, S) from :meth:`encode`. The result, passed as
        ``decode(..., cross_kv=cache)``, gives exactly the same output as the uncached call while
        skipping 2 * num_layers (S x D x D) projections per step. Rebuild it if the weights change.
        """
        self._check_context(enc_states, enc_mask)
        device, dtype, cfg = self.device, self.dtype, self.config
        context = enc_states.to(device, dtype)
        rope = rotary_tables(context.shape[1], cfg.attention_head_dim, cfg.rope_theta, device, dtype)
        kv = tuple(block.cross_attn.project_context(context, rope) for block in self.transformer_blocks)
        return CrossAttentionCache(kv, enc_mask.to(device, torch.float32), id(self))

    def decode(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None,
        enc_states: torch.Tensor | None,
        enc_mask: torch.Tensor | None,
        timestep: torch.Tensor | float,
        output_length: int | None = None,
        cross_kv: CrossAttentionCache | None = None,
    ) -> torch.Tensor:
        """Predict the flow velocity.

        x (B, in_channels, p0, T) noisy latent; attention_mask (B, T) (1 = valid frame, None = all);
        enc_states (B, S, D) and enc_mask (B, S) from ``encode``; timestep (B,) or scalar, sigma*1000.
        ``cross_kv``: optional :meth:`precompute_cross_kv` result for these encoder states; then
        enc_states / enc_mask may be None (if given they are only shape-checked against it).
        Returns v (B, out_channels, p0, output_length or T) in the model dtype.
        """
        cfg = self.config
        if x.ndim != 4 or x.shape[1] != cfg.in_channels or x.shape[2] != cfg.patch_size[0]:
            raise InputError(
                f"latent must be (B, {cfg.in_channels}, {cfg.patch_size[0]}, T); got {tuple(x.shape)}"
            )
        B, device, dtype = x.shape[0], self.device, self.dtype
        if output_length is None:
            output_length = x.shape[-1]

        if cross_kv is None:
            if enc_states is None or enc_mask is None:
                raise InputError("decode: enc_states and enc_mask are required when cross_kv is not given")
            self._check_context(enc_states, enc_mask)
            if enc_states.shape[0] != B:
                raise InputError(f"enc_states batch {enc_states.shape[0]} != latent batch {B}")
            context = enc_states.to(device, dtype)
            enc_mask = enc_mask.to(device, torch.float32)
            S, context_all_valid = context.shape[1], None
        else:
            if not isinstance(cross_kv, CrossAttentionCache) or cross_kv._owner != id(self) or len(
                cross_kv.kv
            ) != len(self.transformer_blocks):
                raise InputError("cross_kv: not a CrossAttentionCache built by this model's precompute_cross_kv")
            k0 = cross_kv.kv[0][0] if cross_kv.kv else cross_kv.mask
            if k0.device != device or (cross_kv.kv and k0.dtype != dtype):
                raise InputError(
                    f"cross_kv was built on {k0.device} / {k0.dtype}, the model is now on {device} / {dtype}: "
                    "call precompute_cross_kv again"
                )
            S = cross_kv.length
            if enc_states is not None and tuple(enc_states.shape[:2]) != (cross_kv.batch_size, S):
                raise InputError(
                    f"enc_states (B, S) {tuple(enc_states.shape[:2])} != cross_kv (B, S) {(cross_kv.batch_size, S)}"
                )
            if enc_mask is not None and tuple(enc_mask.shape) != (cross_kv.batch_size, S):
                raise InputError(f"enc_mask {tuple(enc_mask.shape)} != cross_kv (B, S) {(cross_kv.batch_size, S)}")
            if cross_kv.batch_size != B:
                raise InputError(f"cross_kv batch {cross_kv.batch_size} != latent batch {B}")
            context, enc_mask, context_all_valid = None, cross_kv.mask, cross_kv._all_valid

        timestep = torch.as_tensor(timestep, device=device).reshape(-1).expand(B)
        emb_t = self.timestep_embedder(timestep_sinusoid(timestep).to(dtype))  # (B, D)
        temb = self.t_block(emb_t)  # (B, 6D)

        h = self.proj_in(x.to(device, dtype))  # (B, T, D)
        T = h.shape[1]
        if attention_mask is not None:
            if attention_mask.shape != (B, T):
                raise InputError(f"attention_mask shape {tuple(attention_mask.shape)} != (B, T) = {(B, T)}")
            attention_mask = attention_mask.to(device)
            if bool((attention_mask == 1).all()):
                attention_mask = None  # all frames valid: the masking below is the identity

        # Cross-attention mask: frame t may see token s iff latent_mask[t] * enc_mask[s] == 1.
        if context_all_valid is None:
            context_all_valid = bool((enc_mask == 1).all())
        if attention_mask is None and context_all_valid:
            allowed = row_keep = None  # every pair allowed: plain (unmasked) attention, same result
        else:
            latent = attention_mask.float() if attention_mask is not None else torch.ones(B, T, device=device)
            pair = latent[:, :, None] * enc_mask[:, None, :]  # (B, T, S)
            allowed = pair == 1
            has_any = allowed.any(dim=-1, keepdim=True)  # (B, T, 1)
            allowed = (allowed | ~has_any)[:, None]  # (B, 1, T, S)
            row_keep = has_any[:, None].to(dtype)  # (B, 1, T, 1)

        hd = cfg.attention_head_dim
        rope_x = rotary_tables(T, hd, cfg.rope_theta, device, dtype)
        rope_ctx = rotary_tables(S, hd, cfg.rope_theta, device, dtype) if cross_kv is None else None
        for i, block in enumerate(self.transformer_blocks):
            kv = cross_kv.kv[i] if cross_kv is not None else block.cross_attn.project_context(context, rope_ctx)
            h = block(h, temb, attention_mask, kv, allowed, row_keep, rope_x)
        return self.final_layer(h, emb_t, output_length)

    def forward(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None,
        text_states: torch.Tensor,
        text_mask: torch.Tensor,
        speaker_embeds: torch.Tensor | None,
        lyric_ids: torch.Tensor,
        lyric_mask: torch.Tensor,
        timestep: torch.Tensor | float,
        lyrics_strength: float = 1.0,
    ) -> torch.Tensor:
        """``encode`` then ``decode`` (output_length = T): the official forward. Returns (B, C, p0, T)."""
        enc_states, enc_mask = self.encode(
            text_states, text_mask, speaker_embeds, lyric_ids, lyric_mask, lyrics_strength
        )
        return self.decode(x, attention_mask, enc_states, enc_mask, timestep, output_length=x.shape[-1])
