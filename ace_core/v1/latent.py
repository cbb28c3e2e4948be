"""ACE-Step v1 latents: the shape, the time grid and the LATENT dicts the nodes pass around.

Latents are ``(B, 8, 16, T)``: 8 channels x 16 mel bands (the DCAE's compressed mel) x T frames,
one frame per 512 (mel hop) x 8 (DCAE time compression) = 4096 samples at 44.1 kHz
(≈ 10.77 frames per second); one pass generates at most 240 s (2583 frames).
"""

from __future__ import annotations

import torch

from ..errors import InputError
from ..latent_spec import LatentSpec

__all__ = [
    "SAMPLE_RATE", "SAMPLES_PER_FRAME", "FRAMES_PER_SECOND", "LATENT_CHANNELS", "LATENT_HEIGHT", "MAX_SECONDS",
    "LATENT_FAMILY", "LATENT", "frames_for_duration", "seconds_for_frames", "latent_dict", "latent_samples",
    "latent_family", "check_v1_latent",
]

SAMPLE_RATE = 44100
SAMPLES_PER_FRAME = 4096
"""One latent frame = 512 (mel hop) x 8 (DCAE time compression) samples."""
FRAMES_PER_SECOND = SAMPLE_RATE / 512 / 8
LATENT_CHANNELS = 8
LATENT_HEIGHT = 16
MAX_SECONDS = 240.0
"""The model's limit: the official UI's maximum and the extend window (2583 frames)."""
LATENT_FAMILY = "ace_v1"
"""Our tag in LATENT dicts, so a latent of another model family is rejected clearly."""
LATENT = LatentSpec(family=LATENT_FAMILY, frame_shape=(LATENT_CHANNELS, LATENT_HEIGHT), sample_rate=SAMPLE_RATE,
                    samples_per_frame=SAMPLES_PER_FRAME, max_seconds=MAX_SECONDS)


def frames_for_duration(duration: float) -> int:
    """``int(duration·44100/512/8)`` (truncation toward 0, as the official pipeline and ComfyUI)."""
    return int(duration * SAMPLE_RATE / 512 / 8)


def seconds_for_frames(frames: float) -> float:
    return frames * SAMPLES_PER_FRAME / SAMPLE_RATE


def latent_dict(samples: torch.Tensor) -> dict:
    """A ComfyUI LATENT for v1 samples ``(B, 8, 16, T)``, tagged with our model family."""
    return {"samples": samples, "type": "audio", "aceforge_family": LATENT_FAMILY}


def latent_family(samples) -> str:
    """A short description of a latent's model family from its shape (for error messages)."""
    if not isinstance(samples, torch.Tensor):
        return f"not a tensor ({type(samples).__name__})"
    shape = tuple(samples.shape)
    if len(shape) == 4 and shape[1] == 8 and shape[2] == 16:
        return LATENT_FAMILY
    if len(shape) == 3 and shape[1] == 64:
        return "ace_1.5"
    if len(shape) == 4 and shape[1] in (4, 16):
        return "image"
    return f"unknown {shape}"


def latent_samples(latent, name: str = "latent") -> torch.Tensor:
    """The ``(B, 8, 16, T)`` samples of a LATENT dict, or an InputError saying what it is instead.

    Accepts our own latents and ComfyUI's ``EmptyAceStepLatentAudio`` / ``VAEEncodeAudio`` ACE v1
    latents (same layout, no family tag).
    """
    if not isinstance(latent, dict) or "samples" not in latent:
        raise InputError(f"{name}: expected a LATENT (a dict with 'samples'), got {type(latent).__name__}")
    family = latent.get("aceforge_family")
    samples = latent["samples"]
    if family is not None and family != LATENT_FAMILY:
        raise InputError(
            f"{name}: this latent belongs to the model family {family!r}; this node needs an ACE-Step v1 "
            f"latent ({LATENT_FAMILY!r}, shape (batch, 8, 16, frames))"
        )
    shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else None
    if shape is None or len(shape) != 4 or shape[1] != LATENT_CHANNELS or shape[2] != LATENT_HEIGHT:
        hint = ""
        if shape is not None and len(shape) == 3 and shape[1] == 64:
            hint = " (this looks like an ACE-Step 1.5 latent)"
        elif shape is not None and len(shape) == 4 and shape[1] in (4, 16):
            hint = " (this looks like an image latent)"
        raise InputError(
            f"{name}: expected an ACE-Step v1 audio latent of shape (batch, 8, 16, frames), got {shape}{hint}"
        )
    if shape[-1] < 1 or shape[0] < 1:
        raise InputError(f"{name}: the latent is empty (shape {shape}); it needs at least one frame")
    if shape[-1] > frames_for_duration(MAX_SECONDS):
        raise InputError(
            f"{name}: {shape[-1]} frames ({seconds_for_frames(shape[-1]):.1f} s) is over the allowed "
            f"{frames_for_duration(MAX_SECONDS)} frames ({MAX_SECONDS:g} s); for longer sources use RepaintMask "
            "or Outpaint, which work on a window of the song"
        )
    if not bool(torch.isfinite(samples).all()):
        raise InputError(f"{name}: the latent holds NaN or infinite values")
    return samples


def check_v1_latent(latent, name: str = "source") -> torch.Tensor:
    """The ``(B, 8, 16, T)`` samples of an ACE-Step v1 LATENT (any length), else InputError."""
    if not isinstance(latent, dict) or "samples" not in latent:
        raise InputError(f"{name}: expected a LATENT (a dict with 'samples'), got {type(latent).__name__}")
    tag = latent.get("aceforge_family")
    samples = latent["samples"]
    family = latent_family(samples)
    if (tag is not None and tag != LATENT_FAMILY) or family != LATENT_FAMILY:
        found = tag if tag is not None and tag != LATENT_FAMILY else family
        shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else None
        raise InputError(
            f"{name}: this latent is from another model family ({found}, shape {shape}); the editing nodes "
            f"need an ACE-Step v1 latent ({LATENT_FAMILY}, shape (batch, 8, 16, frames)) from AceForge VAE Encode")
    if samples.shape[0] < 1 or samples.shape[-1] < 1:
        raise InputError(f"{name}: the latent is empty (shape {tuple(samples.shape)})")
    return samples
