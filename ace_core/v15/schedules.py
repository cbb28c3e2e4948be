"""Timestep schedules of the ACE-Step 1.5 samplers (flow matching, x_t = t·noise + (1−t)·x0).

A schedule is the float32 list of times ``sigmas`` (N+1,) from 1 down to (normally) 0: the DiT
is called at ``sigmas[:-1]`` and step i moves x from ``sigmas[i]`` to ``sigmas[i+1]``.

* **turbo** (``turbo_schedule``). Current upstream (since 2026-04) takes 1–20 steps:
  ``t_i = 1 − i/N`` (i < N) in float64, then ``s·t/(1+(s−1)·t)`` with the shift used as given, cast
  to float32. At 8 steps and shift 1/2/3 this is exactly the old fixed tables. ``steps=None``
  selects the *legacy* path the golden fixture pins (the reference before the 1–20 step change,
  and today's upstream when no step count reaches the model): the shift is rounded to the nearest
  of {1, 2, 3} (ties to the smaller) and the 8-entry table is used.
  Custom ``timesteps``: trailing exact zeros are dropped, the list is cut to 20 and each value is
  snapped to the nearest of the 20 values of the three tables (ties to the earlier, larger one);
  an empty list falls back to the steps/shift path. The last step always lands on 0 (x0 = x − v·t).
* **base / sft** (``base_schedule``). ``linspace(1, 0, N+1)`` in float32, then the shift formula
  (float32 tensor arithmetic) when shift ≠ 1. Explicit ``timesteps`` (the sft/base option) are
  used verbatim, the final value included (N = len − 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch

from ..errors import InputError

FAMILIES = ("turbo", "base", "sft")
TURBO_MAX_STEPS = 20
TURBO_LEGACY_SHIFTS = (1.0, 2.0, 3.0)

# The three fixed 8-step turbo tables (shift 1, 2, 3), as the reference lists them (float64).
TURBO_SHIFT_TABLES = {
    1.0: (1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125),
    2.0: (1.0, 0.9333333333333333, 0.8571428571428571, 0.7692307692307693, 0.6666666666666666,
          0.5454545454545454, 0.4, 0.2222222222222222),
    3.0: (1.0, 0.9545454545454546, 0.9, 0.8333333333333334, 0.75, 0.6428571428571429, 0.5, 0.3),
}
# Union of the three tables, in descending order: what custom turbo timesteps snap to.
TURBO_VALID_TIMESTEPS = tuple(sorted({t for tab in TURBO_SHIFT_TABLES.values() for t in tab}, reverse=True))

TimestepsLike = Union[Sequence[float], torch.Tensor, None]


@dataclass(frozen=True)
class Schedule:
    """``sigmas``: (N+1,) float32, descending; the model is called at ``sigmas[:-1]``."""

    sigmas: torch.Tensor
    family: str

    @property
    def steps(self) -> int:
        return int(self.sigmas.numel()) - 1

    @property
    def model_timesteps(self) -> torch.Tensor:
        """(N,) float32: the times at which the DiT is evaluated."""
        return self.sigmas[:-1]

    def values(self) -> list[float]:
        """The model times as Python floats (the float32 values)."""
        return [float(v) for v in self.model_timesteps.tolist()]

    def nearest_index(self, t: float) -> int:
        """Index of the model time nearest to ``t`` (ties: the earlier one)."""
        vals = self.values()
        return min(range(len(vals)), key=lambda i: abs(vals[i] - t))

    def truncated(self, start: int) -> "Schedule":
        """The schedule from model step ``start`` on (img2img-style partial denoising)."""
        if not 0 <= start < self.steps:
            raise InputError(f"schedule start index: must be in [0, {self.steps - 1}], got {start}")
        return Schedule(self.sigmas[start:].clone(), self.family)


# ------------------------------------------------------------------------------------------------
# validation helpers
# ------------------------------------------------------------------------------------------------
def check_shift(shift: float) -> float:
    shift = float(shift)
    if not shift > 0:
        raise InputError(f"shift: must be > 0, got {shift}")
    return shift


def _check_steps(steps, low: int, high: Optional[int], name: str = "steps") -> int:
    if isinstance(steps, bool) or int(steps) != steps:
        raise InputError(f"{name}: must be a whole number, got {steps!r}")
    steps = int(steps)
    if steps < low or (high is not None and steps > high):
        rng = f"{low}–{high}" if high is not None else f"≥ {low}"
        raise InputError(f"{name}: must be in {rng}, got {steps}")
    return steps


def _as_list(timesteps: TimestepsLike) -> list[float]:
    if isinstance(timesteps, torch.Tensor):
        return [float(v) for v in timesteps.detach().to("cpu", torch.float64).flatten().tolist()]
    return [float(v) for v in timesteps]


def _check_descending(values: list[float], name: str = "timesteps") -> None:
    for v in values:
        if not 0.0 <= v <= 1.0:
            raise InputError(f"{name}: every value must be in [0, 1], got {v}")
    for a, b in zip(values[:-1], values[1:]):
        if not b < a:
            raise InputError(f"{name}: must be strictly decreasing, got {a} then {b}")


# ------------------------------------------------------------------------------------------------
# turbo
# ------------------------------------------------------------------------------------------------
def shift_time(t: float, shift: float) -> float:
    """``s·t / (1 + (s−1)·t)`` on a Python float (float64)."""
    return shift * t / (1.0 + (shift - 1.0) * t)


def legacy_turbo_shift(shift: float) -> float:
    """The shift the legacy fixed-table path uses: the nearest of {1, 2, 3} (ties: smaller)."""
    shift = check_shift(shift)
    return min(TURBO_LEGACY_SHIFTS, key=lambda s: abs(s - shift))


def snap_turbo_timesteps(timesteps: TimestepsLike) -> list[float]:
    """Custom turbo times: drop trailing zeros, keep ≤ 20, snap each to TURBO_VALID_TIMESTEPS.

    The input (after the trailing zeros) must be strictly decreasing within [0, 1]. Snapping can
    produce repeats (two inputs nearest to the same table value); those are kept, as upstream
    does (a repeated time is a zero-length step). Returns [] when nothing is left.
    """
    values = _as_list(timesteps)
    while values and values[-1] == 0:
        values.pop()
    values = values[:TURBO_MAX_STEPS]
    _check_descending(values)
    return [min(TURBO_VALID_TIMESTEPS, key=lambda v: abs(v - t)) for t in values]


def turbo_times(steps: Optional[int] = 8, shift: float = 3.0) -> list[float]:
    """The N model times (float64) of the turbo schedule; ``steps=None``: legacy fixed table."""
    if steps is None:
        return list(TURBO_SHIFT_TABLES[legacy_turbo_shift(shift)])
    steps = _check_steps(steps, 1, TURBO_MAX_STEPS)
    shift = check_shift(shift)
    raw = [1.0 - i / steps for i in range(steps)]
    return raw if shift == 1.0 else [shift_time(t, shift) for t in raw]


def turbo_schedule(steps: Optional[int] = 8, shift: float = 3.0,
                   timesteps: TimestepsLike = None) -> Schedule:
    """The turbo schedule (see the module docstring); the final 0 is appended."""
    times = snap_turbo_timesteps(timesteps) if timesteps is not None else []
    if not times:
        times = turbo_times(steps, shift)
    sigmas = torch.tensor(times + [0.0], dtype=torch.float32)
    return Schedule(sigmas, "turbo")


# ------------------------------------------------------------------------------------------------
# base / sft
# ------------------------------------------------------------------------------------------------
def base_schedule(steps: int = 32, shift: float = 3.0, timesteps: TimestepsLike = None,
                  family: str = "base") -> Schedule:
    """The base/sft schedule: linspace + shift in float32, or explicit ``timesteps`` verbatim."""
    if timesteps is not None:
        values = _as_list(timesteps)
        if len(values) < 2:
            raise InputError(f"timesteps: need at least 2 values (start and end), got {len(values)}")
        _check_descending(values)
        sigmas = torch.tensor(values, dtype=torch.float32)
        return Schedule(sigmas, family)
    steps = _check_steps(steps, 1, None)
    shift = check_shift(shift)
    t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float32)
    if shift != 1.0:
        t = shift * t / (1 + (shift - 1) * t)
    return Schedule(t, family)


def make_schedule(family: str, steps: Optional[int], shift: float,
                  timesteps: TimestepsLike = None) -> Schedule:
    """Dispatch on the model family (``turbo``, ``base`` or ``sft``)."""
    if family == "turbo":
        return turbo_schedule(steps, shift, timesteps)
    if family in ("base", "sft"):
        return base_schedule(32 if steps is None else steps, shift, timesteps, family=family)
    raise InputError(f"model family: unknown value {family!r}; allowed: {', '.join(FAMILIES)}")


__all__ = [
    "FAMILIES", "Schedule", "TURBO_MAX_STEPS", "TURBO_SHIFT_TABLES", "TURBO_VALID_TIMESTEPS",
    "base_schedule", "check_shift", "legacy_turbo_shift", "make_schedule", "shift_time",
    "snap_turbo_timesteps", "turbo_schedule", "turbo_times",
]
