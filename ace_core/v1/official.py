"""The official ``ACEStepPipeline.text2music_diffusion_process``, keyword for keyword (parity checks).

It dispatches as the official method does: retake (a variance mix of two noises), repaint and
extend (the masked loop of ``editing.py``) and audio-to-audio (``sampling.py``); it sits on top of
both so that neither imports the other.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

import torch

from ..errors import InputError
from ..progress import ProgressHook
from ..sampling.noise import GeneratorLike, latent_noise, mix_retake_noise
from ..sampling.schedules import check_steps
from . import editing
from .latent import LATENT_CHANNELS, LATENT_HEIGHT, frames_for_duration
from .sampling import (
    Conditioning,
    GuidanceSettings,
    build_guider,
    dit_dtype_device,
    run_scheduler_loop,
    schedule_for,
)
from .schedulers import add_latents_noise, check_scheduler


def text2music_diffusion_process(
    dit, cond: Conditioning, *, duration: float, noise: Optional[torch.Tensor] = None,
    retake_noise: Optional[torch.Tensor] = None, generator: GeneratorLike = None,
    retake_generator: GeneratorLike = None, null_cond: Optional[Conditioning] = None,
    infer_steps: int = 60, guidance_scale: float = 15.0, omega_scale: float = 10.0,
    scheduler_type: str = "euler", cfg_type: str = "apg", zero_steps: int = 1,
    use_zero_init: bool = True, guidance_interval: float = 0.5,
    guidance_interval_decay: float = 1.0, min_guidance_scale: float = 3.0,
    oss_steps: Sequence[int] = (), encoder_text_hidden_states_null: Optional[torch.Tensor] = None,
    use_erg_lyric: bool = False, use_erg_diffusion: bool = False, retake_variance: float = 0.5,
    add_retake_noise: bool = False, guidance_scale_text: float = 0.0,
    guidance_scale_lyric: float = 0.0, repaint_start: float = 0, repaint_end: float = 0,
    src_latents: Optional[torch.Tensor] = None, audio2audio_enable: bool = False,
    ref_audio_strength: float = 0.5, ref_latents: Optional[torch.Tensor] = None,
    shift: float = 3.0, progress: Optional[ProgressHook] = None,
) -> torch.Tensor:
    """The official ``ACEStepPipeline.text2music_diffusion_process`` with the same keywords.

    The random draws come from ``noise`` / ``retake_noise`` when given (draw order: target noise,
    then retake noise), else from ``generator`` / ``retake_generator``. Dispatch as the
    official method: with ``add_retake_noise`` the frames ``int(repaint_start·FR)`` ..
    ``int(repaint_end·FR)`` select retake (the whole length), repaint (a sub-range) or extend
    (outside the source); ``audio2audio_enable`` with ``ref_latents`` noises the reference.
    Deviations: audio2audio combined with repaint/extend is rejected; the extend 240 s window
    re-attaches the cut source correctly (the official re-attachment is broken); a repaint with no
    step left to run (``n_min`` ≥ the number of timesteps) returns ``src_latents`` unchanged (the
    official returns the target noise).
    """
    check_scheduler(scheduler_type)
    infer_steps = check_steps(infer_steps)
    settings = GuidanceSettings.from_arguments(locals())
    if encoder_text_hidden_states_null is not None:
        cond = replace(cond, text_states_null=encoder_text_hidden_states_null)
    _, device = dit_dtype_device(dit)

    frame_length = frames_for_duration(duration)
    if src_latents is not None:
        frame_length = int(src_latents.shape[-1])
    if ref_latents is not None:
        frame_length = int(ref_latents.shape[-1])
    b = int(noise.shape[0]) if noise is not None else cond.batch_size
    schedule, infer_steps = schedule_for(scheduler_type, infer_steps, shift, list(oss_steps or ()))
    shape = (b, LATENT_CHANNELS, LATENT_HEIGHT, frame_length)
    x = latent_noise(noise, shape, generator, device, "noise")

    if add_retake_noise:
        r = latent_noise(retake_noise, shape, retake_generator, device, "retake_noise")
        start_frame = frames_for_duration(repaint_start)
        end_frame = frames_for_duration(repaint_end)
        is_repaint = end_frame - start_frame != frame_length
        is_extend = start_frame < 0 or end_frame > frame_length
        if is_repaint or is_extend:
            if audio2audio_enable and ref_latents is not None:
                raise InputError("audio2audio_enable: cannot be combined with repaint/extend")
            if src_latents is None:
                raise InputError("src_latents: repaint/extend needs the source latent")
            common = dict(steps=infer_steps, schedule=schedule, retake_variance=retake_variance,
                          noise=x, retake_noise=r, guidance=settings, progress=progress)
            if is_extend:
                plan = editing.plan_extend_frames(frame_length, start_frame, end_frame)
                return editing.extend(dit, cond, src_latents, plan=plan, null_cond=null_cond, **common)
            mask = editing.region_mask(frame_length, start_frame, end_frame, batch=b)
            return editing.repaint(dit, cond, src_latents, mask, null_cond=null_cond, **common)
        x = mix_retake_noise(x, r, retake_variance)

    if audio2audio_enable and ref_latents is not None:
        x, schedule = add_latents_noise(ref_latents.to(device, torch.float32), x, scheduler_type,
                                        infer_steps, ref_audio_strength, shift)
    guider = build_guider(dit, cond, null_cond, settings, schedule.num_inference_steps, b)
    return run_scheduler_loop(guider, schedule, x, omega_scale=omega_scale, generator=generator,
                              progress=progress)


__all__ = ["text2music_diffusion_process"]
