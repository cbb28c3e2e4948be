"""Flow-matching noise schedules and sampler steps of ACE-Step v1.

The three samplers of the official pipeline (``euler``, ``heun``, ``pingpong``) share one
σ schedule (flow matching, x_σ = σ·noise + (1−σ)·x0, the model predicts v ≈ noise − x0):

* A table of ``num_train_timesteps`` (1000) σ values is built first, linearly spaced from
  ``sigma_max`` down to 1/1000 and shifted once with ``σ' = s·σ / (1 + (s−1)·σ)``. Its first and
  last entries are the sampler's ``sigma_max`` / ``sigma_min``, **already shifted**.
* For ``N`` inference steps, ``N`` values are spaced linearly (float64) between ``sigma_max`` and
  ``sigma_min`` and shifted **again** (so the last non-zero σ is "double shifted", e.g. 0.00893 at
  shift 3), cast to float32, and a trailing 0 is appended. The timesteps handed to the DiT are
  ``σ·1000`` (float32).
* Heun repeats every interior timestep (2N−1 model evaluations); its σ table repeats the interior
  σ values too.

Steps (all in float32, the result cast back to the model output's dtype):

* euler: ``dx = (σ_next − σ)·v``; ``m = mean(dx)`` over the whole tensor;
  ``x_next = x + (dx − m)·ω' + m`` with ``ω' = 0.9 + 0.2 / (1 + exp(−0.1·omega))``.
* heun: a predictor (Euler) call followed by a corrector call that averages both derivatives and
  restarts from the stored sample, both with the same ω mean-shift.
* pingpong: ``x0 = x − σ·v``; ``x_next = (1 − σ_next)·x0 + σ_next·ε`` with fresh ε from the
  caller's ``torch.Generator`` (ω unused).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np
import torch

from ..errors import InputError
from ..sampling.noise import GeneratorLike, first_generator, randn
from ..sampling.schedules import shift_sigma

NUM_TRAIN_TIMESTEPS = 1000
SCHEDULERS = ("euler", "heun", "pingpong")


# ------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------
def check_scheduler(kind: str) -> str:
    """Validate a sampler name (``euler``, ``heun`` or ``pingpong``)."""
    if kind not in SCHEDULERS:
        raise InputError(f"scheduler: unknown sampler {kind!r}; allowed: {', '.join(SCHEDULERS)}")
    return kind


def omega_rescale(omega_scale: float) -> float:
    """ω' = 0.9 + 0.2 / (1 + exp(−0.1·omega_scale)) (the official "granularity" logistic)."""
    return 0.9 + (1.1 - 0.9) / (1.0 + math.exp(-0.1 * (float(omega_scale) - 0.0)))


def init_sigma_bounds(shift: float = 3.0, sigma_max: float = 1.0,
                      num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> tuple[float, float]:
    """(sigma_min, sigma_max) of the training table, shifted once (float32 arithmetic).

    The table runs from ``sigma_max·1000`` down to ``1`` in float32 steps, divided by
    ``num_train_timesteps`` and shifted; only its end points matter for sampling.
    """
    ends = torch.tensor(np.array([sigma_max * num_train_timesteps, 1.0], dtype=np.float32))
    ends = ends / num_train_timesteps  # (2,) float32
    ends = shift_sigma(ends, shift)
    return float(ends[1].item()), float(ends[0].item())


# ------------------------------------------------------------------------------------------------
# schedules
# ------------------------------------------------------------------------------------------------
@dataclass
class Schedule:
    """A sampling schedule.

    Attributes:
        kind: "euler" | "heun" | "pingpong".
        timesteps: (E,) float32, σ·1000 for each model evaluation (E = N, or 2N−1 for heun).
        sigmas: (E+1,) float32, the σ table used by the steps (trailing 0; heun repeats interior σ).
        num_inference_steps: N as the official ``retrieve_timesteps`` reports it (the requested
            step count; the subset length for ``oss_steps``). Guidance intervals use it.
        shift: the shift used.
        sigma_min, sigma_max: the once-shifted bounds of the training table (``sigma_max`` is the
            σ the official audio2audio mixes with).

    Unpacks as ``timesteps, sigmas = make_schedule(...)``.
    """

    kind: str
    timesteps: torch.Tensor
    sigmas: torch.Tensor
    num_inference_steps: int
    shift: float
    sigma_min: float
    sigma_max: float

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield self.timesteps
        yield self.sigmas

    def __len__(self) -> int:
        return int(self.timesteps.shape[0])


def _heun_expand(sigmas32: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(timesteps, sigmas) of heun from the N plain σ values (float32)."""
    timesteps = sigmas32 * NUM_TRAIN_TIMESTEPS
    timesteps = torch.cat([timesteps[:1], timesteps[1:].repeat_interleave(2)])
    full = torch.cat([sigmas32, torch.zeros(1, dtype=sigmas32.dtype)])
    full = torch.cat([full[:1], full[1:-1].repeat_interleave(2), full[-1:]])
    return timesteps, full


def make_schedule(kind: str, steps: int, shift: float = 3.0, sigma_max: float = 1.0, *,
                  sigmas: Optional[Sequence[float]] = None,
                  num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> Schedule:
    """Build the official v1 schedule for ``kind`` with ``steps`` inference steps.

    Args:
        kind: "euler", "heun" or "pingpong".
        steps: number of inference steps N (≥ 0; 0 gives an empty schedule).
        shift: timestep shift (the official pipeline always uses 3.0).
        sigma_max: top of the training table before shifting (audio2audio uses 1 − strength).
        sigmas: explicit (unshifted) σ values instead of the linspace (the ``oss_steps`` path);
            they are shifted like the linspace values. ``steps`` is then ignored.

    Returns:
        A :class:`Schedule` (unpacks to ``timesteps, sigmas``).
    """
    check_scheduler(kind)
    if sigmas is None and (int(steps) != steps or steps < 0):
        raise InputError(f"steps: must be a whole number ≥ 0, got {steps!r}")
    if not (0.0 < float(sigma_max) <= 1.0):
        raise InputError(f"sigma_max: must be in (0, 1], got {sigma_max!r}")
    if float(shift) <= 0:
        raise InputError(f"shift: must be > 0, got {shift!r}")
    sig_min, sig_max = init_sigma_bounds(shift, sigma_max, num_train_timesteps)
    if sigmas is None:
        n = int(steps)
        # float64 linspace of σ·1000 between the once-shifted bounds, then the second shift
        lin = np.linspace(sig_max * num_train_timesteps, sig_min * num_train_timesteps, n)
        s64 = lin / num_train_timesteps
        s64 = shift_sigma(s64, shift)
        s32 = torch.from_numpy(np.asarray(s64)).to(torch.float32)
        n_inf = n
    else:
        arr = np.asarray(sigmas, dtype=np.float32)
        s32 = torch.from_numpy(shift_sigma(arr, np.float32(shift)).astype(np.float32))
        n_inf = int(s32.shape[0])
    if kind == "heun":
        timesteps, full = _heun_expand(s32)
    else:
        timesteps = s32 * num_train_timesteps
        full = torch.cat([s32, torch.zeros(1, dtype=torch.float32)])
    return Schedule(kind=kind, timesteps=timesteps, sigmas=full, num_inference_steps=n_inf,
                    shift=float(shift), sigma_min=sig_min, sigma_max=sig_max)


def make_oss_schedule(kind: str, oss_steps: Sequence[int], shift: float = 3.0) -> Schedule:
    """The official "optimal steps" subset schedule.

    The plain schedule for ``max(oss_steps)`` steps is built, the timesteps at the 1-based
    positions ``oss_steps`` are kept, and the schedule is rebuilt from those σ values. As in the
    official code the rebuild shifts those (already shifted) σ values a second time.
    For heun the positions index the plain (euler) table and the heun repetition is applied
    afterwards (the official code raises for heun + oss_steps).
    """
    oss = [int(s) for s in oss_steps]
    if not oss:
        raise InputError("oss_steps: empty list")
    top = max(oss)
    if min(oss) < 1:
        raise InputError(f"oss_steps: positions are 1-based and must be ≥ 1, got {oss}")
    base = make_schedule("euler" if kind == "heun" else kind, top, shift)
    picked = torch.stack([base.timesteps[i - 1] for i in oss]).to(torch.float32)
    return make_schedule(kind, len(oss), shift, sigmas=(picked / NUM_TRAIN_TIMESTEPS).numpy())


def audio2audio_plan(steps: int, ref_audio_strength: float) -> tuple[float, int]:
    """(sigma_max argument, number of steps) of the official audio2audio: (1−s, int((1−s)·steps))."""
    if not (0.0 <= float(ref_audio_strength) < 1.0):
        raise InputError(f"ref_audio_strength: must be in [0, 1), got {ref_audio_strength!r}")
    sigma_max = 1 - ref_audio_strength
    return sigma_max, int(sigma_max * steps)


def add_latents_noise(ref_latents: torch.Tensor, noise: torch.Tensor, kind: str, steps: int,
                      ref_audio_strength: float, shift: float = 3.0
                      ) -> tuple[torch.Tensor, Schedule]:
    """Official audio2audio start: the schedule for ``σ_max = 1 − strength`` and the noised source.

    ``noisy = ref·(1 − σ') + noise·σ'`` where σ' is the once-shifted ``sigma_max`` of the training
    table, while the returned schedule's first σ is shifted twice (a reference quirk, reproduced).

    Shapes: ``ref_latents`` and ``noise`` (B, 8, 16, T) → noisy (B, 8, 16, T).
    """
    sigma_max, n = audio2audio_plan(steps, ref_audio_strength)
    sched = make_schedule(kind, n, shift, sigma_max=sigma_max)
    mix = sched.sigma_max
    noisy = ref_latents * (1 - mix) + noise * mix
    return noisy, sched


# ------------------------------------------------------------------------------------------------
# steppers
# ------------------------------------------------------------------------------------------------
def _omega_update(x32: torch.Tensor, dx: torch.Tensor, omega: float) -> torch.Tensor:
    m = dx.mean()
    return x32 + ((dx - m) * omega + m)


def euler_step(v: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor,
               omega_scale: float = 0.0) -> torch.Tensor:
    """One Euler step with the ω mean-shift. ``v``, ``x``: (B, 8, 16, T); σ: 0-d float32."""
    x32 = x.to(torch.float32)
    dx = (sigma_next - sigma) * v
    return _omega_update(x32, dx, omega_rescale(omega_scale)).to(v.dtype)


def pingpong_step(v: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
    """One PingPong SDE step: denoise to x0 and re-noise to σ_next with fresh noise."""
    x32 = x.to(torch.float32)
    denoised = x32 - sigma * v
    noise = randn(x32.shape, generator, device=x32.device, dtype=torch.float32)
    return ((1 - sigma_next) * denoised + sigma_next * noise).to(v.dtype)


class Stepper:
    """Walks a :class:`Schedule`: call :meth:`step` once per entry of ``schedule.timesteps``."""

    def __init__(self, schedule: Schedule, omega_scale: float = 0.0,
                 generator: GeneratorLike = None):
        self.schedule = schedule
        self.omega_scale = float(omega_scale)
        self.omega = omega_rescale(omega_scale)
        self.generator = first_generator(generator)
        self.index = 0
        # heun state
        self._prev_derivative: Optional[torch.Tensor] = None
        self._dt: Optional[torch.Tensor] = None
        self._sample: Optional[torch.Tensor] = None
        if schedule.kind == "pingpong" and self.generator is None:
            raise InputError("generator: the pingpong sampler draws fresh noise every step; "
                             "pass a torch.Generator")

    def step(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """x_next from the model output ``v`` at the current timestep. Shapes (B, 8, 16, T)."""
        sig = self.schedule.sigmas.to(v.device)
        i = self.index
        if i >= len(self.schedule):
            raise RuntimeError("Stepper.step called more times than the schedule has timesteps")
        kind = self.schedule.kind
        if kind == "euler":
            out = euler_step(v, x, sig[i], sig[i + 1], self.omega_scale)
        elif kind == "pingpong":
            out = pingpong_step(v, x, sig[i], sig[i + 1], self.generator)
        else:
            out = self._heun(v, x, sig, i)
        self.index += 1
        return out

    def _heun(self, v: torch.Tensor, x: torch.Tensor, sig: torch.Tensor, i: int) -> torch.Tensor:
        x32 = x.to(torch.float32)
        if self._dt is None:  # predictor (first order)
            sigma, sigma_next = sig[i], sig[i + 1]
            sigma_hat = sigma * (0.0 + 1)  # no churn
            denoised = x32 - v * sigma
            derivative = (x32 - denoised) / sigma_hat
            dt = sigma_next - sigma_hat
            self._prev_derivative, self._dt, self._sample = derivative, dt, x32
            base = x32
        else:  # corrector (second order)
            sigma_next = sig[i]
            denoised = x32 - v * sigma_next
            derivative = (x32 - denoised) / sigma_next
            derivative = 0.5 * (self._prev_derivative + derivative)
            dt, base = self._dt, self._sample
            self._prev_derivative = self._dt = self._sample = None
        dx = derivative * dt
        return _omega_update(base, dx, self.omega).to(v.dtype)


__all__ = [
    "NUM_TRAIN_TIMESTEPS", "SCHEDULERS", "Schedule", "Stepper", "add_latents_noise",
    "audio2audio_plan", "check_scheduler", "euler_step", "init_sigma_bounds", "make_oss_schedule",
    "make_schedule", "omega_rescale", "pingpong_step",
]
