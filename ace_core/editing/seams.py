"""Seams of the time-range edits: a latent-domain feather and a waveform splice.

Two things make an edit inaudible at its edges, beyond the official (hard-mask) method:

1. **Latent feather** (:func:`edit_mask`). The repaint mask is 1 on the regenerated frames and 0
   on kept frames. With ``feather`` frames the mask ramps (raised cosine) over that many frames at
   each edge that has kept audio next to it. For a repaint the ramp lies *inside* the region (its
   first and last frames stay close to the source); for an extension it lies on the *source* side
   (the new audio has no source to blend with), so the last/first kept frames are partly
   regenerated. ``feather = 0`` is the official hard mask.
2. **Waveform splice** (:func:`splice`). After decoding, the source waveform is copied back
   everywhere outside the edited time ranges. At each edge a crossfade of ``crossfade`` samples is
   placed on the kept side (``[a - n, a)`` before a range ``[a, b)``, ``[b, b + n)`` after it): it fades
   from the source into the decoded audio. Samples outside ranges + crossfades are copied, never
   computed, so they are bit-identical to the source. Curves: ``equal_power`` (sin/cos, constant
   power for uncorrelated signals, the default) or ``linear`` (constant amplitude for correlated
   ones).

All splice positions are sample indices of the *output* at the source's sample rate.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ..errors import InputError

__all__ = ["CROSSFADE_CURVES", "edit_mask", "crossfade_ramps", "splice", "diff_rms",
           "edge_jump_rms", "jump_profile"]

CROSSFADE_CURVES = ("equal_power", "linear")


def _ramp(n: int) -> torch.Tensor:
    """Raised-cosine ramp ``(n,)`` strictly inside (0, 1), rising: 0.5 − 0.5·cos(π·(i+1)/(n+1))."""
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return (0.5 - 0.5 * torch.cos(math.pi * i / (n + 1))).float()


def edit_mask(frames: int, ranges: Sequence[tuple[int, int]], feather: int = 0, *,
              inward: bool = True) -> torch.Tensor:
    """The regenerate mask ``(frames,)`` float32 in [0, 1] over a latent timeline.

    ``ranges``: frame ranges ``[a, b)`` to regenerate (value 1). ``feather``: ramp length in frames
    at every edge that has kept frames next to it (an edge at frame 0 or ``frames`` has none).
    ``inward=True`` puts the ramp inside the range (repaint; at most half the range each side);
    ``inward=False`` puts it outside, on the kept frames (extension). With ``feather = 0`` the
    mask is exactly 0/1 (the official hard mask).
    """
    frames = int(frames)
    feather = max(int(feather), 0)
    mask = torch.zeros(frames, dtype=torch.float32)
    for a, b in ranges:
        a, b = max(int(a), 0), min(int(b), frames)
        if b <= a:
            continue
        mask[a:b] = 1.0
    if feather == 0:
        return mask
    for a, b in ranges:
        a, b = max(int(a), 0), min(int(b), frames)
        if b <= a:
            continue
        if inward:
            n = min(feather, (b - a) // 2)
            if n <= 0:
                continue
            ramp = _ramp(n)
            if a > 0:
                mask[a:a + n] = torch.minimum(mask[a:a + n], ramp)
            if b < frames:
                mask[b - n:b] = torch.minimum(mask[b - n:b], ramp.flip(0))
        else:
            if a > 0:
                n = min(feather, a)
                ramp = _ramp(feather)[-n:]  # the part of the rising ramp nearest the range
                mask[a - n:a] = torch.maximum(mask[a - n:a], ramp)
            if b < frames:
                n = min(feather, frames - b)
                ramp = _ramp(feather).flip(0)[:n]
                mask[b:b + n] = torch.maximum(mask[b:b + n], ramp)
    return mask


def crossfade_ramps(n: int, curve: str = "equal_power", dtype=torch.float32,
                    device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(fade_out, fade_in)`` of length ``n``; fade_in rises from ~0 to ~1 at sample centres."""
    if curve not in CROSSFADE_CURVES:
        raise InputError(f"crossfade_curve: unknown value {curve!r}; allowed: {', '.join(CROSSFADE_CURVES)}")
    r = (torch.arange(n, dtype=torch.float64, device=device) + 0.5) / max(n, 1)
    if curve == "linear":
        fade_in, fade_out = r, 1.0 - r
    else:
        fade_in, fade_out = torch.sin(0.5 * math.pi * r), torch.cos(0.5 * math.pi * r)
    return fade_out.to(dtype), fade_in.to(dtype)


def splice(source: torch.Tensor, generated: torch.Tensor, *, edits: Sequence[tuple[int, int]],
           generated_start: int = 0, source_start: int = 0, out_length: int | None = None,
           crossfade: int = 0, curve: str = "equal_power") -> torch.Tensor:
    """Put ``generated`` audio into ``source`` on the ``edits`` ranges, with crossfades.

    Args:
        source: ``(B or 1, C, Ls)`` the original audio; it occupies output samples
            ``[source_start, source_start + Ls)``.
        generated: ``(B, C, Lg)`` decoded audio at the same rate; it occupies output samples
            ``[generated_start, generated_start + Lg)``.
        edits: output sample ranges ``[a, b)`` taken from ``generated``. Every output sample
            outside the source must be inside one of them.
        out_length: output length (default: the end of the source).
        crossfade: crossfade length in samples, placed on the kept side of each edge and
            shortened where the source or the generated audio does not reach.
        curve: ``equal_power`` or ``linear``.

    Returns ``(B, C, out_length)`` in the source's dtype. Samples outside ``edits`` and their
    crossfades are copies of the source.
    """
    if source.dim() != 3 or generated.dim() != 3:
        raise InputError(f"splice: expected (batch, channels, samples) waveforms, got source "
                         f"{tuple(source.shape)} and generated {tuple(generated.shape)}")
    if source.shape[1] != generated.shape[1]:
        raise InputError(f"splice: channel counts differ (source {source.shape[1]}, generated {generated.shape[1]})")
    batch = max(source.shape[0], generated.shape[0])
    if source.shape[0] not in (1, batch) or generated.shape[0] not in (1, batch):
        raise InputError(f"splice: batch sizes differ (source {source.shape[0]}, generated {generated.shape[0]})")
    src_len, gen_len = source.shape[-1], generated.shape[-1]
    src_a, src_b = int(source_start), int(source_start) + src_len
    gen_a, gen_b = int(generated_start), int(generated_start) + gen_len
    if out_length is None:
        out_length = src_b
    out_length = int(out_length)
    edits = sorted((max(int(a), 0), min(int(b), out_length)) for a, b in edits)
    edits = [(a, b) for a, b in edits if b > a]
    for a, b in edits:
        if a < gen_a or b > gen_b:
            raise InputError(f"splice: edit range [{a}, {b}) is not covered by the generated audio [{gen_a}, {gen_b})")
    # every sample outside the source must come from an edit range
    uncovered = [(0, min(src_a, out_length)), (max(src_b, 0), out_length)]
    for lo, hi in uncovered:
        pos = lo
        for a, b in edits:
            if b <= pos or a >= hi:
                continue
            if a > pos:
                break
            pos = max(pos, b)
        if pos < hi:
            raise InputError(f"splice: output samples [{pos}, {hi}) are neither source nor edited audio")

    dtype = source.dtype
    out = torch.empty(batch, source.shape[1], out_length, dtype=dtype, device=source.device)
    lo, hi = max(src_a, 0), min(src_b, out_length)
    if hi > lo:
        out[:, :, lo:hi] = source[:, :, lo - src_a:hi - src_a]  # broadcast over the batch: a copy
    gen = generated.to(device=source.device, dtype=dtype)
    for a, b in edits:
        out[:, :, a:b] = gen[:, :, a - gen_a:b - gen_a]

    crossfade = max(int(crossfade), 0)
    if crossfade == 0:
        return out
    # kept stretches between edits, each crossfaded on the sides that touch an edit
    bounds = [(-1, 0)] + edits + [(out_length, out_length + 1)]
    for (_, prev_b), (next_a, _) in zip(bounds[:-1], bounds[1:]):
        kept_a, kept_b = max(prev_b, 0), min(next_a, out_length)
        if kept_b <= kept_a:
            continue
        # usable region: source and generated both present
        use_a, use_b = max(kept_a, src_a, gen_a), min(kept_b, src_b, gen_b)
        if use_b <= use_a:
            continue
        left_edge = prev_b > 0 and prev_b == kept_a  # an edit ends here
        right_edge = next_a < out_length and next_a == kept_b  # an edit starts here
        span = use_b - use_a
        n_left = min(crossfade, span if not right_edge else span // 2) if left_edge and use_a == kept_a else 0
        n_right = min(crossfade, span - n_left) if right_edge and use_b == kept_b else 0
        if n_left > 0:  # generated -> source after an edit
            fade_out, fade_in = crossfade_ramps(n_left, curve, dtype=torch.float32, device=source.device)
            g = gen[:, :, kept_a - gen_a:kept_a - gen_a + n_left].float()
            s = source[:, :, kept_a - src_a:kept_a - src_a + n_left].float()
            out[:, :, kept_a:kept_a + n_left] = (g * fade_out + s * fade_in).to(dtype)
        if n_right > 0:  # source -> generated before an edit
            fade_out, fade_in = crossfade_ramps(n_right, curve, dtype=torch.float32, device=source.device)
            z = kept_b - n_right
            g = gen[:, :, z - gen_a:kept_b - gen_a].float()
            s = source[:, :, z - src_a:kept_b - src_a].float()
            out[:, :, z:kept_b] = (s * fade_out + g * fade_in).to(dtype)
    return out


def diff_rms(wave: torch.Tensor, start: int, end: int) -> float:
    """RMS of the first difference of ``wave[..., start:end]`` (all channels and items)."""
    start, end = max(int(start), 0), min(int(end), wave.shape[-1])
    seg = wave[..., start:end].double()
    if seg.shape[-1] < 2:
        return 0.0
    return float(torch.sqrt(torch.mean(torch.diff(seg, dim=-1) ** 2)))


def edge_jump_rms(wave: torch.Tensor, position: int, sample_rate: int, window_ms: float = 10.0) -> float:
    """The "boundary jump": RMS of the first difference over ``window_ms`` centred on ``position``."""
    half = max(int(round(window_ms * 1e-3 * sample_rate / 2)), 1)
    return diff_rms(wave, position - half, position + half)


def jump_profile(wave: torch.Tensor, start: int, end: int, sample_rate: int, window_ms: float = 10.0) -> torch.Tensor:
    """:func:`edge_jump_rms` of every ``window_ms`` stretch of ``[start, end)`` (hop = half a window)."""
    win = max(int(round(window_ms * 1e-3 * sample_rate)), 2)
    hop = max(win // 2, 1)
    values = [diff_rms(wave, a, a + win) for a in range(int(start), int(end) - win + 1, hop)]
    return torch.tensor(values or [diff_rms(wave, start, end)], dtype=torch.float64)
