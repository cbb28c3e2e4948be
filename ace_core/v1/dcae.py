"""Music DCAE: the deep-compression autoencoder ACE-Step v1 uses between log-mel and latent.

This is our own implementation of the architecture of diffusers' ``AutoencoderDC`` (DC-AE, the
SANA autoencoder) as configured by ACE-Step v1's ``music_dcae_f8c8`` folder. It is the *bare*
autoencoder: the mel normalisation and the latent shift/scale (``(z + 1.9091) * 0.1786``) live in
the MusicVAE wrapper (``ace_core/v1/music_vae.py``), not here.

Shapes for the ACE config (2 input channels = stereo, 128 mel bins, T mel frames)::

    encoder: mel (B, 2, 128, T)   -> z   (B, 8, 16, T/8)
    decoder: z   (B, 8, 16, T/8)  -> mel (B, 2, 128, T)

Architecture (per stage ``i`` with ``block_out_channels[i]`` channels):

* ``ResBlock``: ``x + norm(conv2(act(conv1(x))))`` (3x3 convs, ``conv2`` without bias; RMS norm
  over channels with weight and bias, eps 1e-5).
* ``EfficientViTBlock``: multiscale ReLU linear attention (``attn``, residual) followed by a
  gated inverted-bottleneck conv ``GLUMBConv`` (``conv_out``, residual).

  Attention: ``q, k, v`` are 1x1 projections (no bias) stacked on the channel axis as
  ``[q | k | v]``; every multiscale branch adds a depthwise kxk conv followed by a grouped 1x1
  conv of that stack. The concatenation ``[stack, branch_1, ...]`` is then cut into consecutive
  groups of ``3 * attention_head_dim`` channels, each group split into its own ``(q, k, v)``
  thirds (this reproduces the reference layout exactly, even though a group then mixes channels
  of several projection "heads"). With ReLU on q and k, per group::

      out[:, n] = sum_m v[:, m] (k_m . q_n) / (sum_m k_m . q_n + 1e-15)

  computed as ``(V_pad K^T) Q`` in float32 ("linear" form) when ``H*W > attention_head_dim``,
  otherwise through the explicit ``N x N`` score matrix ("quadratic" form), as the reference does.
  The linear form needs only the sums ``V_pad K^T`` over all positions, so long inputs can run it
  chunk by chunk (``forward_chunked``) and still be exact.
  Output: 1x1 projection ``to_out`` (no bias), RMS norm, residual.
* Down-sampling between encoder stages (``downsample_block_type="Conv"``): a stride-2 3x3 conv
  plus a shortcut that pixel-unshuffles the input and averages channel groups.
* Up-sampling between decoder stages (``upsample_block_type="interpolate"``): nearest x2 then a
  3x3 conv, plus a shortcut that repeats channels and pixel-shuffles.
* Encoder output shortcut: ``conv_out(h) + mean over channel groups of h``.
  Decoder input shortcut: ``conv_in(z) + z repeated channel-wise``.
  Decoder head: RMS norm (weight+bias) -> ReLU -> 3x3 conv.

Parameter names equal the published checkpoint keys (``encoder.conv_in.weight``,
``encoder.down_blocks.3.0.attn.to_qkv_multiscale.0.proj_in.weight``, ``decoder.up_blocks.0.0.conv``,
``decoder.norm_out.weight`` ...), so a file loads by prefix stripping only.

Precision: every module runs in the parameters' dtype (float32, bfloat16 or float16). As in the
reference, RMS norm statistics and the linear attention are computed in float32.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError

__all__ = [
    "DCAEConfig",
    "MusicDCAEAutoencoder",
    "DCAEEncoder",
    "DCAEDecoder",
    "ChannelRMSNorm",
    "ResBlock",
    "EfficientViTBlock",
    "MultiscaleLinearAttention",
    "GLUMBConv",
    "DCDownBlock2d",
    "DCUpBlock2d",
]

_BLOCK_TYPES = ("ResBlock", "EfficientViTBlock")
_NORM_TYPES = ("rms_norm", "batch_norm")
_ACTIVATIONS = {"silu": nn.SiLU, "swish": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU, "mish": nn.Mish}


# ------------------------------------------------------------------------------------------------
# Config
# ------------------------------------------------------------------------------------------------


def _per_stage(value: Union[str, Sequence[str]], n: int, name: str) -> tuple:
    """A per-stage setting given either once (a string) or per stage (a list of ``n``)."""
    if isinstance(value, str):
        return (value,) * n
    value = tuple(value)
    if len(value) != n:
        raise InputError(f"DCAE config: {name} has {len(value)} entries, expected one per stage ({n})")
    return value


@dataclass
class DCAEConfig:
    """``AutoencoderDC`` hyper-parameters under the diffusers kwarg names.

    Defaults are the ACE-Step v1 ``music_dcae_f8c8`` config (f8, 8 latent channels, 4 stages).
    ``scaling_factor`` is stored for completeness; ACE-Step never uses it (it applies its own
    shift/scale in the MusicVAE wrapper).
    """

    in_channels: int = 2
    latent_channels: int = 8
    attention_head_dim: int = 32
    encoder_block_types: Union[str, tuple] = ("ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock")
    decoder_block_types: Union[str, tuple] = ("ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock")
    encoder_block_out_channels: tuple = (128, 256, 512, 1024)
    decoder_block_out_channels: tuple = (128, 256, 512, 1024)
    encoder_layers_per_block: tuple = (2, 2, 3, 3)
    decoder_layers_per_block: tuple = (3, 3, 3, 3)
    encoder_qkv_multiscales: tuple = ((), (), (5,), (5,))
    decoder_qkv_multiscales: tuple = ((), (), (5,), (5,))
    upsample_block_type: str = "interpolate"
    downsample_block_type: str = "Conv"
    decoder_norm_types: Union[str, tuple] = "rms_norm"
    decoder_act_fns: Union[str, tuple] = "silu"
    encoder_out_shortcut: bool = True
    decoder_in_shortcut: bool = True
    decoder_conv_act_fn: str = "relu"
    scaling_factor: float = 0.41407

    def __post_init__(self):
        # Lists from JSON -> tuples; nested multiscales -> tuples of ints.
        for name in ("encoder_block_out_channels", "decoder_block_out_channels",
                     "encoder_layers_per_block", "decoder_layers_per_block"):
            setattr(self, name, tuple(int(v) for v in getattr(self, name)))
        for name in ("encoder_qkv_multiscales", "decoder_qkv_multiscales"):
            setattr(self, name, tuple(tuple(int(k) for k in ks) for ks in getattr(self, name)))
        for name in ("encoder_block_types", "decoder_block_types", "decoder_norm_types", "decoder_act_fns"):
            value = getattr(self, name)
            if not isinstance(value, str):
                setattr(self, name, tuple(value))
        self.validate()

    @classmethod
    def from_reference(cls, cfg: dict) -> "DCAEConfig":
        """Build from a diffusers ``config.json`` / fixture ``config`` dict.

        Keys that are not ``AutoencoderDC`` kwargs (``_class_name``, ``_diffusers_version`` ...)
        are ignored; missing keys take the ACE defaults.
        """
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in cfg.items() if k in names and v is not None})

    def to_dict(self) -> dict:
        """The config as a JSON-able dict under the diffusers names."""
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = [list(x) if isinstance(x, tuple) else x for x in v]
        return out

    # --- resolved per-stage settings ---------------------------------------------------------
    def encoder_stage_block_types(self) -> tuple:
        return _per_stage(self.encoder_block_types, len(self.encoder_block_out_channels), "encoder_block_types")

    def decoder_stage_block_types(self) -> tuple:
        return _per_stage(self.decoder_block_types, len(self.decoder_block_out_channels), "decoder_block_types")

    def decoder_stage_norm_types(self) -> tuple:
        return _per_stage(self.decoder_norm_types, len(self.decoder_block_out_channels), "decoder_norm_types")

    def decoder_stage_act_fns(self) -> tuple:
        return _per_stage(self.decoder_act_fns, len(self.decoder_block_out_channels), "decoder_act_fns")

    @property
    def spatial_compression_ratio(self) -> int:
        """Down-sampling factor of both spatial axes (8 for ACE: 128 mel bins -> 16, T -> T/8)."""
        return 2 ** (len(self.encoder_block_out_channels) - 1)

    def validate(self) -> None:
        """Raise ``InputError`` naming the first inconsistent field."""
        n_enc, n_dec = len(self.encoder_block_out_channels), len(self.decoder_block_out_channels)
        if n_enc < 1 or n_dec < 1:
            raise InputError("DCAE config: encoder/decoder_block_out_channels must have at least one stage")
        for name, n in (("encoder_layers_per_block", n_enc), ("encoder_qkv_multiscales", n_enc),
                        ("decoder_layers_per_block", n_dec), ("decoder_qkv_multiscales", n_dec)):
            if len(getattr(self, name)) != n:
                raise InputError(
                    f"DCAE config: {name} has {len(getattr(self, name))} entries, expected {n} (one per stage)"
                )
        for name, types in (("encoder_block_types", self.encoder_stage_block_types()),
                            ("decoder_block_types", self.decoder_stage_block_types())):
            bad = [t for t in types if t not in _BLOCK_TYPES]
            if bad:
                raise InputError(f"DCAE config: {name} contains {bad}; allowed {list(_BLOCK_TYPES)}")
        bad = [t for t in self.decoder_stage_norm_types() if t not in _NORM_TYPES]
        if bad:
            raise InputError(f"DCAE config: decoder_norm_types contains {bad}; allowed {list(_NORM_TYPES)}")
        for name, acts in (("decoder_act_fns", self.decoder_stage_act_fns()),
                           ("decoder_conv_act_fn", (self.decoder_conv_act_fn,))):
            bad = [a for a in acts if a.lower() not in _ACTIVATIONS]
            if bad:
                raise InputError(f"DCAE config: {name} contains {bad}; allowed {sorted(_ACTIVATIONS)}")
        if self.downsample_block_type not in ("Conv", "pixel_unshuffle"):
            raise InputError(
                f"DCAE config: downsample_block_type {self.downsample_block_type!r}; allowed 'Conv', 'pixel_unshuffle'"
            )
        if self.upsample_block_type not in ("interpolate", "pixel_shuffle"):
            raise InputError(
                f"DCAE config: upsample_block_type {self.upsample_block_type!r}; allowed 'interpolate', 'pixel_shuffle'"
            )
        if self.encoder_out_shortcut and self.encoder_block_out_channels[-1] % self.latent_channels:
            raise InputError("DCAE config: encoder_out_shortcut needs encoder_block_out_channels[-1] "
                             "divisible by latent_channels")
        if self.decoder_in_shortcut and self.decoder_block_out_channels[-1] % self.latent_channels:
            raise InputError("DCAE config: decoder_in_shortcut needs decoder_block_out_channels[-1] "
                             "divisible by latent_channels")


# ------------------------------------------------------------------------------------------------
# Building blocks
# ------------------------------------------------------------------------------------------------


def _activation(name: str) -> nn.Module:
    return _ACTIVATIONS[name.lower()]()


_IN_PLACE = {nn.SiLU: F.silu, nn.ReLU: F.relu, nn.Mish: F.mish}


def _act_(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` for a temporary ``x``: overwritten in place when autograd is off (saves a
    full-size allocation and pass; large CPU allocations are costly), otherwise a new tensor."""
    fn = _IN_PLACE.get(type(module))
    if fn is None or torch.is_grad_enabled():
        return module(x)
    return fn(x, inplace=True)


def _add_(h: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``h + other`` for a temporary ``h`` (in place; autograd-safe for an add)."""
    return h.add_(other) if h.shape == torch.broadcast_shapes(h.shape, other.shape) else h + other


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """Upcast half precision to float32; float32/float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _pointwise(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Apply a bias-free ``nn.Linear`` weight ``(C_out, C_in)`` over the channel axis of (B, C_in, H, W)."""
    return F.conv2d(x, weight[:, :, None, None])  # (B, C_out, H, W)


class ChannelRMSNorm(nn.Module):
    """RMS norm over the channel axis of an NCHW tensor, with per-channel weight and bias.

    ``y = x / sqrt(mean_c(x^2) + eps) * weight + bias``. The statistics are taken in float32; with
    half-precision weights the normalised tensor is cast to the weight dtype before the affine
    step (the reference ``RMSNorm`` semantics, applied channel-last there).
    """

    def __init__(self, num_channels: int, eps: float = 1e-5, bias: bool = True, dtype=None, device=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.zeros(num_channels, dtype=dtype, device=device)) if bias else None

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None, inplace: bool = False) -> torch.Tensor:
        """x (B, C, H, W) -> (B, C, H, W), plus ``residual`` when given.

        ``inplace``: x is a temporary of the caller's; in float32/64 without autograd it is
        overwritten (fewer passes over it, one full-size temporary instead of four).
        """
        if inplace and not torch.is_grad_enabled() and x.dtype in (torch.float32, torch.float64) \
                and self.weight.dtype == x.dtype:
            r = x.pow(2).mean(dim=1, keepdim=True)  # (B, 1, H, W)
            y = x.mul_(r.add_(self.eps).rsqrt_())  # (B, C, H, W)
            if self.bias is not None:
                torch.addcmul(self.bias[:, None, None], y, self.weight[:, None, None], out=y)
            else:
                y.mul_(self.weight[:, None, None])
            return y if residual is None else y.add_(residual)
        variance = _at_least_fp32(x).pow(2).mean(dim=1, keepdim=True)  # (B, 1, H, W) float32
        y = x * torch.rsqrt(variance + self.eps)  # promoted to float32
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            y = y.to(self.weight.dtype)
        y = y * self.weight[:, None, None]
        if self.bias is not None:
            y = y + self.bias[:, None, None]
        return y if residual is None else y + residual


def _norm_add(norm: nn.Module, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """``norm(h) + residual`` for a temporary ``h`` (reused in place by the RMS norm when it can)."""
    if isinstance(norm, ChannelRMSNorm):
        return norm(h, residual=residual, inplace=True)
    return norm(h) + residual


def _make_norm(norm_type: str, channels: int, dtype=None, device=None) -> nn.Module:
    """Per-channel norm of an NCHW tensor: ``rms_norm`` (weight+bias, eps 1e-5) or ``batch_norm``."""
    if norm_type == "rms_norm":
        return ChannelRMSNorm(channels, eps=1e-5, bias=True, dtype=dtype, device=device)
    if norm_type == "batch_norm":
        return nn.BatchNorm2d(channels, eps=1e-5, dtype=dtype, device=device)
    raise InputError(f"DCAE: norm type {norm_type!r} is not supported; allowed {list(_NORM_TYPES)}")


class ResBlock(nn.Module):
    """``x + norm(conv2(act(conv1(x))))``; (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, norm_type: str = "rms_norm", act_fn: str = "silu",
                 dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.nonlinearity = _activation(act_fn)
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1, **kw)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False, **kw)
        self.norm = _make_norm(norm_type, out_channels, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(_act_(self.nonlinearity, self.conv1(x)))
        return _norm_add(self.norm, h, x)


class MultiscaleProjection(nn.Module):
    """One multiscale branch of the qkv stack: depthwise kxk conv, then grouped 1x1 conv.

    (B, 3I, H, W) -> (B, 3I, H, W) with ``I = heads * head_dim``; the 1x1 conv has ``3 * heads``
    groups. Both convs have no bias.
    """

    def __init__(self, channels: int, num_heads: int, kernel_size: int, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        stacked = 3 * channels
        self.proj_in = nn.Conv2d(stacked, stacked, kernel_size, padding=kernel_size // 2, groups=stacked,
                                 bias=False, **kw)
        self.proj_out = nn.Conv2d(stacked, stacked, 1, groups=3 * num_heads, bias=False, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_out(self.proj_in(x))


class MultiscaleLinearAttention(nn.Module):
    """Multiscale ReLU linear attention with residual (SANA / EfficientViT "LiteMLA").

    (B, C, H, W) -> (B, C, H, W). See the module docstring for the exact grouping and the
    linear / quadratic switch (``H*W > attention_head_dim`` selects the linear form).
    """

    eps = 1e-15

    def __init__(self, channels: int, attention_head_dim: int, kernel_sizes: Sequence[int] = (5,),
                 norm_type: str = "rms_norm", mult: float = 1.0, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.attention_head_dim = attention_head_dim
        self.num_heads = int(channels // attention_head_dim * mult)
        inner = self.num_heads * attention_head_dim
        self.to_q = nn.Linear(channels, inner, bias=False, **kw)
        self.to_k = nn.Linear(channels, inner, bias=False, **kw)
        self.to_v = nn.Linear(channels, inner, bias=False, **kw)
        self.to_qkv_multiscale = nn.ModuleList(
            MultiscaleProjection(inner, self.num_heads, k, **kw) for k in kernel_sizes
        )
        self.halo = max((k // 2 for k in kernel_sizes), default=0)  # reach of the multiscale convs
        self.nonlinearity = nn.ReLU()
        self.to_out = nn.Linear(inner * (1 + len(kernel_sizes)), channels, bias=False, **kw)
        self.norm_out = _make_norm(norm_type, channels, **kw)

    def _linear_form(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q, k, v (B, G, d, N) float32 -> (B, G, d, N) float32, cost O(N d^2)."""
        v = F.pad(v, (0, 0, 0, 1), value=1.0)  # (B, G, d+1, N): last row of ones -> normaliser
        vk = torch.matmul(v, k.transpose(-1, -2))  # (B, G, d+1, d)
        out = torch.matmul(vk, q)  # (B, G, d+1, N)
        return out[:, :, :-1] / (out[:, :, -1:] + self.eps)

    def _quadratic_form(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q, k, v (B, G, d, N) in the model dtype -> (B, G, d, N), cost O(N^2 d); for tiny N."""
        scores = _at_least_fp32(torch.matmul(k.transpose(-1, -2), q))  # (B, G, N_key, N_query)
        scores = scores / (scores.sum(dim=2, keepdim=True) + self.eps)
        return torch.matmul(v, scores.to(v.dtype))  # (B, G, d, N_query)

    def _qkv(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> the stack ``[q | k | v]`` and its multiscale branches, (B, 3I(1+S), H, W)."""
        w_qkv = torch.cat([self.to_q.weight, self.to_k.weight, self.to_v.weight], dim=0)  # (3I, C)
        qkv = _pointwise(x, w_qkv)  # (B, 3I, H, W) = [q | k | v]
        if len(self.to_qkv_multiscale):
            qkv = torch.cat([qkv] + [proj(qkv) for proj in self.to_qkv_multiscale], dim=1)  # (B, 3I(1+S), H, W)
        return qkv

    def _split_heads(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 3I(1+S), H, W) -> q, k, v (B, G, d, H*W) with ReLU on q and k; G = I(1+S)/d channel groups."""
        B, _, H, W = qkv.shape
        d = self.attention_head_dim
        q, k, v = qkv.reshape(B, -1, 3 * d, H * W).chunk(3, dim=2)
        return self.nonlinearity(q), self.nonlinearity(k), v

    def _output(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Attention output (B, G, d, H*W) in x's dtype -> projected, normed, plus the residual x (B, C, H, W)."""
        out = out.reshape(x.shape[0], -1, *x.shape[2:])  # (B, I(1+S), H, W)
        out = _pointwise(out, self.to_out.weight)  # (B, C, H, W)
        return _norm_add(self.norm_out, out, x)

    def forward(self, x: torch.Tensor, force_form: Optional[str] = None) -> torch.Tensor:
        """x (B, C, H, W) -> (B, C, H, W). ``force_form`` ("linear"/"quadratic") is for tests."""
        n = x.shape[2] * x.shape[3]
        use_linear = n > self.attention_head_dim if force_form is None else force_form == "linear"
        qkv = self._qkv(x)
        q, k, v = self._split_heads(_at_least_fp32(qkv) if use_linear else qkv)
        if use_linear:
            out = self._linear_form(q, k, v).to(x.dtype)
        else:
            out = self._quadratic_form(q, k, v)
        return self._output(out, x)

    def forward_chunked(self, x: torch.Tensor, chunk: int) -> torch.Tensor:
        """The linear form of :meth:`forward` over ``chunk`` columns (W) at a time, (B, C, H, W) -> (B, C, H, W).

        The attention is global, but in the linear form it only needs the sums ``V_pad K^T`` over
        all positions: a first pass computes q, k, v chunk by chunk (each chunk with ``halo``
        columns of context for the multiscale convs), accumulates those sums and keeps the
        queries; a second applies the sums to each chunk's queries. Equal to :meth:`forward` up to
        float rounding; the large temporaries (the q/k/v stack, the output projection) are
        bounded by the chunk, the kept queries are I(1+S)/C times the size of x.
        """
        W = x.shape[-1]
        bounds = [(s, min(W, s + chunk)) for s in range(0, W, chunk)]
        vk, queries = None, []  # vk: (B, G, d+1, d) float32
        for s, e in bounds:
            a, b = max(0, s - self.halo), min(W, e + self.halo)
            q, k, v = self._split_heads(_at_least_fp32(self._qkv(x[..., a:b])[..., s - a : e - a]))
            part = torch.matmul(F.pad(v, (0, 0, 0, 1), value=1.0), k.transpose(-1, -2))
            vk = part if vk is None else vk.add_(part)
            queries.append(q)  # (B, G, d, H*(e-s)) float32
            del k, v, part
        out = torch.empty_like(x)
        for i, (s, e) in enumerate(bounds):
            q, queries[i] = queries[i], None
            o = torch.matmul(vk, q)  # (B, G, d+1, n)
            o = (o[:, :, :-1] / (o[:, :, -1:] + self.eps)).to(x.dtype)
            out[..., s:e] = self._output(o, x[..., s:e])
        return out


def _chunked_local(fn, x: torch.Tensor, chunk: int, halo: int) -> torch.Tensor:
    """Apply a local, shape-preserving ``fn`` ((B, C, H, w) -> (B, C, H, w), reach ``halo`` columns)
    to ``x`` (B, C, H, W) ``chunk`` columns at a time; equal to ``fn(x)`` up to float rounding."""
    W = x.shape[-1]
    out = torch.empty_like(x)
    for s in range(0, W, chunk):
        e = min(W, s + chunk)
        a, b = max(0, s - halo), min(W, e + halo)
        out[..., s:e] = fn(x[..., a:b])[..., s - a : e - a]
    return out


class GLUMBConv(nn.Module):
    """Gated inverted bottleneck with residual; (B, C, H, W) -> (B, C, H, W).

    ``1x1 C->2h`` (bias) -> SiLU -> depthwise 3x3 (bias) -> split ``(a, gate)`` -> ``a * SiLU(gate)``
    -> ``1x1 h->C`` (no bias) -> RMS norm -> ``+ x``; ``h = expand_ratio * C``.
    """

    def __init__(self, channels: int, expand_ratio: float = 4.0, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        hidden = int(expand_ratio * channels)
        self.nonlinearity = nn.SiLU()
        self.conv_inverted = nn.Conv2d(channels, 2 * hidden, 1, **kw)
        self.conv_depth = nn.Conv2d(2 * hidden, 2 * hidden, 3, 1, 1, groups=2 * hidden, **kw)
        self.conv_point = nn.Conv2d(hidden, channels, 1, bias=False, **kw)
        self.norm = ChannelRMSNorm(channels, eps=1e-5, bias=True, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_depth(_act_(self.nonlinearity, self.conv_inverted(x)))  # (B, 2h, H, W)
        h, gate = h.chunk(2, dim=1)  # each (B, h, H, W), views of a temporary
        if torch.is_grad_enabled():
            h = h * self.nonlinearity(gate)
        else:
            h = h.mul_(_act_(self.nonlinearity, gate))
        return _norm_add(self.norm, self.conv_point(h), x)  # conv_point: (B, C, H, W)


class EfficientViTBlock(nn.Module):
    """``conv_out(attn(x))``, both with residual; (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, attention_head_dim: int = 32, qkv_multiscales: Sequence[int] = (5,),
                 norm_type: str = "rms_norm", dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.attn = MultiscaleLinearAttention(channels, attention_head_dim, qkv_multiscales, norm_type, **kw)
        self.conv_out = GLUMBConv(channels, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.attn(x))

    def forward_chunked(self, x: torch.Tensor, chunk: int) -> torch.Tensor:
        """:meth:`forward` ``chunk`` columns at a time (see :meth:`MultiscaleLinearAttention.forward_chunked`)."""
        if x.shape[-1] <= chunk or x.shape[2] * x.shape[3] <= self.attn.attention_head_dim:
            return self.forward(x)
        return _chunked_local(self.conv_out, self.attn.forward_chunked(x, chunk), chunk, halo=1)


def _make_block(block_type: str, channels: int, attention_head_dim: int, norm_type: str, act_fn: str,
                qkv_multiscales: Sequence[int], dtype=None, device=None) -> nn.Module:
    if block_type == "ResBlock":
        return ResBlock(channels, channels, norm_type, act_fn, dtype=dtype, device=device)
    if block_type == "EfficientViTBlock":
        return EfficientViTBlock(channels, attention_head_dim, qkv_multiscales, norm_type, dtype=dtype, device=device)
    raise InputError(f"DCAE: block type {block_type!r} is not supported; allowed {list(_BLOCK_TYPES)}")


class DCDownBlock2d(nn.Module):
    """2x spatial down-sampling: (B, C_in, H, W) -> (B, C_out, H/2, W/2).

    ``downsample=False`` ("Conv"): stride-2 3x3 conv. ``downsample=True`` ("pixel_unshuffle"):
    stride-1 conv to ``C_out/4`` then pixel-unshuffle. The shortcut pixel-unshuffles the input to
    ``4 C_in`` channels and averages consecutive groups of ``4 C_in / C_out`` channels.
    """

    def __init__(self, in_channels: int, out_channels: int, downsample: bool = False, shortcut: bool = True,
                 dtype=None, device=None):
        super().__init__()
        self.downsample = downsample
        self.shortcut = shortcut
        self.group_size = in_channels * 4 // out_channels
        conv_out = out_channels // 4 if downsample else out_channels
        self.conv = nn.Conv2d(in_channels, conv_out, 3, 1 if downsample else 2, 1, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        if self.downsample:
            h = F.pixel_unshuffle(h, 2)  # (B, C_out, H/2, W/2)
        if self.shortcut:
            s = F.pixel_unshuffle(x, 2)  # (B, 4 C_in, H/2, W/2)
            s = s.unflatten(1, (-1, self.group_size)).mean(dim=2)  # (B, C_out, H/2, W/2)
            h = _add_(h, s)
        return h


class DCUpBlock2d(nn.Module):
    """2x spatial up-sampling: (B, C_in, H, W) -> (B, C_out, 2H, 2W).

    ``interpolate=True``: nearest x2 then 3x3 conv. Otherwise 3x3 conv to ``4 C_out`` then
    pixel-shuffle. The shortcut repeats every input channel ``4 C_out / C_in`` times
    (interleaved) and pixel-shuffles.
    """

    def __init__(self, in_channels: int, out_channels: int, interpolate: bool = True, shortcut: bool = True,
                 interpolation_mode: str = "nearest", dtype=None, device=None):
        super().__init__()
        self.interpolate = interpolate
        self.interpolation_mode = interpolation_mode
        self.shortcut = shortcut
        self.repeats = out_channels * 4 // in_channels
        conv_out = out_channels if interpolate else out_channels * 4
        self.conv = nn.Conv2d(in_channels, conv_out, 3, 1, 1, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.interpolate and self.interpolation_mode == "nearest" and not torch.is_grad_enabled():
            return self._nearest_up_conv(x)
        if self.interpolate:
            h = self.conv(F.interpolate(x, scale_factor=2, mode=self.interpolation_mode))  # (B, C_out, 2H, 2W)
        else:
            h = F.pixel_shuffle(self.conv(x), 2)  # (B, 4 C_out, H, W) -> (B, C_out, 2H, 2W)
        if self.shortcut:
            s = x.repeat_interleave(self.repeats, dim=1)  # (B, 4 C_out, H, W)
            h = _add_(h, F.pixel_shuffle(s, 2))  # (B, C_out, 2H, 2W)
        return h

    def _phase_weight(self) -> torch.Tensor:
        """The conv weight (O, I, 3, 3) as four 2x2 phase kernels (4 O, I, 2, 2), out channel ``4o + 2py + px``.

        Phase 0 reads input rows (i-1, i) with kernel rows (0, 1+2), phase 1 rows (i, i+1) with
        (0+1, 2); columns likewise. Built at every call (a few ms; no second copy kept).
        """
        w = _at_least_fp32(self.conv.weight)  # half-precision weights are combined in float32

        def phases(t: torch.Tensor, dim: int) -> list:  # the two 2-tap kernels along dim (of 3 taps)
            a, b, c = t.unbind(dim)
            return [torch.stack([a, b + c], dim), torch.stack([a + b, c], dim)]

        wp = torch.stack([torch.stack(phases(r, 3), 1) for r in phases(w, 2)], 1)  # (O, py, px, I, 2, 2)
        return wp.reshape(4 * w.shape[0], w.shape[1], 2, 2).to(self.conv.weight.dtype)

    def _nearest_up_conv(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` for nearest x2 up-sampling, computed at the input resolution.

        A 3x3 conv of a nearest-upsampled map sees, at output pixel ``(2i+py, 2j+px)``, only input
        rows ``i-1, i`` (py=0) or ``i, i+1`` (py=1), likewise columns, with the taps that fall on
        the same input pixel summed: four 2x2 convs (one per phase ``(py, px)``), 16 products per
        input pixel and channel pair instead of 36, and no 4x up-sampled copy of the input. The
        shortcut is added while the phases are interleaved. Equal up to float rounding.
        """
        B, _, H, W = x.shape
        O = self.conv.weight.shape[0]
        wp = self._phase_weight()  # (4 O, I, 2, 2)
        bias = None if self.conv.bias is None else self.conv.bias.repeat_interleave(4)
        y = F.conv2d(F.pad(x, (1, 1, 1, 1)), wp, bias).view(B, O, 2, 2, H + 1, W + 1)  # phase (py, px) at [py:, px:]
        out = x.new_empty(B, O, H, 2, W, 2)
        channel = torch.arange(O, device=x.device) * 4
        for py in range(2):
            for px in range(2):
                phase = y[:, :, py, px, py : py + H, px : px + W]  # (B, O, H, W)
                if self.shortcut:  # pixel_shuffle(repeat_interleave(x)) at this phase: input channel (4o + 2py + px) // r
                    torch.add(phase, x.index_select(1, (channel + 2 * py + px) // self.repeats), out=out[:, :, :, py, :, px])
                else:
                    out[:, :, :, py, :, px] = phase
        return out.view(B, O, 2 * H, 2 * W)


# ------------------------------------------------------------------------------------------------
# Encoder / decoder / autoencoder
# ------------------------------------------------------------------------------------------------


class DCAEEncoder(nn.Module):
    """(B, in_channels, H, W) -> (B, latent_channels, H/f, W/f), ``f = 2**(stages-1)``.

    Keys: ``conv_in``, ``down_blocks.<stage>.<j>`` (blocks, then the down-sampler as the last
    entry of every stage but the last), ``conv_out``. Blocks use RMS norm and SiLU.
    """

    def __init__(self, config: DCAEConfig, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        ch = config.encoder_block_out_channels
        layers = config.encoder_layers_per_block
        types = config.encoder_stage_block_types()
        pixel_unshuffle = config.downsample_block_type == "pixel_unshuffle"
        n = len(ch)

        if layers[0] > 0:
            self.conv_in = nn.Conv2d(config.in_channels, ch[0], 3, 1, 1, **kw)
        else:
            self.conv_in = DCDownBlock2d(config.in_channels, ch[1], downsample=pixel_unshuffle, shortcut=False, **kw)

        stages = []
        for i, (c, num_layers) in enumerate(zip(ch, layers)):
            blocks = [
                _make_block(types[i], c, config.attention_head_dim, "rms_norm", "silu",
                            config.encoder_qkv_multiscales[i], **kw)
                for _ in range(num_layers)
            ]
            if i < n - 1 and num_layers > 0:
                blocks.append(DCDownBlock2d(c, ch[i + 1], downsample=pixel_unshuffle, shortcut=True, **kw))
            stages.append(nn.Sequential(*blocks))
        self.down_blocks = nn.ModuleList(stages)

        self.conv_out = nn.Conv2d(ch[-1], config.latent_channels, 3, 1, 1, **kw)
        self.out_shortcut = config.encoder_out_shortcut
        self.out_shortcut_group_size = ch[-1] // config.latent_channels
        self.in_channels = config.in_channels
        self.downsample_factor = 2 ** (
            sum(1 for s in stages for m in s if isinstance(m, DCDownBlock2d)) + isinstance(self.conv_in, DCDownBlock2d)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, in_channels, H, W) with H, W multiples of the compression -> (B, latent, H/f, W/f)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise InputError(f"DCAE encoder input: expected (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        f = self.downsample_factor
        if x.shape[2] % f or x.shape[3] % f:
            raise InputError(
                f"DCAE encoder input: height and width must be multiples of {f}, got {tuple(x.shape[2:])}"
            )
        h = self.conv_in(x)
        for stage in self.down_blocks:
            h = stage(h)  # (B, C_i+1, H_i/2, W_i/2) after each down-sampling stage
        if self.out_shortcut:
            s = h.unflatten(1, (-1, self.out_shortcut_group_size)).mean(dim=2)  # (B, latent, H/f, W/f)
            return _add_(self.conv_out(h), s)
        return self.conv_out(h)


class DCAEDecoder(nn.Module):
    """(B, latent_channels, h, w) -> (B, in_channels, h*f, w*f).

    Keys: ``conv_in``, ``up_blocks.<stage>.<j>`` (the up-sampler first in every stage but the
    last, then the blocks; stages run from the last index down to 0), ``norm_out``, ``conv_out``.
    """

    def __init__(self, config: DCAEConfig, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        ch = config.decoder_block_out_channels
        layers = config.decoder_layers_per_block
        types = config.decoder_stage_block_types()
        norms = config.decoder_stage_norm_types()
        acts = config.decoder_stage_act_fns()
        interpolate = config.upsample_block_type == "interpolate"
        n = len(ch)

        self.conv_in = nn.Conv2d(config.latent_channels, ch[-1], 3, 1, 1, **kw)
        self.in_shortcut = config.decoder_in_shortcut
        self.in_shortcut_repeats = ch[-1] // config.latent_channels

        stages = []
        for i, (c, num_layers) in enumerate(zip(ch, layers)):
            blocks = []
            if i < n - 1 and num_layers > 0:
                blocks.append(DCUpBlock2d(ch[i + 1], c, interpolate=interpolate, shortcut=True, **kw))
            blocks += [
                _make_block(types[i], c, config.attention_head_dim, norms[i], acts[i],
                            config.decoder_qkv_multiscales[i], **kw)
                for _ in range(num_layers)
            ]
            stages.append(nn.Sequential(*blocks))
        self.up_blocks = nn.ModuleList(stages)

        head = ch[0] if layers[0] > 0 else ch[1]
        self.norm_out = ChannelRMSNorm(head, eps=1e-5, bias=True, **kw)
        self.conv_act = _activation(config.decoder_conv_act_fn)
        if layers[0] > 0:
            self.conv_out = nn.Conv2d(head, config.in_channels, 3, 1, 1, **kw)
        else:
            self.conv_out = DCUpBlock2d(head, config.in_channels, interpolate=interpolate, shortcut=False, **kw)
        self.latent_channels = config.latent_channels

    # The decoder in two parts, for long inputs: the stages up to the last one holding attention
    # (global) run on the whole input, the rest (local convs) in windows. For the ACE config the
    # global part is conv_in + the attention stage at latent resolution, the local part the three
    # up-sampling stages and the head.
    def _stages_in_run_order(self) -> tuple[list, list]:
        """(global stages, local stages), each in run order (``up_blocks`` from the last index down)."""
        run = list(reversed(self.up_blocks))
        last_global = max((i for i, st in enumerate(run) if any(isinstance(m, EfficientViTBlock) for m in st)),
                          default=-1)
        return run[: last_global + 1], run[last_global + 1 :]

    def forward_global(self, z: torch.Tensor, chunk: Optional[int] = None) -> torch.Tensor:
        """z (B, latent, h, w) -> the input of :meth:`forward_local`. With ``chunk``, attention blocks run
        ``chunk`` columns at a time (equal up to float rounding, memory bounded by the chunk)."""
        if z.ndim != 4 or z.shape[1] != self.latent_channels:
            raise InputError(f"DCAE decoder input: expected (B, {self.latent_channels}, H, W), got {tuple(z.shape)}")
        h = self.conv_in(z)  # (B, C_last, h, w)
        if self.in_shortcut:
            h = _add_(h, z.repeat_interleave(self.in_shortcut_repeats, dim=1))  # (B, C_last, h, w)
        for stage in self._stages_in_run_order()[0]:
            for block in stage:
                h = block.forward_chunked(h, chunk) if chunk and isinstance(block, EfficientViTBlock) else block(h)
        return h

    def forward_local(self, h: torch.Tensor) -> torch.Tensor:
        """The rest of the decoder: local convolutions only (see :meth:`local_reach`)."""
        fresh = False  # h is the caller's until a stage has run
        for stage in self._stages_in_run_order()[1]:
            h, fresh = stage(h), True
        return self.conv_out(_act_(self.conv_act, self.norm_out(h, inplace=fresh)))

    def local_reach(self) -> tuple[int, int]:
        """(output columns per input column, input columns of context) of :meth:`forward_local`.

        With that much context on both sides a window of its input gives the same output columns as
        the whole input, up to float rounding (3x3 convs: one pixel each at their resolution).
        """
        scale, reach = 1, 0.0

        def up(block: "DCUpBlock2d"):
            nonlocal scale, reach
            if block.interpolate:
                scale *= 2
                reach += 1 / scale  # the 3x3 conv after the up-sampling
            else:
                reach += 1 / scale  # the 3x3 conv before the pixel shuffle
                scale *= 2

        for stage in self._stages_in_run_order()[1]:
            for block in stage:
                if isinstance(block, DCUpBlock2d):
                    up(block)
                else:  # ResBlock: two 3x3 convs
                    reach += 2 / scale
        if isinstance(self.conv_out, DCUpBlock2d):
            up(self.conv_out)
        else:
            reach += 1 / scale
        return scale, int(reach) + 2

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent_channels, h, w) -> (B, in_channels, h*f, w*f)."""
        return self.forward_local(self.forward_global(z))


class MusicDCAEAutoencoder(nn.Module):
    """The bare music DCAE (diffusers ``AutoencoderDC`` layout): ``.encoder`` and ``.decoder``.

    ``encoder(mel (B, 2, 128, T)) -> (B, 8, 16, T/8)``; ``decoder(z (B, 8, 16, T')) -> (B, 2, 128, 8T')``
    for the default (ACE) config. Weights load with ``load_state_dict`` from the ``encoder.*`` /
    ``decoder.*`` keys of ``music_dcae_f8c8/diffusion_pytorch_model.safetensors`` (or the same keys
    under the ComfyUI ``vae.dcae.`` prefix after stripping it).
    """

    def __init__(self, config: Optional[DCAEConfig] = None, dtype=None, device=None):
        super().__init__()
        self.config = config if config is not None else DCAEConfig()
        self.encoder = DCAEEncoder(self.config, dtype=dtype, device=device)
        self.decoder = DCAEDecoder(self.config, dtype=dtype, device=device)

    @property
    def spatial_compression_ratio(self) -> int:
        return self.config.spatial_compression_ratio

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, latent_channels, H/f, W/f); the input is cast to the weights' dtype."""
        return self.encoder(x.to(self.encoder.conv_out.weight.dtype))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_channels, h, w) -> (B, in_channels, h*f, w*f); the input is cast to the weights' dtype."""
        return self.decoder(z.to(self.decoder.conv_in.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Round trip ``decode(encode(x))``; (B, C, H, W) -> (B, C, H, W)."""
        return self.decode(self.encode(x))
