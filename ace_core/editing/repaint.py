"""The RePaint-style masked loop shared by repaint and extend (the official v1 semantics).

* ``x0`` is the source latent, ``mask`` marks the frames to regenerate (1) and keep (0); time is
  the last axis of every latent.
* ``z0 = where(mask, cos(a)·noise + sin(a)·retake_noise, noise)`` with ``a = variance·π/2``
  (:func:`repaint_noise`).
* Loop indices below ``n_min`` are skipped (no model call); at ``i == n_min`` the **whole**
  latent is renoised to ``(1−σ)·x0 + σ·z0``. Every step is a plain Euler step on the guided
  velocity, followed by re-injecting the source outside the mask:
  ``x = where(mask, x, (1−σ_next)·x0 + σ_next·z0)``. After the last step (σ_next = 0) the output
  equals x0 outside the mask.
* A soft mask (values in [0, 1]) feathers the edges: fractional frames take
  ``m·x + (1−m)·renoised source`` and a noise angle ``a·m``; frames at exactly 0 or 1 are computed
  exactly as with a hard mask (a {0, 1} mask gives bit-identical results).

σ is ``timestep / timestep_scale`` (v1 hands the DiT σ·1000).
"""

from __future__ import annotations

from typing import Optional

import torch

from ..errors import InputError
from ..progress import ProgressHook
from ..sampling.loop import StepHooks, Velocity, flow_euler_step, run_steps, sigma_at
from ..sampling.noise import retake_angle


def region_line(frame_length: int, start_frame: int, end_frame: int, feather: int = 0) -> torch.Tensor:
    """Mask (frame_length,) float32: 1 on frames ``[start_frame, end_frame)``.

    ``feather > 0`` ramps the mask linearly inside the region over ``feather`` frames at each
    edge that lies inside the latent (edge frame ``1/(feather+1)``, then up to 1); frames outside
    the region stay exactly 0.
    """
    if not (0 <= start_frame < end_frame <= frame_length):
        raise InputError(f"repaint region: frames [{start_frame}, {end_frame}) must satisfy "
                         f"0 ≤ start < end ≤ {frame_length} (the latent length)")
    if feather < 0:
        raise InputError(f"feather: must be ≥ 0 frames, got {feather}")
    line = torch.zeros(frame_length, dtype=torch.float32)
    line[start_frame:end_frame] = 1.0
    if feather > 0:
        idx = torch.arange(frame_length, dtype=torch.float32)
        ramp = torch.ones(frame_length, dtype=torch.float32)
        if start_frame > 0:
            ramp = torch.minimum(ramp, (idx - start_frame + 1) / (feather + 1))
        if end_frame < frame_length:
            ramp = torch.minimum(ramp, (end_frame - idx) / (feather + 1))
        line = torch.where(line == 1.0, ramp.clamp(0.0, 1.0), line)
    return line


def broadcast_mask(mask: torch.Tensor, shape: tuple, device) -> torch.Tensor:
    """Broadcast a (T,), (B, T) or latent-rank mask (size-1 dims allowed) to ``shape`` (float32)."""
    m = torch.as_tensor(mask)
    rank = len(shape)
    if m.ndim == 1:
        m = m.view(*([1] * (rank - 1)), -1)
    elif m.ndim == 2:
        m = m.view(m.shape[0], *([1] * (rank - 2)), m.shape[1])
    if m.ndim != rank or m.shape[-1] != shape[-1]:
        raise InputError(f"mask: expected (T,), (B, T) or a {rank}-dim latent mask with T={shape[-1]}, "
                         f"got {tuple(torch.as_tensor(mask).shape)}")
    try:
        m = m.to(device=device, dtype=torch.float32).expand(*shape).contiguous()
    except RuntimeError:
        raise InputError(f"mask: shape {tuple(m.shape)} does not broadcast to the latent {tuple(shape)}")
    if not bool(torch.isfinite(m).all()) or float(m.min()) < 0.0 or float(m.max()) > 1.0:
        raise InputError("mask: values must lie in [0, 1]")
    return m


def is_binary(mask: torch.Tensor) -> bool:
    return bool(((mask == 0) | (mask == 1)).all())


def blend(mask: torch.Tensor, inside: torch.Tensor, outside: torch.Tensor, binary: bool) -> torch.Tensor:
    """mask==1 → inside, mask==0 → outside, fractional → m·inside + (1−m)·outside."""
    if binary:
        return torch.where(mask == 1.0, inside, outside)
    soft = mask * inside + (1 - mask) * outside
    return torch.where(mask == 1.0, inside, torch.where(mask == 0.0, outside, soft))


def repaint_noise(noise: torch.Tensor, retake_noise: torch.Tensor, mask: torch.Tensor,
                  retake_variance: float) -> torch.Tensor:
    """z0 = where(mask, cos(a)·noise + sin(a)·retake, noise); soft masks use the angle a·m."""
    a = retake_angle(retake_variance).to(noise.device)
    mixed = torch.cos(a) * noise + torch.sin(a) * retake_noise
    if is_binary(mask):
        return torch.where(mask == 1.0, mixed, noise)
    am = a * mask
    soft = torch.cos(am) * noise + torch.sin(am) * retake_noise
    return torch.where(mask == 1.0, mixed, torch.where(mask == 0.0, noise, soft))


def repaint_hooks(x0: torch.Tensor, z0: torch.Tensor, mask: torch.Tensor, timesteps: torch.Tensor,
                  timestep_scale: float) -> StepHooks:
    """Renoise the whole latent at the first step; re-inject the renoised source after every step."""
    binary = is_binary(mask)

    def begin(x: torch.Tensor, i: int) -> torch.Tensor:
        t_i = timesteps[i] / timestep_scale
        zt_src = (1 - t_i) * x0 + t_i * z0
        return x0.clone() + zt_src - x0

    def after_step(x: torch.Tensor, i: int) -> torch.Tensor:
        t_next = sigma_at(timesteps, i + 1, timestep_scale)
        zt_src = (1 - t_next) * x0 + t_next * z0
        return blend(mask, x, zt_src, binary)

    return StepHooks(begin=begin, after_step=after_step)


def repaint_loop(velocity: Velocity, timesteps: torch.Tensor, x0: torch.Tensor, z0: torch.Tensor,
                 mask: torch.Tensor, n_min: int, *, timestep_scale: float,
                 progress: Optional[ProgressHook] = None) -> torch.Tensor:
    """The masked loop. x0, z0, mask: the latent's shape → the repainted latent (float32).

    With ``n_min`` ≥ the number of timesteps nothing runs and ``x0`` is returned (deliberate: the
    official v1 code returns its un-renoised target noise there).
    """
    x0 = x0.to(torch.float32)
    z0 = z0.to(torch.float32)
    return run_steps(velocity, timesteps, x0, flow_euler_step(timesteps, timestep_scale), start=n_min,
                     hooks=repaint_hooks(x0, z0, mask, timesteps, timestep_scale), progress=progress)


__all__ = [
    "blend", "broadcast_mask", "is_binary", "region_line", "repaint_hooks", "repaint_loop", "repaint_noise",
]
