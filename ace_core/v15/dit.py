"""ACE-Step 1.5 diffusion transformer (the reference ``AceStepDiTModel``, ``model.decoder``).

Data flow (T = 25 Hz latent frames, N = ceil(T / patch) DiT tokens, H = hidden_size):

- timestep: ``time_embed(t) + time_embed_r(t - r)`` gives ``temb`` (B, H) and the per-layer
  modulation ``proj`` (B, 6, H); each embedder is sinusoid(1000 t) -> linear_1 -> SiLU ->
  linear_2 (= temb) and time_proj(SiLU(temb)).
- patchify: ``cat([context_latents (128), x_t (64)], -1)`` right-padded with zeros to a multiple
  of the patch, then ``proj_in.1`` = Conv1d(192 -> H, k = s = patch) -> (B, N, H).
- ``condition_embedder`` maps the packed encoder states (B, Le, enc_hidden) to H.
- ``num_hidden_layers`` AdaLN layers: gated self-attention (Qwen3 RoPE at positions 0..N-1;
  even layers bidirectional sliding window |i - j| <= sliding_window, odd layers full), plain
  residual cross-attention (q_norm/k_norm, no RoPE), gated SwiGLU MLP.
- ``norm_out`` with AdaLN from ``scale_shift_table`` + temb, ``proj_out.1`` = ConvTranspose1d
  (H -> 64, k = s = patch), cropped back to T frames: the velocity v = noise - x0, (B, T, 64).

The reference ignores every padding mask (all tokens see all tokens, padded encoder rows
included), so this module takes none.

Speed: the cross-attention keys/values depend only on the encoder states, so
:meth:`AceStep15DiT.precompute_cross_kv` builds them once per generation and
``forward(..., cross_kv=cache)`` reuses them at every sampler step (same result). On long
sequences the sliding-window layers attend block by block to the keys inside the band only,
which gives the same result as the full masked attention at a fraction of its time and memory.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .blocks import Attention, RMSNorm, SwiGLU, apply_rope, band_mask, rope_tables
from .config import AceStep15Config

TIMESTEP_CHANNELS = 256
TIMESTEP_SCALE = 1000.0
MAX_PERIOD = 10_000.0
BAND_BLOCK = 64  # smallest query block of the blocked sliding-window attention


# --------------------------------------------------------------------------------------------
# Functional pieces
# --------------------------------------------------------------------------------------------


def timestep_sinusoid(t: torch.Tensor, channels: int = TIMESTEP_CHANNELS) -> torch.Tensor:
    """(B,) timesteps in [0, 1] -> (B, channels) float32 ``[cos | sin]`` of 1000 t · freqs.

    freqs = exp(-ln(10000) · i / (channels / 2)). Angles reach 1000 rad, so the frequencies are
    the correctly rounded float32 values (one ulp of difference would move the output by ~1e-4
    on platforms whose float32 ``exp`` rounds differently).
    """
    half = channels // 2
    exponent = -math.log(MAX_PERIOD) * torch.arange(half, dtype=torch.float32) / half  # (half,)
    freqs = torch.exp(exponent.double()).float().to(t.device)  # (half,)
    angles = (t.float() * TIMESTEP_SCALE)[:, None] * freqs[None]  # (B, half)
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def _expand_kv_heads(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, Hkv, L, hd) -> (B, Hkv * groups, L, hd); query head h reads kv head h // groups."""
    return x if groups == 1 else x.repeat_interleave(groups, dim=1)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
           mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Softmax attention, scale hd^-0.5. q (B, H, Lq, hd); k, v (B, Hkv, Lk, hd); mask bool
    broadcastable to (B, H, Lq, Lk), True = attend. Returns (B, H, Lq, hd).

    Native grouped-query attention only runs in the unmasked half-precision kernels; otherwise
    the key/value heads are repeated so the memory-efficient kernels stay usable.
    """
    groups = q.shape[1] // k.shape[1]
    native_gqa = groups > 1 and mask is None and q.dtype in (torch.float16, torch.bfloat16)
    if groups > 1 and not native_gqa:
        k, v = _expand_kv_heads(k, groups), _expand_kv_heads(v, groups)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=native_gqa)


class BandPlan:
    """How one forward runs its sliding-window layers: |i - j| <= window over N tokens.

    Short sequences use one (N, N) band mask. Long ones are cut into query blocks of ``block``
    tokens; block b reads the ``block + 2 * window`` keys around it, with a (blocks, block,
    span) mask that keeps the band and drops keys outside 0..N-1. Both give the same result.
    """

    def __init__(self, length: int, window: int, device, block: Optional[int] = None):
        self.length, self.window = length, window
        self.block = max(window, BAND_BLOCK) if block is None else block
        self.span = self.block + 2 * window
        self.blocked = length > 2 * self.span
        if not self.blocked:
            self.mask = band_mask(length, window, device)  # (N, N)
            return
        n_blocks = -(-length // self.block)
        i = torch.arange(self.block, device=device)[:, None]  # query offset in its block
        j = torch.arange(self.span, device=device)[None, :]  # key offset in the block's span
        in_band = ((j - i) >= 0) & ((j - i) <= 2 * window)  # (block, span)
        start = torch.arange(n_blocks, device=device)[:, None, None] * self.block  # (nb, 1, 1)
        key_pos = start - window + j  # (nb, 1, span) original key positions
        query_pad = (start + i) >= length  # (nb, block, 1): rows dropped afterwards
        self.mask = (in_band & (key_pos >= 0) & (key_pos < length)) | query_pad  # (nb, block, span)
        self.n_blocks = n_blocks

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q (B, H, N, hd), k/v (B, Hkv, N, hd) -> (B, H, N, hd), banded."""
        if not self.blocked:
            return attend(q, k, v, self.mask)
        B, H, N, hd = q.shape
        groups = H // k.shape[1]
        k, v = _expand_kv_heads(k, groups), _expand_kv_heads(v, groups)  # (B, H, N, hd)
        nb, blk, w = self.n_blocks, self.block, self.window
        pad = nb * blk - N
        q = F.pad(q, (0, 0, 0, pad))  # (B, H, nb * blk, hd)
        q = q.unflatten(2, (nb, blk)).transpose(1, 2).flatten(0, 1)  # (B * nb, H, blk, hd)

        def windows(x: torch.Tensor) -> torch.Tensor:
            x = F.pad(x, (0, 0, w, w + pad))  # (B, H, nb * blk + 2w, hd)
            x = x.unfold(2, self.span, blk)  # (B, H, nb, hd, span)
            return x.permute(0, 2, 1, 4, 3).flatten(0, 1)  # (B * nb, H, span, hd)

        mask = self.mask[None].expand(B, -1, -1, -1).flatten(0, 1)[:, None]  # (B * nb, 1, blk, span)
        out = F.scaled_dot_product_attention(q, windows(k), windows(v), attn_mask=mask)
        out = out.unflatten(0, (B, nb)).transpose(1, 2).flatten(2, 3)  # (B, H, nb * blk, hd)
        return out[:, :, :N]


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


class TimestepEmbedding(nn.Module):
    """sinusoid(1000 t) -> linear_1 -> SiLU -> linear_2 = temb (B, H); time_proj(SiLU(temb)) (B, 6, H)."""

    def __init__(self, hidden: int, *, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.linear_1 = nn.Linear(TIMESTEP_CHANNELS, hidden, **kw)
        self.linear_2 = nn.Linear(hidden, hidden, **kw)
        self.time_proj = nn.Linear(hidden, 6 * hidden, **kw)

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """t (B,) -> temb (B, H), proj (B, 6, H)."""
        freq = timestep_sinusoid(t).to(self.linear_1.weight.dtype)  # (B, 256)
        temb = self.linear_2(F.silu(self.linear_1(freq)))  # (B, H)
        return temb, self.time_proj(F.silu(temb)).unflatten(1, (6, -1))  # (B, 6H) -> (B, 6, H)


class DiTSelfAttention(Attention):
    """Self-attention of a DiT layer: Qwen3 RoPE on q and k, full or banded (see :class:`BandPlan`)."""

    def forward(self, x: torch.Tensor, *, rope: tuple, band: Optional[BandPlan] = None) -> torch.Tensor:
        """x (B, N, H) -> (B, N, H); ``band`` None = every token sees every token."""
        q = self.q_proj(x).unflatten(-1, (self.num_heads, self.head_dim))  # (B, N, Hq, hd)
        q = apply_rope(self.q_norm(q).transpose(1, 2), *rope)  # (B, Hq, N, hd)
        k, v = self.project_kv(x, rope)  # (B, Hkv, N, hd) each
        out = attend(q, k, v) if band is None else band.attend(q, k, v)
        return self.o_proj(out.transpose(1, 2).flatten(2))  # (B, N, Hq * hd) -> (B, N, H)


class CrossAttention(Attention):
    """Cross-attention of a DiT layer: q_norm/k_norm, no RoPE, every encoder token visible."""

    def forward(self, x: torch.Tensor, kv: tuple) -> torch.Tensor:
        """x (B, N, H); kv = :meth:`project_kv` of the embedded encoder states -> (B, N, H)."""
        q = self.q_proj(x).unflatten(-1, (self.num_heads, self.head_dim))  # (B, N, Hq, hd)
        out = attend(self.q_norm(q).transpose(1, 2), *kv)  # (B, Hq, N, hd)
        return self.o_proj(out.transpose(1, 2).flatten(2))  # (B, N, H)


class DiTLayer(nn.Module):
    """AdaLN layer: gated self-attention, plain-residual cross-attention, gated SwiGLU MLP.

    ``scale_shift_table`` (1, 6, H) + the timestep projection (B, 6, H) gives, in order,
    shift / scale / gate for the self-attention and for the MLP.
    """

    def __init__(self, config: AceStep15Config, *, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        c, hidden, eps = config, config.hidden_size, config.rms_norm_eps
        heads = (c.num_attention_heads, c.num_key_value_heads, c.head_dim, eps, c.attention_bias)
        self.self_attn_norm = RMSNorm(hidden, eps, **kw)
        self.self_attn = DiTSelfAttention(hidden, *heads, **kw)
        self.cross_attn_norm = RMSNorm(hidden, eps, **kw)
        self.cross_attn = CrossAttention(hidden, *heads, **kw)
        self.mlp_norm = RMSNorm(hidden, eps, **kw)
        self.mlp = SwiGLU(hidden, c.intermediate_size, **kw)
        self.scale_shift_table = nn.Parameter(torch.zeros(1, 6, hidden, **kw))

    def forward(self, x: torch.Tensor, proj: torch.Tensor, rope: tuple, band: Optional[BandPlan],
                cross_kv: tuple) -> torch.Tensor:
        """x (B, N, H); proj (B, 6, H); cross_kv = this layer's encoder (k, v) -> (B, N, H)."""
        shift, scale, gate, c_shift, c_scale, c_gate = (self.scale_shift_table + proj).chunk(6, dim=1)
        h = self.self_attn_norm(x) * (1 + scale) + shift  # (B, N, H); modulation (B, 1, H)
        x = x + self.self_attn(h, rope=rope, band=band) * gate
        x = x + self.cross_attn(self.cross_attn_norm(x), cross_kv)
        h = self.mlp_norm(x) * (1 + c_scale) + c_shift
        return x + self.mlp(h) * c_gate


class CrossKVCache:
    """Every layer's cross-attention (k, v) for fixed encoder states, from
    :meth:`AceStep15DiT.precompute_cross_kv`; pass as ``forward(..., cross_kv=cache)``.

    ``layers[i] = (k, v)``, each (B, Hkv, Le, hd) in the model dtype (k already q/k-normed).
    Valid only for the model (and weights) that built it; treat as opaque. 2B, Le = 600:
    about 2 * 24 * 600 * 1024 elements = 59 MB per batch item in bf16.
    """

    __slots__ = ("layers", "_owner")

    def __init__(self, layers: tuple, owner: int):
        self.layers = layers
        self._owner = owner

    @property
    def batch_size(self) -> int:
        return self.layers[0][0].shape[0]

    @property
    def length(self) -> int:
        return self.layers[0][0].shape[2]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for pair in self.layers for t in pair)

    @classmethod
    def cat(cls, caches: "list[CrossKVCache]") -> "CrossKVCache":
        """Join caches of one model and one encoder length along the batch (e.g. cond + uncond)."""
        caches = list(caches)
        if not caches:
            raise InputError("CrossKVCache.cat: no caches given")
        first = caches[0]
        if any(c._owner != first._owner or c.length != first.length for c in caches):
            raise InputError(
                "CrossKVCache.cat: caches must come from the same model with the same encoder "
                f"length; got lengths {[c.length for c in caches]}"
            )
        layers = tuple(
            tuple(torch.cat([c.layers[i][j] for c in caches], dim=0) for j in range(2))
            for i in range(len(first.layers))
        )
        return cls(layers, first._owner)


class AceStep15DiT(nn.Module):
    """The ACE-Step 1.5 DiT (2B or XL, from ``config``); submodules carry the published names
    under ``decoder.`` (``proj_in.1`` / ``proj_out.1`` are the convolutions)."""

    def __init__(self, config: AceStep15Config, *, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.config = config
        hidden, patch = config.hidden_size, config.patch_size
        self.time_embed = TimestepEmbedding(hidden, **kw)
        self.time_embed_r = TimestepEmbedding(hidden, **kw)
        # index 1 as in the published keys (the reference wraps the conv in transposes)
        self.proj_in = nn.Sequential(
            nn.Identity(), nn.Conv1d(config.in_channels, hidden, patch, stride=patch, **kw)
        )
        self.condition_embedder = nn.Linear(config.enc_hidden, hidden, **kw)
        self.layers = nn.ModuleList(DiTLayer(config, **kw) for _ in range(config.num_hidden_layers))
        self.norm_out = RMSNorm(hidden, config.rms_norm_eps, **kw)
        self.proj_out = nn.Sequential(
            nn.Identity(),
            nn.ConvTranspose1d(hidden, config.audio_acoustic_hidden_dim, patch, stride=patch, **kw),
        )
        self.scale_shift_table = nn.Parameter(torch.zeros(1, 2, hidden, **kw))

    @property
    def dtype(self) -> torch.dtype:
        return self.norm_out.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.norm_out.weight.device

    @property
    def context_channels(self) -> int:
        """Channels of ``context_latents``: source latents + chunk mask (128)."""
        return self.config.in_channels - self.config.audio_acoustic_hidden_dim

    # ---- cross-attention cache ---------------------------------------------------------------
    def _check_encoder_states(self, states: torch.Tensor) -> None:
        width = self.config.enc_hidden
        if states.ndim != 3 or states.shape[-1] != width or states.shape[1] < 1:
            raise InputError(
                f"encoder_hidden_states must be (B, Le >= 1, {width}); got {tuple(states.shape)}"
            )

    def precompute_cross_kv(self, encoder_hidden_states: torch.Tensor) -> CrossKVCache:
        """Embed the packed encoder states (B, Le, enc_hidden) and project every layer's
        cross-attention keys/values once; ``forward(..., cross_kv=cache)`` then gives exactly
        the uncached result while skipping that work at each step. Rebuild after weight changes."""
        self._check_encoder_states(encoder_hidden_states)
        enc = self.condition_embedder(encoder_hidden_states.to(self.device, self.dtype))  # (B, Le, H)
        return CrossKVCache(tuple(layer.cross_attn.project_kv(enc) for layer in self.layers), id(self))

    def _check_cache(self, cache: CrossKVCache, batch: int) -> None:
        if not isinstance(cache, CrossKVCache) or cache._owner != id(self) or len(cache.layers) != len(self.layers):
            raise InputError("cross_kv: not a CrossKVCache built by this model's precompute_cross_kv")
        k0 = cache.layers[0][0]
        if k0.device != self.device or k0.dtype != self.dtype:
            raise InputError(
                f"cross_kv was built on {k0.device} / {k0.dtype}, the model is now on "
                f"{self.device} / {self.dtype}: call precompute_cross_kv again"
            )
        if cache.batch_size != batch:
            raise InputError(f"cross_kv batch {cache.batch_size} != hidden_states batch {batch}")

    # ---- forward -----------------------------------------------------------------------------
    def _timestep(self, t, batch: int, name: str) -> torch.Tensor:
        t = torch.as_tensor(t, device=self.device).reshape(-1)
        if t.numel() == 1:
            t = t.expand(batch)
        if t.numel() != batch:
            raise InputError(f"{name} must be a scalar or (B={batch},); got {t.numel()} values")
        return t

    def forward(self, hidden_states: torch.Tensor, timestep, timestep_r,
                encoder_hidden_states: Optional[torch.Tensor], context_latents: torch.Tensor, *,
                cross_kv: Optional[CrossKVCache] = None) -> torch.Tensor:
        """Predict the flow velocity v = noise - x0.

        hidden_states (B, T, 64): noisy latent x_t; timestep (B,) or scalar, t in [0, 1];
        timestep_r (B,), scalar or None (= timestep, as at inference); encoder_hidden_states
        (B, Le, enc_hidden) packed condition (may be None when ``cross_kv`` is given);
        context_latents (B, T, 128) = cat(src_latents, chunk_mask); ``cross_kv``: optional
        :meth:`precompute_cross_kv` result for these encoder states.
        Returns (B, T, 64) in the model dtype.
        """
        cfg, device, dtype = self.config, self.device, self.dtype
        out_ch, ctx_ch = cfg.audio_acoustic_hidden_dim, self.context_channels
        if hidden_states.ndim != 3 or hidden_states.shape[-1] != out_ch or hidden_states.shape[1] < 1:
            raise InputError(f"hidden_states must be (B, T >= 1, {out_ch}); got {tuple(hidden_states.shape)}")
        B, T = hidden_states.shape[:2]
        if tuple(context_latents.shape) != (B, T, ctx_ch):
            raise InputError(
                f"context_latents must be (B, T, {ctx_ch}) = {(B, T, ctx_ch)}; got {tuple(context_latents.shape)}"
            )
        if cross_kv is None:
            if encoder_hidden_states is None:
                raise InputError("encoder_hidden_states is required when cross_kv is not given")
            self._check_encoder_states(encoder_hidden_states)
            if encoder_hidden_states.shape[0] != B:
                raise InputError(
                    f"encoder_hidden_states batch {encoder_hidden_states.shape[0]} != hidden_states batch {B}"
                )
            cross_kv = self.precompute_cross_kv(encoder_hidden_states)
        else:
            self._check_cache(cross_kv, B)

        t = self._timestep(timestep, B, "timestep")
        r = t if timestep_r is None else self._timestep(timestep_r, B, "timestep_r")
        temb, proj = self.time_embed(t)
        temb_r, proj_r = self.time_embed_r(t - r)
        temb, proj = temb + temb_r, proj + proj_r  # (B, H), (B, 6, H)

        x = torch.cat([context_latents.to(device, dtype), hidden_states.to(device, dtype)], dim=-1)  # (B, T, 192)
        patch = cfg.patch_size
        x = F.pad(x, (0, 0, 0, -T % patch))  # (B, patch * N, 192)
        x = self.proj_in[1](x.transpose(1, 2)).transpose(1, 2)  # (B, N, H)

        N = x.shape[1]
        rope = rope_tables(N, cfg.head_dim, cfg.rope_theta, device, dtype)
        band = BandPlan(N, cfg.sliding_window, device) if cfg.use_sliding_window else None
        for i, layer in enumerate(self.layers):
            x = layer(x, proj, rope, band if cfg.is_sliding(i) else None, cross_kv.layers[i])

        shift, scale = (self.scale_shift_table + temb[:, None]).chunk(2, dim=1)  # (B, 1, H) each
        x = self.norm_out(x) * (1 + scale) + shift
        x = self.proj_out[1](x.transpose(1, 2)).transpose(1, 2)  # (B, patch * N, 64)
        return x[:, :T]
