"""Sampling loops of ACE-Step 1.5 (turbo, base, sft), written against a velocity protocol.

``velocity(x, t, cond) -> v``: ``x`` [B, T, 64] is x_t, ``t`` a Python float (the float32
schedule value), ``cond`` a :class:`DiTCondition` (or anything the velocity function
understands); ``v`` [B, T, 64] ≈ noise − x0. Flow convention: ``x_t = t·noise + (1−t)·x0``.
A velocity function may cache cross-attention K/V per ``cond`` object: the loops hand it a
*different* object when the condition changes (cover switch = KV-cache reset).

Per step i (t = sigmas[i], t_next = sigmas[i+1]):

1. v = velocity(x, t, cond). Base/SFT with guidance: one call on the CFG batch
   [cond; uncond], uncond = ``null_condition_emb`` expanded over the whole packed encoder
   sequence (same mask, same context latents); inside ``cfg_interval`` (float32 comparison,
   bounds included) v = APG(cond, uncond) (``dims=[1]``, momentum −0.75 carried over guided
   steps only, norm clip 2.5) or plain CFG; outside it v = cond, from a batch-B call on cond alone
   (upstream runs the CFG batch and drops the uncond half).
2. Update. ``ode``: ``x ← x − v·(t − t_next)``; turbo's last step is ``x0 = x − v·t`` (the same
   thing with t_next = 0). ``sde``: ``x0 = x − v·t`` then ``x ← t_next·ε + (1 − t_next)·x0`` with
   fresh ε from the caller's generator(s) (the last step returns x0).
   [Upstream's base/sft SDE re-noises to ``1 − (i+1)/N``, ignoring the shift; we use t_next.]
3. DCW (:mod:`.dcw`), with ``denoised = x_before − v·t`` (a no-op on the final step).
4. Repaint step injection for i < round(injection_ratio·N): frames outside the repaint mask
   become ``t_next·noise + (1 − t_next)·clean_src`` (same initial noise). Turbo never injects
   after its final (x0) step; base/sft do when the cut-off reaches N (as upstream).

Cover: ``audio_cover_strength`` < 1 switches to ``non_cover_cond`` from step
int(N·strength) on. ``cover_noise_strength`` > 0 starts from ``t*·noise + (1−t*)·cover_src`` at the
schedule time t* nearest to 1 − strength (ties: the earlier) and runs the schedule from there
(N and the switch step are recomputed on the truncated schedule).
After the loop the repaint boundary blend (:func:`.repaint.boundary_blend`) runs when the
crossfade is > 0. ``progress`` gets ``(i + 1, N)`` after each step and may raise to interrupt.

Noise and seeds (:func:`seed_generators`, :func:`draw_noise`): one ``torch.Generator`` per
batch item, each drawing its own [1, T, 64] slice; upstream does the same with a list of seeds
(``torch.Generator(device).manual_seed(s)`` per item). Upstream's handler fills a single seed
as [seed, random, random, ...]; we derive item k's seed as ``seed + k`` so the batch is
reproducible (item 0 matches upstream's item 0 when drawn on the same device). Retake:
``noise = cos(v·π/2)·noise + sin(v·π/2)·retake_noise`` (:func:`mix_retake`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import torch

from ..errors import InputError
from ..progress import ProgressHook, block_interrupts, report
from ..sampling.guidance import MomentumBuffer, apg_forward, cfg_forward
from ..sampling.noise import GeneratorLike, randn
from .dcw import DCWSettings, default_dcw
from .repaint import RepaintGuide, boundary_blend, inject_source
from .schedules import Schedule

MAX_BATCH = 8
LATENT_CHANNELS = 64
METHODS = ("ode", "sde")
GUIDANCE_TYPES = ("apg", "cfg")
APG_MOMENTUM = -0.75
APG_NORM_THRESHOLD = 2.5

VelocityFn = Callable[[torch.Tensor, float, Any], torch.Tensor]


# ------------------------------------------------------------------------------------------------
# condition container
# ------------------------------------------------------------------------------------------------
@dataclass
class DiTCondition:
    """What the DiT is conditioned on, for one batch.

    encoder_hidden_states: [B, L, H_enc] packed [lyrics | timbre | caption] (condition encoder).
    encoder_attention_mask: [B, L] (the DiT ignores it; kept for parity).
    context_latents: [B, T, 128] = cat([src_latents (64), chunk mask (64)], -1).
    """

    encoder_hidden_states: torch.Tensor
    encoder_attention_mask: torch.Tensor
    context_latents: torch.Tensor

    @property
    def batch(self) -> int:
        return int(self.context_latents.shape[0])

    def with_null(self, null_condition_emb: torch.Tensor) -> "DiTCondition":
        """The CFG batch [cond; uncond] (2B): uncond = null embedding over the whole sequence."""
        enc = self.encoder_hidden_states
        null = null_condition_emb.to(device=enc.device, dtype=enc.dtype).expand_as(enc)  # [B, L, H]
        return DiTCondition(
            torch.cat([enc, null], dim=0),
            torch.cat([self.encoder_attention_mask, self.encoder_attention_mask], dim=0),
            torch.cat([self.context_latents, self.context_latents], dim=0),
        )


class DiTVelocity:
    """The velocity protocol over an :class:`~.dit.AceStep15DiT` (``model.decoder``).

    Calls ``decoder(x, t, t, None, cond.context_latents, cross_kv=...)`` with t = r (inference);
    the cross-attention K/V are built once per condition object and reused across steps.
    Returns float32. ``progress``: its ``check_interrupt`` (ComfyUI's Cancel) runs after every
    DiT layer, so a long step can be cancelled mid-way.
    """

    def __init__(self, decoder, progress: Optional[ProgressHook] = None):
        self.decoder = decoder
        self.progress = progress
        self._cond: Optional[DiTCondition] = None
        self._kv = None

    def __call__(self, x: torch.Tensor, t: float, cond: DiTCondition) -> torch.Tensor:
        if cond is not self._cond:
            self._kv = self.decoder.precompute_cross_kv(cond.encoder_hidden_states)
            self._cond = cond
        dec = self.decoder
        tt = torch.full((x.shape[0],), float(t), dtype=torch.float32, device=dec.device).to(dec.dtype)
        with torch.no_grad(), block_interrupts(getattr(dec, "layers", ()), self.progress):
            v = dec(x.to(dec.device, dec.dtype), tt, tt, None, cond.context_latents, cross_kv=self._kv)
        return v.float()


# ------------------------------------------------------------------------------------------------
# noise
# ------------------------------------------------------------------------------------------------
def seed_generators(seeds: Union[int, Sequence[int]], batch: int, device="cpu") -> list[torch.Generator]:
    """One generator per item: a list of seeds is used as is; one seed gives ``seed + k``."""
    batch = int(batch)
    if not 1 <= batch <= MAX_BATCH:
        raise InputError(f"batch_size: must be in 1–{MAX_BATCH}, got {batch}")
    if isinstance(seeds, (list, tuple)):
        if len(seeds) != batch:
            raise InputError(f"seed: got {len(seeds)} seeds for a batch of {batch}")
        values = [int(s) for s in seeds]
    else:
        values = [int(seeds) + k for k in range(batch)]
    for s in values:
        if not 0 <= s < 2**64:
            raise InputError(f"seed: must be in [0, 2**64), got {s}")
    return [torch.Generator(device).manual_seed(s) for s in values]


def draw_noise(generator: GeneratorLike, shape: Sequence[int], *, device=None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A standard-normal draw from the generator(s) only (a list: one [1, ...] slice per item)."""
    return randn(shape, generator, device=device, dtype=dtype)


def check_retake_variance(variance: float) -> float:
    variance = float(variance)
    if not 0.0 <= variance <= 1.0:
        raise InputError(f"retake_variance: must be in [0, 1], got {variance}")
    return variance


def mix_retake(noise: torch.Tensor, retake_noise: torch.Tensor, variance: float) -> torch.Tensor:
    """``cos(v·π/2)·noise + sin(v·π/2)·retake_noise`` (v = 0: noise; v = 1: retake_noise)."""
    variance = check_retake_variance(variance)
    if variance == 0.0:
        return noise
    angle = variance * (math.pi / 2.0)
    return math.cos(angle) * noise + math.sin(angle) * retake_noise


def initial_noise(generator: GeneratorLike, batch: int, frames: int, *, retake_generator: GeneratorLike = None,
                  retake_variance: float = 0.0, device=None, dtype=torch.float32) -> torch.Tensor:
    """x_T [B, T, 64]: a draw from ``generator``, mixed with a retake draw when variance > 0."""
    shape = (int(batch), int(frames), LATENT_CHANNELS)
    noise = draw_noise(generator, shape, device=device, dtype=dtype)
    if check_retake_variance(retake_variance) > 0.0:
        if retake_generator is None:
            raise InputError("retake_seed: retake_variance > 0 needs a retake generator")
        noise = mix_retake(noise, draw_noise(retake_generator, shape, device=device, dtype=dtype), retake_variance)
    return noise


# ------------------------------------------------------------------------------------------------
# the loop
# ------------------------------------------------------------------------------------------------
@dataclass
class GuidanceSettings:
    """Base/SFT classifier-free guidance. Off when ``scale`` ≤ 1."""

    scale: float = 7.0
    kind: str = "apg"
    interval_start: float = 0.0
    interval_end: float = 1.0

    def __post_init__(self):
        if self.kind not in GUIDANCE_TYPES:
            raise InputError(f"guidance: unknown type {self.kind!r}; allowed: {', '.join(GUIDANCE_TYPES)}")
        if not 0.0 <= self.interval_start <= self.interval_end <= 1.0:
            raise InputError(f"cfg_interval: need 0 ≤ start ≤ end ≤ 1, got [{self.interval_start}, {self.interval_end}]")

    @property
    def active(self) -> bool:
        return self.scale > 1.0

    def applies_at(self, t: float) -> bool:
        """Whether t lies in [start, end], compared in float32 as the reference does."""
        tt = torch.tensor(t, dtype=torch.float32)
        return bool((tt >= self.interval_start) & (tt <= self.interval_end))


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise InputError(f"infer_method: unknown value {method!r}; allowed: {', '.join(METHODS)}")
    return method


def _check_strength(value: float, name: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{name}: must be in [0, 1], got {value}")
    return value


def _renoise(x0: torch.Tensor, t: float, noise: torch.Tensor) -> torch.Tensor:
    return t * noise + (1 - t) * x0


@torch.no_grad()
def sample(velocity: VelocityFn, cond: DiTCondition, noise: torch.Tensor, schedule: Schedule, *,
           method: str = "ode", generator: GeneratorLike = None, dcw: Optional[DCWSettings] = None,
           guidance: Optional[GuidanceSettings] = None, null_condition_emb: Optional[torch.Tensor] = None,
           non_cover_cond: Optional[DiTCondition] = None, audio_cover_strength: float = 1.0,
           cover_src: Optional[torch.Tensor] = None, cover_noise_strength: float = 0.0,
           repaint: Optional[RepaintGuide] = None,
           progress: Optional[ProgressHook] = None) -> torch.Tensor:
    """Run the 1.5 sampler of ``schedule.family``; returns x0 [B, T, 64] (float32).

    Args:
        velocity: the velocity function (see the module docstring).
        cond: the condition; ``non_cover_cond`` the text2music condition a cover switches to.
        noise: x_T [B, T, 64] (see :func:`initial_noise`); also the repaint injection noise.
        schedule: :func:`.schedules.turbo_schedule` / :func:`.schedules.base_schedule`.
        method: ``ode`` (Euler) or ``sde``; ``sde`` needs ``generator`` (one, or one per item).
        dcw: DCW settings (default: on for turbo, off for base/sft).
        guidance: base/sft CFG (default: APG 7.0 over [0, 1]); ignored for turbo (CFG-distilled).
        null_condition_emb: [1, 1, H_enc], required when guidance is active.
        audio_cover_strength: fraction of steps that use ``cond`` before ``non_cover_cond``.
        cover_src / cover_noise_strength: start from the re-noised source (img2img-style).
        repaint: step injection + boundary blend (:class:`.repaint.RepaintGuide`).
    """
    method = _check_method(method)
    turbo = schedule.family == "turbo"
    dcw = default_dcw(schedule.family) if dcw is None else dcw
    if turbo:
        guidance = None
    elif guidance is None:
        guidance = GuidanceSettings()
    use_cfg = guidance is not None and guidance.active
    if use_cfg and null_condition_emb is None:
        raise InputError("null_condition_emb: classifier-free guidance (scale > 1) needs the null embedding")
    if method == "sde" and generator is None:
        raise InputError("generator: the sde sampler draws fresh noise; pass a torch.Generator")
    audio_cover_strength = _check_strength(audio_cover_strength, "audio_cover_strength")
    cover_noise_strength = _check_strength(cover_noise_strength, "cover_noise_strength")
    if audio_cover_strength < 1.0 and non_cover_cond is None:
        raise InputError("audio_cover_strength: < 1 needs the non-cover (text2music) condition")
    batch, frames = cond.batch, cond.context_latents.shape[1]
    if tuple(noise.shape) != (batch, frames, LATENT_CHANNELS):
        raise InputError(f"noise: expected shape {(batch, frames, LATENT_CHANNELS)}, got {tuple(noise.shape)}")

    device = cond.context_latents.device
    noise = noise.to(device, torch.float32)
    x = noise
    if cover_noise_strength > 0.0:
        if cover_src is None:
            raise InputError("cover_noise_strength: > 0 needs the source latents (cover_src)")
        start = schedule.nearest_index(1.0 - cover_noise_strength)
        schedule = schedule.truncated(start)
        x = _renoise(cover_src.to(device, torch.float32), schedule.values()[0], noise)

    times = schedule.values() + [float(schedule.sigmas[-1])]
    n = schedule.steps
    cover_steps = int(n * audio_cover_strength)
    injection_cutoff = 0
    if repaint is not None:
        injection_cutoff = round(repaint.injection_ratio * n)
        repaint = RepaintGuide(repaint.mask.to(device), repaint.clean_src.to(device, torch.float32),
                               repaint.injection_ratio, repaint.crossfade_frames)
    momentum = MomentumBuffer(APG_MOMENTUM)

    plain = cond
    guided = cond.with_null(null_condition_emb) if use_cfg else None
    switched = False
    for i in range(n):
        t, t_next = times[i], times[i + 1]
        if i >= cover_steps and not switched:
            switched = True
            plain = non_cover_cond
            guided = non_cover_cond.with_null(null_condition_emb) if use_cfg else None
        if use_cfg and guidance.applies_at(t):
            v2 = velocity(torch.cat([x, x], dim=0), t, guided).float()
            v_cond, v_uncond = v2.chunk(2)
            if guidance.kind == "apg":
                v = apg_forward(v_cond, v_uncond, guidance.scale, momentum_buffer=momentum,
                                norm_threshold=APG_NORM_THRESHOLD, dims=[1])
            else:
                v = cfg_forward(v_cond, v_uncond, guidance.scale)
        else:  # no guidance, or outside cfg_interval: the uncond half would be thrown away
            v = velocity(x, t, plain).float()

        last = i == n - 1
        denoised = x - v * t
        if turbo and last:
            x = denoised  # x0 = x − v·t
            report(progress, i + 1, n)
            break
        if method == "sde":
            x = denoised if t_next == 0.0 else _renoise(denoised, t_next, draw_noise(generator, x.shape, device=x.device))
        else:
            x = x - v * (t - t_next)
        if dcw.is_active:
            x = dcw.apply(x, denoised, t)
        if repaint is not None and i < injection_cutoff:
            x = inject_source(x, repaint.clean_src, repaint.mask, t_next, noise)
        report(progress, i + 1, n)

    if repaint is not None and repaint.crossfade_frames > 0:
        x = boundary_blend(x, repaint.clean_src, repaint.mask, repaint.crossfade_frames)
    return x


__all__ = [
    "DiTCondition", "DiTVelocity", "GUIDANCE_TYPES", "GuidanceSettings", "MAX_BATCH", "METHODS", "VelocityFn",
    "check_retake_variance", "draw_noise", "initial_noise", "mix_retake", "sample", "seed_generators",
]
