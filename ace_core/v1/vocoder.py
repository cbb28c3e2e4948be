"""ACE-Step v1 music vocoder (``ADaMoSHiFiGANV1``): log-mel (B, 128, T) -> waveform (B, 1, T * 512).

Architecture (reference: ``acestep/music_dcae/music_vocoder.py``):

* ``backbone``: a 1-D ConvNeXt. ``channel_layers[0]`` = Conv1d(input_channels -> dims[0], k7,
  replicate padding) + channels-first LayerNorm; ``channel_layers[i>0]`` = LayerNorm + Conv1d k1
  (dims[i-1] -> dims[i]). Each stage ``stages[i]`` holds ``depths[i]`` ConvNeXt blocks
  (depthwise conv -> LayerNorm -> Linear x4 -> GELU -> Linear -> layer scale ``gamma``, residual).
  A final LayerNorm ``norm``. All LayerNorms use eps 1e-6.
* ``head``: a HiFi-GAN generator. ``conv_pre`` (dims[-1] = num_mels -> upsample_initial_channel),
  then per upsample stage: SiLU -> ``ups[i]`` (ConvTranspose1d, channels halve) -> the average of
  ``len(resblock_kernel_sizes)`` ResBlock1 (``convs1`` dilated, ``convs2`` undilated, SiLU before
  each conv, residual per pair). Finally SiLU -> ``conv_post`` (-> 1 channel) -> tanh.

Every head conv carries the old ``torch.nn.utils.weight_norm`` parametrisation, stored as
``weight_g`` / ``weight_v``: ``weight = weight_g * weight_v / ||weight_v||`` with the norm over all
dims but 0 (for ``ConvTranspose1d`` dim 0 is the *input* channel, so ``weight_g`` is (in, 1, 1)).
We keep ``weight_g`` / ``weight_v`` as the parameters (checkpoint keys load as they are) and build
the effective weight at every use (no second copy of the weights is kept).

The published module also has two persistent, deterministic buffers
``mel_transform.spectrogram.window`` and ``mel_transform.mel_scale.fb``. Here the mel transform
lives in ``mel_transform`` and builds those tables itself (it has no state); when a checkpoint
carries the two keys they are recognised and dropped on load (see :data:`OPTIONAL_KEYS`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from math import prod

import torch
import torch.nn.functional as F
from torch import nn

from ..audio.mel import LogMelSpectrogram, MelConfig
from ..errors import InputError

__all__ = ["VocoderConfig", "ADaMoSHiFiGAN", "OPTIONAL_KEYS"]

#: Deterministic buffers of the reference module that a checkpoint may or may not hold (shape given
#: by the config): recognised and skipped on load.
OPTIONAL_KEYS = ("mel_transform.spectrogram.window", "mel_transform.mel_scale.fb")


def _tuple(v):
    return tuple(_tuple(x) for x in v) if isinstance(v, (list, tuple)) else v


@dataclass
class VocoderConfig:
    """``ADaMoSHiFiGANV1`` constructor arguments (reference names); defaults = the published model."""

    input_channels: int = 128
    depths: tuple = (3, 3, 9, 3)
    dims: tuple = (128, 256, 384, 512)
    drop_path_rate: float = 0.0
    kernel_sizes: tuple = (7,)
    upsample_rates: tuple = (4, 4, 2, 2, 2, 2, 2)
    upsample_kernel_sizes: tuple = (8, 8, 4, 4, 4, 4, 4)
    resblock_kernel_sizes: tuple = (3, 7, 11, 13)
    resblock_dilation_sizes: tuple = ((1, 3, 5), (1, 3, 5), (1, 3, 5), (1, 3, 5))
    num_mels: int = 512
    upsample_initial_channel: int = 1024
    use_template: bool = False
    pre_conv_kernel_size: int = 13
    post_conv_kernel_size: int = 13
    sampling_rate: int = 44100
    n_fft: int = 2048
    win_length: int = 2048
    hop_length: int = 512
    f_min: float = 40
    f_max: float = 16000
    n_mels: int = 128

    def __post_init__(self):
        for f in fields(self):
            setattr(self, f.name, _tuple(getattr(self, f.name)))
        if len(self.depths) != len(self.dims):
            raise InputError(f"vocoder config: depths {self.depths} and dims {self.dims} differ in length")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise InputError(
                f"vocoder config: upsample_rates {self.upsample_rates} and upsample_kernel_sizes "
                f"{self.upsample_kernel_sizes} differ in length"
            )
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise InputError("vocoder config: resblock_kernel_sizes and resblock_dilation_sizes differ in length")
        if prod(self.upsample_rates) != self.hop_length:
            raise InputError(
                f"vocoder config: prod(upsample_rates) = {prod(self.upsample_rates)} must equal hop_length {self.hop_length}"
            )
        if self.num_mels != self.dims[-1]:
            raise InputError(f"vocoder config: num_mels {self.num_mels} must equal dims[-1] {self.dims[-1]}")
        if self.use_template:
            raise InputError("vocoder config: use_template=True is not supported (the v1 vocoder has no template input)")

    @classmethod
    def from_reference(cls, cfg: dict | None) -> "VocoderConfig":
        """From the official ``config.json`` / fixture ``config`` (``_``-prefixed and unknown keys ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (cfg or {}).items() if k in names})

    @property
    def mel(self) -> MelConfig:
        """The log-mel front end this vocoder was trained on."""
        return MelConfig(
            sample_rate=int(self.sampling_rate),
            n_fft=int(self.n_fft),
            win_length=int(self.win_length),
            hop_length=int(self.hop_length),
            n_mels=int(self.n_mels),
            f_min=float(self.f_min),
            f_max=float(self.f_max),
        )

    def receptive_field_frames(self) -> int:
        """Mel frames on each side of a frame that can affect its output samples (an upper bound).

        Windowed decoding with at least this much context on both sides reproduces the one-shot
        output up to float rounding.
        """
        frames = 3.0 + sum(self.depths) * (max(self.kernel_sizes) - 1) / 2  # stem + depthwise convs
        frames += (self.pre_conv_kernel_size - 1) / 2
        factor = 1
        res_reach = max(
            sum((k - 1) * d / 2 + (k - 1) / 2 for d in dil)
            for k, dil in zip(self.resblock_kernel_sizes, self.resblock_dilation_sizes)
        )
        for u, k in zip(self.upsample_rates, self.upsample_kernel_sizes):
            frames += -(-k // u) / factor  # transposed conv, in input samples of this stage
            factor *= u
            frames += res_reach / factor  # the resblocks, in output samples of this stage
        frames += (self.post_conv_kernel_size - 1) / 2 / factor
        return int(frames) + 2


def _use_channels_last(x: torch.Tensor) -> bool:
    """Whether to run on the channels-last path: on CPUs (oneDNN) in float32/bfloat16, where its
    kernels beat the plain (B, C, T) ones (1-D convs as (1, k) 2-D convs on (B, C, 1, T) stored as
    (B, T, C); the backbone's LayerNorms and Linears then need no transposed copies)."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16) and torch.backends.mkldnn.is_available()


def _as_conv_input(t: torch.Tensor) -> torch.Tensor:
    """(B, T, C) contiguous -> the same memory as (B, C, 1, T) in channels-last format (a view)."""
    return t.unsqueeze(1).permute(0, 3, 1, 2)


def _from_conv_output(y: torch.Tensor) -> torch.Tensor:
    """(B, C, 1, T) channels-last -> (B, T, C) contiguous (a view)."""
    return y.permute(0, 2, 3, 1).squeeze(1)


# --- backbone ---------------------------------------------------------------------------------
class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over dim 1 of (B, C, T), eps 1e-6; keys ``weight``, ``bias`` (C,)."""

    def __init__(self, dim: int, eps: float = 1e-6, dtype=None, device=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.zeros(dim, dtype=dtype, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C, T)
        y = F.layer_norm(x.transpose(1, 2), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.transpose(1, 2)

    def forward_btc(self, t: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        return F.layer_norm(t, (t.shape[-1],), self.weight, self.bias, self.eps)


class ConvNeXtBlock(nn.Module):
    """(B, C, T) -> (B, C, T): dwconv -> LN -> Linear(C, 4C) -> GELU -> Linear(4C, C) -> gamma (+x)."""

    def __init__(self, dim: int, kernel_size: int = 7, mlp_ratio: float = 4.0, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=(kernel_size - 1) // 2, groups=dim, **kw)
        self.norm = nn.LayerNorm(dim, eps=1e-6, **kw)
        self.pwconv1 = nn.Linear(dim, int(mlp_ratio * dim), **kw)
        self.pwconv2 = nn.Linear(int(mlp_ratio * dim), dim, **kw)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6, **kw))

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The block's branch without the skip connection, (B, C, T)."""
        y = self.dwconv(x).transpose(1, 2)  # (B, T, C)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        return (y * self.gamma).transpose(1, 2)  # (B, C, T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x)

    def residual_btc(self, t: torch.Tensor) -> torch.Tensor:
        """:meth:`residual` on the channels-last path: (B, T, C) contiguous -> (B, T, C)."""
        c = self.dwconv
        y = F.conv2d(_as_conv_input(t), c.weight.unsqueeze(2), c.bias, 1, (0, c.padding[0]), 1, c.groups)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(_from_conv_output(y)))))
        return y.mul_(self.gamma)

    def forward_btc(self, t: torch.Tensor) -> torch.Tensor:
        return self.residual_btc(t).add_(t)


class ParallelConvNeXtBlock(nn.Module):
    """Several ConvNeXt branches with different kernel sizes summed with the input (``blocks.*``)."""

    def __init__(self, dim: int, kernel_sizes, dtype=None, device=None):
        super().__init__()
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim, k, dtype=dtype, device=device) for k in kernel_sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for block in self.blocks:
            out = out + block.residual(x)
        return out

    def forward_btc(self, t: torch.Tensor) -> torch.Tensor:
        out = t
        for block in self.blocks:
            out = out + block.residual_btc(t)
        return out


class ConvNeXtEncoder(nn.Module):
    """Backbone: mel (B, input_channels, T) -> features (B, dims[-1], T)."""

    def __init__(self, config: VocoderConfig, dtype=None, device=None):
        super().__init__()
        c, kw = config, dict(dtype=dtype, device=device)
        self.channel_layers = nn.ModuleList()
        self.channel_layers.append(
            nn.Sequential(
                nn.Conv1d(c.input_channels, c.dims[0], 7, padding=3, padding_mode="replicate", **kw),
                ChannelsFirstLayerNorm(c.dims[0], **kw),
            )
        )
        for i in range(len(c.depths) - 1):
            self.channel_layers.append(
                nn.Sequential(ChannelsFirstLayerNorm(c.dims[i], **kw), nn.Conv1d(c.dims[i], c.dims[i + 1], 1, **kw))
            )

        def block(dim):
            if len(c.kernel_sizes) == 1:
                return ConvNeXtBlock(dim, c.kernel_sizes[0], **kw)
            return ParallelConvNeXtBlock(dim, c.kernel_sizes, **kw)

        self.stages = nn.ModuleList(nn.Sequential(*[block(d) for _ in range(n)]) for n, d in zip(c.depths, c.dims))
        self.norm = ChannelsFirstLayerNorm(c.dims[-1], **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T) -> (B, dims[-1], T); on the channels-last path a transposed view of (B, T, C)."""
        if _use_channels_last(x):
            return self._forward_btc(x)
        for channel_layer, stage in zip(self.channel_layers, self.stages):
            x = stage(channel_layer(x))
        return self.norm(x)

    def _forward_btc(self, x: torch.Tensor) -> torch.Tensor:
        """The same computation in (B, T, C) layout: no transposes around LayerNorms and Linears,
        channels-last depthwise convs."""
        stem, stem_norm = self.channel_layers[0]
        h = F.pad(x.unsqueeze(2), (3, 3, 0, 0), mode="replicate").contiguous(memory_format=torch.channels_last)
        h = F.conv2d(h, stem.weight.unsqueeze(2), stem.bias)  # (B, dims[0], 1, T) channels-last
        t = stem_norm.forward_btc(_from_conv_output(h))  # (B, T, dims[0])
        for i, stage in enumerate(self.stages):
            if i > 0:
                norm, conv = self.channel_layers[i]
                t = F.linear(norm.forward_btc(t), conv.weight[:, :, 0], conv.bias)  # 1x1 conv
            for block in stage:
                t = block.forward_btc(t)
        return self.norm.forward_btc(t).transpose(1, 2)  # (B, dims[-1], T) view


# --- head -------------------------------------------------------------------------------------
class _WeightNorm(nn.Module):
    """Shared weight-norm logic: parameters ``weight_g``, ``weight_v``, ``bias``.

    The effective weight ``g * v / ||v||`` (norm over dims 1..) is computed in float32 at every
    use, as torch's weight-norm parametrisation does: about 0.1 s per full-size vocoder pass,
    against a third of a GB for a second copy of the head's weights if it were kept.

    ``forward`` takes (B, C, T) (plain 1-D conv) or, on the channels-last path of
    :class:`HiFiGANGenerator`, (B, C, 1, T) in ``torch.channels_last`` memory format (a 2-D conv
    with a (1, k) kernel: the same sums, a faster oneDNN kernel on CPUs).
    """

    def _init_params(self, v_shape, out_channels, dtype, device):
        self.weight_g = nn.Parameter(torch.ones(v_shape[0], 1, 1, dtype=dtype, device=device))
        self.weight_v = nn.Parameter(torch.empty(v_shape, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.zeros(out_channels, dtype=dtype, device=device))
        if self.weight_v.device.type != "meta":
            nn.init.normal_(self.weight_v, 0.0, 0.01)

    def weight(self) -> torch.Tensor:
        """The effective weight (d0, d1, k) in the parameters' dtype."""
        v32 = self.weight_v.float()
        return (v32 * (self.weight_g.float() / v32.norm(dim=(1, 2), keepdim=True))).to(self.weight_v.dtype)


class WNConv1d(_WeightNorm):
    """Weight-normed Conv1d (B, C_in, T) -> (B, C_out, T'); ``weight_v`` (out, in, k), ``weight_g`` (out, 1, 1).

    Also takes (B, C_in, 1, T) channels-last -> (B, C_out, 1, T') (see :class:`_WeightNorm`).
    """

    def __init__(self, cin, cout, kernel_size, dilation=1, padding=0, dtype=None, device=None):
        super().__init__()
        self.dilation, self.padding = dilation, padding
        self._init_params((cout, cin, kernel_size), cout, dtype, device)

    def forward(self, x):
        if x.dim() == 4:
            return F.conv2d(x, self.weight().unsqueeze(2), self.bias, 1, (0, self.padding), (1, self.dilation))
        return F.conv1d(x, self.weight(), self.bias, 1, self.padding, self.dilation)


class WNConvTranspose1d(_WeightNorm):
    """Weight-normed ConvTranspose1d (B, C_in, T) -> (B, C_out, T * stride).

    ``weight_v`` (in, out, k); ``weight_g`` (in, 1, 1) (weight norm over dim 0 = input channel).
    Also takes (B, C_in, 1, T) channels-last (see :class:`_WeightNorm`).
    """

    def __init__(self, cin, cout, kernel_size, stride, padding, dtype=None, device=None):
        super().__init__()
        self.stride, self.padding = stride, padding
        self._init_params((cin, cout, kernel_size), cout, dtype, device)

    def forward(self, x):
        if x.dim() == 4:
            return F.conv_transpose2d(x, self.weight().unsqueeze(2), self.bias, (1, self.stride), (0, self.padding))
        return F.conv_transpose1d(x, self.weight(), self.bias, self.stride, self.padding)


def _same_padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


class ResBlock1(nn.Module):
    """HiFi-GAN ResBlock1 (B, C, T) -> (B, C, T): 3 x [SiLU -> convs1[j] (dilated) -> SiLU -> convs2[j]] + skip."""

    def __init__(self, channels: int, kernel_size: int, dilations, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.convs1 = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, d, _same_padding(kernel_size, d), **kw) for d in dilations
        )
        self.convs2 = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, 1, _same_padding(kernel_size, 1), **kw) for _ in dilations
        )

    def forward(self, x: torch.Tensor, silu_x: torch.Tensor | None = None) -> torch.Tensor:
        """``silu_x``: ``F.silu(x)`` when the caller already has it (the blocks of a stage share it)."""
        for j, (c1, c2) in enumerate(zip(self.convs1, self.convs2)):
            y = c1(silu_x if j == 0 and silu_x is not None else F.silu(x))
            x = c2(F.silu(y, inplace=True)).add_(x)  # new tensor: the block input stays untouched
        return x


class HiFiGANGenerator(nn.Module):
    """Head: features (B, num_mels, T) -> waveform (B, 1, T * prod(upsample_rates)) in [-1, 1]."""

    def __init__(self, config: VocoderConfig, dtype=None, device=None):
        super().__init__()
        c, kw = config, dict(dtype=dtype, device=device)
        ch = c.upsample_initial_channel
        self.conv_pre = WNConv1d(c.num_mels, ch, c.pre_conv_kernel_size, 1, _same_padding(c.pre_conv_kernel_size), **kw)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (u, k) in enumerate(zip(c.upsample_rates, c.upsample_kernel_sizes)):
            cin, cout = ch // (2**i), ch // (2 ** (i + 1))
            self.ups.append(WNConvTranspose1d(cin, cout, k, u, (k - u) // 2, **kw))
        for i in range(len(c.upsample_rates)):
            cout = ch // (2 ** (i + 1))
            for k, d in zip(c.resblock_kernel_sizes, c.resblock_dilation_sizes):
                self.resblocks.append(ResBlock1(cout, k, d, **kw))
        self.conv_post = WNConv1d(cout, 1, c.post_conv_kernel_size, 1, _same_padding(c.post_conv_kernel_size), **kw)
        self.num_kernels = len(c.resblock_kernel_sizes)

    #: Stages with fewer channels run on the plain path even on CPUs: there oneDNN's channels-last
    #: kernels keep per-shape buffers in its primitive cache that grow with the length (tens of MB
    #: per conv shape for 8-32 channels at window length), which would stay allocated after a decode.
    CHANNELS_LAST_MIN = 64

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels_last = _use_channels_last(x)
        if channels_last:
            x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)  # (B, C, 1, T), stored (B, T, C)
        x = self.conv_pre(x)  # (B, C0, T)
        for i, up in enumerate(self.ups):
            if x.dim() == 4 and up.bias.shape[0] < self.CHANNELS_LAST_MIN:
                x = x.squeeze(2).contiguous()  # (B, C, T) from here on
            x = up(F.silu(x, inplace=True))  # (B, C_i, T * prod(rates[:i+1]))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            silu_x = F.silu(x)  # every block of the stage starts with it
            acc = blocks[0](x, silu_x)
            for block in blocks[1:]:
                acc += block(x, silu_x)
            del silu_x
            x = acc.div_(self.num_kernels)
        x = torch.tanh(self.conv_post(F.silu(x, inplace=True)))  # (B, 1, L) or (B, 1, 1, L)
        return x.squeeze(2) if x.dim() == 4 else x


class ADaMoSHiFiGAN(nn.Module):
    """ACE-Step v1 vocoder. Keys ``backbone.*`` and ``head.*`` (weight-norm ``weight_g``/``weight_v``).

    ``decode(mel (B, input_channels, T)) -> wave (B, 1, T * hop_length)``;
    ``encode(wave (..., L)) -> log-mel (..., n_mels, L // hop_length)`` (the v1 front end).
    """

    def __init__(self, config: VocoderConfig | None = None, dtype=None, device=None):
        super().__init__()
        self.config = config = config if config is not None else VocoderConfig()
        self.backbone = ConvNeXtEncoder(config, dtype=dtype, device=device)
        self.head = HiFiGANGenerator(config, dtype=dtype, device=device)
        self.mel_transform = LogMelSpectrogram(config.mel, device=device)
        self._register_load_state_dict_pre_hook(self._drop_optional_keys)
        self.eval()

    @property
    def hop_length(self) -> int:
        return int(self.config.hop_length)

    @staticmethod
    def optional_checkpoint_keys(config: VocoderConfig | None = None) -> dict[str, tuple]:
        """Keys a published file may hold that this module recomputes instead -> expected shape."""
        c = config if config is not None else VocoderConfig()
        return {OPTIONAL_KEYS[0]: (c.win_length,), OPTIONAL_KEYS[1]: (c.n_fft // 2 + 1, c.n_mels)}

    def _drop_optional_keys(self, state_dict, prefix, *args, **kwargs):
        for key in OPTIONAL_KEYS:
            state_dict.pop(prefix + key, None)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, C_mel, T) log-mel -> wave (B, 1, T * hop_length)."""
        return self.head(self.backbone(mel))

    @torch.no_grad()
    def decode(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, input_channels, T) log-mel -> wave (B, 1, T * hop_length), in the model's dtype."""
        if mel.dim() != 3 or mel.shape[1] != self.config.input_channels:
            raise InputError(
                f"vocoder mel must have shape (B, {self.config.input_channels}, T), got {tuple(mel.shape)}"
            )
        p = next(self.parameters())
        return self.forward(mel.to(device=p.device, dtype=p.dtype))

    @torch.no_grad()
    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        """wave (..., L) at ``sampling_rate`` -> log-mel (..., n_mels, L // hop_length) float32."""
        return self.mel_transform(wave)
