"""Time-range editing on ACE-Step v1: the glue between the editing nodes, the sampler and the VAE.

Flow (ComfyUI or plain Python)::

    source = encode_source(bundle.vae, audio)                    # AceForge VAE Encode
    edit   = repaint_latent(source, 20, "start", 40, "start")    # RepaintMask / Outpaint / Retake / FlowEdit
    result = run_edit(bundle, edit, positive, negative, seed=0, settings=...)   # AceForge KSampler
    audio  = decode_and_splice(bundle, result)                   # AceForge VAE Decode

**The source LATENT** (:func:`encode_source` / :func:`attach_source`) is a core LATENT
``{"samples": (B, 8, 16, T), "type": "audio", "aceforge_family": "ace_v1"}`` plus::

    "aceforge_source": {"waveform": (B, C, L) tensor (the audio as loaded, not copied),
                        "sample_rate": int, "encoded": bool}

For sources up to 240 s ``samples`` is the encoded latent (``encoded`` True). Longer sources (up
to 60 min) are *not* encoded: ``samples`` is a zero-stride zero placeholder of the full length
(no memory) and ``encoded`` is False; the edit encodes only its window.

**The edit LATENT** (what RepaintMask / Outpaint / Retake / FlowEdit emit, and what the sampler
returns) is a core LATENT over the *window* (see ``ace_core/editing/long_source.py``) plus
``"aceforge_edit"``::

    "samples":    (B, 8, 16, W) the window's source latent x0 (zeros on extension frames); a zero
                  placeholder while the window is not encoded yet; after sampling: the result.
    "noise_mask": (B, 1, 1, W) the regenerate mask (only when samples hold x0), so core samplers
                  can at least do a plain masked re-noise.
    "aceforge_edit": {
        "version": 1, "family": "ace_v1",
        "task":   "repaint" | "extend" | "retake" | "flowedit",
        "stage":  "planned" (from the edit nodes) | "sampled" (from the sampler),
        "plan":   EditPlan.to_dict(): timeline_frames, source_offset (left-extension frames),
                  keep_frames, source_frames, regen [[a, b], ...] (timeline frames), feather_frames,
                  feather_inward, window [ws, we] (timeline frames; W = we - ws), edit_seconds
                  [[a, b], ...] (source time replaced in the splice), source_seconds,
                  before_seconds, after_seconds,
        "variance":       repaint strength = official retake_variance (1.0 for extend),
        "crossfade_ms":   waveform crossfade at each edge (kept side), "crossfade_curve",
        "encoded":        True when samples hold the real x0,
        "source":         {"waveform", "sample_rate"} (a reference, for encoding the window and
                          the splice) or None (then the decode is a plain decode),
        "original_seed":  retake: the seed of the result being varied (its noise is the
                          "target" noise; the sampler's seed draws the retake noise),
        "flowedit":       {"source_conditioning": TextConditioning, "n_min", "n_max", "n_avg"},
        "seed":           set by the sampler,
    }

Noise: batch item k draws from a generator seeded ``seed + k`` (as text-to-audio does): first the
"target" noise, then the retake noise (repaint / extend). A retake draws the target noise from
``original_seed + k`` and the retake noise from ``seed + k``, so variance 0 gives the original back.

Windows: a repaint/extend whose timeline exceeds 240 s samples only ≤ 240 s around the edit; the
sampler encodes that stretch of the source itself (:func:`run_edit`), and the decode decodes
only the edited frames plus a margin and splices them into the full waveform
(:func:`decode_and_splice`), so samples outside the edit and its crossfades are bit-identical to
the source.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch

from ..editing import regions as er
from ..editing.long_source import (
    DECODE_MARGIN_FRAMES,
    EditPlan,
    encode_window,
    plan_extend,
    plan_repaint,
    plan_whole,
    splice_window,
)
from ..editing.seams import CROSSFADE_CURVES
from ..errors import InputError
from ..progress import ProgressHook, block_interrupts
from .latent import LATENT, LATENT_FAMILY, SAMPLE_RATE, SAMPLES_PER_FRAME, check_v1_latent, latent_dict
from .pipeline import SamplerSettings, _param

__all__ = [
    "EDIT_KEY", "SOURCE_KEY", "TASKS", "FLOWEDIT_PRESETS", "DEFAULT_CROSSFADE_MS", "DEFAULT_FEATHER_FRAMES",
    "attach_source", "encode_source", "source_of", "repaint_latent", "outpaint_latent", "retake_latent",
    "flowedit_latent", "plan_to_latent", "is_edit_latent", "check_edit_latent", "run_edit", "decode_and_splice",
]

EDIT_KEY = "aceforge_edit"
SOURCE_KEY = "aceforge_source"
TASKS = ("repaint", "extend", "retake", "flowedit")
DEFAULT_CROSSFADE_MS = 40.0
DEFAULT_FEATHER_FRAMES = 2
MAX_CROSSFADE_MS = 2000.0
MAX_FEATHER_FRAMES = 64
FLOWEDIT_PRESETS = {"lyrics only": (0.6, 1.0), "remix": (0.2, 0.4)}
"""The official UI's FlowEdit presets: (n_min, n_max)."""

Prepare = Optional[Callable[[str], Any]]


def _prepare(prepare: Prepare, part: str) -> None:
    if prepare is not None:
        prepare(part)


# ---------------------------------------------------------------------------------------------
# source latents


def _check_audio(audio, name: str = "audio") -> tuple[torch.Tensor, int]:
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise InputError(f"{name}: expected an AUDIO (a dict with 'waveform' and 'sample_rate')")
    wave = audio["waveform"]
    if not isinstance(wave, torch.Tensor):
        raise InputError(f"{name}: the waveform is not a tensor ({type(wave).__name__})")
    if wave.dim() == 2:
        wave = wave.unsqueeze(0)
    if wave.dim() != 3 or wave.shape[0] < 1 or wave.shape[1] < 1:
        raise InputError(f"{name}: expected a waveform (batch, channels, samples), got {tuple(wave.shape)}")
    if wave.shape[-1] == 0:
        raise InputError(f"{name}: the audio is empty (0 samples)")
    try:
        sr = int(audio["sample_rate"])
    except (TypeError, ValueError):
        raise InputError(f"{name}: sample_rate must be a positive integer, got {audio['sample_rate']!r}") from None
    if sr <= 0:
        raise InputError(f"{name}: sample_rate must be a positive integer, got {sr}")
    if not wave.is_floating_point():
        wave = wave.float()
    seconds = wave.shape[-1] / sr
    if seconds > er.MAX_SOURCE_SECONDS + 1e-6:
        raise InputError(f"{name}: {seconds / 60:.1f} min is longer than the {er.MAX_SOURCE_SECONDS / 60:g} min "
                         "AceForge can edit; trim the audio first")
    if seconds < LATENT.seconds(1):
        raise InputError(f"{name}: {seconds:.3f} s is shorter than one latent frame ({LATENT.seconds(1):.3f} s)")
    # finite check in chunks (a 60-minute source is large)
    step = 1 << 22
    flat = wave.reshape(-1)
    for i in range(0, flat.numel(), step):
        if not bool(torch.isfinite(flat[i:i + step]).all()):
            raise InputError(f"{name}: the audio holds NaN or infinite samples; all samples must be finite")
    return wave, sr


def _frames_for_samples(length: int, sample_rate: int) -> int:
    """Latent frames of ``length`` samples at ``sample_rate``: ceil(ceil(L·44100/sr) / 4096)."""
    l44 = -((-int(length) * SAMPLE_RATE) // int(sample_rate))
    return -(-l44 // SAMPLES_PER_FRAME)


def attach_source(latent: dict, audio: dict) -> dict:
    """A copy of a LATENT carrying a reference to the source AUDIO it was encoded from."""
    wave, sr = _check_audio(audio)
    out = dict(latent)
    samples = check_v1_latent(latent, "latent")
    frames = _frames_for_samples(wave.shape[-1], sr)
    if samples.shape[-1] != frames:
        raise InputError(f"latent: it has {samples.shape[-1]} frames, but the audio ({wave.shape[-1] / sr:.2f} s) "
                         f"encodes to {frames}; they are not the same source")
    out[SOURCE_KEY] = {"waveform": wave, "sample_rate": sr, "encoded": True}
    return out


def encode_source(vae, audio: dict, *, progress: Optional[ProgressHook] = None,
                  max_encode_seconds: float = LATENT.max_seconds) -> dict:
    """The source LATENT for the editing nodes (and for audio-to-audio when ≤ 240 s).

    ``vae``: a :class:`~ace_core.v1.music_vae.MusicVAE` (or a bundle with ``.vae``). Sources up
    to ``max_encode_seconds`` are encoded; longer ones (up to 60 min) get a lazy placeholder and
    only the edit's window is encoded later (:func:`run_edit`).
    """
    vae = getattr(vae, "vae", vae)
    wave, sr = _check_audio(audio)
    frames = _frames_for_samples(wave.shape[-1], sr)
    seconds = wave.shape[-1] / sr
    if seconds <= max_encode_seconds + 1e-9:
        device = _param(vae).device
        with torch.no_grad():
            samples = vae.encode(wave.to(device, torch.float32), sr, progress=progress).float().cpu()
        encoded = True
    else:
        samples = torch.zeros(()).expand(wave.shape[0], 8, 16, frames)  # zero-stride: no memory
        encoded = False
    out = latent_dict(samples)
    out[SOURCE_KEY] = {"waveform": wave, "sample_rate": sr, "encoded": encoded}
    return out


def source_of(latent: dict, name: str = "source") -> tuple[torch.Tensor, Optional[dict], float]:
    """(samples, source dict or None, source seconds) of a source LATENT, validated."""
    samples = check_v1_latent(latent, name)
    if isinstance(latent.get(EDIT_KEY), dict):
        raise InputError(f"{name}: this latent is already an edit ({latent[EDIT_KEY].get('task')}); connect the "
                         "encoded source audio (AceForge VAE Encode), not the output of another edit node")
    src = latent.get(SOURCE_KEY)
    if isinstance(src, dict) and isinstance(src.get("waveform"), torch.Tensor):
        wave, sr = src["waveform"], int(src["sample_rate"])
        frames = _frames_for_samples(wave.shape[-1], sr)
        if samples.shape[-1] != frames:
            raise InputError(f"{name}: the latent has {samples.shape[-1]} frames but its audio encodes to {frames}; "
                             "the latent was changed after VAE Encode (another length)")
        return samples, src, wave.shape[-1] / sr
    if samples.shape[-1] > LATENT.max_frames:
        raise InputError(f"{name}: a latent of {samples.shape[-1]} frames without its source audio; "
                         "encode the audio with AceForge VAE Encode")
    return samples, None, LATENT.seconds(samples.shape[-1])


def _check_common(feather_frames, crossfade_ms, crossfade_curve) -> tuple[int, float, str]:
    try:
        feather = int(feather_frames)
    except (TypeError, ValueError):
        raise InputError(f"feather_frames: expected a whole number of frames, got {feather_frames!r}") from None
    if feather != feather_frames or not 0 <= feather <= MAX_FEATHER_FRAMES:
        raise InputError(f"feather_frames: {feather_frames!r} is outside the allowed range [0, {MAX_FEATHER_FRAMES}]")
    try:
        xf = float(crossfade_ms)
    except (TypeError, ValueError):
        raise InputError(f"crossfade_ms: expected milliseconds, got {crossfade_ms!r}") from None
    if not math.isfinite(xf) or not 0 <= xf <= MAX_CROSSFADE_MS:
        raise InputError(f"crossfade_ms: {crossfade_ms!r} is outside the allowed range [0, {MAX_CROSSFADE_MS:g}] ms")
    if crossfade_curve not in CROSSFADE_CURVES:
        raise InputError(f"crossfade_curve: unknown value {crossfade_curve!r}; allowed: {', '.join(CROSSFADE_CURVES)}")
    return feather, xf, crossfade_curve


def _check_unit(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a number in [0, 1], got {value!r}") from None
    if not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise InputError(f"{name}: {value!r} is outside the allowed range [0, 1]")
    return v


def _edit_latent(task: str, plan: EditPlan, samples: torch.Tensor, src: Optional[dict], *, variance: float,
                 crossfade_ms: float = 0.0, curve: str = "equal_power", **extra) -> dict:
    """Build the edit LATENT over the plan's window from a source latent."""
    encoded = src is None or bool(src.get("encoded", True))
    batch = samples.shape[0]
    if encoded:
        x0 = encode_window(LATENT, plan, None, samples=samples, batch=batch)
    else:
        x0 = torch.zeros(batch, 8, 16, plan.window_frames)
    out = latent_dict(x0)
    if encoded and task in ("repaint", "extend"):
        out["noise_mask"] = plan.mask().view(1, 1, 1, -1).expand(batch, 1, 1, -1).clone()
    out[EDIT_KEY] = {
        "version": 1, "family": LATENT_FAMILY, "task": task, "stage": "planned", "plan": plan.to_dict(),
        "variance": float(variance), "crossfade_ms": float(crossfade_ms), "crossfade_curve": curve,
        "encoded": encoded,
        "source": None if src is None else {"waveform": src["waveform"], "sample_rate": int(src["sample_rate"])},
        **extra,
    }
    return out


def plan_to_latent(plan: EditPlan, source: dict, *, variance: float = 1.0, crossfade_ms: float = 0.0,
                   crossfade_curve: str = "equal_power") -> dict:
    """An edit LATENT from an explicit :class:`EditPlan` (e.g. official frame counts) and a source LATENT."""
    if plan.task not in ("repaint", "extend"):
        raise InputError(f"plan: expected a repaint or extend plan, got {plan.task!r}")
    samples, src, _ = source_of(source)
    if samples.shape[-1] != plan.source_frames:
        raise InputError(f"source: the plan is for {plan.source_frames} source frames, "
                         f"the latent has {samples.shape[-1]}")
    _, xf, curve = _check_common(0, crossfade_ms, crossfade_curve)
    return _edit_latent(plan.task, plan, samples, src, variance=_check_unit(variance, "variance"),
                        crossfade_ms=xf, curve=curve)


# ---------------------------------------------------------------------------------------------
# the edit nodes' work


def repaint_latent(source: dict, start_time=0.0, start_time_relative_to: str = "start", end_time=30.0,
                   end_time_relative_to: str = "start", *, strength: float = 1.0,
                   feather_frames: int = DEFAULT_FEATHER_FRAMES, crossfade_ms: float = DEFAULT_CROSSFADE_MS,
                   crossfade_curve: str = "equal_power", max_window_frames: int = LATENT.max_frames) -> dict:
    """RepaintMask: regenerate ``start_time`` .. ``end_time`` (RunComfy semantics) of the source."""
    samples, src, seconds = source_of(source)
    strength = _check_unit(strength, "strength")
    feather, xf, curve = _check_common(feather_frames, crossfade_ms, crossfade_curve)
    region = er.resolve_repaint_region(LATENT, start_time, start_time_relative_to, end_time, end_time_relative_to,
                                       seconds, samples.shape[-1],
                                       max_window_seconds=LATENT.seconds(max_window_frames))
    plan = plan_repaint(LATENT, region, feather, max_window_frames)
    return _edit_latent("repaint", plan, samples, src, variance=strength, crossfade_ms=xf, curve=curve)


def outpaint_latent(source: dict, extend_before_duration=0.0, extend_after_duration=30.0, *,
                    feather_frames: int = DEFAULT_FEATHER_FRAMES, crossfade_ms: float = DEFAULT_CROSSFADE_MS,
                    crossfade_curve: str = "equal_power", max_window_frames: int = LATENT.max_frames) -> dict:
    """Outpaint: add ``extend_before_duration`` s before and ``extend_after_duration`` s after the source."""
    samples, src, seconds = source_of(source)
    feather, xf, curve = _check_common(feather_frames, crossfade_ms, crossfade_curve)
    ext = er.resolve_extension(LATENT, extend_before_duration, extend_after_duration, seconds, samples.shape[-1])
    min_context = int(math.ceil(LATENT.frames_per_second))  # at least ~1 s of the source in the window
    for name, seconds_, frames in (("extend_before_duration", ext.before_seconds, ext.left_frames),
                                   ("extend_after_duration", ext.after_seconds, ext.right_frames)):
        if frames and frames + min_context > max_window_frames:
            most = LATENT.seconds(max_window_frames - min_context) - LATENT.seconds(1)
            raise InputError(f"{name}: {seconds_:g} s leaves no room for the source in the "
                             f"{LATENT.seconds(max_window_frames):.0f} s window; "
                             f"use at most {math.floor(most)} s "
                             "per pass")
    plan = plan_extend(LATENT, ext, feather, max_window_frames)
    return _edit_latent("extend", plan, samples, src, variance=1.0, crossfade_ms=xf, curve=curve)


def retake_latent(latent: dict, original_seed: int, variance: float = 0.2) -> dict:
    """Retake: a variation of the result generated with ``original_seed`` over this latent's length."""
    samples = check_v1_latent(latent, "latent")
    if isinstance(latent.get(EDIT_KEY), dict):
        raise InputError("latent: connect the empty latent (or result) of the original song, not another edit")
    if samples.shape[-1] > LATENT.max_frames:
        raise InputError(f"latent: {samples.shape[-1]} frames is over the {LATENT.max_frames}-frame (240 s) "
                         "limit of a retake")
    variance = _check_unit(variance, "variance")
    try:
        seed = int(original_seed)
    except (TypeError, ValueError):
        raise InputError(f"original_seed: expected a whole number, got {original_seed!r}") from None
    if seed != original_seed or not 0 <= seed <= 2 ** 64 - 1:
        raise InputError(f"original_seed: {original_seed!r} is outside the allowed range [0, 2^64-1]")
    plan = plan_whole("retake", samples.shape[-1])
    out = _edit_latent("retake", plan, torch.zeros_like(samples), None, variance=variance, original_seed=seed)
    return out


def flowedit_latent(source: dict, source_conditioning, n_min: float = 0.6, n_max: float = 1.0,
                    n_avg: int = 1) -> dict:
    """FlowEdit: move the whole source from ``source_conditioning`` to the sampler's positive."""
    samples, src, seconds = source_of(source)
    if src is not None and not src.get("encoded", True) or samples.shape[-1] > LATENT.max_frames:
        raise InputError(f"source: FlowEdit changes the whole song and works on at most 240 s; this source is "
                         f"{seconds:.1f} s (use RepaintMask for a part of a long song)")
    n_min, n_max = _check_unit(n_min, "n_min"), _check_unit(n_max, "n_max")
    if n_min > n_max:
        raise InputError(f"n_min, n_max: n_min ({n_min:g}) must not be above n_max ({n_max:g})")
    try:
        n_avg_i = int(n_avg)
    except (TypeError, ValueError):
        raise InputError(f"n_avg: expected a whole number in [1, 16], got {n_avg!r}") from None
    if n_avg_i != n_avg or not 1 <= n_avg_i <= 16:
        raise InputError(f"n_avg: {n_avg!r} is outside the allowed range [1, 16]")
    if source_conditioning is None:
        raise InputError("source_conditioning: FlowEdit needs the tags/lyrics that describe the source audio")
    plan = plan_whole("flowedit", samples.shape[-1])
    return _edit_latent("flowedit", plan, samples, None, variance=1.0,
                        flowedit={"source_conditioning": source_conditioning, "n_min": n_min, "n_max": n_max,
                                  "n_avg": n_avg_i})


# ---------------------------------------------------------------------------------------------
# sampler and decoder entry points


def is_edit_latent(latent) -> bool:
    """True for a LATENT produced by an editing node (or by :func:`run_edit`)."""
    return isinstance(latent, dict) and isinstance(latent.get(EDIT_KEY), dict)


def check_edit_latent(latent, name: str = "latent") -> tuple[dict, EditPlan, torch.Tensor]:
    """(edit dict, plan, samples) after checking the mask belongs to this latent."""
    if not is_edit_latent(latent):
        raise InputError(f"{name}: not an edit latent (connect RepaintMask, Outpaint, Retake or FlowEdit)")
    edit = latent[EDIT_KEY]
    if edit.get("family", LATENT_FAMILY) != LATENT_FAMILY:
        raise InputError(f"{name}: the edit was made for the model family {edit.get('family')!r}; "
                         f"this is ACE-Step v1 ({LATENT_FAMILY})")
    if edit.get("task") not in TASKS:
        raise InputError(f"{name}: unknown edit task {edit.get('task')!r}; known: {', '.join(TASKS)}")
    samples = check_v1_latent(latent, name)
    plan = EditPlan.from_dict(edit["plan"])
    if samples.shape[-1] != plan.window_frames:
        raise InputError(
            f"{name}: the {edit['task']} mask was made for a latent of {plan.window_frames} frames, but this latent "
            f"has {samples.shape[-1]} frames (another length); connect the edit node's output to the sampler "
            "without changing its length")
    mask = latent.get("noise_mask")
    if isinstance(mask, torch.Tensor) and mask.shape[-1] != samples.shape[-1]:
        raise InputError(f"{name}: the noise_mask has {mask.shape[-1]} frames, the latent {samples.shape[-1]}")
    return edit, plan, samples


def run_edit(bundle, latent: dict, cond, negative=None, *, seed: int = 0,
             settings: Optional[SamplerSettings] = None, progress: Optional[ProgressHook] = None,
             prepare: Prepare = None, noise: Optional[torch.Tensor] = None,
             retake_noise: Optional[torch.Tensor] = None) -> dict:
    """Sample an edit LATENT; returns the sampled LATENT (same window, ``stage`` "sampled").

    ``cond`` / ``negative``: :class:`~ace_core.v1.pipeline.TextConditioning` (the sampler's
    positive / optional negative; for FlowEdit the positive is the *target*). ``settings``: the
    sampler's :class:`~ace_core.v1.pipeline.SamplerSettings` (steps, guidance, sampler, shift ...;
    repaint/extend always take plain Euler steps, the official loop). Item k of the batch draws its
    noise from ``seed + k``. ``prepare(part)`` is called with ``"vae"`` before the window is encoded
    and ``"dit"`` before sampling (ComfyUI: load that model onto the GPU).

    ``noise`` / ``retake_noise``: explicit draws instead of the seeded ones, for exact replays of the
    official method (shapes as :func:`~ace_core.v1.editing.repaint` / ``extend`` / ``retake`` take
    them; for FlowEdit ``noise`` is the list of draws).
    """
    from . import editing
    from .pipeline import _sampling_conditioning, seed_generators
    from .sampling import GuidanceSettings

    edit, plan, samples = check_edit_latent(latent)
    settings = (settings if settings is not None else SamplerSettings()).validate()
    task = edit["task"]
    batch = int(samples.shape[0])
    positive = _sampling_conditioning(cond, "positive", with_erg=settings.erg_tag)
    null = _sampling_conditioning(negative, "negative", with_erg=False) if negative is not None else None
    gens = seed_generators(seed, batch)
    gen = gens if batch > 1 else gens[0]
    guidance = GuidanceSettings(**settings.guidance_kwargs()).validate()

    with block_interrupts(bundle.dit.transformer_blocks, progress):  # Cancel inside a long step too
        if task in ("repaint", "extend"):
            src = edit.get("source")
            if edit.get("encoded", True):
                x0 = samples.float()
            else:
                if not src:
                    raise InputError("latent: the edit's source audio is missing; encode it with AceForge VAE Encode")
                _prepare(prepare, "vae")
                vae = bundle.vae
                device = _param(vae).device

                def encode(wave, sr):
                    return vae.encode(wave.to(device, torch.float32), sr, progress=progress).float().cpu()

                x0 = encode_window(LATENT, plan, encode, waveform=src["waveform"], sample_rate=src["sample_rate"], batch=batch)
            _prepare(prepare, "dit")
            common = dict(null_cond=null, steps=settings.steps, scheduler=settings.sampler, shift=settings.shift,
                          generator=gen, guidance=guidance, progress=progress, noise=noise, retake_noise=retake_noise)
            left, right = plan.pads_in_window()
            if task == "extend" and plan.feather_frames == 0:
                core = x0[..., left:plan.window_frames - right]
                out = editing.extend(bundle.dit, positive, core, left_frames=left, right_frames=right,
                                     retake_variance=float(edit["variance"]), **common)
            else:
                mask = plan.mask()
                out = editing.repaint(bundle.dit, positive, x0, mask, retake_variance=float(edit["variance"]), **common)
        elif task == "retake":
            _prepare(prepare, "dit")
            original = seed_generators(edit["original_seed"], batch)
            out = editing.retake(
                bundle.dit, positive, null, noise, retake_variance=float(edit["variance"]), retake_noise=retake_noise,
                generator=original if batch > 1 else original[0], retake_generator=gen,
                frames=samples.shape[-1], batch_size=batch, steps=settings.steps, scheduler=settings.sampler,
                shift=settings.shift, omega_scale=settings.omega, progress=progress, **settings.guidance_kwargs())
        else:  # flowedit
            fe = edit["flowedit"]
            src_cond = _sampling_conditioning(fe["source_conditioning"], "source_conditioning", with_erg=False)
            _prepare(prepare, "dit")
            out = editing.flowedit(
                bundle.dit, src_cond, positive, samples.float(), steps=settings.steps,
                guidance_scale=settings.guidance_scale, n_min=fe["n_min"], n_max=fe["n_max"], n_avg=fe["n_avg"],
                scheduler=settings.sampler, shift=settings.shift, generator=gen, noises=noise, progress=progress)

    result = latent_dict(out.float().cpu())
    result[EDIT_KEY] = {**edit, "stage": "sampled", "seed": int(seed), "encoded": True}
    return result


def decode_and_splice(bundle, latent: dict, progress: Optional[ProgressHook] = None,
                      prepare: Prepare = None, *, margin_frames: int = DECODE_MARGIN_FRAMES) -> dict:
    """Decode a LATENT to an AUDIO dict; sampled repaint/extend latents are spliced into their source.

    Returns ``{"waveform": (B, 2, L), "sample_rate": sr}``: for a spliced edit, sr is the source's
    rate and L the full edited length; otherwise 44.1 kHz and ``T * 4096`` samples. Only the
    regenerated frames plus ``margin_frames`` (and the crossfade) on each side are decoded.
    """
    from ..audio.channels import to_stereo

    vae = bundle.vae
    if not is_edit_latent(latent):
        samples = check_v1_latent(latent, "latent")
        _prepare(prepare, "vae")
        return {"waveform": _decode(vae, samples, progress), "sample_rate": SAMPLE_RATE}
    edit, plan, samples = check_edit_latent(latent)
    if edit.get("stage") != "sampled" and not edit.get("encoded", True):
        raise InputError("latent: this edit has not been sampled yet; connect it to the ACE-Step KSampler first")
    src = edit.get("source")
    _prepare(prepare, "vae")
    if edit["task"] not in ("repaint", "extend") or not src or edit.get("stage") != "sampled":
        return {"waveform": _decode(vae, samples, progress), "sample_rate": SAMPLE_RATE}
    xf_s = float(edit.get("crossfade_ms", 0.0)) * 1e-3
    da, db = plan.decode_range(LATENT.frames_per_second, xf_s, margin_frames)
    decoded = _decode(vae, samples[..., da:db], progress)
    source = to_stereo(src["waveform"] if src["waveform"].dim() == 3 else src["waveform"].unsqueeze(0))
    out = splice_window(LATENT, plan, decoded, plan.window[0] + da, source, int(src["sample_rate"]),
                        crossfade_ms=float(edit.get("crossfade_ms", 0.0)),
                        curve=edit.get("crossfade_curve", "equal_power"))
    return {"waveform": out, "sample_rate": int(src["sample_rate"])}


def _decode(vae, samples: torch.Tensor, progress: Optional[ProgressHook]) -> torch.Tensor:
    device = _param(vae).device
    with torch.no_grad():
        return vae.decode(samples.to(device, torch.float32), progress=progress).float().cpu()
