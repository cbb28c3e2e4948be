"""Edit plans and windows: repaint / extend a source of up to 60 minutes through a ≤ 240 s window.

An :class:`EditPlan` places an edit on the latent *timeline* of the edited song (source frames,
plus left/right extension frames) and picks the *window* of frames that is actually encoded,
sampled and decoded:

* If the whole timeline fits in the window limit (the family's ``max_seconds``; ACE-Step v1:
  240 s = 2583 frames), the window is the whole timeline (the official behaviour: the model sees
  the entire song).
* Otherwise the window is the regenerated frames plus as much context on both sides as fits,
  centred on the edit and clipped to the timeline. Only the source samples under the window are
  resampled and VAE-encoded (:func:`encode_window`), only the window is sampled, and only the
  regenerated frames plus a margin are decoded (:meth:`EditPlan.decode_range`); the result is
  spliced into the full-length waveform (:func:`splice_window`). Model memory is bounded by the
  window, not the source; the waveforms themselves (source and output) are the only full-length
  buffers.

Axes used below: *timeline frames* (latent frames of the edited song, the family's
:class:`~ace_core.latent_spec.LatentSpec` frames per second), *window frames* (timeline frames
minus the window start), *source time* (seconds from the first source sample; negative inside a
left extension) and *output samples* (the spliced waveform at the source's sample rate; the
output starts ``before_seconds`` before the source). The functions that need the time grid take
the spec as their first argument.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch

from ..audio.resample import resample
from ..errors import InputError
from ..latent_spec import LatentSpec
from .regions import Extension, RepaintRegion
from .seams import edit_mask, splice

__all__ = ["EditPlan", "choose_window", "plan_repaint", "plan_extend", "plan_whole", "source_window_samples",
           "slice_resampled", "encode_window", "splice_window", "DECODE_MARGIN_FRAMES"]

DECODE_MARGIN_FRAMES = 16
"""Extra frames decoded on each side of the regenerated frames (≈ 1.5 s; the DCAE decoder and the
vocoder see real context there, so the audio at the splice points is not an edge effect)."""


def choose_window(spec: LatentSpec, timeline_frames: int, lo: int, hi: int, max_frames: Optional[int] = None,
                  *, what: str = "start_time, end_time") -> tuple[int, int]:
    """Window ``[ws, we)`` of at most ``max_frames`` (default: the family's) containing frames
    ``[lo, hi)``, centred on them."""
    if max_frames is None:
        max_frames = spec.max_frames
    if timeline_frames <= max_frames:
        return 0, int(timeline_frames)
    if hi - lo > max_frames:
        raise InputError(
            f"{what}: the edit spans {spec.seconds(hi - lo):.1f} s of latent frames; one edit is at most "
            f"{spec.seconds(max_frames):.1f} s (edit longer spans in several passes)")
    spare = max_frames - (hi - lo)
    ws = lo - spare // 2
    we = ws + max_frames
    if ws < 0:
        ws, we = 0, max_frames
    if we > timeline_frames:
        ws, we = timeline_frames - max_frames, timeline_frames
    return int(ws), int(we)


@dataclass
class EditPlan:
    """Where an edit happens (see the module docstring for the axes).

    task: ``repaint`` | ``extend`` | ``retake`` | ``flowedit`` (the last two: whole timeline).
    timeline_frames: frames of the edited song. source_offset: left-extension frames (source frame
    0 sits at this timeline frame). keep_frames: source latent frames kept as the x0 (timeline
    ``[source_offset, source_offset + keep_frames)``). source_frames: frames of the full source
    latent. regen: timeline frame ranges ``[a, b)`` regenerated (mask 1 before feathering).
    feather_frames / feather_inward: see :func:`~ace_core.editing.seams.edit_mask`. window: the sampled
    timeline frames ``[ws, we)``. edit_seconds: source-time ranges replaced in the waveform splice.
    source_seconds / before_seconds / after_seconds: source duration and the extensions.
    """

    task: str
    timeline_frames: int
    source_offset: int
    keep_frames: int
    source_frames: int
    regen: list = field(default_factory=list)
    feather_frames: int = 0
    feather_inward: bool = True
    window: tuple = (0, 0)
    edit_seconds: list = field(default_factory=list)
    source_seconds: float = 0.0
    before_seconds: float = 0.0
    after_seconds: float = 0.0

    # --- sizes -----------------------------------------------------------------------------
    @property
    def window_frames(self) -> int:
        return int(self.window[1] - self.window[0])

    @property
    def is_windowed(self) -> bool:
        """True when the window is smaller than the timeline (a long source)."""
        return self.window_frames < self.timeline_frames

    def mask(self) -> torch.Tensor:
        """The regenerate mask over the window frames ``(window_frames,)`` float32 in [0, 1]."""
        full = edit_mask(self.timeline_frames, self.regen, self.feather_frames, inward=self.feather_inward)
        ws, we = self.window
        return full[ws:we].clone()

    def support(self) -> tuple[int, int]:
        """Timeline frames ``[lo, hi)`` where the feathered mask is above 0."""
        full = edit_mask(self.timeline_frames, self.regen, self.feather_frames, inward=self.feather_inward)
        nz = torch.nonzero(full > 0).flatten()
        if nz.numel() == 0:
            return 0, 0
        return int(nz[0]), int(nz[-1]) + 1

    def source_frames_in_window(self) -> tuple[int, int]:
        """Source latent frames ``[fa, fb)`` under the window (``fa == fb`` when none)."""
        ws, we = self.window
        fa = max(ws, self.source_offset) - self.source_offset
        fb = min(we, self.source_offset + self.keep_frames) - self.source_offset
        return int(fa), int(max(fb, fa))

    def pads_in_window(self) -> tuple[int, int]:
        """Frames of left / right extension (zero x0) inside the window."""
        ws, we = self.window
        left = max(0, min(we, self.source_offset) - ws)
        right_start = self.source_offset + self.keep_frames
        right = max(0, we - max(ws, right_start))
        return int(left), int(right)

    def decode_range(self, frames_per_second: float, crossfade_seconds: float = 0.0,
                     margin: int = DECODE_MARGIN_FRAMES) -> tuple[int, int]:
        """Window frames ``[da, db)`` to decode: the regenerated support plus the crossfade and a margin."""
        lo, hi = self.support()
        extra = margin + math.ceil(max(crossfade_seconds, 0.0) * frames_per_second)
        ws, we = self.window
        return int(max(lo - extra, ws) - ws), int(min(hi + extra, we) - ws)

    # --- (de)serialisation for the LATENT dict -------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d["regen"] = [list(r) for r in self.regen]
        d["window"] = list(self.window)
        d["edit_seconds"] = [list(r) for r in self.edit_seconds]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EditPlan":
        names = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in d.items() if k in names}
        kw["regen"] = [tuple(int(x) for x in r) for r in kw.get("regen", [])]
        kw["window"] = tuple(int(x) for x in kw.get("window", (0, 0)))
        kw["edit_seconds"] = [tuple(float(x) for x in r) for r in kw.get("edit_seconds", [])]
        return cls(**kw)


def plan_repaint(spec: LatentSpec, region: RepaintRegion, feather_frames: int = 0,
                 max_window_frames: Optional[int] = None) -> EditPlan:
    """Repaint ``region`` of the source; the feather lies inside the region."""
    plan = EditPlan(
        task="repaint", timeline_frames=region.source_frames, source_offset=0, keep_frames=region.source_frames,
        source_frames=region.source_frames, regen=[(region.start_frame, region.end_frame)],
        feather_frames=int(feather_frames), feather_inward=True,
        edit_seconds=[(region.start_seconds, region.end_seconds)], source_seconds=region.source_seconds)
    lo, hi = plan.support()
    plan.window = choose_window(spec, plan.timeline_frames, lo, hi, max_window_frames)
    return plan


def plan_extend(spec: LatentSpec, ext: Extension, feather_frames: int = 0,
                max_window_frames: Optional[int] = None) -> EditPlan:
    """Extend the source by ``ext``; the feather lies on the source side of each new part."""
    if max_window_frames is None:
        max_window_frames = spec.max_frames
    left, keep, right = ext.left_frames, ext.keep_frames, ext.right_frames
    total = left + keep + right
    regen, edits = [], []
    if left:
        regen.append((0, left))
        edits.append((-ext.before_seconds, 0.0))
    if right:
        regen.append((left + keep, total))
        edits.append((ext.source_seconds, ext.source_seconds + ext.after_seconds))
    plan = EditPlan(
        task="extend", timeline_frames=total, source_offset=left, keep_frames=keep, source_frames=ext.source_frames,
        regen=regen, feather_frames=int(feather_frames), feather_inward=False, edit_seconds=edits,
        source_seconds=ext.source_seconds, before_seconds=ext.before_seconds, after_seconds=ext.after_seconds)
    if total > max_window_frames and left and right:
        raise InputError(
            f"extend_before_duration, extend_after_duration: {ext.before_seconds:g} s + the source "
            f"({ext.source_seconds:.1f} s) + {ext.after_seconds:g} s = "
            f"{ext.before_seconds + ext.source_seconds + ext.after_seconds:.1f} s is over the "
            f"{spec.seconds(max_window_frames):.0f} s window one pass can sample; on a source this long "
            "extend one side at a time (chain two Outpaint passes)")
    lo, hi = plan.support()
    plan.window = choose_window(spec, total, lo, hi, max_window_frames,
                                what="extend_before_duration" if left else "extend_after_duration")
    return plan


def plan_whole(task: str, frames: int) -> EditPlan:
    """Retake / FlowEdit: the whole latent is regenerated (no splice)."""
    return EditPlan(task=task, timeline_frames=int(frames), source_offset=0, keep_frames=int(frames),
                    source_frames=int(frames), regen=[(0, int(frames))], window=(0, int(frames)))


# ---------------------------------------------------------------------------------------------
# encoding the window


def source_window_samples(spec: LatentSpec, plan: EditPlan, length: int, sample_rate: int) -> tuple[int, int]:
    """Source sample range (at ``sample_rate``) under the window's source frames (not padded)."""
    fa, fb = plan.source_frames_in_window()
    a = math.floor(fa * spec.samples_per_frame * sample_rate / spec.sample_rate)
    b = min(math.ceil(fb * spec.samples_per_frame * sample_rate / spec.sample_rate), int(length))
    return int(a), int(max(b, a))


def slice_resampled(wave: torch.Tensor, sample_rate: int, a: int, b: int, target_rate: int) -> torch.Tensor:
    """Samples ``[a, b)`` of ``wave`` resampled to ``target_rate``, computing only that stretch.

    The slice is taken on a grid where both rates align (so the result equals the same samples of
    the whole resampled waveform up to float rounding), with context for the filter on both sides.
    """
    if sample_rate == target_rate:
        return wave[..., a:b]
    g = math.gcd(int(sample_rate), int(target_rate))
    step_in, step_out = sample_rate // g, target_rate // g  # aligned blocks: step_in in == step_out out
    ctx_blocks = math.ceil(2048 / step_out) + 1
    blk_a = max(a // step_out - ctx_blocks, 0)
    blk_b = math.ceil(b / step_out) + ctx_blocks
    part = wave[..., blk_a * step_in:min(blk_b * step_in, wave.shape[-1])]
    res = resample(part.float(), int(sample_rate), int(target_rate))
    off = blk_a * step_out
    return res[..., a - off:b - off]


def encode_window(spec: LatentSpec, plan: EditPlan, encode: Callable[[torch.Tensor, int], torch.Tensor], *,
                  waveform: Optional[torch.Tensor] = None, sample_rate: Optional[int] = None,
                  samples: Optional[torch.Tensor] = None, batch: int = 1) -> torch.Tensor:
    """The window's x0 latent ``(B, *frame_shape, window_frames)``: source frames, zeros on extensions.

    From ``samples`` (an already encoded source latent ``(B, *frame_shape, source_frames)``) when
    given; otherwise only the window's stretch of ``waveform`` (``(B, C, L)`` at ``sample_rate``) is
    resampled to the family's rate and passed to ``encode(wave (B, C, n), spec.sample_rate)``.
    """
    rate, per_frame = spec.sample_rate, spec.samples_per_frame
    fa, fb = plan.source_frames_in_window()
    left, right = plan.pads_in_window()
    parts = []
    if samples is not None:
        core = samples[..., fa:fb].float()
        b = samples.shape[0]
    else:
        if waveform is None or sample_rate is None:
            raise InputError("source: the edit needs the source audio or its encoded latent")
        core = None
        b = waveform.shape[0]
        if fb > fa:
            a_out = fa * per_frame
            total_out = math.ceil(waveform.shape[-1] * rate / int(sample_rate))
            b_out = min(fb * per_frame, total_out)
            piece = slice_resampled(waveform, int(sample_rate), a_out, b_out, rate)
            core = encode(piece, rate).float()
            if core.shape[-1] != fb - fa:  # rounding of the resampled length: trim / repeat the edge
                if core.shape[-1] > fb - fa:
                    core = core[..., :fb - fa]
                else:
                    core = torch.cat([core, core[..., -1:].expand(*core.shape[:-1], fb - fa - core.shape[-1])], -1)
    b = max(b, int(batch))
    if core is not None and core.shape[0] != b:
        core = core.expand(b, *core.shape[1:])
    device = core.device if core is not None else torch.device("cpu")
    if left:
        parts.append(spec.zeros(b, left, device=device))
    if core is not None and core.shape[-1] > 0:
        parts.append(core)
    if right:
        parts.append(spec.zeros(b, right, device=device))
    x0 = torch.cat(parts, dim=-1)
    if x0.shape[-1] != plan.window_frames:
        raise InputError(f"source: the window latent has {x0.shape[-1]} frames, expected {plan.window_frames}")
    return x0


# ---------------------------------------------------------------------------------------------
# splicing the decoded window into the full waveform


def splice_window(spec: LatentSpec, plan: EditPlan, decoded: torch.Tensor, decoded_start_frame: int,
                  source: torch.Tensor, sample_rate: int, *, crossfade_ms: float = 0.0,
                  curve: str = "equal_power") -> torch.Tensor:
    """The full edited waveform at ``sample_rate``.

    Args:
        decoded: ``(B, 2, n)`` decoded audio at the family's rate of timeline frames starting at
            ``decoded_start_frame``.
        source: ``(B or 1, 2, L)`` the stereo source at ``sample_rate``.
    Returns ``(B, 2, round(before·sr) + L + round(after·sr))``; samples outside the edited ranges
    and their crossfades are the source's, bit for bit.
    """
    sr = int(sample_rate)
    length = source.shape[-1]
    new_left = int(round(plan.before_seconds * sr))
    out_length = new_left + length + int(round(plan.after_seconds * sr))
    gen = decoded.float()
    start_seconds = spec.seconds(decoded_start_frame - plan.source_offset)
    if sr != spec.sample_rate:
        gen = resample(gen, spec.sample_rate, sr)
    gen_start = new_left + int(round(start_seconds * sr))
    end_seconds = plan.source_seconds + plan.after_seconds

    def position(t: float) -> int:  # source time -> output sample (exact at the source's ends)
        if abs(t + plan.before_seconds) < 1e-9:
            return 0
        if abs(t - plan.source_seconds) < 1e-9:
            return new_left + length
        if abs(t - end_seconds) < 1e-9:
            return out_length
        return new_left + int(round(t * sr))

    edits = [(max(position(a), 0), min(position(b), out_length)) for a, b in plan.edit_seconds]
    need_end = max([b for _, b in edits] + [0])
    if gen_start + gen.shape[-1] < need_end:  # resampling rounding: at most a few samples short
        short = need_end - (gen_start + gen.shape[-1])
        if short > max(8, sr // 100):
            raise InputError(f"splice: the decoded audio ends {short} samples before the edit does")
        gen = torch.cat([gen, gen[..., -1:].expand(*gen.shape[:-1], short)], dim=-1)
    crossfade = int(round(max(float(crossfade_ms), 0.0) * 1e-3 * sr))
    return splice(source, gen, edits=edits, generated_start=gen_start, source_start=new_left,
                  out_length=out_length, crossfade=crossfade, curve=curve)
