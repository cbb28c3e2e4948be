"""DCW: differential correction in the wavelet domain, applied after every sampler step.

From "Elucidating the SNR-t Bias of Diffusion Probabilistic Models" (Yu et al., CVPR 2026), as
current upstream ACE-Step 1.5 wires it (``docs/en/DCW.md``). After a step from ``t`` to ``t_next``:

    denoised = x − v·t                      (x, v: the latent and velocity *before* the step)
    xL, xH = DWT(x_next);  yL, yH = DWT(denoised)
    xL += λ_low ·(xL − yL)                   λ_low  = t·scaler          (modes low, double)
    xH += λ_high·(xH − yH)                   λ_high = (1−t)·scaler      (mode high)
                                             λ_high = (1−t)·high_scaler (mode double)
    x_next = IDWT(xL, xH)

Mode ``pix`` skips the transform: ``x_next += scaler·(x_next − denoised)``. The transform is a
single-level 1-D Haar DWT along the time axis of [B, T, C] latents, computed in float32; an odd T
is zero-padded by one frame (what ``pytorch_wavelets`` mode "zero" does) and the inverse is cut
back to T. Upstream's default is mode ``double``, scaler 0.05, high scaler 0.02, Haar; its UI
turns DCW on for turbo and off for base/sft (with the LM "think" step it uses 0.02 / 0.06).
Only the Haar basis is implemented here (upstream's default; others need ``pytorch_wavelets``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import InputError

DCW_MODES = ("low", "high", "double", "pix")
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def haar_dwt(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One Haar level along dim 1. ``x`` [B, T, C] → (low, high), each [B, ceil(T/2), C].

    ``low = (x[2k] + x[2k+1])/√2``, ``high = (x[2k] − x[2k+1])/√2``; odd T gets one zero frame.
    """
    if x.shape[1] % 2:
        x = torch.nn.functional.pad(x, (0, 0, 0, 1))  # [B, T+1, C]
    pairs = x.reshape(x.shape[0], x.shape[1] // 2, 2, x.shape[2])  # [B, T/2, 2, C]
    even, odd = pairs[:, :, 0], pairs[:, :, 1]
    return (even + odd) * _INV_SQRT2, (even - odd) * _INV_SQRT2


def haar_idwt(low: torch.Tensor, high: torch.Tensor, length: int) -> torch.Tensor:
    """Inverse of :func:`haar_dwt`: (low, high) [B, K, C] → x [B, length, C] (length ≤ 2K)."""
    even = (low + high) * _INV_SQRT2
    odd = (low - high) * _INV_SQRT2
    x = torch.stack([even, odd], dim=2)  # [B, K, 2, C]
    x = x.reshape(low.shape[0], 2 * low.shape[1], low.shape[2])  # [B, 2K, C]
    return x[:, :length]


@dataclass(frozen=True)
class DCWSettings:
    """The DCW switch and strengths (upstream ``dcw_*`` parameters, Haar only)."""

    enabled: bool = True
    mode: str = "double"
    scaler: float = 0.05
    high_scaler: float = 0.02

    def __post_init__(self):
        if self.mode not in DCW_MODES:
            raise InputError(f"dcw_mode: unknown value {self.mode!r}; allowed: {', '.join(DCW_MODES)}")
        for name in ("scaler", "high_scaler"):
            value = float(getattr(self, name))
            if not math.isfinite(value) or not 0.0 <= value <= 1.0:
                raise InputError(f"dcw_{name}: must be in [0, 1] (usable 0–0.1), got {value}")

    @property
    def is_active(self) -> bool:
        """Whether :meth:`apply` changes anything."""
        if not self.enabled:
            return False
        if self.mode == "double":
            return self.scaler != 0.0 or self.high_scaler != 0.0
        return self.scaler != 0.0

    def band_scalers(self, t: float) -> tuple[float, float]:
        """(λ_low, λ_high) at the step's start time ``t`` (wavelet modes)."""
        t = float(t)
        if self.mode == "low":
            return t * self.scaler, 0.0
        if self.mode == "high":
            return 0.0, (1.0 - t) * self.scaler
        return t * self.scaler, (1.0 - t) * self.high_scaler  # double

    def apply(self, x_next: torch.Tensor, denoised: torch.Tensor, t: float) -> torch.Tensor:
        """Correct ``x_next`` [B, T, C] against ``denoised`` [B, T, C] (same dtype returned)."""
        if not self.is_active:
            return x_next
        if self.mode == "pix":
            return x_next + self.scaler * (x_next - denoised)
        low_s, high_s = self.band_scalers(t)
        if low_s == 0.0 and high_s == 0.0:
            return x_next
        xl, xh = haar_dwt(x_next.float())
        yl, yh = haar_dwt(denoised.float())
        if low_s != 0.0:
            xl = xl + low_s * (xl - yl)
        if high_s != 0.0:
            xh = xh + high_s * (xh - yh)
        return haar_idwt(xl, xh, x_next.shape[1]).to(x_next.dtype)


DCW_OFF = DCWSettings(enabled=False)
DCW_DEFAULT = DCWSettings()  # upstream default (UI: turbo)
DCW_THINK = DCWSettings(scaler=0.02, high_scaler=0.06)  # upstream UI default with the LM think step


def default_dcw(family: str) -> DCWSettings:
    """Upstream UI default: on for turbo, off for base/sft."""
    return DCW_DEFAULT if family == "turbo" else DCW_OFF


__all__ = ["DCW_DEFAULT", "DCW_MODES", "DCW_OFF", "DCW_THINK", "DCWSettings", "default_dcw",
           "haar_dwt", "haar_idwt"]
