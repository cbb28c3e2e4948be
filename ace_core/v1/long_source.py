"""Edit plans and windows: repaint / extend a source of up to 60 minutes through a ≤ 240 s window.

An :class:`EditPlan` places an edit on the latent *timeline* of the edited song (source frames,
plus left/right extension frames) and picks the *window* of frames that is actually encoded,
sampled and decoded:

* If the whole timeline fits in the window limit (240 s = 2583 frames), the window is the whole
  timeline (the official behaviour: the model sees the entire song).
* Otherwise the window is the regenerated frames plus as much context on both sides as fits,
  centred on the edit and clipped to the timeline. Only the source samples under the window are
  resampled and VAE-encoded (:func:`encode_window`), only the window is sampled, and only the
  regenerated frames plus a margin are decoded (:meth:`EditPlan.decode_range`); the result is
  spliced into the full-length waveform (:func:`splice_window`). Model memory is bounded by the
  window, not the source; the waveforms themselves (source and output) are the only full-length
  buffers.

Axes used below: *timeline frames* (latent frames of the edited song, 44100/4096 per second),
*window frames* (timeline frames minus the window start), *source time* (seconds from the first
source sample; negative inside a left extension) and *output samples* (the spliced waveform at
the source's sample rate; the output starts ``before_seconds`` before the source).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch

from ..audio.resample import resample
from ..errors import InputError
from .edit_regions import (
    FRAMES_PER_SECOND,
    MAX_WINDOW_FRAMES,
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    Extension,
    RepaintRegion,
    frames_to_seconds,
)
from .seams import edit_mask, splice

__all__ = ["EditPlan", "choose_window", "plan_repaint", "plan_extend", "plan_whole", "source_window_samples",
           "encode_window", "splice_window", "DECODE_MARGIN_FRAMES"]

DECODE_MARGIN_FRAMES = 16
"""Extra frames decoded on each side of the regenerated frames (≈ 1.5 s; the DCAE decoder and the
vocoder see real context there, so the audio at the splice points is not an edge effect)."""


def choose_window(timeline_frames: int, lo: int, hi: int, max_frames: int = MAX_WINDOW_FRAMES,
                  *, what: str = "start_time, end_time") -> tuple[int, int]:
    """Window ``[ws, we)`` of at most ``max_frames`` containing frames ``[lo, hi)``, centred on them."""
    if timeline_frames <= max_frames:
        return 0, int(timeline_frames)
    if hi - lo > max_frames:
        raise InputError(
            f"{what}: the edit spans {frames_to_seconds(hi - lo):.1f} s of latent frames; one edit is at most "
            f"{frames_to_seconds(max_frames):.1f} s (edit longer spans in several passes)")
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
    feather_frames / feather_inward: see :func:`~ace_core.v1.seams.edit_mask`. window: the sampled
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

    def decode_range(self, crossfade_seconds: float = 0.0, margin: int = DECODE_MARGIN_FRAMES) -> tuple[int, int]:
        """Window frames ``[da, db)`` to decode: the regenerated support plus the crossfade and a margin."""
        lo, hi = self.support()
        extra = margin + math.ceil(max(crossfade_seconds, 0.0) * FRAMES_PER_SECOND)
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


def plan_repaint(region: RepaintRegion, feather_frames: int = 0,
                 max_window_frames: int = MAX_WINDOW_FRAMES) -> EditPlan:
    """Repaint ``region`` of the source; the feather lies inside the region."""
    plan = EditPlan(
        task="repaint", timeline_frames=region.source_frames, source_offset=0, keep_frames=region.source_frames,
        source_frames=region.source_frames, regen=[(region.start_frame, region.end_frame)],
        feather_frames=int(feather_frames), feather_inward=True,
        edit_seconds=[(region.start_seconds, region.end_seconds)], source_seconds=region.source_seconds)
    lo, hi = plan.support()
    plan.window = choose_window(plan.timeline_frames, lo, hi, max_window_frames)
    return plan


def plan_extend(ext: Extension, feather_frames: int = 0,
                max_window_frames: int = MAX_WINDOW_FRAMES) -> EditPlan:
    """Extend the source by ``ext``; the feather lies on the source side of each new part."""
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
            f"{frames_to_seconds(max_window_frames):.0f} s window one pass can sample; on a source this long "
            "extend one side at a time (chain two Outpaint passes)")
    lo, hi = plan.support()
    plan.window = choose_window(total, lo, hi, max_window_frames,
                                what="extend_before_duration" if left else "extend_after_duration")
    return plan


def plan_whole(task: str, frames: int) -> EditPlan:
    """Retake / FlowEdit: the whole latent is regenerated (no splice)."""
    return EditPlan(task=task, timeline_frames=int(frames), source_offset=0, keep_frames=int(frames),
                    source_frames=int(frames), regen=[(0, int(frames))], window=(0, int(frames)))


# ---------------------------------------------------------------------------------------------
# encoding the window


def source_window_samples(plan: EditPlan, length: int, sample_rate: int) -> tuple[int, int]:
    """Source sample range (at ``sample_rate``) under the window's source frames (not padded)."""
    fa, fb = plan.source_frames_in_window()
    a = math.floor(fa * SAMPLES_PER_FRAME * sample_rate / SAMPLE_RATE)
    b = min(math.ceil(fb * SAMPLES_PER_FRAME * sample_rate / SAMPLE_RATE), int(length))
    return int(a), int(max(b, a))


def _slice_at_44k(wave: torch.Tensor, sample_rate: int, a44: int, b44: int) -> torch.Tensor:
    """Samples ``[a44, b44)`` of ``wave`` resampled to 44.1 kHz, computing only that stretch.

    The slice is taken on a grid where both rates align (so the result equals the same samples of
    the whole resampled waveform up to float rounding), with context for the filter on both sides.
    """
    if sample_rate == SAMPLE_RATE:
        return wave[..., a44:b44]
    g = math.gcd(int(sample_rate), SAMPLE_RATE)
    step_in, step_out = sample_rate // g, SAMPLE_RATE // g  # aligned blocks: step_in in == step_out out
    ctx_blocks = math.ceil(2048 / step_out) + 1
    blk_a = max(a44 // step_out - ctx_blocks, 0)
    blk_b = math.ceil(b44 / step_out) + ctx_blocks
    part = wave[..., blk_a * step_in:min(blk_b * step_in, wave.shape[-1])]
    res = resample(part.float(), int(sample_rate), SAMPLE_RATE)
    off = blk_a * step_out
    return res[..., a44 - off:b44 - off]


def encode_window(plan: EditPlan, encode: Callable[[torch.Tensor, int], torch.Tensor], *,
                  waveform: Optional[torch.Tensor] = None, sample_rate: Optional[int] = None,
                  samples: Optional[torch.Tensor] = None, batch: int = 1) -> torch.Tensor:
    """The window's x0 latent ``(B, 8, 16, window_frames)``: source frames, zeros on extensions.

    From ``samples`` (an already encoded source latent ``(B, 8, 16, source_frames)``) when given;
    otherwise only the window's stretch of ``waveform`` (``(B, C, L)`` at ``sample_rate``) is
    resampled and passed to ``encode(wave (B, C, n) at 44.1 kHz, 44100)``.
    """
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
            a44 = fa * SAMPLES_PER_FRAME
            total44 = math.ceil(waveform.shape[-1] * SAMPLE_RATE / int(sample_rate))
            b44 = min(fb * SAMPLES_PER_FRAME, total44)
            piece = _slice_at_44k(waveform, int(sample_rate), a44, b44)
            core = encode(piece, SAMPLE_RATE).float()
            if core.shape[-1] != fb - fa:  # rounding of the resampled length: trim / repeat the edge
                if core.shape[-1] > fb - fa:
                    core = core[..., :fb - fa]
                else:
                    core = torch.cat([core, core[..., -1:].expand(*core.shape[:-1], fb - fa - core.shape[-1])], -1)
    b = max(b, int(batch))
    if core is not None and core.shape[0] != b:
        core = core.expand(b, *core.shape[1:])
    shape = (b, 8, 16)
    device = core.device if core is not None else torch.device("cpu")
    if left:
        parts.append(torch.zeros(*shape, left, device=device))
    if core is not None and core.shape[-1] > 0:
        parts.append(core)
    if right:
        parts.append(torch.zeros(*shape, right, device=device))
    x0 = torch.cat(parts, dim=-1)
    if x0.shape[-1] != plan.window_frames:
        raise InputError(f"source: the window latent has {x0.shape[-1]} frames, expected {plan.window_frames}")
    return x0


# ---------------------------------------------------------------------------------------------
# splicing the decoded window into the full waveform


def splice_window(plan: EditPlan, decoded: torch.Tensor, decoded_start_frame: int, source: torch.Tensor,
                  sample_rate: int, *, crossfade_ms: float = 0.0, curve: str = "equal_power") -> torch.Tensor:
    """The full edited waveform at ``sample_rate``.

    Args:
        decoded: ``(B, 2, n)`` decoded audio at 44.1 kHz of timeline frames starting at
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
    start_seconds = frames_to_seconds(decoded_start_frame - plan.source_offset)
    if sr != SAMPLE_RATE:
        gen = resample(gen, SAMPLE_RATE, sr)
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
