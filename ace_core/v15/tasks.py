"""ACE-Step 1.5 tasks beyond text to music: repaint, extend, retake, cover / remix, extract, lego,
complete and the timbre reference, on the core 1.5 LATENT layout ([B, 64, frames] at 25 Hz).

Flow (nodes, CLI or plain Python)::

    source = encode_source(bundle, audio)                       # VAE Encode: a source LATENT
    edit   = repaint_latent(source, 20, "start", 40, "start")   # an edit LATENT (no compute)
    result = run_edit(bundle, edit, text, seed=0)               # the sampler
    audio  = decode_edit(bundle, result)                        # VAE Decode (+ waveform splice)

**Source LATENT**: ``{"samples": [B, 64, T], "type": "audio", "aceforge_family": "ace_v15",
"aceforge_source": {"waveform": [B, C, L] (as loaded), "sample_rate": int, "encoded": bool}}``.
Sources up to 600 s are encoded; longer ones (up to 60 min) hold a zero-stride placeholder and
only the edited window is encoded when sampling.

**Edit LATENT**: the window's latent plus ``"aceforge_edit"``: ``family``, ``task``, ``stage``
(``planned`` / ``sampled``), ``plan`` (:class:`EditPlan15` as a dict: everything in 48 kHz
samples on the padded timeline), the task's settings and a reference to the source audio.

Everything on the timeline is counted in 48 kHz samples: ``left`` zeros, the source resampled to
48 kHz, ``right`` zeros (upstream pads the waveform for an extension the same way). The window
``[ws, we)`` (≤ 600 s, a whole number of 1920-sample frames, zero-padded past the end) is what
the model sees; regions ``[a, b)`` inside it are regenerated. After decoding, the source replaces
the output outside the regions (upstream's waveform splice; not in ``aggressive`` mode) and
everything outside the window is the source as it was, so the output keeps the source's length.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Callable, Optional, Sequence

import torch

from ..audio.channels import to_stereo
from ..audio.io import check_waveform
from ..audio.resample import check_rate, resample, resampled_length
from ..editing import regions as er
from ..errors import InputError
from ..loading.recognise import ACE_V15
from ..progress import ProgressHook
from ..validation import validate_range
from . import pipeline
from .dcw import DCW_OFF, default_dcw
from .prompts import TRACK_NAMES, validate_track_name
from .repaint import REPAINT_MODES, RepaintGuide, resolve_repaint_config, soft_mask, splice_mask
from .sampling import DiTVelocity, initial_noise, sample, seed_generators
from .schedules import make_schedule

SOURCE_KEY = "aceforge_source"
EDIT_KEY = "aceforge_edit"
RATE = pipeline.SAMPLE_RATE
HOP = 1920
MAX_WINDOW_SECONDS = float(pipeline.MAX_SECONDS)
MAX_EXTEND_SECONDS = er.MAX_EXTEND_SECONDS
COVER_MODES = ("cover", "remix raw")
STEM_TASKS = ("extract", "lego", "complete")
TASKS = ("repaint", "extend", "retake", "cover", *STEM_TASKS)
DEFAULT_REPAINT_MODE = "balanced"
DEFAULT_REPAINT_STRENGTH = 0.5

Prepare = Optional[Callable[[str], None]]


def _latent(samples: torch.Tensor) -> dict:
    return {"samples": samples, "type": "audio", "aceforge_family": ACE_V15}


def _prepare(prepare: Prepare, part: str) -> None:
    if prepare is not None:
        prepare(part)


def _unit(value, name: str) -> float:
    return validate_range(value, 0.0, 1.0, name)


# ------------------------------------------------------------------------------------------------
# source audio
# ------------------------------------------------------------------------------------------------
def check_audio(audio, name: str = "audio", max_seconds: float = er.MAX_SOURCE_SECONDS) -> tuple[torch.Tensor, int]:
    """The (B, C, L) float waveform and rate of an AUDIO dict, checked (InputError naming ``name``)."""
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise InputError(f"{name}: expected an AUDIO (a dict with 'waveform' and 'sample_rate')")
    wave = audio["waveform"]
    if isinstance(wave, torch.Tensor) and wave.dim() == 3 and wave.shape[-1] == 0:
        raise InputError(f"{name}: the audio is empty (0 s); give at least {HOP / RATE:.2f} s")
    check_waveform(wave, name)  # shape, channels, finite samples
    wave = (wave if wave.dim() == 3 else wave.unsqueeze(0)).float()
    rate = check_rate(f"{name}: sample_rate", audio["sample_rate"])
    seconds = wave.shape[-1] / rate
    if seconds > max_seconds + 1e-6:
        raise InputError(f"{name}: {seconds:.1f} s is longer than the {max_seconds:g} s allowed here; trim the audio")
    if resampled_length(wave.shape[-1], rate, RATE) < HOP:
        raise InputError(f"{name}: {seconds:.3f} s is shorter than one latent frame ({HOP / RATE:.2f} s)")
    return wave, rate


def encode_source(bundle, audio: dict, *, seed: int = 0, progress: Optional[ProgressHook] = None,
                  max_encode_seconds: float = MAX_WINDOW_SECONDS) -> dict:
    """The source LATENT of an AUDIO (≤ 600 s encoded; longer, up to 60 min, a lazy placeholder)."""
    wave, rate = check_audio(audio)
    frames = resampled_length(wave.shape[-1], rate, RATE) // HOP
    if wave.shape[-1] / rate <= max_encode_seconds + 1e-9:
        generator = seed_generators(seed, 1)[0]
        samples = bundle.vae.encode(wave, rate, generator=generator, progress=progress).float().cpu()
        encoded = True
    else:
        samples = torch.zeros(()).expand(wave.shape[0], pipeline.LATENT_CHANNELS, frames)  # no memory
        encoded = False
    out = _latent(samples)
    out[SOURCE_KEY] = {"waveform": wave, "sample_rate": rate, "encoded": encoded}
    return out


def _source_of(latent, name: str = "source") -> tuple[torch.Tensor, Optional[dict], int]:
    """(samples, source dict or None, source length in 48 kHz samples)."""
    from .adapter import latent_samples

    samples = latent_samples(latent, name)
    if isinstance(latent.get(EDIT_KEY), dict):
        raise InputError(f"{name}: this latent is already an edit ({latent[EDIT_KEY].get('task')}); connect the "
                         "encoded source audio (AceForge VAE Encode), not the output of another edit node")
    src = latent.get(SOURCE_KEY)
    if isinstance(src, dict) and isinstance(src.get("waveform"), torch.Tensor):
        return samples, src, resampled_length(src["waveform"].shape[-1], int(src["sample_rate"]), RATE)
    return samples, None, samples.shape[-1] * HOP


# ------------------------------------------------------------------------------------------------
# the plan
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EditPlan15:
    """An edit on the padded 48 kHz timeline: ``left`` + source (``source_samples``) + ``right``.

    regions: [[a, b), ...] samples regenerated; window: [ws, we) samples the model sees (a whole
    number of frames; may run past the timeline's end, zero-padded); mode: repaint mode.
    """

    task: str
    source_samples: int
    left: int = 0
    right: int = 0
    regions: tuple = ()
    window: tuple = (0, 0)
    mode: str = DEFAULT_REPAINT_MODE
    strength: float = DEFAULT_REPAINT_STRENGTH

    @property
    def total(self) -> int:
        return self.left + self.source_samples + self.right

    @property
    def window_frames(self) -> int:
        return (self.window[1] - self.window[0]) // HOP

    def mask(self, batch: int = 1) -> torch.Tensor:
        """[B, W] bool: True on window frames that touch a region (whole frames regenerated)."""
        ws = self.window[0]
        m = torch.zeros(self.window_frames, dtype=torch.bool)
        for a, b in self.regions:
            fa, fb = max(0, (a - ws) // HOP), min(self.window_frames, -(-(b - ws) // HOP))
            m[fa:fb] = True
        return m[None].expand(batch, -1).clone()

    def to_dict(self) -> dict:
        return {k: list(map(list, v)) if k == "regions" else (list(v) if isinstance(v, tuple) else v)
                for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "EditPlan15":
        return cls(**{**d, "regions": tuple(tuple(r) for r in d["regions"]), "window": tuple(d["window"])})


def _window(regions: Sequence[tuple], total: int, max_seconds: float = MAX_WINDOW_SECONDS) -> tuple:
    """The window [ws, we) around the regions: the whole timeline when it fits, else ≤ max_seconds
    centred on the regions; whole frames from a frame-aligned start."""
    most = int(max_seconds * RATE) // HOP * HOP
    lo, hi = min(a for a, _ in regions), max(b for _, b in regions)
    if hi - lo > most:
        raise InputError(f"start_time, end_time: the edit spans {(hi - lo) / RATE:.1f} s; one ACE-Step 1.5 pass "
                         f"covers at most {max_seconds:g} s (edit longer spans in several passes)")
    if total <= most:
        ws, we = 0, total
    else:
        ws = max(0, min(lo - (most - (hi - lo)) // 2, total - most))
        ws = ws // HOP * HOP
        we = min(total, ws + most)
    frames = -(-(we - ws) // HOP)
    return ws, ws + frames * HOP


def _edit_latent(plan: EditPlan15, samples: torch.Tensor, src: Optional[dict], **settings) -> dict:
    batch = samples.shape[0]
    encoded = src is None or bool(src.get("encoded", True))
    out = _latent(torch.zeros(batch, pipeline.LATENT_CHANNELS, plan.window_frames))
    if encoded and plan.left == 0 and plan.window[0] % HOP == 0:
        f0 = plan.window[0] // HOP
        piece = samples[..., f0:f0 + plan.window_frames].float()
        out["samples"][..., :piece.shape[-1]] = piece
    out[EDIT_KEY] = {
        "family": ACE_V15, "task": plan.task, "stage": "planned", "plan": plan.to_dict(), "encoded": encoded,
        "source": None if src is None else {"waveform": src["waveform"], "sample_rate": int(src["sample_rate"])},
        **settings,
    }
    return out


def _mode(mode: str, strength) -> tuple[str, float]:
    if mode not in REPAINT_MODES:
        raise InputError(f"repaint_mode: unknown value {mode!r}; allowed: {', '.join(REPAINT_MODES)}")
    return mode, _unit(strength, "strength")


def repaint_latent(source: dict, start_time=0.0, start_time_relative_to: str = "start", end_time=30.0,
                   end_time_relative_to: str = "start", *, strength: float = DEFAULT_REPAINT_STRENGTH,
                   repaint_mode: str = DEFAULT_REPAINT_MODE, **_unused) -> dict:
    """Regenerate ``start_time`` .. ``end_time`` (anchored to the track's start or end) of the source."""
    samples, src, length = _source_of(source)
    mode, strength = _mode(repaint_mode, strength)
    seconds = length / RATE
    region = er.resolve_repaint_region(pipeline_spec(), start_time, start_time_relative_to, end_time,
                                       end_time_relative_to, seconds, max_window_seconds=MAX_WINDOW_SECONDS)
    a, b = int(round(region.start_seconds * RATE)), int(round(region.end_seconds * RATE))
    regions = ((a, min(b, length)),)
    plan = EditPlan15("repaint", length, regions=regions, window=_window(regions, length), mode=mode,
                      strength=strength)
    return _edit_latent(plan, samples, src)


def outpaint_latent(source: dict, extend_before_duration=0.0, extend_after_duration=30.0, *,
                    repaint_mode: str = DEFAULT_REPAINT_MODE, strength: float = DEFAULT_REPAINT_STRENGTH,
                    **_unused) -> dict:
    """Add new audio before and/or after the source (0-240 s each, not both 0)."""
    samples, src, length = _source_of(source)
    mode, strength = _mode(repaint_mode, strength)
    ext = er.resolve_extension(pipeline_spec(), extend_before_duration, extend_after_duration, length / RATE)
    left, right = int(round(ext.before_seconds * RATE)), int(round(ext.after_seconds * RATE))
    total = left + length + right
    regions = tuple(r for r in ((0, left), (left + length, total)) if r[1] > r[0])
    plan = EditPlan15("extend", length, left=left, right=right, regions=regions, window=_window(regions, total),
                      mode=mode, strength=strength)
    return _edit_latent(plan, samples, src)


def retake_latent(latent: dict, original_seed: int, variance: float = 0.2) -> dict:
    """A variation of the song generated with ``original_seed`` (cos/sin noise mix by ``variance``)."""
    from .adapter import latent_samples

    samples = latent_samples(latent, "latent")
    if isinstance(latent.get(EDIT_KEY), dict):
        raise InputError("latent: connect the empty latent (or result) of the original song, not another edit")
    variance = _unit(variance, "variance")
    seed = int(original_seed)
    if not 0 <= seed < 2 ** 64:
        raise InputError(f"original_seed: {original_seed!r} is outside the allowed range [0, 2^64-1]")
    frames = samples.shape[-1]
    plan = EditPlan15("retake", frames * HOP, window=(0, frames * HOP))
    return _edit_latent(plan, torch.zeros(samples.shape[0], pipeline.LATENT_CHANNELS, frames), None,
                        variance=variance, original_seed=seed)


def _whole(task: str, source: dict, **settings) -> dict:
    samples, src, length = _source_of(source)
    if length > MAX_WINDOW_SECONDS * RATE + HOP:
        raise InputError(f"source: {length / RATE:.1f} s is longer than the {MAX_WINDOW_SECONDS:g} s ACE-Step 1.5 "
                         f"takes for {task}; trim the audio")
    window = (0, -(-length // HOP) * HOP)
    return _edit_latent(EditPlan15(task, length, regions=(window,), window=window), samples, src, **settings)


def cover_latent(source: dict, audio_cover_strength: float = 1.0, cover_noise_strength: float = 0.0,
                 mode: str = "cover") -> dict:
    """Cover: a new song in the caption's style from the source's structure. ``remix raw``: without
    the FSQ round trip (upstream ``cover-nofsq``)."""
    if mode not in COVER_MODES:
        raise InputError(f"mode: unknown value {mode!r}; allowed: {', '.join(COVER_MODES)}")
    return _whole("cover", source, audio_cover_strength=_unit(audio_cover_strength, "audio_cover_strength"),
                  cover_noise_strength=_unit(cover_noise_strength, "cover_noise_strength"), cover_mode=mode)


def stem_latent(source: dict, task: str, track_name: str = "vocals", complete_tracks: str = "") -> dict:
    """extract / lego (one named track) or complete (add the listed tracks) over the whole source."""
    if task not in STEM_TASKS:
        raise InputError(f"task: unknown value {task!r}; allowed: {', '.join(STEM_TASKS)}")
    name = validate_track_name(track_name) if task != "complete" else None
    classes = [validate_track_name(n, "complete_tracks") for n in str(complete_tracks or "").replace(",", " ").split()]
    if task == "complete" and not classes:
        raise InputError(f"complete_tracks: name at least one track to add; allowed: {', '.join(TRACK_NAMES)}")
    return _whole(task, source, track_name=name, complete_tracks=classes)


def pipeline_spec():
    from .adapter import LATENT

    return LATENT


def is_edit_latent(latent) -> bool:
    return isinstance(latent, dict) and isinstance(latent.get(EDIT_KEY), dict)


def _edit_of(latent: dict) -> tuple[dict, EditPlan15, torch.Tensor]:
    from .adapter import latent_samples

    edit = latent[EDIT_KEY]
    if edit.get("family") != ACE_V15:
        raise InputError(f"latent: the edit was made for the model family {edit.get('family')!r}; this is ACE-Step 1.5")
    if edit.get("task") not in TASKS:
        raise InputError(f"latent: unknown edit task {edit.get('task')!r}; known: {', '.join(TASKS)}")
    plan = EditPlan15.from_dict(edit["plan"])
    samples = latent_samples(latent)
    if samples.shape[-1] != plan.window_frames:
        raise InputError(f"latent: the {plan.task} edit was made for {plan.window_frames} frames, this latent has "
                         f"{samples.shape[-1]}; connect the edit node's output to the sampler unchanged")
    return edit, plan, samples


# ------------------------------------------------------------------------------------------------
# timeline audio
# ------------------------------------------------------------------------------------------------
def _timeline_audio(src: dict, plan: EditPlan15, lo: int, hi: int) -> torch.Tensor:
    """Samples [lo, hi) of the padded 48 kHz stereo timeline (zeros outside the source)."""
    wave, rate = src["waveform"], int(src["sample_rate"])
    wave = wave if wave.dim() == 3 else wave.unsqueeze(0)
    out = torch.zeros(wave.shape[0], 2, hi - lo)
    a, b = max(lo, plan.left), min(hi, plan.left + plan.source_samples)
    if b > a:
        s0, s1 = a - plan.left, b - plan.left
        if rate == RATE:
            piece = wave[..., s0:s1].float()
        else:  # resample a little more than needed, then cut
            pad = 64
            r0, r1 = max(0, int(s0 * rate / RATE) - pad), min(wave.shape[-1], int(math.ceil(s1 * rate / RATE)) + pad)
            res = resample(wave[..., r0:r1].float(), rate, RATE)
            off = s0 - int(round(r0 * RATE / rate))
            piece = res[..., off:off + (s1 - s0)]
            if piece.shape[-1] < s1 - s0:
                piece = torch.nn.functional.pad(piece, (0, s1 - s0 - piece.shape[-1]))
        out[..., a - lo:b - lo] = to_stereo(piece)
    return out


def _window_source(bundle, edit: dict, plan: EditPlan15, samples: torch.Tensor, seed: int,
                   progress, prepare) -> torch.Tensor:
    """The window's clean source latent [B, W, 64]."""
    src = edit.get("source")
    if edit.get("encoded", True) and plan.left == 0 and plan.window[1] <= plan.source_samples // HOP * HOP:
        return samples.float().transpose(1, 2)
    if not src:
        raise InputError("latent: the edit's source audio is missing; encode it with AceForge VAE Encode")
    _prepare(prepare, "vae")
    wave = _timeline_audio(src, plan, *plan.window)
    gen = seed_generators(seed, 1)[0]
    x0 = bundle.vae.encode(wave, RATE, generator=gen, progress=progress).float().cpu()  # [B, 64, W]
    return x0[..., :plan.window_frames].transpose(1, 2)


# ------------------------------------------------------------------------------------------------
# sampling
# ------------------------------------------------------------------------------------------------
def task_fields(fields: pipeline.SongFields, edit: dict) -> pipeline.SongFields:
    """The song fields with the task's instruction (the caption prompt names the task)."""
    task = edit["task"]
    if task in ("retake",):
        return fields
    if task == "extend":
        return replace(fields, task="repaint")
    if task == "cover":
        return replace(fields, task="cover-nofsq" if edit.get("cover_mode") == "remix raw" else "cover")
    return replace(fields, task=task, track_name=edit.get("track_name"),
                   complete_track_classes=edit.get("complete_tracks") or None)


def blend_regions(x: torch.Tensor, clean: torch.Tensor, mask: torch.Tensor, crossfade: int) -> torch.Tensor:
    """Upstream's boundary blend for any number of regions: m·x + (1 − m)·clean with m the largest
    of the per-region soft masks (linear ramps of ``crossfade`` frames outward)."""
    if crossfade <= 0:
        return torch.where(mask[..., None], x, clean)
    m = torch.zeros(mask.shape, dtype=x.dtype)
    for b in range(mask.shape[0]):
        row = mask[b]
        edges = torch.nonzero(row[1:] != row[:-1]).squeeze(-1).tolist()
        bounds = [0, *[e + 1 for e in edges], row.numel()]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            if bool(row[lo]):
                run = torch.zeros_like(row)
                run[lo:hi] = True
                m[b] = torch.maximum(m[b], soft_mask(run[None], crossfade)[0].to(x.dtype))
    m = m[..., None].to(x.device)
    return m * x + (1.0 - m) * clean.to(x.dtype)


def _refer(model, refer_latents, batch: int):
    if not refer_latents:
        return None
    clips = [reference_clip(c, model.config.timbre_fix_frame) for c in refer_latents]  # each [T, 64]
    packed = torch.stack(clips * batch)  # [N·B, T, 64]
    order = torch.arange(batch).repeat_interleave(len(clips))
    return packed, order


def reference_clip(latent: torch.Tensor, frames: int) -> torch.Tensor:
    """One reference latent [1, 64, T] (or [64, T]) -> [frames, 64] as the timbre encoder takes it:
    a shorter clip is looped; a longer one gives three equal slices from the centres of its
    thirds (front, middle, back), as upstream takes three slices."""
    x = latent[0] if latent.dim() == 3 else latent
    if x.dim() != 2 or x.shape[0] != pipeline.LATENT_CHANNELS or x.shape[-1] < 1:
        raise InputError(f"reference audio: expected a 1.5 latent (64, frames) with at least one frame, "
                         f"got {tuple(latent.shape)}")
    x = x.float().t()  # [T, 64]
    t = x.shape[0]
    if t < frames:
        return x.repeat(-(-frames // t), 1)[:frames]
    part = frames // 3
    pieces, third = [], t / 3
    for k in range(3):
        n = part if k < 2 else frames - 2 * part
        centre = int(third * k + third / 2)
        a = max(0, min(t - n, centre - n // 2))
        pieces.append(x[a:a + n])
    return torch.cat(pieces)


@torch.no_grad()
def run_edit(bundle, latent: dict, text: pipeline.TextConditioning15, *, seed: int = 0,
             settings: Optional[pipeline.SamplerSettings15] = None, refer_latents: Sequence = (),
             progress: Optional[ProgressHook] = None, prepare: Prepare = None) -> dict:
    """Sample an edit LATENT (text: already encoded with the task's instruction, see
    :func:`task_fields`) -> the sampled edit LATENT over the same window."""
    edit, plan, samples = _edit_of(latent)
    task = edit["task"]
    kind = bundle.variant.sampler_kind
    if task in STEM_TASKS and kind != "base":
        raise InputError(f"task: {task} needs an ACE-Step 1.5 base model (acestep-v15-base or xl-base); the loaded "
                         f"model is {bundle.variant.kind}. Turbo and sft models do text2music, repaint, extend, "
                         "retake and cover")
    s = (settings or pipeline.SamplerSettings15()).resolved(kind)
    model = bundle.model
    batch, frames = samples.shape[0], plan.window_frames
    silence = bundle.silence(max(frames, model.config.timbre_fix_frame))  # [1, S, 64]
    sil = silence[:, :frames].expand(batch, frames, pipeline.LATENT_CHANNELS)
    ones = torch.ones(batch, frames, dtype=torch.bool)
    x0 = None if task == "retake" else _window_source(bundle, edit, plan, samples, seed, progress, prepare)
    if x0 is not None and x0.shape[0] != batch:
        x0 = x0.expand(batch, -1, -1)
    _prepare(prepare, "model")
    text = text.repeat(batch)
    refer = _refer(model, refer_latents, batch)
    generators = seed_generators(seed, batch)
    if task == "retake":
        noise = initial_noise(seed_generators(edit["original_seed"], batch), batch, frames,
                              retake_generator=generators, retake_variance=edit["variance"])
    else:
        noise = initial_noise(generators, batch, frames)
    noise = noise.to(model.device)
    kw = {}
    mask = None
    if task in ("repaint", "extend", "lego"):
        mask = plan.mask(batch)
        config = resolve_repaint_config(plan.mode, plan.strength)
        src = x0 if task == "lego" else torch.where(mask[..., None], sil, x0)
        cond = pipeline.build_condition(model, text, src, mask, silence, refer=refer)
        kw["repaint"] = RepaintGuide(mask, x0, config.injection_ratio, 0)
    elif task == "cover":
        covers = torch.full((batch,), 0 if edit.get("cover_mode") == "remix raw" else 1)
        cond = pipeline.build_condition(model, text, x0, ones, silence, is_covers=covers, refer=refer)
        kw.update(audio_cover_strength=edit["audio_cover_strength"], cover_noise_strength=edit["cover_noise_strength"],
                  cover_src=x0.to(model.device))
        if edit["audio_cover_strength"] < 1.0:
            kw["non_cover_cond"] = pipeline.build_condition(model, text, sil, ones, silence, refer=refer, plain=True)
    elif task in ("extract", "complete"):
        cond = pipeline.build_condition(model, text, x0, ones, silence, refer=refer)
    else:  # retake: text2music with mixed noise
        cond = pipeline.build_condition(model, text, sil, ones, silence, refer=refer)
    schedule = make_schedule(kind, s.steps, s.shift, s.timesteps)
    out = sample(DiTVelocity(model.decoder, progress), cond, noise, schedule, method=s.method, generator=generators,
                 dcw=default_dcw("turbo") if s.dcw else DCW_OFF,
                 guidance=None if kind == "turbo" else pipeline._guidance(s),
                 null_condition_emb=model.null_condition_emb, progress=progress, **kw)
    if mask is not None:
        out = blend_regions(out.float().cpu(), x0, mask, resolve_repaint_config(plan.mode, plan.strength).crossfade_frames)
    result = _latent(out.float().cpu().transpose(1, 2).contiguous())
    result[EDIT_KEY] = {**edit, "stage": "sampled", "seed": int(seed), "encoded": True}
    return result


# ------------------------------------------------------------------------------------------------
# decoding
# ------------------------------------------------------------------------------------------------
def _splice_mask(plan: EditPlan15, length: int, crossfade: int) -> torch.Tensor:
    ws = plan.window[0]
    m = torch.zeros(length)
    for a, b in plan.regions:
        m = torch.maximum(m, splice_mask(length, max(0, a - ws), max(0, min(length, b - ws)), crossfade))
    return m


@torch.no_grad()
def decode_edit(bundle, latent: dict, progress: Optional[ProgressHook] = None, prepare: Prepare = None) -> dict:
    """Decode a sampled edit LATENT to 48 kHz stereo; repaint/extend are spliced into the source
    (the output has the source's length plus any extension)."""
    edit, plan, samples = _edit_of(latent)
    if edit.get("stage") != "sampled":
        raise InputError("latent: this edit has not been sampled yet; connect it to the ACE-Step KSampler first")
    _prepare(prepare, "vae")
    decoded = bundle.vae.decode(samples.float(), progress=progress).float().cpu()  # [B, 2, W·1920]
    src = edit.get("source")
    if plan.task not in ("repaint", "extend", "lego") or not src:
        return {"waveform": decoded[..., :plan.total] if plan.task != "retake" else decoded, "sample_rate": RATE}
    ws, we = plan.window
    out = _timeline_audio(src, plan, 0, plan.total)
    out = out.expand(decoded.shape[0], -1, -1).clone()
    n = min(decoded.shape[-1], plan.total - ws)
    config = resolve_repaint_config(plan.mode, plan.strength)
    if config.splice:
        m = _splice_mask(plan, n, int(config.wav_crossfade_sec * RATE))
        out[..., ws:ws + n] = m * decoded[..., :n] + (1.0 - m) * out[..., ws:ws + n]
    else:
        out[..., ws:ws + n] = decoded[..., :n]
    return {"waveform": out, "sample_rate": RATE}


__all__ = [
    "COVER_MODES", "EDIT_KEY", "EditPlan15", "MAX_EXTEND_SECONDS", "SOURCE_KEY", "STEM_TASKS", "TASKS",
    "blend_regions", "check_audio", "cover_latent", "decode_edit", "encode_source", "is_edit_latent",
    "outpaint_latent", "reference_clip", "repaint_latent", "retake_latent", "run_edit", "stem_latent",
    "task_fields",
]
