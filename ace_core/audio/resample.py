"""Band-limited resampling with a windowed-sinc polyphase filter (no torchaudio needed).

Numerically this is the algorithm behind ``torchaudio.transforms.Resample`` /
``torchaudio.functional.resample`` at their defaults (Hann-windowed sinc,
``lowpass_filter_width=6``, ``rolloff=0.99``), which the official ACE-Step v1 code uses.

How it works. After reducing the two rates by their gcd to ``o`` (input) and ``n`` (output)
samples per period, output sample ``j`` lies at input position ``j * o / n``. Its value is a
weighted sum of the input samples around it with weights taken from a low-pass sinc whose cut-off
is ``rolloff * min(o, n) / 2`` cycles per period, truncated to ``lowpass_filter_width`` zero
crossings on each side and tapered by a Hann window. Output samples ``j`` and ``j + n`` use the same
weights, shifted by ``o`` input samples, so the whole operation is one strided ``conv1d`` with
``n`` filters (one per output phase) and stride ``o``; the phases are then interleaved.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from ..errors import InputError

__all__ = ["check_rate", "resample", "resampled_length", "sinc_resample_kernel"]


def check_rate(name: str, value) -> int:
    """A sample rate as an int: a positive whole number of Hz (InputError naming ``name`` otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 \
            or not float(value).is_integer():
        raise InputError(f"{name} must be a positive whole number of Hz, got {value!r}")
    return int(value)


def resampled_length(length: int, orig_sr: int, new_sr: int) -> int:
    """Number of output samples for ``length`` input samples: ``ceil(length * new_sr / orig_sr)``."""
    orig_sr, new_sr = check_rate("orig_sr", orig_sr), check_rate("new_sr", new_sr)
    if orig_sr == new_sr:
        return int(length)
    g = math.gcd(orig_sr, new_sr)
    o, n = orig_sr // g, new_sr // g
    return -((-n * int(length)) // o)


@lru_cache(maxsize=16)
def _kernel(
    o: int, n: int, lowpass_filter_width: int, rolloff: float, dtype: torch.dtype, phase_f32: bool
) -> tuple[torch.Tensor, int]:
    """Polyphase kernel for gcd-reduced rates ``o -> n``, built in ``dtype`` on the CPU.

    ``phase_f32``: form the phase offsets ``-j / n`` in float32 before widening them to ``dtype``
    (what torchaudio's cached float64 kernel does).

    Returns ``(kernel (n, 1, 2*width + o), width)``: row ``j`` holds the taps of output phase ``j``
    over input offsets ``-width .. width + o - 1``.
    """
    cutoff = min(o, n) * rolloff  # low-pass cut-off, in units where the input rate is o
    width = math.ceil(lowpass_filter_width * o / cutoff)  # taps needed on each side
    # Offsets of the taps from the (fractional) input position of each output phase, in input samples.
    taps = torch.arange(-width, width + o, dtype=dtype) / o  # (K,)
    phase = torch.arange(n, dtype=torch.float32 if phase_f32 else dtype).neg_() / n  # (n,): 0, -1/n, ...
    phase = phase.to(dtype)
    x = (phase[:, None] + taps[None, :]) * cutoff  # (n, K), distance in zero crossings
    x = x.clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(x * math.pi / lowpass_filter_width / 2) ** 2
    x = x * math.pi
    sinc = torch.where(x == 0, torch.ones_like(x), torch.sin(x) / x)
    kernel = sinc * (window * (cutoff / o))
    return kernel[:, None, :].contiguous(), width  # (n, 1, K)


def sinc_resample_kernel(
    orig_sr: int,
    new_sr: int,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    kernel_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, int, int, int]:
    """The polyphase filter for ``orig_sr -> new_sr``.

    Returns ``(kernel (n, 1, 2*width + o), width, o, n)`` with ``o``/``n`` the gcd-reduced rates.
    The taps are computed in ``kernel_dtype`` (``None``: float64 with the phase offsets formed in
    float32, as ``transforms.Resample`` caches them) and then cast to ``dtype``.
    """
    orig_sr, new_sr = check_rate("orig_sr", orig_sr), check_rate("new_sr", new_sr)
    if lowpass_filter_width <= 0:
        raise InputError(f"lowpass_filter_width must be positive, got {lowpass_filter_width}")
    if not 0.0 < rolloff <= 1.0:
        raise InputError(f"rolloff must be in (0, 1], got {rolloff}")
    kd = torch.float64 if kernel_dtype is None else kernel_dtype
    if kd not in (torch.float32, torch.float64):
        raise InputError(f"kernel_dtype must be torch.float32, torch.float64 or None, got {kernel_dtype}")
    g = math.gcd(orig_sr, new_sr)
    o, n = orig_sr // g, new_sr // g
    kernel, width = _kernel(o, n, int(lowpass_filter_width), float(rolloff), kd, kernel_dtype is None)
    return kernel.to(device=device, dtype=dtype), width, o, n


def resample(
    wave: torch.Tensor,
    orig_sr: int,
    new_sr: int,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
    kernel_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Resample ``wave`` (..., L) from ``orig_sr`` to ``new_sr`` Hz -> (..., ceil(L * new_sr / orig_sr)).

    ``kernel_dtype`` selects how the filter taps are computed, i.e. which torchaudio entry point
    is reproduced to float rounding:

    * ``None`` (default): in float64, then cast to the wave's dtype, as
      ``torchaudio.transforms.Resample(orig_sr, new_sr)``, which the ACE-Step pipeline uses;
    * ``wave.dtype`` (``torch.float32`` / ``torch.float64``): in that dtype, as
      ``torchaudio.functional.resample`` does.

    The two differ by about 1e-5 on full-scale input (float32 rounding of the taps).
    Equal rates return ``wave`` itself. Half-precision input is filtered in float32 and cast back.
    The signal is treated as zero outside ``[0, L)``.
    """
    if not isinstance(wave, torch.Tensor) or not wave.is_floating_point():
        raise InputError(f"wave must be a floating-point tensor, got {getattr(wave, 'dtype', type(wave))}")
    if wave.dim() == 0:
        raise InputError("wave must have a time axis (shape (..., L)), got a scalar")
    orig_sr, new_sr = check_rate("orig_sr", orig_sr), check_rate("new_sr", new_sr)
    if orig_sr == new_sr:
        return wave
    work_dtype = wave.dtype if wave.dtype in (torch.float32, torch.float64) else torch.float32
    kernel, width, o, n = sinc_resample_kernel(
        orig_sr, new_sr, lowpass_filter_width, rolloff, dtype=work_dtype, device=wave.device, kernel_dtype=kernel_dtype
    )
    lead, length = wave.shape[:-1], wave.shape[-1]
    out_len = -((-n * length) // o)
    if wave.numel() == 0:
        return wave.new_zeros(*lead, out_len)
    x = wave.reshape(-1, length).to(work_dtype)  # (N, L)
    x = F.pad(x, (width, width + o))[:, None, :]  # (N, 1, width + L + width + o)
    y = F.conv1d(x, kernel, stride=o)  # (N, n, frames): phase j of every period
    y = y.transpose(1, 2).reshape(x.shape[0], -1)[:, :out_len]  # (N, frames * n) interleaved
    return y.reshape(*lead, out_len).to(wave.dtype)
