"""Repaint / extend (outpaint) plumbing of ACE-Step 1.5: masks, source latents, blending, splice.

Flow (as upstream's handler and ``generate_audio``):

1. **Padding plan** (:func:`outpaint_plan`): a start < 0 or an end past the source pads the
   waveform with zeros on that side (left by −start seconds, right by end − duration); both
   times shift by the left padding, so the padded span lies inside the region.
2. **Frames** (:func:`region_frames`): ``int(sec·48000 // 1920)``, start clamped to [0, T−1], end
   to [start+1, T].
3. **Masks** (:func:`repaint_masks`): ``repaint_mask`` [B, T] bool is True (generate) on
   [start, end) and False elsewhere (items without a region: all True). The chunk mask the DiT
   sees is either the same range (``explicit``, our default: the original 1.5 behaviour, the
   region is announced to the model) or all True (``auto``: upstream's default since 2026-03,
   meant as "2.0 = model decides" but written into a bool tensor, hence all ones).
4. **Source latents** (:func:`repaint_src_latents`): the clean source with frames [start, end)
   replaced by the silence latent (skipped for lego, whose context keeps the full source).
5. **Sampling** (:mod:`.sampling`): :func:`inject_source` after each of the first
   round(ratio·N) steps, then :func:`boundary_blend` with linear ramps of ``crossfade_frames``
   extending outward from the region.
6. **Waveform splice** (:func:`waveform_splice`), after decoding: the source waveform replaces
   the decoded audio outside the region, with a linear crossfade of ``wav_crossfade_sec`` on
   the kept side. Skipped in ``aggressive`` mode. This is the 1.5-exact splice (ramps
   ``linspace(0,1,n+2)[1:-1]``, per-item ranges); the family-neutral
   :mod:`ace_core.editing.seams` (used by v1) ramps differently.

Mode presets (:func:`resolve_repaint_config`): conservative = (1.0, 25, 0.05 s), aggressive =
(0, 0, 0), balanced = (1−s, round(25·(1−s)), 0.05·(1−s)) with s = strength clamped to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ..errors import InputError

SAMPLE_RATE = 48000
LATENT_HOP = 1920  # waveform samples per latent frame (25 Hz)
CHUNK_MASK_MODES = ("explicit", "auto")
REPAINT_MODES = ("conservative", "balanced", "aggressive")
DEFAULT_CHUNK_MASK_MODE = "explicit"

Region = Optional[tuple[int, int]]  # frames [start, end), or None (no repaint for that item)


# ------------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RepaintConfig:
    injection_ratio: float  # fraction of steps followed by source injection
    crossfade_frames: int  # latent boundary-blend ramp, frames
    wav_crossfade_sec: float  # waveform splice crossfade, seconds
    splice: bool = True  # whether the waveform splice runs (not in aggressive mode)


def resolve_repaint_config(mode: str = "balanced", strength: float = 0.5) -> RepaintConfig:
    """Upstream ``_resolve_repaint_config``; ``strength`` only matters in balanced mode."""
    if mode not in REPAINT_MODES:
        raise InputError(f"repaint_mode: unknown value {mode!r}; allowed: {', '.join(REPAINT_MODES)}")
    s = max(0.0, min(1.0, float(strength)))
    if mode == "aggressive":
        return RepaintConfig(0.0, 0, 0.0, splice=False)
    if mode == "conservative":
        return RepaintConfig(1.0, 25, 0.05)
    inv = 1.0 - s
    return RepaintConfig(inv, round(25 * inv), 0.05 * inv)


@dataclass
class RepaintGuide:
    """What the sampler needs: mask [B, T] bool (True = generate), clean source [B, T, 64]."""

    mask: torch.Tensor
    clean_src: torch.Tensor
    injection_ratio: float = 0.5
    crossfade_frames: int = 12

    def __post_init__(self):
        if self.mask.dim() != 2 or tuple(self.clean_src.shape[:2]) != tuple(self.mask.shape):
            raise InputError(f"repaint: mask {tuple(self.mask.shape)} and source latents "
                             f"{tuple(self.clean_src.shape)} must share [B, T]")
        if not 0.0 <= float(self.injection_ratio) <= 1.0:
            raise InputError(f"repaint_injection_ratio: must be in [0, 1], got {self.injection_ratio}")
        if int(self.crossfade_frames) < 0:
            raise InputError(f"repaint_crossfade_frames: must be ≥ 0, got {self.crossfade_frames}")
        self.mask = self.mask.bool()


# ------------------------------------------------------------------------------------------------
# seconds -> frames, padding
# ------------------------------------------------------------------------------------------------
def sec_to_frame(sec: float, sample_rate: int = SAMPLE_RATE, hop: int = LATENT_HOP) -> int:
    """``int(sec·sample_rate // hop)`` (floor division on floats, as upstream)."""
    return int(sec * sample_rate // hop)


def region_frames(start_sec: float, end_sec: float, frames: int, *, sample_rate: int = SAMPLE_RATE,
                  hop: int = LATENT_HOP) -> tuple[int, int]:
    """Frame range [start, end) of a region in seconds on a T-frame timeline (clamped).

    A negative start counts from a left padding of −start seconds (both ends shift by it), as
    upstream does; times already adjusted by :func:`outpaint_plan` have start ≥ 0.
    """
    if end_sec <= start_sec:
        raise InputError(f"repainting_end: must be after repainting_start ({start_sec} s), got {end_sec} s")
    frames = int(frames)
    if frames < 1:
        raise InputError(f"latent length: must be ≥ 1 frame, got {frames}")
    left = max(0.0, -start_sec)
    start = sec_to_frame(start_sec + left, sample_rate, hop)
    end = sec_to_frame(end_sec + left, sample_rate, hop)
    start = max(0, min(start, frames - 1))
    end = max(start + 1, min(end, frames))
    return start, end


@dataclass(frozen=True)
class PaddingPlan:
    """Zero padding of the source waveform for an extend/outpaint, and the shifted region."""

    left_samples: int
    right_samples: int
    start_sec: float  # region start on the padded timeline
    end_sec: float  # region end on the padded timeline

    def pad(self, wav: torch.Tensor) -> torch.Tensor:
        """[..., L] → [..., left + L + right] with zeros."""
        if self.left_samples == 0 and self.right_samples == 0:
            return wav
        return torch.nn.functional.pad(wav, (self.left_samples, self.right_samples))


def outpaint_plan(source_samples: int, start_sec: float, end_sec: Optional[float], *,
                  sample_rate: int = SAMPLE_RATE) -> PaddingPlan:
    """Upstream ``prepare_padding_info`` for one repaint/lego item.

    ``end_sec`` None or < 0 means the end of the source. start < 0 pads −start seconds on the
    left; an end past the source pads the difference on the right.
    """
    duration = source_samples / sample_rate
    end = duration if end_sec is None or end_sec < 0 else float(end_sec)
    start = 0.0 if start_sec is None else float(start_sec)
    if end <= start:
        raise InputError(f"repainting_end: must be after repainting_start ({start} s), got {end} s")
    left = max(0.0, -start)
    right = max(0.0, end - duration)
    return PaddingPlan(int(left * sample_rate), int(right * sample_rate), start + left, end + left)


# ------------------------------------------------------------------------------------------------
# masks and source latents
# ------------------------------------------------------------------------------------------------
def repaint_masks(regions: Sequence[Region], frames: int, *,
                  chunk_mask_mode: str | Sequence[str] = DEFAULT_CHUNK_MASK_MODE,
                  device=None) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(chunk_mask [B, T] bool, repaint_mask [B, T] bool or None when no item has a region)."""
    modes = [chunk_mask_mode] * len(regions) if isinstance(chunk_mask_mode, str) else list(chunk_mask_mode)
    if len(modes) != len(regions):
        raise InputError(f"chunk_mask_mode: got {len(modes)} modes for {len(regions)} items")
    for m in modes:
        if m not in CHUNK_MASK_MODES:
            raise InputError(f"chunk_mask_mode: unknown value {m!r}; allowed: {', '.join(CHUNK_MASK_MODES)}")
    chunk = torch.ones(len(regions), frames, dtype=torch.bool, device=device)
    repaint = torch.ones_like(chunk)
    for i, region in enumerate(regions):
        if region is None:
            continue
        start, end = region
        repaint[i] = False
        repaint[i, start:end] = True
        if modes[i] == "explicit":
            chunk[i] = repaint[i]
    has_region = any(r is not None for r in regions)
    return chunk, (repaint if has_region else None)


def expand_chunk_mask(chunk_mask: torch.Tensor, channels: int = 64, dtype=torch.float32) -> torch.Tensor:
    """[B, T] bool → [B, T, channels] float (the mask half of the context latents)."""
    return chunk_mask.to(dtype)[..., None].repeat(1, 1, channels)


def repaint_src_latents(clean_src: torch.Tensor, regions: Sequence[Region], silence: torch.Tensor, *,
                        lego: bool = False) -> torch.Tensor:
    """Source latents [B, T, 64] with each item's region replaced by the silence latent.

    ``silence``: [1, ≥T, 64] or [≥T, 64] (see :mod:`.silence`); frames [start, end) of it are used.
    """
    sil = silence[0] if silence.dim() == 3 else silence  # [S, 64]
    if sil.shape[0] < clean_src.shape[1]:
        raise InputError(f"silence latent: {sil.shape[0]} frames, need {clean_src.shape[1]}")
    out = clean_src.clone()
    if lego:
        return out
    for i, region in enumerate(regions):
        if region is not None:
            start, end = region
            out[i, start:end] = sil[start:end].to(out.dtype)
    return out


# ------------------------------------------------------------------------------------------------
# in-loop and after-loop operations
# ------------------------------------------------------------------------------------------------
def inject_source(x: torch.Tensor, clean_src: torch.Tensor, mask: torch.Tensor, t_next: float,
                  noise: torch.Tensor) -> torch.Tensor:
    """Outside ``mask`` (False frames): ``t_next·noise + (1 − t_next)·clean_src``; inside: x."""
    z = t_next * noise + (1.0 - t_next) * clean_src
    return torch.where(mask.bool()[..., None], x, z)


def _ramp(n: int, rising: bool, device=None) -> torch.Tensor:
    r = torch.linspace(0.0, 1.0, n + 2, device=device) if rising else torch.linspace(1.0, 0.0, n + 2, device=device)
    return r[1:-1]


def soft_mask(mask: torch.Tensor, crossfade: int) -> torch.Tensor:
    """[B, T] float: 1 inside the region (first to last True frame), linear ramps of ``crossfade``
    frames outside it (``linspace(0,1,n+2)[1:-1]`` rising before, falling after), 0 elsewhere.
    Rows that are all True or all False are returned as they are."""
    soft = mask.float().clone()
    if crossfade <= 0:
        return soft
    length = mask.shape[1]
    for b in range(mask.shape[0]):
        row = mask[b].bool()
        if bool(row.all()) or not bool(row.any()):
            continue
        idx = torch.nonzero(row).squeeze(-1)
        left, right = int(idx[0]), int(idx[-1]) + 1
        fs = max(left - crossfade, 0)
        if left > fs:
            soft[b, fs:left] = _ramp(left - fs, True, soft.device)
        fe = min(right + crossfade, length)
        if fe > right:
            soft[b, right:fe] = _ramp(fe - right, False, soft.device)
    return soft


def boundary_blend(x: torch.Tensor, clean_src: torch.Tensor, mask: torch.Tensor, crossfade: int) -> torch.Tensor:
    """``m·x + (1 − m)·clean_src`` with m = :func:`soft_mask` (outside the ramps: the source)."""
    m = soft_mask(mask, int(crossfade)).to(x.dtype)[..., None]  # [B, T, 1]
    return m * x + (1.0 - m) * clean_src.to(x.dtype)


def splice_mask(length: int, start: int, end: int, crossfade: int, device=None) -> torch.Tensor:
    """[length] float: 1 on [start, end), linear ramps of ``crossfade`` samples outside, 0 elsewhere."""
    m = torch.zeros(length, device=device)
    m[start:end] = 1.0
    if crossfade <= 0:
        return m
    fs = max(start - crossfade, 0)
    if start > fs:
        m[fs:start] = _ramp(start - fs, True, device)
    fe = min(end + crossfade, length)
    if fe > end:
        m[end:fe] = _ramp(fe - end, False, device)
    return m


def waveform_splice(decoded: torch.Tensor, source: torch.Tensor, starts_sec: Sequence[float],
                    ends_sec: Sequence[float], *, sample_rate: int = SAMPLE_RATE,
                    crossfade_sec: float = 0.025) -> torch.Tensor:
    """Put the source waveform back outside each item's region (upstream repaint splice).

    decoded: [B, C, L] VAE output; source: [B or 1, C, Ls] the (padded) source. Times are on the
    padded timeline. Works on the first min(L, Ls) samples; any decoded tail is appended as is.
    An item whose region covers everything is left untouched.
    """
    if decoded.dim() != 3 or source.dim() != 3:
        raise InputError(f"waveform splice: expected [B, C, L] waveforms, got {tuple(decoded.shape)} "
                         f"and {tuple(source.shape)}")
    batch = decoded.shape[0]
    if len(starts_sec) != batch or len(ends_sec) != batch:
        raise InputError(f"waveform splice: need one region per item ({batch})")
    n = min(decoded.shape[-1], source.shape[-1])
    pred = decoded[..., :n]
    src = source[..., :n].to(device=pred.device, dtype=pred.dtype).expand(batch, -1, -1)
    cf = int(crossfade_sec * sample_rate)
    out = pred.clone()
    for b in range(batch):
        start = max(0, min(int(starts_sec[b] * sample_rate), n))
        end = max(start, min(int(ends_sec[b] * sample_rate), n))
        if start == 0 and end >= n:
            continue
        m = splice_mask(n, start, end, cf, device=pred.device).to(pred.dtype)
        out[b] = m * pred[b] + (1.0 - m) * src[b]
    if decoded.shape[-1] > n:
        out = torch.cat([out, decoded[..., n:]], dim=-1)
    return out


__all__ = [
    "CHUNK_MASK_MODES", "DEFAULT_CHUNK_MASK_MODE", "LATENT_HOP", "PaddingPlan", "REPAINT_MODES",
    "RepaintConfig", "RepaintGuide", "SAMPLE_RATE", "boundary_blend", "expand_chunk_mask",
    "inject_source", "outpaint_plan", "region_frames", "repaint_masks", "repaint_src_latents",
    "resolve_repaint_config", "sec_to_frame", "soft_mask", "splice_mask", "waveform_splice",
]
