"""Schedule pieces shared by the flow-matching families (x_σ = σ·noise + (1−σ)·x0)."""

from __future__ import annotations

from ..errors import InputError


def shift_sigma(sigmas, shift: float):
    """σ' = shift·σ / (1 + (shift−1)·σ), elementwise, in the dtype of ``sigmas``."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def check_steps(steps) -> int:
    """A step count: a whole number ≥ 1."""
    if int(steps) != steps or steps < 1:
        raise InputError(f"steps: must be a whole number ≥ 1, got {steps!r}")
    return int(steps)


__all__ = ["check_steps", "shift_sigma"]
