"""Classifier-free guidance math shared by every model family.

Predictions are flow velocities of any shape (B, ...); the APG norm and projection run over the
last two dims by default (v1: (B, 8, 16, T); pass ``dims`` for other layouts).

* :func:`apg_forward`: adaptive projected guidance with a momentum buffer (momentum −0.75), a norm
  clip (2.5, over the last two dims per (B, C)) and a float64 projection onto the conditional
  prediction; only the orthogonal part is kept (eta 0).
* :func:`cfg_forward`: ``uncond + s·(cond − uncond)``.
* :func:`cfg_zero_star`: CFG-Zero* (per-item optimal scale α, optional zero-init for i ≤ zero_steps).
* :func:`cfg_double_condition_forward`: separate text and lyric scales.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch

from ..errors import InputError

CFG_TYPES = ("apg", "cfg", "cfg_star")


class MomentumBuffer:
    """Running average ``r ← update + momentum·r`` (starts at 0), carried across guided steps."""

    def __init__(self, momentum: float = -0.75):
        self.momentum = float(momentum)
        self.running_average: torch.Tensor | float = 0.0

    def update(self, update_value: torch.Tensor) -> None:
        self.running_average = update_value + self.momentum * self.running_average


def project(v0: torch.Tensor, v1: torch.Tensor, dims: Sequence[int] = (-1, -2)
            ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Split ``v0`` into parts parallel and orthogonal to ``v1`` (normalised over ``dims``).

    Computed in float64; returned in ``v0``'s dtype. Shapes (B, C, H, W).
    """
    dtype = v0.dtype
    a, b = v0.double(), v1.double()
    unit = torch.nn.functional.normalize(b, dim=list(dims))
    parallel = (a * unit).sum(dim=list(dims), keepdim=True) * unit
    orthogonal = a - parallel
    return parallel.to(dtype), orthogonal.to(dtype)


def apg_forward(pred_cond: torch.Tensor, pred_uncond: torch.Tensor, guidance_scale: float,
                momentum_buffer: Optional[MomentumBuffer] = None, eta: float = 0.0,
                norm_threshold: float = 2.5, dims: Sequence[int] = (-1, -2)) -> torch.Tensor:
    """Adaptive projected guidance. ``pred_*``: (B, C, H, W) → guided (B, C, H, W)."""
    diff = pred_cond - pred_uncond
    if momentum_buffer is not None:
        momentum_buffer.update(diff)
        diff = momentum_buffer.running_average
    if norm_threshold > 0:
        norm = diff.norm(p=2, dim=list(dims), keepdim=True)  # (B, C, 1, 1)
        diff = diff * torch.minimum(torch.ones_like(diff), norm_threshold / norm)
    parallel, orthogonal = project(diff, pred_cond, dims)
    update = orthogonal + eta * parallel
    return pred_cond + (guidance_scale - 1) * update


def cfg_forward(cond_output: torch.Tensor, uncond_output: torch.Tensor,
                cfg_strength: float) -> torch.Tensor:
    """Plain classifier-free guidance: ``uncond + s·(cond − uncond)``."""
    return uncond_output + cfg_strength * (cond_output - uncond_output)


def cfg_double_condition_forward(cond_output: torch.Tensor, uncond_output: torch.Tensor,
                                 only_text_cond_output: torch.Tensor, guidance_scale_text: float,
                                 guidance_scale_lyric: float) -> torch.Tensor:
    """``(1−gt)·uncond + (gt−gl)·only_text + gl·cond`` (separate text / lyric guidance)."""
    return ((1 - guidance_scale_text) * uncond_output
            + (guidance_scale_text - guidance_scale_lyric) * only_text_cond_output
            + guidance_scale_lyric * cond_output)


def optimized_scale(positive_flat: torch.Tensor, negative_flat: torch.Tensor) -> torch.Tensor:
    """α = ⟨cond, uncond⟩ / (‖uncond‖² + 1e-8) per row. Inputs (B, N) → (B, 1)."""
    dot = torch.sum(positive_flat * negative_flat, dim=1, keepdim=True)
    sq = torch.sum(negative_flat ** 2, dim=1, keepdim=True) + 1e-8
    return dot / sq


def cfg_zero_star(noise_pred_with_cond: torch.Tensor, noise_pred_uncond: torch.Tensor,
                  guidance_scale: float, i: int, zero_steps: int = 1,
                  use_zero_init: bool = True) -> torch.Tensor:
    """CFG-Zero*: ``α·uncond + s·(cond − α·uncond)``; 0 when ``use_zero_init`` and i ≤ zero_steps."""
    b = noise_pred_with_cond.shape[0]
    alpha = optimized_scale(noise_pred_with_cond.reshape(b, -1), noise_pred_uncond.reshape(b, -1))
    alpha = alpha.view(b, *([1] * (noise_pred_with_cond.dim() - 1)))  # (B, 1, 1, 1)
    if use_zero_init and i <= zero_steps:
        return noise_pred_with_cond * 0.0
    return noise_pred_uncond * alpha + guidance_scale * (noise_pred_with_cond
                                                        - noise_pred_uncond * alpha)


def check_cfg_type(cfg_type: str) -> str:
    if cfg_type not in CFG_TYPES:
        raise InputError(f"cfg_type: unknown guidance type {cfg_type!r}; allowed: {', '.join(CFG_TYPES)}")
    return cfg_type


def guidance_interval_bounds(num_steps: int, guidance_interval: float) -> Tuple[int, int]:
    """(start_idx, end_idx); guidance is applied for ``start_idx ≤ i < end_idx``."""
    start = int(num_steps * ((1 - guidance_interval) / 2))
    end = int(num_steps * (guidance_interval / 2 + 0.5))
    return start, end


def interval_guidance_scale(i: int, start_idx: int, end_idx: int, guidance_scale: float,
                            min_guidance_scale: float = 3.0,
                            guidance_interval_decay: float = 0.0) -> float:
    """Scale at loop index ``i`` inside the interval.

    With ``decay > 0`` it falls linearly from ``guidance_scale`` (at ``start_idx``) toward
    ``min_guidance_scale`` (reached at ``end_idx − 1`` for decay 1). An interval of a single step
    (where the official formula would divide by zero) keeps ``guidance_scale``.
    """
    if guidance_interval_decay > 0:
        span = end_idx - start_idx - 1
        progress = (i - start_idx) / span if span > 0 else 0.0
        return guidance_scale - (guidance_scale - min_guidance_scale) * progress * guidance_interval_decay
    return guidance_scale


__all__ = [
    "CFG_TYPES", "MomentumBuffer", "apg_forward", "cfg_double_condition_forward", "cfg_forward",
    "cfg_zero_star", "check_cfg_type", "guidance_interval_bounds", "interval_guidance_scale",
    "optimized_scale", "project",
]
