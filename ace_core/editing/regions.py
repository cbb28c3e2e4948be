"""Time ranges of the editing nodes, resolved to seconds and latent frames, with validation.

The parameters follow RunComfy's ACE-Step endpoints:

* inpaint (``RepaintMask``): ``start_time`` / ``end_time`` in seconds, each measured from the
  track's ``start`` or its ``end`` (``*_relative_to``; default ``start``; ``end_time`` default 30);
* outpaint (``Outpaint``): ``extend_before_duration`` / ``extend_after_duration`` in seconds,
  0-240 each (defaults 0 and 30).

Timelines. Every edit is described on the *source time* axis: seconds from the first source
sample (negative before it, for a left extension). The latent *timeline* is the (padded) latent of
the edited song: frame ``f`` covers source time ``[(f - offset) / fps, ...)`` where ``offset`` is
the number of left-extension frames and ``fps`` the family's frames per second (the
:class:`~ace_core.latent_spec.LatentSpec` every function takes; ACE-Step v1: 4096 samples at
44.1 kHz per frame, ≈ 10.77 frames per second).

Frames. Repaint regions use the official truncating ``spec.frames(sec)`` (v1:
``int(sec * 44100 / 512 / 8)``) for both ends, so the regenerated frames are exactly the official
ones (an end at the source's end takes the last, partial frame too); the waveform splice
(``seams.py``) then cuts at the exact sample. Extensions are rounded *up* to whole frames so the
new audio covers the requested duration exactly (the splice trims the surplus).

Errors are :class:`~ace_core.errors.InputError` naming the node input and the allowed range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from typing import Optional

from ..errors import InputError
from ..latent_spec import LatentSpec

__all__ = [
    "MAX_SOURCE_SECONDS", "MAX_EXTEND_SECONDS", "MAX_TIME_SECONDS", "ANCHORS", "RepaintRegion", "resolve_time",
    "resolve_repaint_region", "Extension", "resolve_extension",
]

MAX_SOURCE_SECONDS = 3600.0
"""Sources up to 60 minutes can be edited (through a window of at most 240 s)."""
MAX_EXTEND_SECONDS = 240.0
"""RunComfy's range for ``extend_before_duration`` / ``extend_after_duration``."""
MAX_TIME_SECONDS = MAX_SOURCE_SECONDS
"""Range of ``start_time`` / ``end_time`` (0 .. 3600 s: any point of a 60-minute source)."""
ANCHORS = ("start", "end")
_EPS = 1e-6


def _number(value, name: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a number of seconds in [{low:g}, {high:g}], got {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{name}: expected a finite number of seconds in [{low:g}, {high:g}], got {value!r}")
    if number < low or number > high:
        raise InputError(f"{name}: {number:g} s is outside the allowed range [{low:g}, {high:g}] s")
    return number


def _checked_source(spec: LatentSpec, source_seconds) -> float:
    """A source duration in (one frame, 60 min], else InputError naming ``source``."""
    frames_to_seconds = spec.seconds
    try:
        seconds = float(source_seconds)
    except (TypeError, ValueError):
        raise InputError(f"source: expected a duration in seconds, got {source_seconds!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise InputError(f"source: the source audio is empty ({source_seconds!r} s); give at least "
                         f"{frames_to_seconds(1):.3f} s of audio")
    if seconds > MAX_SOURCE_SECONDS + _EPS:
        raise InputError(
            f"source: {seconds / 60:.1f} min is longer than the {MAX_SOURCE_SECONDS / 60:g} min AceForge edits; "
            "trim the audio first")
    if seconds < frames_to_seconds(1) - _EPS:
        raise InputError(f"source: {seconds:.3f} s is shorter than one latent frame "
                         f"({frames_to_seconds(1):.3f} s); give a longer source")
    return seconds


def resolve_time(value, anchor: str, source_seconds: float, *, name: str) -> float:
    """Seconds from the source start for ``value`` measured from ``anchor`` (``start`` or ``end``)."""
    if anchor not in ANCHORS:
        raise InputError(f"{name}_relative_to: unknown value {anchor!r}; allowed: {', '.join(ANCHORS)}")
    number = _number(value, name, 0.0, MAX_TIME_SECONDS)
    return number if anchor == "start" else source_seconds - number


def _describe(value: float, anchor: str) -> str:
    return f"{value:g} s from the {anchor}"


@dataclass(frozen=True)
class RepaintRegion:
    """A resolved repaint region.

    ``start_seconds`` / ``end_seconds``: source time of the region (exact; the splice cuts here).
    ``start_frame`` / ``end_frame``: latent frames ``[start, end)`` regenerated (official ``int()``).
    ``source_seconds`` / ``source_frames``: the source's duration and latent length.
    """

    start_seconds: float
    end_seconds: float
    start_frame: int
    end_frame: int
    source_seconds: float
    source_frames: int

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame

    @property
    def seconds(self) -> float:
        return self.end_seconds - self.start_seconds


def resolve_repaint_region(spec: LatentSpec, start_time, start_time_relative_to: str, end_time,
                           end_time_relative_to: str, source_seconds: float, source_frames: Optional[int] = None,
                           max_window_seconds: Optional[float] = None) -> RepaintRegion:
    """Resolve RunComfy-style ``start_time`` / ``end_time`` (with anchors) against a source.

    Raises InputError when an anchor is unknown, a time is negative or over 3600 s, the region
    resolves to ``start >= end``, lies (partly) outside the source, is shorter than one latent frame,
    or is longer than the window (default: the family's ``max_seconds``).
    """
    seconds_to_frame, frames_to_seconds = spec.frames, spec.seconds
    if max_window_seconds is None:
        max_window_seconds = spec.max_seconds
    source_seconds = _checked_source(spec, source_seconds)
    if source_frames is None:
        source_frames = math.ceil(source_seconds * spec.frames_per_second - 1e-9)
    start = resolve_time(start_time, start_time_relative_to, source_seconds, name="start_time")
    end = resolve_time(end_time, end_time_relative_to, source_seconds, name="end_time")
    s_txt = _describe(float(start_time), start_time_relative_to)
    e_txt = _describe(float(end_time), end_time_relative_to)
    if start >= end - _EPS:
        raise InputError(
            f"start_time, end_time: the region resolves to {start:.3f} s .. {end:.3f} s "
            f"(start_time {s_txt}, end_time {e_txt}, source {source_seconds:.3f} s); "
            "start_time must come before end_time")
    if start < -_EPS:
        raise InputError(
            f"start_time: {s_txt} resolves to {start:.3f} s, before the start of the source "
            f"(the source is {source_seconds:.3f} s long; allowed: 0 .. {source_seconds:.3f} s)")
    if start >= source_seconds - _EPS:
        raise InputError(
            f"start_time: {s_txt} resolves to {start:.3f} s, at or past the end of the source "
            f"({source_seconds:.3f} s); the region must lie inside the source (use Outpaint to add audio)")
    if end > source_seconds + _EPS:
        raise InputError(
            f"end_time: {e_txt} resolves to {end:.3f} s, past the end of the source ({source_seconds:.3f} s); "
            "the region must lie inside the source (end_time 0 relative to 'end' reaches the last sample; "
            "use Outpaint to add audio after it)")
    if end < _EPS:
        raise InputError(f"end_time: {e_txt} resolves to {end:.3f} s, at or before the start of the source")
    start, end = max(start, 0.0), min(end, source_seconds)
    if end - start > max_window_seconds + _EPS:
        raise InputError(
            f"start_time, end_time: the region {start:.3f} s .. {end:.3f} s is {end - start:.1f} s long; "
            f"one edit covers at most {max_window_seconds:g} s (edit longer spans in several passes)")
    a, b = seconds_to_frame(start), seconds_to_frame(end)  # the official int() conversion
    if end >= source_seconds - _EPS:
        b = source_frames  # "to the end": the last (partial) frame too
    b = min(b, source_frames)
    if end - start < frames_to_seconds(1) * 0.5:
        raise InputError(
            f"start_time, end_time: the region {start:.3f} s .. {end:.3f} s is shorter than half a latent "
            f"frame ({frames_to_seconds(0.5):.3f} s); make it longer")
    b = max(b, a + 1)
    return RepaintRegion(start, end, a, b, source_seconds, int(source_frames))


@dataclass(frozen=True)
class Extension:
    """A resolved outpaint request.

    ``before_seconds`` / ``after_seconds``: new audio added before / after the source (exact).
    ``left_frames`` / ``right_frames``: latent frames added (enough to cover the request).
    ``keep_frames``: source latent frames kept as they are (the last partial frame is regenerated
    when extending after the source, so new audio starts right where the source ends).
    """

    before_seconds: float
    after_seconds: float
    left_frames: int
    right_frames: int
    keep_frames: int
    source_seconds: float
    source_frames: int

    @property
    def timeline_frames(self) -> int:
        return self.left_frames + self.keep_frames + self.right_frames


def resolve_extension(spec: LatentSpec, extend_before_duration, extend_after_duration, source_seconds: float,
                      source_frames: Optional[int] = None) -> Extension:
    """Resolve RunComfy-style outpaint durations (0-240 s each, not both 0)."""
    source_seconds = _checked_source(spec, source_seconds)
    fps = spec.frames_per_second
    exact_frames = source_seconds * fps
    if source_frames is None:
        source_frames = math.ceil(exact_frames - 1e-9)
    for name, value in (("extend_before_duration", extend_before_duration),
                        ("extend_after_duration", extend_after_duration)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InputError(
                f"{name}: expected a number of seconds in [0, {MAX_EXTEND_SECONDS:g}], got {value!r}") from None
        if math.isfinite(number) and number < 0:
            raise InputError(f"{name}: {number:g} s is negative; an extension is 0 .. {MAX_EXTEND_SECONDS:g} s")
    before = _number(extend_before_duration, "extend_before_duration", 0.0, MAX_EXTEND_SECONDS)
    after = _number(extend_after_duration, "extend_after_duration", 0.0, MAX_EXTEND_SECONDS)
    if before <= 0 and after <= 0:
        raise InputError(
            "extend_before_duration, extend_after_duration: both are 0, so there is nothing to add; "
            f"set at least one to a duration in (0, {MAX_EXTEND_SECONDS:g}] s")
    left = math.ceil(before * fps - 1e-9) if before > 0 else 0
    if after > 0:
        keep = math.floor(exact_frames + 1e-9)  # whole source frames; a partial last frame is regenerated
        if keep < 1:
            raise InputError(f"source: {source_seconds:.3f} s is shorter than one latent frame; give a longer source")
        right = math.ceil((source_seconds + after) * fps - 1e-9) - keep
    else:
        keep, right = int(source_frames), 0
    return Extension(before, after, left, right, keep, source_seconds, int(source_frames))
