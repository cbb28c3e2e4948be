"""The step loop every sampler and editing loop runs: velocity, step, editing hooks, progress.

``run_steps`` walks the timesteps from index ``start``: at each index ``i`` it asks the
``velocity(x, t, i)`` callable for the (guided) model output, advances ``x`` with
``step(v, x, i)`` and reports ``progress(done, total)``; a progress hook interrupts the loop by
raising. Editing loops hand in :class:`StepHooks` (renoise at the start, re-inject the source
after every step) instead of the loop importing any editing code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..progress import ProgressHook, report

Velocity = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
Step = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
Hook = Callable[[torch.Tensor, int], torch.Tensor]


@dataclass
class StepHooks:
    """Editing hooks the loop calls; each takes ``(x, i)`` and returns the new ``x``.

    begin: once, before the model call at index ``start`` (e.g. renoise the source).
    after_step: after every step (e.g. put the kept frames of the source back).
    """

    begin: Optional[Hook] = None
    after_step: Optional[Hook] = None


def sigma_at(timesteps: torch.Tensor, i: int, timestep_scale: float) -> torch.Tensor:
    """σ of index ``i`` (``timesteps[i] / timestep_scale``); 0 past the last timestep."""
    if i < len(timesteps):
        return timesteps[i] / timestep_scale
    return torch.zeros_like(timesteps[-1] / timestep_scale)


def flow_euler_step(timesteps: torch.Tensor, timestep_scale: float) -> Step:
    """The plain flow-matching Euler step ``x + (σ_{i+1} − σ_i)·v`` in float32 (σ after the end: 0)."""

    def step(v: torch.Tensor, x: torch.Tensor, i: int) -> torch.Tensor:
        t_i = timesteps[i] / timestep_scale
        t_next = sigma_at(timesteps, i + 1, timestep_scale)
        return x.to(torch.float32) + (t_next - t_i) * v

    return step


def run_steps(velocity: Velocity, timesteps: torch.Tensor, x: torch.Tensor, step: Step, *,
              start: int = 0, hooks: Optional[StepHooks] = None,
              progress: Optional[ProgressHook] = None) -> torch.Tensor:
    """Run the loop from index ``start`` (earlier indices make no model call); returns the last x.

    ``progress(done, total)`` is called after every step, ``total`` being the steps that run.
    """
    hooks = hooks or StepHooks()
    n = len(timesteps)
    total = max(n - max(start, 0), 0)
    done = 0
    for i, t in enumerate(timesteps):
        if i < start:
            continue
        if i == start and hooks.begin is not None:
            x = hooks.begin(x, i)
        v = velocity(x, t, i)
        x = step(v, x, i)
        if hooks.after_step is not None:
            x = hooks.after_step(x, i)
        done += 1
        report(progress, done, total)
    return x


__all__ = ["StepHooks", "flow_euler_step", "run_steps", "sigma_at"]
