"""ACE-Step 1.5 FSQ audio tokenizer (``tokenizer.*``) and detokenizer (``detokenizer.*``).

Tokenizer: 25 Hz VAE latents -> windows of ``pool_window_size`` (5) frames -> attention pooler
(a CLS ``special_token`` prepended to each window, 2 bidirectional layers, position 0) ->
residual FSQ with levels [8,8,8,5,5,5] (one quantizer: 64000 codes, the 5 Hz "audio codes"
the LM writes). Detokenizer: each 5 Hz vector -> 5 frames of 25 Hz hints (64 channels).

The FSQ is our own implementation of the reference (vector-quantize-pytorch ``ResidualFSQ``
with ``preserve_symmetry``): ``z = project_in(x)``, soft clamp ``tanh(z/c)·c`` with
``c = 1 + 1/(L-1)``, digit ``d = floor((L-1)·(clamp(z,-1,1)+1)/2 + 0.5)`` in 0..L-1, code
``d·2/(L-1) - 1``, index ``Σ d_i·basis_i`` with basis = cumprod([1] + levels[:-1]), output
``project_out(code)``. The quantizer math runs in float32 (float64 for float64 inputs).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .blocks import RMSNorm
from .condition_encoder import make_encoder_layers, run_encoder_layers
from .config import AceStep15Config


# --- FSQ ---------------------------------------------------------------------------------------

class FSQuantizer(nn.Module):
    """``tokenizer.quantizer``: residual finite scalar quantizer with in/out projections (bias).

    ``levels`` per code dimension; ``num_quantizers`` residual stages (1 in every published
    checkpoint), stage q scaled by ``L ** -q``. Indices are int64 in 0..codebook_size-1.
    """

    def __init__(self, dim: int, levels: list, num_quantizers: int = 1, *, dtype=None, device=None):
        super().__init__()
        if num_quantizers < 1 or any(int(l) < 2 for l in levels):
            raise ValueError(f"FSQ needs levels >= 2 and num_quantizers >= 1; got {levels}, {num_quantizers}")
        kw = dict(dtype=dtype, device=device)
        self.levels = [int(l) for l in levels]
        self.num_quantizers = num_quantizers
        self.basis = [math.prod(self.levels[:i]) for i in range(len(self.levels))]
        self.codebook_size = math.prod(self.levels)
        self.project_in = nn.Linear(dim, len(self.levels), **kw)
        self.project_out = nn.Linear(len(self.levels), dim, **kw)

    # -- tensors of constants on the right device
    def _levels(self, device) -> torch.Tensor:
        return torch.tensor(self.levels, dtype=torch.int64, device=device)

    def _basis(self, device) -> torch.Tensor:
        return torch.tensor(self.basis, dtype=torch.int64, device=device)

    def _step(self, device) -> torch.Tensor:
        """2/(L-1) per dimension, float32 as in the reference."""
        return 2.0 / (self._levels(device) - 1).float()

    @staticmethod
    def _work_dtype(dtype: torch.dtype) -> torch.dtype:
        return torch.float64 if dtype == torch.float64 else torch.float32

    def _linear(self, layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, layer.weight.to(x.dtype), layer.bias.to(x.dtype))

    # -- index <-> digit <-> code
    def check_indices(self, indices: torch.Tensor, name: str = "indices") -> torch.Tensor:
        """Validate audio-code indices (integer, 0..codebook_size-1) -> int64 tensor."""
        if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
            raise InputError(f"{name} must be integer audio codes; got dtype {indices.dtype}")
        if indices.numel():
            low, high = int(indices.min()), int(indices.max())
            if low < 0 or high >= self.codebook_size:
                bad = low if low < 0 else high
                raise InputError(f"{name} must be in 0..{self.codebook_size - 1}; got {bad}")
        return indices.to(torch.int64)

    def indices_to_digits(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (...) -> digits (..., D) with digit_i = (index // basis_i) % L_i."""
        indices = self.check_indices(indices)
        return (indices[..., None] // self._basis(indices.device)) % self._levels(indices.device)

    def digits_to_indices(self, digits: torch.Tensor) -> torch.Tensor:
        """digits (..., D), each in 0..L_i-1 -> indices (...) int64."""
        if digits.shape[-1] != len(self.levels):
            raise InputError(f"digits must end in {len(self.levels)} (one per FSQ level); got {tuple(digits.shape)}")
        digits = digits.to(torch.int64)
        if digits.numel() and ((digits < 0) | (digits >= self._levels(digits.device))).any():
            raise InputError(f"digits must be in 0..L-1 for levels {self.levels}")
        return (digits * self._basis(digits.device)).sum(-1)

    def digits_to_codes(self, digits: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
        """digits (..., D) -> symmetric codes d·2/(L-1) - 1 in [-1, 1] (..., D)."""
        return (self._step(digits.device) * digits.to(torch.float32)).to(dtype) - 1.0

    def quantize_codes(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft-clamped z (..., D) -> (codes (..., D), digits (..., D) int64) for one stage."""
        lm1 = (self._levels(z.device) - 1).to(z.dtype)
        bracket = lm1 * (z.clamp(-1.0, 1.0) + 1.0) / 2.0 + 0.5
        digits = bracket.floor()
        codes = self._step(z.device).to(z.dtype) * digits - 1.0
        return codes, digits.to(torch.int64)

    # -- forward / inverse
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, dim) -> (quantized (B, T, dim) in x.dtype, indices (B, T, Q) int64)."""
        work = x.to(self._work_dtype(x.dtype))
        z = self._linear(self.project_in, work)  # (B, T, D)
        levels = self._levels(x.device)
        clamp_value = (1 + 1 / (levels - 1)).to(z.dtype)  # float32 in the reference
        z = (z / clamp_value).tanh() * clamp_value
        residual, total, all_indices = z, torch.zeros_like(z), []
        for stage in range(self.num_quantizers):
            scale = levels.to(z.dtype) ** -stage
            codes, digits = self.quantize_codes(residual / scale)
            quantized = codes * scale
            residual = residual - quantized
            total = total + quantized
            all_indices.append((digits * self._basis(x.device)).sum(-1))
        out = self._linear(self.project_out, total).to(x.dtype)
        return out, torch.stack(all_indices, dim=-1)

    def output_from_indices(self, indices: torch.Tensor, dtype: Optional[torch.dtype] = None,
                            name: str = "indices") -> torch.Tensor:
        """indices (B, T, Q) -> quantized (B, T, dim); (B, T) is accepted when Q == 1.

        ``dtype`` of the result defaults to the projection's dtype; ``name`` is the input's name
        in error messages.
        """
        if indices.ndim == 2 and self.num_quantizers == 1:
            indices = indices[..., None]  # (B, T, 1)
        if indices.ndim != 3 or indices.shape[-1] != self.num_quantizers:
            raise InputError(f"{name} must be (B, T, {self.num_quantizers}); got {tuple(indices.shape)}")
        digits = self.indices_to_digits(self.check_indices(indices, name))  # (B, T, Q, D)
        work = self._work_dtype(self.project_out.weight.dtype)
        codes = self.digits_to_codes(digits, work)
        scales = self._levels(indices.device).to(work)[None, :] ** -torch.arange(
            self.num_quantizers, device=indices.device, dtype=work)[:, None]  # (Q, D)
        total = (codes * scales).sum(dim=-2)  # (B, T, D)
        return self._linear(self.project_out, total).to(dtype or self.project_out.weight.dtype)


# --- attention pooler and tokenizer ------------------------------------------------------------

class AttentionPooler(nn.Module):
    """``tokenizer.attention_pooler``: Linear, CLS ``special_token`` + window, layers, norm, position 0."""

    def __init__(self, config: AceStep15Config, *, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.config = config
        self.embed_tokens = nn.Linear(config.enc_hidden, config.enc_hidden, **kw)
        self.layers = make_encoder_layers(config, config.num_attention_pooler_hidden_layers, **kw)
        self.norm = RMSNorm(config.enc_hidden, config.rms_norm_eps, **kw)
        self.special_token = nn.Parameter(torch.zeros(1, 1, config.enc_hidden, **kw))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T5, P, H) -> pooled (B, T5, H)."""
        batch, windows, width, hidden = x.shape
        x = self.embed_tokens(x)
        cls = self.special_token.to(x.dtype).expand(batch, windows, 1, hidden)
        x = torch.cat([cls, x], dim=2).reshape(batch * windows, width + 1, hidden)  # (B*T5, 1+P, H)
        x = self.norm(run_encoder_layers(self.layers, x, self.config))
        return x[:, 0].reshape(batch, windows, hidden)


class AudioTokenizer(nn.Module):
    """``tokenizer.*``: ``audio_acoustic_proj`` (64 -> H), ``attention_pooler``, ``quantizer`` (FSQ)."""

    def __init__(self, config: AceStep15Config, *, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.config = config
        self.pool_window_size = config.pool_window_size
        self.audio_acoustic_proj = nn.Linear(config.audio_acoustic_hidden_dim, config.enc_hidden, **kw)
        self.attention_pooler = AttentionPooler(config, **kw)
        self.quantizer = FSQuantizer(config.fsq_dim, config.fsq_input_levels,
                                     config.fsq_input_num_quantizers, **kw)

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    def pool(self, windows: torch.Tensor) -> torch.Tensor:
        """windows (B, T5, P, 64) -> pooled (B, T5, H), before quantization."""
        return self.attention_pooler(self.audio_acoustic_proj(windows))

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """windows (B, T5, P, 64) -> (quantized (B, T5, H), indices (B, T5, Q) int64)."""
        return self.quantizer(self.pool(windows))

    def split_windows(self, x: torch.Tensor, silence_latent: torch.Tensor,
                      attention_mask: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad x (B, T, 64) with silence frames to a multiple of P -> (windows (B, T5, P, 64), mask (B, T5)).

        The pad frames are ``silence_latent[0, :pad]``; the mask (default all ones) is zero-padded
        and max-pooled per window, in x.dtype.
        """
        p = self.pool_window_size
        channels = self.config.audio_acoustic_hidden_dim
        if x.ndim != 3 or x.shape[-1] != channels or x.shape[1] < 1:
            raise InputError(f"x must be (B, T >= 1, {channels}) latents; got {tuple(x.shape)}")
        batch, frames, _ = x.shape
        if attention_mask is None:
            attention_mask = x.new_ones(batch, frames)
        if tuple(attention_mask.shape) != (batch, frames):
            raise InputError(f"attention_mask must be ({batch}, {frames}); got {tuple(attention_mask.shape)}")
        pad = -frames % p
        mask = attention_mask.to(x.dtype)
        if pad:
            if silence_latent.ndim != 3 or silence_latent.shape[1] < pad or silence_latent.shape[-1] != channels:
                raise InputError(f"silence_latent must be (1, S >= {pad}, {channels}); "
                                 f"got {tuple(silence_latent.shape)}")
            fill = silence_latent[:1, :pad].to(x.dtype).expand(batch, pad, channels)
            x = torch.cat([x, fill], dim=1)  # (B, T + pad, 64)
            mask = F.pad(mask, (0, pad))
        windows = x.reshape(batch, -1, p, channels)  # (B, T5, P, 64)
        return windows, mask.reshape(batch, -1, p).amax(dim=-1)

    def tokenize(self, x: torch.Tensor, silence_latent: torch.Tensor,
                 attention_mask: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """25 Hz latents x (B, T, 64) -> (quantized (B, T5, H), indices (B, T5, Q) int64, mask (B, T5)).

        T5 = ceil(T / P); see :meth:`split_windows` for the padding.
        """
        windows, mask = self.split_windows(x, silence_latent, attention_mask)
        quantized, indices = self(windows)
        return quantized, indices, mask

    def codes_to_quantized(self, indices: torch.Tensor, name: str = "audio codes") -> torch.Tensor:
        """Audio codes (B, T5, Q) (or (B, T5) with one quantizer), each in 0..63999 -> quantized (B, T5, H)."""
        return self.quantizer.output_from_indices(indices, name=name)


# --- detokenizer -------------------------------------------------------------------------------

class AudioDetokenizer(nn.Module):
    """``detokenizer.*``: each 5 Hz vector -> P frames (+ ``special_tokens``), layers, norm, ``proj_out``."""

    def __init__(self, config: AceStep15Config, *, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.config = config
        self.pool_window_size = config.pool_window_size
        self.embed_tokens = nn.Linear(config.enc_hidden, config.enc_hidden, **kw)
        self.layers = make_encoder_layers(config, config.num_attention_pooler_hidden_layers, **kw)
        self.norm = RMSNorm(config.enc_hidden, config.rms_norm_eps, **kw)
        self.special_tokens = nn.Parameter(torch.zeros(1, config.pool_window_size, config.enc_hidden, **kw))
        self.proj_out = nn.Linear(config.enc_hidden, config.audio_acoustic_hidden_dim, **kw)

    def forward(self, quantized: torch.Tensor) -> torch.Tensor:
        """quantized (B, T5, H) -> 25 Hz hints (B, T5·P, 64)."""
        hidden = self.config.enc_hidden
        if quantized.ndim != 3 or quantized.shape[-1] != hidden:
            raise InputError(f"quantized must be (B, T5, {hidden}); got {tuple(quantized.shape)}")
        batch, windows, _ = quantized.shape
        p = self.pool_window_size
        x = self.embed_tokens(quantized)[:, :, None, :].expand(batch, windows, p, hidden)  # (B, T5, P, H)
        x = (x + self.special_tokens.to(x.dtype)).reshape(batch * windows, p, hidden)  # (B*T5, P, H)
        x = self.proj_out(self.norm(run_encoder_layers(self.layers, x, self.config)))  # (B*T5, P, 64)
        return x.reshape(batch, windows * p, -1)
