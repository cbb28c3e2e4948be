"""What a model family's latent looks like: its shape and its time grid.

Every family's latent keeps time on the last axis: ``(B, *frame_shape, T)``. One latent frame
covers ``samples_per_frame`` samples at ``sample_rate``; ``max_seconds`` is the longest stretch
the model generates (and the editing window) in one pass. The editing and long-source code take
a spec instead of one family's constants.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LatentSpec:
    """Shape and time grid of one family's latents.

    family: the tag LATENT dicts carry (``aceforge_family``). frame_shape: the per-item dims
    before the time axis, e.g. (8, 16) for ACE-Step v1. sample_rate / samples_per_frame: the
    audio rate and the samples one frame covers. max_seconds: the longest generation.
    """

    family: str
    frame_shape: tuple
    sample_rate: int
    samples_per_frame: int
    max_seconds: float

    @property
    def channels(self) -> int:
        return int(self.frame_shape[0])

    @property
    def layout(self) -> str:
        """The shape as text, e.g. ``(batch, 8, 16, frames)``."""
        return "(" + ", ".join(["batch", *(str(d) for d in self.frame_shape), "frames"]) + ")"

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.samples_per_frame

    @property
    def max_frames(self) -> int:
        return self.frames(self.max_seconds)

    def frames(self, seconds: float) -> int:
        """Latent frames for ``seconds``: ``int(seconds·sample_rate / samples_per_frame)`` (truncated)."""
        return int(seconds * self.sample_rate / self.samples_per_frame)

    def seconds(self, frames: float) -> float:
        return frames * self.samples_per_frame / self.sample_rate

    def shape(self, batch: int, frames: int) -> tuple:
        return (int(batch), *self.frame_shape, int(frames))

    def zeros(self, batch: int, frames: int, device=None) -> torch.Tensor:
        return torch.zeros(self.shape(batch, frames), device=device)

    def matches(self, samples) -> bool:
        """True for a tensor of this layout (any batch and length)."""
        return (isinstance(samples, torch.Tensor) and samples.dim() == len(self.frame_shape) + 2
                and tuple(samples.shape[1:-1]) == tuple(self.frame_shape))


SOURCE_LENGTH_KEY = "aceforge_source_length"
"""LATENT key: ``{"seconds": float, "frames": int}`` of the audio a latent was encoded from. Frames
round the audio up to whole latent frames; the decode cuts the padding off again, so an
audio-to-audio result is as long as its source (while the latent keeps that many frames)."""


def with_source_length(latent: dict, samples: int, sample_rate: int) -> dict:
    """``latent`` tagged with the length of the audio it encodes (``samples`` at ``sample_rate``)."""
    frames = int(latent["samples"].shape[-1])
    return {**latent, SOURCE_LENGTH_KEY: {"seconds": int(samples) / int(sample_rate), "frames": frames}}


def keep_source_length(source: dict, out: dict) -> dict:
    """``out`` (a sampled LATENT) with ``source``'s length tag when both have the same frames."""
    length = source.get(SOURCE_LENGTH_KEY) if isinstance(source, dict) else None
    if isinstance(length, dict) and int(out["samples"].shape[-1]) == length.get("frames"):
        out = {**out, SOURCE_LENGTH_KEY: dict(length)}
    return out


def trim_to_source_length(waveform: torch.Tensor, sample_rate: int, latent) -> torch.Tensor:
    """The decoded ``waveform`` (..., L) cut to the tagged source length (unchanged without a tag,
    or when the latent no longer has the tagged frames)."""
    length = latent.get(SOURCE_LENGTH_KEY) if isinstance(latent, dict) else None
    if not isinstance(length, dict) or int(latent["samples"].shape[-1]) != length.get("frames"):
        return waveform
    n = int(round(float(length["seconds"]) * int(sample_rate)))
    return waveform[..., :n] if 0 < n < waveform.shape[-1] else waveform


__all__ = ["LatentSpec", "SOURCE_LENGTH_KEY", "keep_source_length", "trim_to_source_length", "with_source_length"]
