"""ACE-Step 1.5 VAE: the Oobleck autoencoder (diffusers ``AutoencoderOobleck`` layout).

Stereo 48 kHz audio (B, 2, L) <-> latents (B, 64, L / 1920), channel-first, 25 latent frames per
second. Fully convolutional:

* encoder: ``conv1`` (k7) -> one ``block`` per downsampling ratio s (three residual units with
  dilations 1, 3, 9 -> Snake -> strided ``conv1`` with kernel 2s, stride s, padding ceil(s/2)) ->
  Snake -> ``conv2`` (k3) giving 2 x latent channels: mean and (pre-softplus) scale.
* decoder: ``conv1`` (k7) -> one ``block`` per ratio, reversed (Snake -> ``conv_t1``, a transposed
  conv with kernel 2s, stride s, padding ceil(s/2) -> three residual units) -> Snake -> ``conv2``
  (k7, no bias).
* residual unit: x + conv2_k1(snake2(conv1_k7_dilated(snake1(x)))).
* Snake (log-scale parameters ``alpha``/``beta`` of shape (1, C, 1)):
  ``x + 1 / (exp(beta) + 1e-9) * sin(exp(alpha) * x) ** 2``.
* every conv is weight-normed, stored as ``weight_g`` (dim0, 1, 1) and ``weight_v``; the effective
  weight is ``g * v / ||v||`` with the norm over all dims but 0 (for a transposed conv dim 0 is the
  input channel).

Lengths. An encoder stage with ratio s maps L samples to ``floor((L + 2*ceil(s/2) - 2s) / s) + 1``
frames (``L // s`` for even s). A decoder stage maps n frames to ``n*s + s - 2*ceil(s/2)`` samples:
``n*s`` for even s but ``n*s - 1`` for odd s, so with odd ratios the decoded length is shorter than
``frames * hop`` (ratios (2, 4, 3): 7 frames -> 20 -> 80 -> 160 samples, not 168). The published
ratios (2, 4, 4, 6, 10) are all even: L // 1920 frames, frames * 1920 samples.

Every stage is translation-equivariant at its own rate, so a window of latent frames starting at
frame ``a`` decodes to the global samples starting at ``a * hop`` (and a window of samples starting
at ``a * hop`` encodes to the frames starting at ``a``); only outputs within the receptive field of
a window edge differ (:meth:`OobleckVAE.decoder_context_frames`,
:meth:`OobleckVAE.encoder_context_frames`). ``vae.py`` builds windowed encode/decode on this.

Checkpoints. The official ``vae/diffusion_pytorch_model.safetensors`` uses exactly our module
names. ComfyUI's ``ace_1.5_vae.safetensors`` uses the stable-audio-tools names
(``encoder.layers.*``), Snake parameters shaped (C,) and possibly torch's
``parametrizations.weight.original0/1`` for g/v: :func:`comfy_to_diffusers` maps it.
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Iterator, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, InputError

__all__ = [
    "OobleckConfig",
    "OobleckVAE",
    "LatentDistribution",
    "fused_weight_norm",
    "comfy_to_diffusers",
    "detect_layout",
    "to_diffusers_state_dict",
    "infer_config",
]

RES_DILATIONS = (1, 3, 9)
RES_KERNEL = 7
SNAKE_EPS = 1e-9
STD_FLOOR = 1e-4


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------
@dataclass
class OobleckConfig:
    """``AutoencoderOobleck`` constructor arguments (reference names); defaults = ACE-Step 1.5."""

    encoder_hidden_size: int = 128
    downsampling_ratios: list = field(default_factory=lambda: [2, 4, 4, 6, 10])
    channel_multiples: list = field(default_factory=lambda: [1, 2, 4, 8, 16])
    decoder_channels: int = 128
    decoder_input_channels: int = 64
    audio_channels: int = 2
    sampling_rate: int = 48000

    def __post_init__(self):
        self.downsampling_ratios = [int(s) for s in self.downsampling_ratios]
        self.channel_multiples = [int(m) for m in self.channel_multiples]
        if not self.downsampling_ratios or len(self.downsampling_ratios) != len(self.channel_multiples):
            raise InputError(
                f"OobleckConfig: downsampling_ratios {self.downsampling_ratios} and channel_multiples "
                f"{self.channel_multiples} must be non-empty and of equal length"
            )
        for name in ("encoder_hidden_size", "decoder_channels", "decoder_input_channels", "audio_channels",
                     "sampling_rate"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"OobleckConfig.{name} must be >= 1, got {getattr(self, name)}")
        if min(self.downsampling_ratios) < 1 or min(self.channel_multiples) < 1:
            raise InputError("OobleckConfig: ratios and channel multiples must be >= 1")

    @classmethod
    def from_reference(cls, cfg: Optional[dict]) -> "OobleckConfig":
        """From the official ``vae/config.json`` / a fixture ``config`` (``_``-prefixed and unknown keys ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (cfg or {}).items() if k in names})

    @property
    def hop_length(self) -> int:
        """Audio samples per latent frame (1920 for ACE-Step 1.5)."""
        return math.prod(self.downsampling_ratios)

    @property
    def latent_channels(self) -> int:
        return self.decoder_input_channels


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------
class Snake(nn.Module):
    """Snake activation with log-scale ``alpha``/``beta`` (1, C, 1): (B, C, T) -> (B, C, T)."""

    def __init__(self, channels: int, *, dtype=None, device=None):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(1, channels, 1, dtype=dtype, device=device))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, dtype=dtype, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        freq = self.alpha.exp()
        gain = (self.beta.exp() + SNAKE_EPS).reciprocal()
        if torch.is_grad_enabled() and (x.requires_grad or self.alpha.requires_grad or self.beta.requires_grad):
            return x + gain * torch.sin(freq * x).pow(2)
        y = x * freq  # one temporary, updated in place (no autograd needed)
        return y.sin_().square_().mul_(gain).add_(x)


class WNConv1d(nn.Module):
    """Weight-normed Conv1d or ConvTranspose1d: (B, C_in, T) -> (B, C_out, T').

    ``weight_v``: (out, in, k), or (in, out, k) when ``transposed``; ``weight_g``: (weight_v.shape[0], 1, 1).
    The effective weight ``g * v / ||v||`` is built once per call, or taken from the cache that
    :func:`fused_weight_norm` fills for the duration of a windowed run.
    """

    def __init__(self, cin: int, cout: int, kernel_size: int, *, stride: int = 1, padding: int = 0,
                 dilation: int = 1, bias: bool = True, transposed: bool = False, dtype=None, device=None):
        super().__init__()
        self.stride, self.padding, self.dilation, self.transposed = stride, padding, dilation, transposed
        v_shape = (cin, cout, kernel_size) if transposed else (cout, cin, kernel_size)
        self.weight_g = nn.Parameter(torch.ones(v_shape[0], 1, 1, dtype=dtype, device=device))
        self.weight_v = nn.Parameter(torch.empty(v_shape, dtype=dtype, device=device))
        if bias:
            self.bias = nn.Parameter(torch.zeros(cout, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        if self.weight_v.device.type != "meta":
            nn.init.normal_(self.weight_v, 0.0, 1.0 / math.sqrt(cin * kernel_size))
        self.fused: Optional[torch.Tensor] = None  # set only inside fused_weight_norm()

    def fused_weight(self) -> torch.Tensor:
        """``g * v / ||v||`` (norm over dims 1, 2), computed in float32 and cast to ``weight_v``'s dtype."""
        v = self.weight_v
        v32 = v.float()
        norm = torch.linalg.vector_norm(v32, dim=(1, 2), keepdim=True)  # (dim0, 1, 1)
        return (v32 * (self.weight_g.float() / norm)).to(v.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fused if self.fused is not None else self.fused_weight()
        if self.transposed:
            return F.conv_transpose1d(x, w, self.bias, self.stride, self.padding)
        return F.conv1d(x, w, self.bias, self.stride, self.padding, self.dilation)


@contextmanager
def fused_weight_norm(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block, every :class:`WNConv1d` under ``module`` uses one precomputed weight.

    For loops that run the same convs many times (windowed encode/decode). The cache lives only
    for the block, so weights changed afterwards (loading, LoRA, ``.to()``) are never stale. Nested
    use is fine: the outermost block owns the cache.
    """
    convs = [m for m in module.modules() if isinstance(m, WNConv1d) and m.fused is None]
    try:
        for m in convs:
            m.fused = m.fused_weight()
        yield module
    finally:
        for m in convs:
            m.fused = None


class ResidualUnit(nn.Module):
    """x + conv2(snake2(conv1(snake1(x)))): (B, C, T) -> (B, C, T); conv1 k7 dilated, conv2 k1."""

    def __init__(self, channels: int, dilation: int, *, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        pad = (RES_KERNEL - 1) * dilation // 2
        self.snake1 = Snake(channels, **kw)
        self.conv1 = WNConv1d(channels, channels, RES_KERNEL, padding=pad, dilation=dilation, **kw)
        self.snake2 = Snake(channels, **kw)
        self.conv2 = WNConv1d(channels, channels, 1, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.snake2(self.conv1(self.snake1(x))))
        if y.requires_grad or x.requires_grad:
            return x + y
        return y.add_(x)


class EncoderBlock(nn.Module):
    """(B, C_in, T) -> (B, C_out, T') with T' = floor((T + 2*ceil(s/2) - 2s) / s) + 1."""

    def __init__(self, cin: int, cout: int, stride: int, *, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.res_unit1 = ResidualUnit(cin, RES_DILATIONS[0], **kw)
        self.res_unit2 = ResidualUnit(cin, RES_DILATIONS[1], **kw)
        self.res_unit3 = ResidualUnit(cin, RES_DILATIONS[2], **kw)
        self.snake1 = Snake(cin, **kw)
        self.conv1 = WNConv1d(cin, cout, 2 * stride, stride=stride, padding=math.ceil(stride / 2), **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.res_unit3(self.res_unit2(self.res_unit1(x)))
        return self.conv1(self.snake1(x))


class DecoderBlock(nn.Module):
    """(B, C_in, T) -> (B, C_out, T*s + s - 2*ceil(s/2))."""

    def __init__(self, cin: int, cout: int, stride: int, *, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.snake1 = Snake(cin, **kw)
        self.conv_t1 = WNConv1d(cin, cout, 2 * stride, stride=stride, padding=math.ceil(stride / 2),
                                transposed=True, **kw)
        self.res_unit1 = ResidualUnit(cout, RES_DILATIONS[0], **kw)
        self.res_unit2 = ResidualUnit(cout, RES_DILATIONS[1], **kw)
        self.res_unit3 = ResidualUnit(cout, RES_DILATIONS[2], **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_t1(self.snake1(x))
        return self.res_unit3(self.res_unit2(self.res_unit1(x)))


class OobleckEncoder(nn.Module):
    """Audio (B, audio_channels, L) -> (B, encoder_hidden_size, frames): mean and raw scale stacked on dim 1."""

    def __init__(self, config: OobleckConfig, *, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        h = config.encoder_hidden_size
        mult = [1] + config.channel_multiples
        self.conv1 = WNConv1d(config.audio_channels, h, 7, padding=3, **kw)
        self.block = nn.ModuleList(
            EncoderBlock(h * mult[i], h * mult[i + 1], s, **kw) for i, s in enumerate(config.downsampling_ratios)
        )
        self.snake1 = Snake(h * mult[-1], **kw)
        self.conv2 = WNConv1d(h * mult[-1], h, 3, padding=1, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for block in self.block:
            x = block(x)
        return self.conv2(self.snake1(x))


class OobleckDecoder(nn.Module):
    """Latents (B, decoder_input_channels, frames) -> audio (B, audio_channels, L_out)."""

    def __init__(self, config: OobleckConfig, *, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        c = config.decoder_channels
        mult = [1] + config.channel_multiples
        ratios = config.downsampling_ratios[::-1]
        n = len(ratios)
        self.conv1 = WNConv1d(config.decoder_input_channels, c * mult[-1], 7, padding=3, **kw)
        self.block = nn.ModuleList(
            DecoderBlock(c * mult[n - i], c * mult[n - i - 1], s, **kw) for i, s in enumerate(ratios)
        )
        self.snake1 = Snake(c, **kw)
        self.conv2 = WNConv1d(c, config.audio_channels, 7, padding=3, bias=False, **kw)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.conv1(z)
        for block in self.block:
            x = block(x)
        return self.conv2(self.snake1(x))


# --------------------------------------------------------------------------------------------
# The autoencoder
# --------------------------------------------------------------------------------------------
@dataclass
class LatentDistribution:
    """The encoder's diagonal Gaussian: ``mean`` and ``scale_raw`` (B, C, frames), channel-first."""

    mean: torch.Tensor
    scale_raw: torch.Tensor

    @property
    def std(self) -> torch.Tensor:
        """softplus(scale_raw) + 1e-4."""
        return F.softplus(self.scale_raw) + STD_FLOOR

    def sample(self, noise: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``mean + std * noise``; ``noise`` (shaped like ``mean``) or drawn from ``generator``."""
        if noise is None:
            gen_device = generator.device if generator is not None else self.mean.device
            noise = torch.randn(self.mean.shape, generator=generator, device=gen_device, dtype=self.mean.dtype)
        return self.mean + self.std * noise.to(self.mean.device, self.mean.dtype)


class OobleckVAE(nn.Module):
    """``AutoencoderOobleck`` with the diffusers key names (``encoder.*``, ``decoder.*``).

    ``encode(waveform (B, audio_channels, L)) -> LatentDistribution`` with frames =
    :meth:`latent_frames` (L); ``decode(latents (B, C, frames)) -> (B, audio_channels,``
    :meth:`decoded_length` ``(frames))``. No resampling, clamping or windowing here (see ``vae.py``).
    """

    def __init__(self, config: Optional[OobleckConfig] = None, *, dtype=None, device=None):
        super().__init__()
        self.config = config or OobleckConfig()
        self.encoder = OobleckEncoder(self.config, dtype=dtype, device=device)
        self.decoder = OobleckDecoder(self.config, dtype=dtype, device=device)

    # --- geometry --------------------------------------------------------------------------
    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    @property
    def sample_rate(self) -> int:
        return int(self.config.sampling_rate)

    def latent_frames(self, num_samples: int) -> int:
        """Frames the encoder returns for ``num_samples`` input samples (<= 0: too short to encode)."""
        n = int(num_samples)
        for s in self.config.downsampling_ratios:
            n = (n + 2 * math.ceil(s / 2) - 2 * s) // s + 1
            if n <= 0:
                return 0
        return n

    def min_samples(self) -> int:
        """The shortest input that gives one latent frame."""
        n = 1
        for s in reversed(self.config.downsampling_ratios):
            n = (n - 1) * s + 2 * s - 2 * math.ceil(s / 2)  # smallest input of this stage giving n outputs
        return max(n, 1)

    def decoded_length(self, frames: int) -> int:
        """Samples the decoder returns for ``frames`` latent frames."""
        n = int(frames)
        for s in reversed(self.config.downsampling_ratios):
            n = n * s + s - 2 * math.ceil(s / 2)
        return n

    def decoder_context_frames(self) -> int:
        """Latent frames on each side of a frame that can reach its decoded samples (upper bound).

        Windowed decoding with at least this much context reproduces one-pass decoding up to float
        rounding.
        """
        reach = (7 - 1) / 2  # conv1, in latent frames
        res_reach = sum((RES_KERNEL - 1) * d / 2 for d in RES_DILATIONS)  # 3 residual units, own rate
        rate = 1
        for s in reversed(self.config.downsampling_ratios):
            reach += 2.0 / rate  # a transposed conv with kernel 2s reaches 2 input samples
            rate *= s
            reach += res_reach / rate
        reach += (7 - 1) / 2 / rate  # conv2
        return math.ceil(reach) + 1

    def encoder_context_frames(self) -> int:
        """Latent frames (of hop samples) on each side of a frame whose samples can reach it (upper bound)."""
        reach = (7 - 1) / 2  # conv1, in input samples
        res_reach = sum((RES_KERNEL - 1) * d / 2 for d in RES_DILATIONS)
        rate = 1  # input samples per sample of the current stage
        for s in self.config.downsampling_ratios:
            reach += res_reach * rate + 2 * s * rate  # residual units, then the kernel-2s strided conv
            rate *= s
        reach += 1 * rate  # conv2 (k3)
        return math.ceil(reach / self.hop_length) + 1

    # --- forward ---------------------------------------------------------------------------
    def encode(self, waveform: torch.Tensor) -> LatentDistribution:
        """waveform (B, audio_channels, L) -> distribution over latents (B, C, latent_frames(L))."""
        h = self.encoder(waveform)  # (B, 2C, frames)
        mean, scale = h.chunk(2, dim=1)  # 2 x (B, C, frames)
        return LatentDistribution(mean, scale)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents (B, C, frames) -> waveform (B, audio_channels, decoded_length(frames))."""
        return self.decoder(latents)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Reconstruction through the mean: (B, A, L) -> (B, A, L')."""
        return self.decode(self.encode(waveform).mean)

    # --- loading ---------------------------------------------------------------------------
    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor], *, source: str = "state dict",
                        config: Optional[OobleckConfig] = None, dtype=None, device=None) -> "OobleckVAE":
        """Build and strictly load from either published layout (config inferred from shapes if not given).

        ``dtype`` ``None``: float32. The tensors are converted once and assigned (no second copy).
        """
        sd = to_diffusers_state_dict(state_dict, source=source)
        config = config or infer_config({k: tuple(v.shape) for k, v in sd.items()}, source=source)
        dtype = dtype or torch.float32
        model = cls(config, dtype=dtype, device="meta")
        _check_against(model, {k: tuple(v.shape) for k, v in sd.items()}, source)
        target = torch.device(device) if device is not None else torch.device("cpu")
        model.load_state_dict({k: v.to(device=target, dtype=dtype) for k, v in sd.items()}, strict=True, assign=True)
        return model.eval()


# --------------------------------------------------------------------------------------------
# Checkpoint layouts
# --------------------------------------------------------------------------------------------
_PARAM_NAMES = {"parametrizations.weight.original0": "weight_g", "parametrizations.weight.original1": "weight_v"}
_RES_PARTS = ("snake1", "conv1", "snake2", "conv2")  # stable-audio-tools ResidualUnit.layers order
_ENC_BLOCK_PARTS = {"0": "res_unit1", "1": "res_unit2", "2": "res_unit3", "3": "snake1", "4": "conv1"}
_DEC_BLOCK_PARTS = {"0": "snake1", "1": "conv_t1", "2": "res_unit1", "3": "res_unit2", "4": "res_unit3"}
_CONV_PARAM = r"(weight_g|weight_v|bias)"
_SNAKE_PARAM = r"(alpha|beta)"


def _normalise_param_names(key: str) -> str:
    for old, new in _PARAM_NAMES.items():
        if key.endswith("." + old):
            return key[: -len(old)] + new
    return key


def detect_layout(keys) -> str:
    """``"diffusers"`` (official ``vae/`` folder) or ``"comfy"`` (stable-audio-tools names); ``"unknown"`` otherwise."""
    keys = set(keys)
    if any(k.startswith(("encoder.block.", "decoder.block.")) for k in keys):
        return "diffusers"
    if any(k.startswith(("encoder.layers.", "decoder.layers.")) for k in keys):
        return "comfy"
    return "unknown"


def _comfy_key(key: str) -> Optional[tuple[str, str, int, str]]:
    """Parse a stable-audio-tools key -> (side, diffusers path below the side, top index, kind) or None."""
    m = re.fullmatch(rf"(encoder|decoder)\.layers\.(\d+)\.{_CONV_PARAM}", key)
    if m:  # a top-level conv: conv1 (index 0) or conv2 (the last index)
        return m.group(1), m.group(3), int(m.group(2)), "conv"
    m = re.fullmatch(rf"(encoder|decoder)\.layers\.(\d+)\.{_SNAKE_PARAM}", key)
    if m:  # the final Snake
        return m.group(1), m.group(3), int(m.group(2)), "snake"
    m = re.fullmatch(r"(encoder|decoder)\.layers\.(\d+)\.layers\.(\d)\.(?:layers\.(\d)\.)?(\w+)", key)
    if not m:
        return None
    side, top, part, sub, param = m.group(1), int(m.group(2)), m.group(3), m.group(4), m.group(5)
    parts = _ENC_BLOCK_PARTS if side == "encoder" else _DEC_BLOCK_PARTS
    if part not in parts or top < 1:
        return None
    name = parts[part]
    is_res = name.startswith("res_unit")
    if is_res != (sub is not None):
        return None
    if is_res:
        if int(sub) >= len(_RES_PARTS):
            return None
        name = f"{name}.{_RES_PARTS[int(sub)]}"
    leaf = name.rsplit(".", 1)[-1]
    ok = re.fullmatch(_SNAKE_PARAM if leaf.startswith("snake") else _CONV_PARAM, param)
    if not ok:
        return None
    return side, f"block.{top - 1}.{name}.{param}", top, "block"


def comfy_to_diffusers(state_dict: Mapping[str, torch.Tensor], *, source: str = "state dict") -> dict:
    """ComfyUI ``ace_1.5_vae`` (stable-audio-tools names) -> diffusers names and shapes.

    Pure renaming and reshaping: ``{encoder,decoder}.layers.0`` -> ``conv1``; ``layers.i`` (i >= 1,
    a block) -> ``block.{i-1}`` with the parts in stable-audio-tools order; the Snake after the
    blocks -> ``snake1``; the conv after it -> ``conv2``. Snake ``alpha``/``beta`` (C,) become
    (1, C, 1); ``parametrizations.weight.original0/1`` become ``weight_g``/``weight_v``. Every key
    must be accounted for: unknown keys raise :class:`CheckpointError` naming ``source``.
    """
    out, unknown = {}, []
    parsed = {}
    for key, value in state_dict.items():
        norm_key = _normalise_param_names(key)
        p = _comfy_key(norm_key)
        if p is None:
            unknown.append(key)
        else:
            parsed[key] = (p, value)
    if unknown:
        raise CheckpointError(f"{source}: keys not in the ComfyUI Oobleck VAE layout: {sorted(unknown)[:20]}"
                              + (f" (+{len(unknown) - 20} more)" if len(unknown) > 20 else ""))
    n_blocks = {side: max([p[2] for p, _ in parsed.values() if p[0] == side and p[3] == "block"], default=0)
                for side in ("encoder", "decoder")}
    bad = []
    for key, ((side, rest, top, kind), value) in parsed.items():
        if kind == "conv":
            if top == 0:
                rest = f"conv1.{rest}"
            elif top == n_blocks[side] + 2:
                rest = f"conv2.{rest}"
            else:
                bad.append(key)
                continue
        elif kind == "snake":
            if top != n_blocks[side] + 1:
                bad.append(key)
                continue
            rest = f"snake1.{rest}"
        if rest.endswith((".alpha", ".beta")) and value.dim() == 1:
            value = value.reshape(1, -1, 1)  # (C,) -> (1, C, 1)
        out[f"{side}.{rest}"] = value
    if bad:
        raise CheckpointError(f"{source}: ComfyUI Oobleck VAE keys at unexpected positions: {sorted(bad)[:20]}")
    return out


def to_diffusers_state_dict(state_dict: Mapping[str, torch.Tensor], *, source: str = "state dict") -> dict:
    """Either published layout -> diffusers names (weight norm as ``weight_g``/``weight_v``)."""
    layout = detect_layout(state_dict.keys())
    if layout == "comfy":
        return comfy_to_diffusers(state_dict, source=source)
    if layout == "diffusers":
        return {_normalise_param_names(k): v for k, v in state_dict.items()}
    raise CheckpointError(f"{source}: not an Oobleck VAE state dict (no encoder.block.* / encoder.layers.* keys)")


def infer_config(shapes: Mapping[str, tuple], *, source: str = "state dict") -> OobleckConfig:
    """The :class:`OobleckConfig` of a diffusers-named state dict, from its shapes (sampling_rate stays 48000)."""
    try:
        enc_in = shapes["encoder.conv1.weight_v"]  # (hidden, audio_channels, 7)
        n = 1 + max(int(m.group(1)) for k in shapes if (m := re.match(r"encoder\.block\.(\d+)\.", k)))
        ratios, mults = [], []
        for i in range(n):
            v = shapes[f"encoder.block.{i}.conv1.weight_v"]  # (out, in, 2s)
            ratios.append(int(v[2]) // 2)
            mults.append(int(v[0]) // int(enc_in[0]))
        dec_in = shapes["decoder.conv1.weight_v"]  # (c * mult[-1], latent, 7)
        dec_out = shapes["decoder.conv2.weight_v"]  # (audio_channels, c, 7)
    except (KeyError, ValueError, IndexError) as e:
        raise CheckpointError(f"{source}: cannot read the Oobleck VAE geometry from its shapes ({e!r})") from None
    return OobleckConfig(
        encoder_hidden_size=int(enc_in[0]), downsampling_ratios=ratios, channel_multiples=mults,
        decoder_channels=int(dec_out[1]), decoder_input_channels=int(dec_in[1]), audio_channels=int(enc_in[1]),
    )


def _check_against(model: nn.Module, shapes: Mapping[str, tuple], source: str) -> None:
    """CheckpointError naming ``source`` unless ``shapes`` has exactly the model's keys and shapes."""
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(ours) - set(shapes))
    unexpected = sorted(set(shapes) - set(ours))
    wrong = sorted(k for k in set(ours) & set(shapes) if tuple(shapes[k]) != ours[k])
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:10]}" + (f" (+{len(missing) - 10})" if len(missing) > 10 else ""))
        if unexpected:
            parts.append(f"unknown keys {unexpected[:10]}"
                         + (f" (+{len(unexpected) - 10})" if len(unexpected) > 10 else ""))
        if wrong:
            parts.append("wrong shapes " + ", ".join(f"{k}: {tuple(shapes[k])} != {ours[k]}" for k in wrong[:5]))
        raise CheckpointError(f"{source}: Oobleck VAE state dict does not match: " + "; ".join(parts))
