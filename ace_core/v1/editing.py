"""ACE-Step v1 editing loops: repaint, extend, retake and FlowEdit (official semantics).

Repaint / extend run the official "RePaint"-style loop of ``text2music_diffusion_process``
(:func:`~ace_core.editing.repaint.repaint_loop`, σ = timestep / 1000):

* ``n_min = int(steps·(1 − retake_variance))``: loop indices below it are skipped (no model call);
  at ``i == n_min`` the **whole** latent is renoised.
* Every step is a plain Euler step ``x += (t_next − t)·v`` on the guided v (no ω, no heun /
  pingpong update, whatever the sampler), followed by re-injecting the source outside the mask.
* Deliberate deviation: when no step is left to run (``n_min`` ≥ the number of timesteps, i.e.
  ``retake_variance`` 0, or ``oss_steps`` with ``int(max(oss)·(1 − variance)) ≥ len(oss)``) the
  source is returned unchanged; the official loop then returns the raw target noise.

Extend pads the source with zero frames on the left and/or right and repaints only the padded
frames; both noises are drawn with the **source** length and the new frames take their noise from
the retake draw. The inference window is limited to 240 s (2583 frames); the part of the source
that falls outside it is kept and re-attached after sampling.

FlowEdit (:func:`flowedit`) edits a source toward a target conditioning (``flowedit_diffusion_process``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import torch

from ..editing.repaint import broadcast_mask, region_line, repaint_loop, repaint_noise
from ..errors import InputError
from ..progress import ProgressHook, report
from ..sampling.guidance import MomentumBuffer, apg_forward
from ..sampling.loop import sigma_at
from ..sampling.noise import GeneratorLike, check_variance, first_generator, latent_noise, randn
from ..sampling.schedules import check_steps
from .latent import LATENT, LATENT_CHANNELS, LATENT_HEIGHT, frames_for_duration
from .sampling import (
    Conditioning,
    GuidanceSettings,
    Guider,
    VelocityModel,
    build_guider,
    cfg_enabled,
    dit_dtype_device,
    encode_conditions,
    sample,
    schedule_for,
)
from .schedulers import NUM_TRAIN_TIMESTEPS, Schedule, check_scheduler, make_schedule

MAX_FRAMES = LATENT.max_frames
"""The official extend window: 240 s = 2583 latent frames."""


# ------------------------------------------------------------------------------------------------
# masks
# ------------------------------------------------------------------------------------------------
def region_mask(frame_length: int, start_frame: int, end_frame: int, batch: int = 1, *,
                feather: int = 0, device=None) -> torch.Tensor:
    """Mask (batch, 8, 16, frame_length) float32: 1 on frames ``[start_frame, end_frame)``
    (linear ``feather`` ramps inside the region, see :func:`~ace_core.editing.repaint.region_line`)."""
    line = region_line(frame_length, start_frame, end_frame, feather)
    mask = line.view(1, 1, 1, frame_length).expand(batch, LATENT_CHANNELS, LATENT_HEIGHT, frame_length)
    return mask.contiguous().to(device) if device is not None else mask.contiguous()


def masked_repaint_loop(guider: Guider, schedule: Schedule, x0: torch.Tensor, z0: torch.Tensor,
                        mask: torch.Tensor, n_min: int, *,
                        progress: Optional[ProgressHook] = None) -> torch.Tensor:
    """The official repaint/extend loop on v1 timesteps (σ·1000). x0, z0, mask: (B, 8, 16, T)."""
    return repaint_loop(guider, schedule.timesteps, x0, z0, mask, n_min, timestep_scale=NUM_TRAIN_TIMESTEPS,
                        progress=progress)


def _guidance(guidance: Optional[GuidanceSettings], kwargs: dict) -> GuidanceSettings:
    if guidance is not None:
        if kwargs:
            raise InputError(f"pass guidance options either as `guidance` or as keywords, not both: {sorted(kwargs)}")
        return guidance.validate()
    return GuidanceSettings.from_kwargs(kwargs)


def _check_latent(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.ndim != 4 or x.shape[1] != LATENT_CHANNELS or x.shape[2] != LATENT_HEIGHT or x.shape[-1] < 1:
        raise InputError(f"{name}: expected a latent (B, 8, 16, T), got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise InputError(f"{name}: the latent holds NaN or infinite values")
    return x


# ------------------------------------------------------------------------------------------------
# repaint
# ------------------------------------------------------------------------------------------------
def repaint(dit, cond: Conditioning, src_latents: torch.Tensor, mask: Optional[torch.Tensor] = None, *,
            null_cond: Optional[Conditioning] = None, repaint_start: Optional[float] = None,
            repaint_end: Optional[float] = None, steps: int = 60, scheduler: str = "euler",
            shift: float = 3.0, oss_steps: Optional[Sequence[int]] = None,
            schedule: Optional[Schedule] = None, retake_variance: float = 0.5,
            noise: Optional[torch.Tensor] = None, retake_noise: Optional[torch.Tensor] = None,
            generator: GeneratorLike = None, retake_generator: GeneratorLike = None,
            guidance: Optional[GuidanceSettings] = None, progress: Optional[ProgressHook] = None,
            **guidance_kwargs) -> torch.Tensor:
    """Regenerate the masked frames of ``src_latents`` (B, 8, 16, T); returns (B, 8, 16, T).

    The region is ``mask`` (hard or soft, see :func:`region_mask`) or the seconds
    ``repaint_start`` .. ``repaint_end`` (frames ``int(s·44100/512/8)``, end exclusive).
    ``retake_variance`` is the repaint strength: ``n_min = int(steps·(1 − variance))`` steps are
    skipped. Noise: ``noise`` / ``retake_noise`` (B, 8, 16, T) or drawn from ``generator`` then
    ``retake_generator`` (default: ``generator``). Guidance keywords as :func:`sample`.
    The sampler only selects the timesteps (repaint always takes plain Euler steps).
    """
    settings = _guidance(guidance, guidance_kwargs)
    check_scheduler(scheduler)
    steps = check_steps(steps)
    retake_variance = check_variance(retake_variance)
    src = _check_latent(src_latents, "src_latents")
    _, device = dit_dtype_device(dit)
    b, t_len = int(src.shape[0]), int(src.shape[-1])
    shape = (b, LATENT_CHANNELS, LATENT_HEIGHT, t_len)
    if mask is None:
        if repaint_start is None or repaint_end is None:
            raise InputError("repaint: give a mask or repaint_start/repaint_end in seconds")
        mask = region_mask(t_len, frames_for_duration(repaint_start), frames_for_duration(repaint_end), b)
    mask = broadcast_mask(mask, shape, device)
    if schedule is None:
        schedule, infer_steps = schedule_for(scheduler, steps, shift, oss_steps)
    else:
        infer_steps = steps
    n_min = int(infer_steps * (1 - retake_variance))
    x_noise = latent_noise(noise, shape, generator, device, "noise")
    r_noise = latent_noise(retake_noise, shape,
                            retake_generator if retake_generator is not None else generator,
                            device, "retake_noise")
    z0 = repaint_noise(x_noise, r_noise, mask, retake_variance)
    guider = build_guider(dit, cond, null_cond, settings, schedule.num_inference_steps, b)
    return masked_repaint_loop(guider, schedule, src.to(device, torch.float32), z0, mask, n_min,
                               progress=progress)


# ------------------------------------------------------------------------------------------------
# extend
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExtendPlan:
    """Frame bookkeeping of an extend.

    ``left_pad`` / ``right_pad`` new frames; ``left_trim`` / ``right_trim`` source frames that fall
    outside the 240 s window (kept aside and re-attached after sampling).
    """

    src_frames: int
    left_pad: int
    right_pad: int
    left_trim: int = 0
    right_trim: int = 0

    @property
    def window_frames(self) -> int:
        """Frames sampled: left_pad + (src − trims) + right_pad (≤ 2583)."""
        return self.left_pad + self.src_frames - self.left_trim - self.right_trim + self.right_pad

    @property
    def output_frames(self) -> int:
        """Frames returned: left_pad + src + right_pad."""
        return self.left_pad + self.src_frames + self.right_pad


def _finish_plan(src: int, left: int, right: int, max_frames: int) -> ExtendPlan:
    if left < 0 or right < 0:
        raise InputError(f"extend: extensions must be ≥ 0 frames, got left {left}, right {right}")
    if left == 0 and right == 0:
        raise InputError("extend: both extensions are 0; nothing to generate")
    if left >= max_frames or right >= max_frames:
        raise InputError(f"extend: an extension of {max(left, right)} frames leaves no source frame "
                         f"in the {max_frames}-frame (240 s) window; extend by less than 240 s per pass")
    total = left + src + right
    lt = rt = 0
    if total > max_frames:
        if left > 0 and right > 0:
            raise InputError(f"extend: left {left} + source {src} + right {right} frames exceed the "
                             f"{max_frames}-frame (240 s) window; extend one side at a time")
        if left > 0:
            rt = total - max_frames
        else:
            lt = total - max_frames
    return ExtendPlan(src_frames=src, left_pad=left, right_pad=right, left_trim=lt, right_trim=rt)


def plan_extend(src_frames: int, left_frames: int, right_frames: int, *,
                max_frames: int = MAX_FRAMES) -> ExtendPlan:
    """Plan an extend by ``left_frames`` before and ``right_frames`` after the source."""
    return _finish_plan(int(src_frames), int(left_frames), int(right_frames), max_frames)


def plan_extend_frames(src_frames: int, start_frame: int, end_frame: int, *,
                       max_frames: int = MAX_FRAMES) -> ExtendPlan:
    """The official snapshot's rules from repaint frames (``start < 0`` and/or ``end > src``).

    Left: ``left_pad = −start``. Right: ``right_pad = end − (src + left_pad)`` (the length after
    left padding, capped at the window): a quirk of this snapshot (PR #373 later changed it), so
    a UI-style ``end = duration + right`` only extends right by ``right − left``.
    """
    src = int(src_frames)
    if not (start_frame < 0 or end_frame > src):
        raise InputError(f"extend: frames [{start_frame}, {end_frame}) lie inside the source "
                         f"(0..{src}); use repaint")
    left = -start_frame if start_frame < 0 else 0
    current = min(left + src, max_frames)
    right = 0
    if end_frame > src:
        right = end_frame - current
        if right < 0:
            raise InputError(
                f"extend: repaint_end frame {end_frame} is inside the left-padded source "
                f"({current} frames); this snapshot pads right by end − (source + left padding)")
    return _finish_plan(src, left, right, max_frames)


def plan_extend_seconds(src_frames: int, repaint_start: float, repaint_end: float, *,
                        max_frames: int = MAX_FRAMES) -> ExtendPlan:
    """:func:`plan_extend_frames` from the official seconds (``−left_s``, ``duration + right_s``)."""
    return plan_extend_frames(src_frames, frames_for_duration(repaint_start),
                              frames_for_duration(repaint_end), max_frames=max_frames)


def extend(dit, cond: Conditioning, src_latents: torch.Tensor, *,
           left_frames: Optional[int] = None, right_frames: Optional[int] = None,
           repaint_start: Optional[float] = None, repaint_end: Optional[float] = None,
           plan: Optional[ExtendPlan] = None, null_cond: Optional[Conditioning] = None,
           steps: int = 60, scheduler: str = "euler", shift: float = 3.0,
           oss_steps: Optional[Sequence[int]] = None, schedule: Optional[Schedule] = None,
           retake_variance: float = 1.0, noise: Optional[torch.Tensor] = None,
           retake_noise: Optional[torch.Tensor] = None, generator: GeneratorLike = None,
           retake_generator: GeneratorLike = None, guidance: Optional[GuidanceSettings] = None,
           progress: Optional[ProgressHook] = None, **guidance_kwargs) -> torch.Tensor:
    """Extend ``src_latents`` (B, 8, 16, T0); returns (B, 8, 16, left + T0 + right).

    The extension is ``left_frames`` / ``right_frames``, or the official seconds
    ``repaint_start`` (−left) / ``repaint_end`` (with this snapshot's right-padding rule, see
    :func:`plan_extend_frames`), or a ready ``plan``. ``noise`` is (B, 8, 16, T0) (the official
    draw uses the source length); ``retake_noise`` is (B, 8, 16, L) with L ≥ T0 and
    L ≥ max(left, right) (drawn with L = max(T0, left, right) when absent).
    ``retake_variance`` (default 1.0, as the official UI forces) sets ``n_min``.
    """
    settings = _guidance(guidance, guidance_kwargs)
    check_scheduler(scheduler)
    steps = check_steps(steps)
    retake_variance = check_variance(retake_variance)
    src = _check_latent(src_latents, "src_latents")
    _, device = dit_dtype_device(dit)
    b, t0 = int(src.shape[0]), int(src.shape[-1])
    if plan is None:
        if left_frames is not None or right_frames is not None:
            plan = plan_extend(t0, int(left_frames or 0), int(right_frames or 0))
        elif repaint_start is not None and repaint_end is not None:
            plan = plan_extend_seconds(t0, repaint_start, repaint_end)
        else:
            raise InputError("extend: give left_frames/right_frames, repaint_start/repaint_end or a plan")
    if plan.src_frames != t0:
        raise InputError(f"extend: the plan is for {plan.src_frames} source frames, the latent has {t0}")
    L, R, lt, rt = plan.left_pad, plan.right_pad, plan.left_trim, plan.right_trim
    if schedule is None:
        schedule, infer_steps = schedule_for(scheduler, steps, shift, oss_steps)
    else:
        infer_steps = steps
    n_min = int(infer_steps * (1 - retake_variance))

    src = src.to(device, torch.float32)
    target = latent_noise(noise, (b, LATENT_CHANNELS, LATENT_HEIGHT, t0), generator, device, "noise")
    need = max(L, R)
    if retake_noise is None:
        r_len = max(t0, need)
        retake = latent_noise(None, (b, LATENT_CHANNELS, LATENT_HEIGHT, r_len),
                               retake_generator if retake_generator is not None else generator,
                               device, "retake_noise")
    else:
        if (retake_noise.ndim != 4 or tuple(retake_noise.shape[:3]) != (b, LATENT_CHANNELS, LATENT_HEIGHT)
                or retake_noise.shape[-1] < need):
            raise InputError(f"retake_noise: expected (B={b}, 8, 16, L ≥ {max(need, 1)}), "
                             f"got {tuple(retake_noise.shape)}")
        retake = retake_noise.to(device, torch.float32)

    kept = src[..., lt:t0 - rt]  # source frames inside the window
    zeros = lambda n: torch.zeros(b, LATENT_CHANNELS, LATENT_HEIGHT, n, device=device)  # noqa: E731
    x0 = torch.cat([zeros(L), kept, zeros(R)], dim=-1)  # (B, 8, 16, window)
    parts = []
    if L > 0:
        parts.append(retake[..., :L])
    parts.append(target[..., lt:t0 - rt])
    if R > 0:
        parts.append(retake[..., retake.shape[-1] - R:])
    z0 = torch.cat(parts, dim=-1)
    t_len = x0.shape[-1]
    mask = torch.zeros(b, LATENT_CHANNELS, LATENT_HEIGHT, t_len, device=device)
    if L > 0:
        mask[..., :L] = 1.0
    if R > 0:
        mask[..., t_len - R:] = 1.0
    guider = build_guider(dit, cond, null_cond, settings, schedule.num_inference_steps, b)
    out = masked_repaint_loop(guider, schedule, x0, z0, mask, n_min, progress=progress)
    return torch.cat([src[..., :lt], out, src[..., t0 - rt:]], dim=-1)


# ------------------------------------------------------------------------------------------------
# retake
# ------------------------------------------------------------------------------------------------
def retake(dit, cond: Conditioning, null_cond: Optional[Conditioning] = None,
           noise: Optional[torch.Tensor] = None, *, retake_variance: float = 0.5,
           retake_noise: Optional[torch.Tensor] = None, generator: GeneratorLike = None,
           retake_generator: GeneratorLike = None, **sample_kwargs) -> torch.Tensor:
    """A variation of the result of ``generator``'s seed: the start noise is
    ``cos(a)·noise + sin(a)·retake_noise`` (a = variance·π/2); then the plain text2music loop.
    Other keywords as :func:`~ace_core.v1.sampling.sample`."""
    check_variance(retake_variance)
    if retake_noise is None and retake_generator is None:
        raise InputError("retake: pass retake_noise or a retake_generator (the new seed)")
    return sample(dit, cond, null_cond, noise, retake_variance=retake_variance,
                  retake_noise=retake_noise, generator=generator,
                  retake_generator=retake_generator, **sample_kwargs)


# ------------------------------------------------------------------------------------------------
# FlowEdit
# ------------------------------------------------------------------------------------------------
def _flowedit_null(c: Conditioning) -> Conditioning:
    """FlowEdit's null: zero text, zero speaker, zero lyric ids **and zero lyric mask**."""
    n = c.null()
    return Conditioning(n.text_states, n.text_mask, n.speaker_embeds, n.lyric_ids,
                        torch.zeros_like(c.lyric_mask), c.lyrics_strength)


def flowedit(dit, src_cond: Conditioning, tar_cond: Conditioning, src_latents: torch.Tensor, *,
             steps: int = 60, guidance_scale: float = 15.0, n_min: float = 0.0, n_max: float = 1.0,
             n_avg: int = 1, scheduler: str = "euler", shift: float = 3.0,
             generator: GeneratorLike = None, noises: Optional[Sequence[torch.Tensor]] = None,
             progress: Optional[ProgressHook] = None) -> torch.Tensor:
    """FlowEdit (``flowedit_diffusion_process``): move ``src_latents`` (B, 8, 16, T) from the
    source conditioning toward the target conditioning. Returns (B, 8, 16, T).

    Euler timesteps (shift 3); indices below ``int(steps·n_min)`` are skipped; up to
    ``int(steps·n_max)`` the edit ODE ``z += (t_next − t)·mean_k[V_tar(z + zt_src − x) −
    V_src(zt_src)]`` runs with ``zt_src = (1−t)·x + t·ε_k`` (fresh ε per ``n_avg`` sample); at
    ``int(steps·n_max)`` (only when n_max < 1) it switches to target-only sampling from
    ``z + σ·ε + (1−σ)·x − x``. Guidance: APG at ``guidance_scale`` on both branches (none when
    the scale is 0 or 1); the null condition zeroes text, speaker, lyric ids and the lyric mask.
    ``scheduler="pingpong"`` applies to the target-only phase; the edit phase is always the
    deterministic ODE above (the official pingpong path computes the edit update but never
    assigns it, so nothing is edited). Randomness: ``generator`` or, for exact replays, ``noises`` (the
    draws in order).
    """
    check_scheduler(scheduler)
    steps = check_steps(steps)
    src = _check_latent(src_latents, "src_latents")
    if not (0.0 <= n_min <= n_max <= 1.0):
        raise InputError(f"n_min / n_max: need 0 ≤ n_min ≤ n_max ≤ 1, got {n_min} / {n_max}")
    if int(n_avg) != n_avg or n_avg < 1:
        raise InputError(f"n_avg: must be a whole number ≥ 1, got {n_avg!r}")
    n_avg = int(n_avg)
    _, device = dit_dtype_device(dit)
    b = int(src.shape[0])
    x_src = src.to(device, torch.float32)
    do_cfg = cfg_enabled(guidance_scale)

    enc_src = encode_conditions(dit, src_cond, _flowedit_null(src_cond.validate("src_cond")),
                                batch=b, need_null=do_cfg)
    enc_tar = encode_conditions(dit, tar_cond, _flowedit_null(tar_cond.validate("tar_cond")),
                                batch=b, need_null=do_cfg)

    supplied: Optional[Iterator[torch.Tensor]] = iter(noises) if noises is not None else None

    def draw(first_only: bool) -> torch.Tensor:
        if supplied is not None:
            try:
                e = next(supplied)
            except StopIteration:
                raise InputError("noises: fewer noise tensors than the edit draws") from None
            if tuple(e.shape) != tuple(x_src.shape):
                raise InputError(f"noises: expected {tuple(x_src.shape)}, got {tuple(e.shape)}")
            return e.to(device, torch.float32)
        g = first_generator(generator) if first_only else generator
        if g is None:
            raise InputError("generator: FlowEdit draws fresh noise; pass a torch.Generator")
        return randn(x_src.shape, g, device=device, dtype=torch.float32)

    decode = VelocityModel(dit)

    def velocity(x, t, enc, mb):
        if not do_cfg:
            return decode(x, t, enc.cond)
        v_c, v_u = decode.passes(x, t, [enc.cond, enc.null])  # one batched call where it fits
        return apg_forward(v_c, v_u, guidance_scale, momentum_buffer=mb)

    sched = make_schedule("euler", steps, shift)
    timesteps, sigmas = sched.timesteps, sched.sigmas
    n = len(timesteps)
    i_min, i_max = int(steps * n_min), int(steps * n_max)
    mb_src, mb_tar = MomentumBuffer(), MomentumBuffer()
    pingpong = scheduler == "pingpong"
    zt_edit = x_src.clone()
    xt_tar = None
    total, done = max(n - i_min, 0), 0
    for i, t in enumerate(timesteps):
        if i < i_min:
            continue
        t_i = t / NUM_TRAIN_TIMESTEPS
        t_next = sigma_at(timesteps, i + 1, NUM_TRAIN_TIMESTEPS)
        if i < i_max:
            v_delta = torch.zeros_like(x_src)
            for _ in range(n_avg):
                eps = draw(False)
                zt_src = (1 - t_i) * x_src + t_i * eps
                zt_tar = zt_edit + zt_src - x_src
                v_src = velocity(zt_src, t, enc_src, mb_src)
                v_tar = velocity(zt_tar, t, enc_tar, None)
                v_delta = v_delta + (1 / n_avg) * (v_tar - v_src)
            # FlowEdit's ODE for every sampler: zt_edit lives in clean space, so an SDE step
            # (pingpong's fresh noise) would noise the edit itself.
            zt_edit = zt_edit + (t_next - t_i) * v_delta
        else:
            if i == i_max:
                eps = draw(False)
                sigma = sigmas[i]
                xt_src = sigma * eps + (1.0 - sigma) * x_src
                xt_tar = zt_edit + xt_src - x_src
            v_tar = velocity(xt_tar, t, enc_tar, mb_tar)
            if not pingpong:
                xt_tar = xt_tar + (t_next - t_i) * v_tar
            else:
                denoised = xt_tar - t_i * v_tar
                xt_tar = (1 - t_next) * denoised + t_next * draw(True)
        done += 1
        report(progress, done, total)
    return zt_edit if xt_tar is None else xt_tar


__all__ = [
    "ExtendPlan", "MAX_FRAMES", "extend", "flowedit", "masked_repaint_loop", "plan_extend",
    "plan_extend_frames", "plan_extend_seconds", "region_mask", "repaint", "retake",
]
