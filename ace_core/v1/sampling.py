"""ACE-Step v1 text-to-music sampling (the official ``text2music_diffusion_process`` semantics).

Public pieces:

* :class:`Conditioning`: what a prompt becomes before the DiT (UMT5 states, lyric ids, masks).
* :func:`encode_conditions`: the DiT encoder states for the conditional pass, the null
  (unconditional) pass and, for double-condition guidance, the "text only" pass. Encoded once
  per sampling run.
* :class:`Guider`: one guided velocity per loop index: the conditional / unconditional (and
  text-only) passes as one batched ``decode`` call where it fits (the official pipeline runs
  them one by one; same result up to float rounding), guidance interval and decay, APG / CFG /
  CFG-Zero*, text-vs-lyric double guidance, ERG on the unconditional pass.
* :func:`sample`: text-to-music, retake (variance mix of two noises) and audio-to-audio.

The official keyword-for-keyword entry point (with its repaint / extend dispatch) lives in
``official.py``, on top of this module and ``editing.py``.

Latents are (B, 8, 16, T) at 44100/512/8 ≈ 10.77 frames per second. Randomness comes only from
the ``torch.Generator`` objects passed in (or from explicit noise tensors). Sampling state is
kept in float32 between steps whatever the model dtype (the official code rounds it to the model
dtype after every step; identical in float32).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence, Tuple

import torch

from ..errors import InputError
from ..progress import ProgressHook
from ..sampling.guidance import (
    MomentumBuffer,
    apg_forward,
    cfg_double_condition_forward,
    cfg_forward,
    cfg_zero_star,
    check_cfg_type,
    guidance_interval_bounds,
    interval_guidance_scale,
)
from ..sampling.loop import run_steps
from ..sampling.noise import GeneratorLike, latent_noise, mix_retake_noise
from ..sampling.schedules import check_steps
from .erg import erg_diffusion, erg_lyric
from .latent import LATENT_CHANNELS, LATENT_HEIGHT, frames_for_duration
from .schedulers import Schedule, Stepper, add_latents_noise, check_scheduler, make_oss_schedule, make_schedule

EncoderStates = Tuple[torch.Tensor, torch.Tensor]  # (B, S, D) states, (B, S) float mask


def cfg_enabled(guidance_scale: float) -> bool:
    """Guidance (an unconditional pass) runs unless the scale is 0 or 1, as in the official loops."""
    return not (guidance_scale == 0.0 or guidance_scale == 1.0)


# ------------------------------------------------------------------------------------------------
# conditioning
# ------------------------------------------------------------------------------------------------
@dataclass
class Conditioning:
    """Prompt conditioning for the v1 DiT.

    Attributes:
        text_states: (B, S_txt, D_txt) UMT5 ``last_hidden_state``.
        text_mask: (B, S_txt) tokenizer attention mask.
        speaker_embeds: (B, D_spk) or None (= zeros; the released model is always run with zeros).
        lyric_ids: (B, S_lyr) int64 lyric token ids (0 at padding).
        lyric_mask: (B, S_lyr) lyric mask.
        lyrics_strength: multiplies the projected lyric states (1.0 = official).
        text_states_null: optional (B, S_txt, D_txt) "ERG tag" null text states (UMT5 run with
            :func:`~ace_core.v1.erg.erg_text`). As in the official code it is only used to
            build the ERG-lyric null condition.
    """

    text_states: torch.Tensor
    text_mask: torch.Tensor
    speaker_embeds: Optional[torch.Tensor]
    lyric_ids: torch.Tensor
    lyric_mask: torch.Tensor
    lyrics_strength: float = 1.0
    text_states_null: Optional[torch.Tensor] = None

    @property
    def batch_size(self) -> int:
        return int(self.text_states.shape[0])

    def validate(self, name: str = "conditioning") -> "Conditioning":
        if self.text_states.ndim != 3:
            raise InputError(f"{name}.text_states: expected (B, S_txt, D_txt), got {tuple(self.text_states.shape)}")
        b, s = self.text_states.shape[:2]
        if tuple(self.text_mask.shape) != (b, s):
            raise InputError(f"{name}.text_mask: expected {(b, s)}, got {tuple(self.text_mask.shape)}")
        if self.lyric_ids.ndim != 2 or self.lyric_ids.shape[0] != b:
            raise InputError(f"{name}.lyric_ids: expected (B={b}, S_lyr), got {tuple(self.lyric_ids.shape)}")
        if tuple(self.lyric_mask.shape) != tuple(self.lyric_ids.shape):
            raise InputError(f"{name}.lyric_mask: expected {tuple(self.lyric_ids.shape)}, got {tuple(self.lyric_mask.shape)}")
        if self.speaker_embeds is not None and (self.speaker_embeds.ndim != 2 or self.speaker_embeds.shape[0] != b):
            raise InputError(f"{name}.speaker_embeds: expected (B={b}, D_spk), got {tuple(self.speaker_embeds.shape)}")
        if self.text_states_null is not None and tuple(self.text_states_null.shape) != tuple(self.text_states.shape):
            raise InputError(f"{name}.text_states_null: expected {tuple(self.text_states.shape)}, "
                             f"got {tuple(self.text_states_null.shape)}")
        return self

    def _map(self, fn) -> "Conditioning":
        return replace(
            self,
            text_states=fn(self.text_states),
            text_mask=fn(self.text_mask),
            speaker_embeds=None if self.speaker_embeds is None else fn(self.speaker_embeds),
            lyric_ids=fn(self.lyric_ids),
            lyric_mask=fn(self.lyric_mask),
            text_states_null=None if self.text_states_null is None else fn(self.text_states_null),
        )

    def to(self, device) -> "Conditioning":
        return self._map(lambda t: t.to(device))

    def repeat_to(self, batch: int, name: str = "conditioning") -> "Conditioning":
        """Broadcast a batch-1 conditioning to ``batch`` items (other sizes must match)."""
        b = self.batch_size
        if b == batch:
            return self
        if b != 1:
            raise InputError(f"{name}: batch {b} does not match the latent batch {batch}")
        return self._map(lambda t: t.expand(batch, *t.shape[1:]).contiguous())

    def null(self) -> "Conditioning":
        """The official null condition: zero text, zero speaker, zero lyric ids, same masks."""
        return replace(
            self,
            text_states=torch.zeros_like(self.text_states),
            speaker_embeds=None if self.speaker_embeds is None else torch.zeros_like(self.speaker_embeds),
            lyric_ids=torch.zeros_like(self.lyric_ids),
            text_states_null=None,
        )


def dit_dtype_device(dit) -> tuple[torch.dtype, torch.device]:
    dtype = getattr(dit, "dtype", None)
    device = getattr(dit, "device", None)
    if not isinstance(dtype, torch.dtype) or device is None:
        p = next(dit.parameters())
        dtype, device = p.dtype, p.device
    return dtype, torch.device(device)


def _encode(dit, text, text_mask, speaker, lyric_ids, lyric_mask, strength) -> EncoderStates:
    return dit.encode(text, text_mask, speaker, lyric_ids, lyric_mask, strength)


@dataclass
class EncodedConditions:
    """Encoder states (states (B, S, D), mask (B, S)) for each pass of one sampling run."""

    cond: EncoderStates
    null: Optional[EncoderStates] = None
    no_lyric: Optional[EncoderStates] = None


def encode_conditions(dit, cond: Conditioning, null_cond: Optional[Conditioning] = None, *,
                      batch: Optional[int] = None, need_null: bool = True,
                      use_erg_lyric: bool = False, double_condition: bool = False
                      ) -> EncodedConditions:
    """Encode the passes of one run (the official order: cond, null, then text-only).

    * cond: ``encode(text, text_mask, speaker, lyric_ids, lyric_mask)``.
    * null (when ``need_null``): with ``null_cond`` given, that conditioning; otherwise the
      official null ``encode(zeros text, text_mask, zeros speaker, zeros lyric ids, lyric_mask)``.
      With ``use_erg_lyric`` it is instead ``encode(text_states_null or zeros, text_mask, zeros
      speaker, the real lyric ids, lyric_mask)`` under the lyric-encoder temperature hooks
      (a given ``null_cond`` is encoded under the hooks as it is).
    * no_lyric (when ``double_condition``): ``encode(text, text_mask, zeros speaker, zeros lyric
      ids, lyric_mask)``, or with ERG-lyric the real lyric ids under the hooks.
    """
    _, device = dit_dtype_device(dit)
    cond = cond.validate("cond").to(device)
    if batch is not None:
        cond = cond.repeat_to(batch, "cond")
    s = cond.lyrics_strength
    zeros_spk = None if cond.speaker_embeds is None else torch.zeros_like(cond.speaker_embeds)
    with torch.no_grad():
        enc = _encode(dit, cond.text_states, cond.text_mask, cond.speaker_embeds,
                      cond.lyric_ids, cond.lyric_mask, s)
        null = None
        if need_null:
            if null_cond is not None:
                nc = null_cond.validate("null_cond").to(device)
                if batch is not None:
                    nc = nc.repeat_to(batch, "null_cond")
                if use_erg_lyric:
                    with erg_lyric(dit):
                        null = _encode(dit, nc.text_states, nc.text_mask, nc.speaker_embeds,
                                       nc.lyric_ids, nc.lyric_mask, nc.lyrics_strength)
                else:
                    null = _encode(dit, nc.text_states, nc.text_mask, nc.speaker_embeds,
                                   nc.lyric_ids, nc.lyric_mask, nc.lyrics_strength)
            elif use_erg_lyric:
                text_null = (cond.text_states_null if cond.text_states_null is not None
                             else torch.zeros_like(cond.text_states))
                with erg_lyric(dit):
                    states, _ = _encode(dit, text_null, cond.text_mask, zeros_spk,
                                        cond.lyric_ids, cond.lyric_mask, s)
                null = (states, enc[1])
            else:
                states, _ = _encode(dit, torch.zeros_like(cond.text_states), cond.text_mask,
                                    zeros_spk, torch.zeros_like(cond.lyric_ids), cond.lyric_mask, s)
                null = (states, enc[1])
        no_lyric = None
        if double_condition:
            if use_erg_lyric:
                with erg_lyric(dit):
                    states, _ = _encode(dit, cond.text_states, cond.text_mask, zeros_spk,
                                        cond.lyric_ids, cond.lyric_mask, s)
            else:
                states, _ = _encode(dit, cond.text_states, cond.text_mask, zeros_spk,
                                    torch.zeros_like(cond.lyric_ids), cond.lyric_mask, s)
            no_lyric = (states, enc[1])
    return EncodedConditions(cond=enc, null=null, no_lyric=no_lyric)


# ------------------------------------------------------------------------------------------------
# guidance per step
# ------------------------------------------------------------------------------------------------
@dataclass
class GuidanceSettings:
    """Guidance options of the official loop (defaults: the official UI)."""

    guidance_scale: float = 15.0
    cfg_type: str = "apg"
    guidance_interval: float = 0.5
    guidance_interval_decay: float = 0.0
    min_guidance_scale: float = 3.0
    zero_steps: int = 1
    use_zero_init: bool = True
    guidance_scale_text: float = 0.0
    guidance_scale_lyric: float = 0.0
    use_erg_lyric: bool = False
    use_erg_diffusion: bool = True

    @property
    def do_cfg(self) -> bool:
        return cfg_enabled(self.guidance_scale)

    @property
    def double_condition(self) -> bool:
        """Separate text / lyric guidance: both scales > 1."""
        return (self.guidance_scale_text is not None and self.guidance_scale_text > 1.0
                and self.guidance_scale_lyric is not None and self.guidance_scale_lyric > 1.0)

    def validate(self) -> "GuidanceSettings":
        check_cfg_type(self.cfg_type)
        if not (0.0 <= float(self.guidance_interval) <= 1.0):
            raise InputError(f"guidance_interval: must be in [0, 1], got {self.guidance_interval!r}")
        if not (0.0 <= float(self.guidance_interval_decay) <= 1.0):
            raise InputError(f"guidance_interval_decay: must be in [0, 1], got {self.guidance_interval_decay!r}")
        return self

    @classmethod
    def from_arguments(cls, arguments: dict) -> "GuidanceSettings":
        """The settings from a function's arguments (its ``locals()``) named as the fields."""
        return cls(**{name: arguments[name] for name in cls.__dataclass_fields__}).validate()

    @classmethod
    def from_kwargs(cls, kwargs: dict) -> "GuidanceSettings":
        names = set(cls.__dataclass_fields__)
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise InputError(f"unknown guidance option(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return cls(**kwargs).validate()


BATCHED_PASS_FRAMES = 8192
"""Most latent frames (passes × batch × T) one batched guided call may hold; longer runs take the
passes one after another. About 1 GB of float32 activations; 8192 frames = 2 passes of 6 min."""


class VelocityModel:
    """``dit.decode`` as a sampling loop calls it: ``model(x, t, states) -> v``.

    x (B, 8, 16, T) any float dtype, t the 0-d timestep (σ·1000), ``states`` one
    :data:`EncoderStates` of the run; returns v (B, 8, 16, T) float32. Every latent frame is
    valid. The cross-attention keys/values of each set of encoder states are projected once
    per run (``dit.precompute_cross_kv``) instead of at every step; results are identical.

    :meth:`passes` evaluates several sets of encoder states at the same x (cond / text-only /
    uncond) as one batched call when their encoder lengths agree and the batch stays within
    ``max_batched_frames`` (default :data:`BATCHED_PASS_FRAMES`; 0: never batch): the weights
    are read once for all passes. Each pass's rows see only its own encoder states, so the
    result equals separate calls up to float rounding.
    """

    def __init__(self, dit, max_batched_frames: Optional[int] = None):
        self.dit = dit
        self.model_dtype, self.device = dit_dtype_device(dit)
        self.max_batched_frames = int(BATCHED_PASS_FRAMES if max_batched_frames is None else max_batched_frames)
        self._caches: dict = {}  # id(states) -> (states, cache); holding states keeps the id unique
        self._groups: dict = {}  # ids of the passes -> (passes, concatenated states, cache or None)
        self.calls = 0

    def _cross_kv(self, states: EncoderStates):
        precompute = getattr(self.dit, "precompute_cross_kv", None)
        if precompute is None:
            return None
        entry = self._caches.get(id(states))
        if entry is None or entry[0] is not states:
            entry = self._caches[id(states)] = (states, precompute(states[0], states[1]))
        return entry[1]

    def _decode(self, x: torch.Tensor, t: torch.Tensor, states: EncoderStates, cache) -> torch.Tensor:
        b, t_len = x.shape[0], x.shape[-1]
        mask = torch.ones(b, t_len, device=self.device, dtype=torch.float32)
        timestep = t.to(self.device).expand(b)
        self.calls += 1
        with torch.no_grad():
            kwargs = {} if cache is None else {"cross_kv": cache}
            v = self.dit.decode(x.to(self.device, self.model_dtype), mask, states[0], states[1],
                                timestep, t_len, **kwargs)
        return v.to(torch.float32)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, states: EncoderStates) -> torch.Tensor:
        return self._decode(x, t, states, self._cross_kv(states))

    def can_batch(self, x: torch.Tensor, passes: Sequence[EncoderStates]) -> bool:
        """Whether :meth:`passes` runs these passes as one call (same encoder length, within budget)."""
        lengths = {int(p[0].shape[1]) for p in passes}
        frames = len(passes) * int(x.shape[0]) * int(x.shape[-1])
        return len(passes) > 1 and len(lengths) == 1 and frames <= self.max_batched_frames

    def prepare(self, passes: Sequence[EncoderStates]):
        """The concatenated encoder states (and K/V cache) of ``passes``, built once per run.

        Each pass's own cache becomes a view of the group's, so no pass is held twice."""
        key = tuple(id(p) for p in passes)
        entry = self._groups.get(key)
        if entry is not None and all(a is b for a, b in zip(entry[0], passes)):
            return entry[1], entry[2]
        states = (torch.cat([p[0] for p in passes]), torch.cat([p[1] for p in passes]))
        precompute = getattr(self.dit, "precompute_cross_kv", None)
        cache = None
        if precompute is not None:
            cache = precompute(states[0], states[1])
            start = 0
            for p in passes:
                stop = start + int(p[0].shape[0])
                self._caches[id(p)] = (p, cache.rows(start, stop))
                start = stop
        self._groups[key] = (tuple(passes), states, cache)
        return states, cache

    def passes(self, x: torch.Tensor, t: torch.Tensor, passes: Sequence[EncoderStates],
               weakened: Sequence[bool] = ()) -> list[torch.Tensor]:
        """v (B, 8, 16, T) float32 of x under each of ``passes`` (each with batch B).

        ``weakened[k]``: run pass k under ERG-diffusion (query temperature in blocks 15–19).
        """
        weakened = list(weakened) + [False] * (len(passes) - len(weakened))
        if not self.can_batch(x, passes):
            out = []
            for states, weak in zip(passes, weakened):
                if weak:
                    with erg_diffusion(self.dit):
                        out.append(self(x, t, states))
                else:
                    out.append(self(x, t, states))
            return out
        b = int(x.shape[0])
        states, cache = self.prepare(passes)
        rows = [slice(k * b, (k + 1) * b) for k, weak in enumerate(weakened) if weak]
        xs = torch.cat([x] * len(passes))
        if rows:
            with erg_diffusion(self.dit, rows=rows):
                v = self._decode(xs, t, states, cache)
        else:
            v = self._decode(xs, t, states, cache)
        return list(v.split(b))


class Guider:
    """Guided velocity for loop index ``i`` (the body of the official loop before the update).

    Call ``guider(x, t, i)`` with x (B, 8, 16, T) and t the scheduler timestep (σ·1000, 0-d);
    returns v (B, 8, 16, T) float32. One :class:`MomentumBuffer` lives for the whole run (APG
    updates it only on guided steps). A guided step evaluates cond, text-only (double
    condition) and uncond (ERG-weakened when enabled) as one batch where
    :meth:`VelocityModel.can_batch` allows; ``max_batched_frames=0`` runs them one by one.
    """

    def __init__(self, dit, encoded: EncodedConditions, settings: GuidanceSettings,
                 num_inference_steps: int, max_batched_frames: Optional[int] = None):
        self.dit = dit
        self.enc = encoded
        self.s = settings
        self.start_idx, self.end_idx = guidance_interval_bounds(num_inference_steps,
                                                                settings.guidance_interval)
        self.momentum_buffer = MomentumBuffer()
        self._decode = VelocityModel(dit, max_batched_frames)
        self._double = settings.double_condition and encoded.no_lyric is not None
        # the passes of a guided step, in the official order, and which one ERG weakens
        self._passes = [encoded.cond] + ([encoded.no_lyric] if self._double else []) + [encoded.null]
        self._weakened = [False] * (len(self._passes) - 1) + [settings.use_erg_diffusion]
        self._guided_steps = settings.do_cfg and encoded.null is not None and self.start_idx < self.end_idx

    @property
    def calls(self) -> int:
        """Number of DiT decode calls so far (for tests)."""
        return self._decode.calls

    def in_interval(self, i: int) -> bool:
        return self.start_idx <= i < self.end_idx

    def __call__(self, x: torch.Tensor, t: torch.Tensor, i: int) -> torch.Tensor:
        s = self.s
        if not (self.in_interval(i) and s.do_cfg):
            if self._guided_steps and self._decode.can_batch(x, self._passes):
                self._decode.prepare(self._passes)  # the cond K/V as a view of the batched cache
            return self._decode(x, t, self.enc.cond)
        scale = interval_guidance_scale(i, self.start_idx, self.end_idx, s.guidance_scale,
                                        s.min_guidance_scale, s.guidance_interval_decay)
        v = self._decode.passes(x, t, self._passes, self._weakened)
        v_cond, v_uncond = v[0], v[-1]
        if self._double:
            return cfg_double_condition_forward(v_cond, v_uncond, v[1], s.guidance_scale_text,
                                                s.guidance_scale_lyric)
        if s.cfg_type == "apg":
            return apg_forward(v_cond, v_uncond, scale, momentum_buffer=self.momentum_buffer)
        if s.cfg_type == "cfg":
            return cfg_forward(v_cond, v_uncond, scale)
        return cfg_zero_star(v_cond, v_uncond, scale, i, zero_steps=s.zero_steps,
                             use_zero_init=s.use_zero_init)


def build_guider(dit, cond: Conditioning, null_cond: Optional[Conditioning],
                 settings: GuidanceSettings, num_inference_steps: int, batch: int,
                 max_batched_frames: Optional[int] = None) -> Guider:
    """Encode the passes once and return the per-step guider."""
    enc = encode_conditions(dit, cond, null_cond, batch=batch, need_null=settings.do_cfg,
                            use_erg_lyric=settings.use_erg_lyric,
                            double_condition=settings.do_cfg and settings.double_condition)
    return Guider(dit, enc, settings, num_inference_steps, max_batched_frames)


# ------------------------------------------------------------------------------------------------
# loops
# ------------------------------------------------------------------------------------------------
def run_scheduler_loop(guider: Guider, schedule: Schedule, x: torch.Tensor, *,
                       omega_scale: float = 10.0, generator: GeneratorLike = None,
                       progress: Optional[ProgressHook] = None) -> torch.Tensor:
    """The plain loop: for each timestep, guided v then ``scheduler.step`` (ω, heun, pingpong)."""
    stepper = Stepper(schedule, omega_scale, generator)
    return run_steps(guider, schedule.timesteps, x.to(torch.float32), lambda v, x_, i: stepper.step(v, x_),
                     progress=progress)


def schedule_for(scheduler: str, steps: int, shift: float,
                  oss_steps: Optional[Sequence[int]]) -> tuple[Schedule, int]:
    """(schedule, infer_steps) where infer_steps is max(oss_steps) on the oss path."""
    if oss_steps:
        oss = [int(s) for s in oss_steps]
        return make_oss_schedule(scheduler, oss, shift), max(oss)
    return make_schedule(scheduler, steps, shift), int(steps)


def sample(dit, cond: Conditioning, null_cond: Optional[Conditioning] = None,
           noise: Optional[torch.Tensor] = None, *,
           frames: Optional[int] = None, duration: Optional[float] = None, batch_size: Optional[int] = None,
           steps: int = 60, scheduler: str = "euler", shift: float = 3.0, omega_scale: float = 10.0,
           guidance_scale: float = 15.0, cfg_type: str = "apg", guidance_interval: float = 0.5,
           guidance_interval_decay: float = 0.0, min_guidance_scale: float = 3.0,
           zero_steps: int = 1, use_zero_init: bool = True, guidance_scale_text: float = 0.0,
           guidance_scale_lyric: float = 0.0, use_erg_lyric: bool = False,
           use_erg_diffusion: bool = True, oss_steps: Optional[Sequence[int]] = None,
           retake_variance: Optional[float] = None, retake_noise: Optional[torch.Tensor] = None,
           ref_latents: Optional[torch.Tensor] = None, ref_audio_strength: float = 0.5,
           generator: GeneratorLike = None, retake_generator: GeneratorLike = None,
           progress: Optional[ProgressHook] = None) -> torch.Tensor:
    """Text-to-music (and retake / audio-to-audio) sampling. Returns the latent (B, 8, 16, T) f32.

    Length: ``noise``'s T, else ``ref_latents``' T, else ``frames``, else
    ``int(duration·44100/512/8)``. Batch: ``noise``'s B, else ``ref_latents``' B, else
    ``batch_size``, else the conditioning's batch; a batch-1 conditioning is broadcast.

    Noise: ``noise`` (B, 8, 16, T) or one draw from ``generator`` (the first draw). With
    ``retake_variance`` set, the start noise is ``cos(a)·noise + sin(a)·retake_noise`` with
    ``a = variance·π/2``, ``retake_noise`` given or drawn next from ``retake_generator`` (or
    ``generator``). ``pingpong`` draws its per-step noise from ``generator`` (the first one of a
    list), as the official code.

    Audio-to-audio (``ref_latents`` given): ``σ_max = 1 − ref_audio_strength``,
    ``int((1 − strength)·steps)`` steps; the start is ``ref·(1−σ') + noise·σ'`` with σ' the
    once-shifted σ_max while the timesteps are shifted twice (official quirk).

    Guidance: interval ``[int(N(1−gi)/2), int(N(gi/2+0.5)))`` with N the number of inference
    steps; APG (momentum −0.75, norm 2.5), CFG or CFG-Zero*; double text/lyric guidance when both
    ``guidance_scale_text`` and ``guidance_scale_lyric`` > 1; ERG hooks on request.
    ``progress(done, total)`` is called after every model step.
    """
    check_scheduler(scheduler)
    steps = check_steps(steps)
    settings = GuidanceSettings.from_arguments(locals())
    _, device = dit_dtype_device(dit)

    if noise is not None:
        if noise.ndim != 4 or noise.shape[1] != LATENT_CHANNELS or noise.shape[2] != LATENT_HEIGHT:
            raise InputError(f"noise: expected (B, 8, 16, T), got {tuple(noise.shape)}")
        b, t_len = int(noise.shape[0]), int(noise.shape[-1])
    elif ref_latents is not None:
        b, t_len = int(ref_latents.shape[0]), int(ref_latents.shape[-1])
    else:
        b = int(batch_size) if batch_size is not None else cond.batch_size
        if frames is None:
            if duration is None:
                raise InputError("frames/duration: give the latent length (frames or seconds) or the noise")
            frames = frames_for_duration(duration)
        t_len = int(frames)
    if t_len < 1:
        raise InputError(f"frames: the latent needs at least 1 frame, got {t_len}")
    if ref_latents is not None and tuple(ref_latents.shape) != (b, LATENT_CHANNELS, LATENT_HEIGHT, t_len):
        raise InputError(f"ref_latents: expected {(b, LATENT_CHANNELS, LATENT_HEIGHT, t_len)}, "
                         f"got {tuple(ref_latents.shape)}")
    shape = (b, LATENT_CHANNELS, LATENT_HEIGHT, t_len)

    schedule, _ = schedule_for(scheduler, steps, shift, oss_steps)
    x = latent_noise(noise, shape, generator, device, "noise")
    if retake_variance is not None:
        r = latent_noise(retake_noise, shape,
                          retake_generator if retake_generator is not None else generator,
                          device, "retake_noise")
        x = mix_retake_noise(x, r, retake_variance)
    if ref_latents is not None:
        x, schedule = add_latents_noise(ref_latents.to(device, torch.float32), x, scheduler, steps,
                                        ref_audio_strength, shift)
    guider = build_guider(dit, cond, null_cond, settings, schedule.num_inference_steps, b)
    return run_scheduler_loop(guider, schedule, x, omega_scale=omega_scale, generator=generator,
                              progress=progress)


__all__ = [
    "BATCHED_PASS_FRAMES", "Conditioning", "EncodedConditions", "GuidanceSettings", "Guider", "VelocityModel",
    "build_guider", "cfg_enabled", "dit_dtype_device", "encode_conditions", "run_scheduler_loop", "sample",
    "schedule_for",
]
