"""Input checks shared by every family: each raises InputError naming the input and its allowed range."""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .errors import InputError
from .latent_spec import LatentSpec

__all__ = ["validate_audio", "validate_choice", "validate_range", "validate_text"]


def validate_text(tags: str, lyrics: str) -> None:
    """Tags and lyrics may not both be empty (there would be nothing to condition on)."""
    if not (tags or "").strip() and not (lyrics or "").strip():
        raise InputError(
            "tags, lyrics: both are empty; give a style description in tags (e.g. 'pop, piano, female vocals') "
            "and/or lyrics (use '[inst]' for an instrumental)"
        )


def validate_choice(value: str, choices: Sequence[str], name: str) -> str:
    if value not in choices:
        raise InputError(f"{name}: unknown value {value!r}; allowed: {', '.join(choices)}")
    return value


def validate_range(value, low, high, name: str, integer: bool = False):
    """``low <= value <= high`` (None for an open side); returns the value as int/float."""
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a number, got {value!r}") from None
    if integer and number != value and not (isinstance(value, float) and value.is_integer()):
        raise InputError(f"{name}: expected a whole number, got {value!r}")
    if not integer and not math.isfinite(number):
        raise InputError(f"{name}: expected a finite number, got {value!r}")
    if (low is not None and number < low) or (high is not None and number > high):
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise InputError(f"{name}: {value!r} is outside the allowed range [{lo}, {hi}]")
    return number


def validate_audio(waveform: torch.Tensor, sample_rate, spec: LatentSpec, name: str = "audio") -> torch.Tensor:
    """A ``(B, C, L)`` (or ``(C, L)``) float waveform with samples, finite values, a positive rate and
    at most the family's ``spec.max_seconds``."""
    if not isinstance(waveform, torch.Tensor):
        raise InputError(f"{name}: expected a waveform tensor, got {type(waveform).__name__}")
    if waveform.dim() == 2:
        waveform = waveform.unsqueeze(0)
    if waveform.dim() != 3:
        raise InputError(f"{name}: expected a waveform of shape (batch, channels, samples), got {tuple(waveform.shape)}")
    if waveform.shape[-1] == 0:
        raise InputError(f"{name}: the audio is empty (0 samples); give at least {spec.seconds(1):.3f} s")
    if waveform.shape[1] == 0 or waveform.shape[0] == 0:
        raise InputError(f"{name}: the audio has no channels or no batch items (shape {tuple(waveform.shape)})")
    if not waveform.is_floating_point():
        waveform = waveform.float()
    if not bool(torch.isfinite(waveform).all()):
        bad = int((~torch.isfinite(waveform)).sum())
        raise InputError(f"{name}: the audio holds {bad} NaN or infinite sample(s); all samples must be finite")
    try:
        rate = int(sample_rate)
    except (TypeError, ValueError):
        raise InputError(f"{name}: sample_rate must be a positive integer, got {sample_rate!r}") from None
    if rate <= 0:
        raise InputError(f"{name}: sample_rate must be a positive integer, got {sample_rate!r}")
    seconds = waveform.shape[-1] / rate
    if seconds > spec.max_seconds + 1e-6:
        raise InputError(
            f"{name}: {seconds:.1f} s is longer than the allowed {spec.max_seconds:g} s; trim the audio first"
        )
    return waveform
