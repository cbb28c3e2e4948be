"""Input checks shared by every family: each raises InputError naming the input and its allowed range."""

from __future__ import annotations

import math
import unicodedata
from typing import Sequence

import torch

from .errors import InputError
from .latent_spec import LatentSpec

__all__ = ["MAX_LYRICS_CHARS", "MAX_TAGS_CHARS", "validate_audio", "validate_choice", "validate_range", "validate_text",
           "visible_text"]


MAX_TAGS_CHARS = 4096
"""The longest tags / caption accepted (both families read at most 256 tokens of it)."""
MAX_LYRICS_CHARS = 16384
"""The longest lyrics accepted: several times a long song (ACE-Step v1 trained on at most 4096 lyric
tokens, 1.5 reads at most 2048). Longer text is refused before it is tokenized."""


def visible_text(text: str) -> str:
    """``text`` without control, format and other invisible characters (NUL, zero-width ...) and
    without surrounding whitespace: what is left to condition on."""
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("C") or ch in "\n\t").strip()


def validate_text(tags: str, lyrics: str, tags_name: str = "tags") -> None:
    """Tags (``tags_name``: ``caption`` for 1.5) and lyrics: each within its stated length, and not
    both empty once control and invisible characters are dropped."""
    tags, lyrics = tags or "", lyrics or ""
    for name, text, limit in ((tags_name, tags, MAX_TAGS_CHARS), ("lyrics", lyrics, MAX_LYRICS_CHARS)):
        if not isinstance(text, str):
            raise InputError(f"{name}: expected text, got {type(text).__name__}")
        if len(text) > limit:
            raise InputError(f"{name}: {len(text)} characters is longer than the allowed {limit}; shorten it")
    if not visible_text(tags) and not visible_text(lyrics):
        raise InputError(
            f"{tags_name}, lyrics: both are empty (or hold only control characters); give a style description "
            f"in {tags_name} (e.g. 'pop, piano, female vocals') and/or lyrics (use '[inst]' (v1) or '[Instrumental]' (1.5) for an instrumental)"
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
    if seconds < spec.seconds(1):  # one rule for every entry point (VAE Encode, audio2audio, edits)
        raise InputError(f"{name}: {seconds:.3f} s is shorter than one latent frame; give at least "
                         f"{spec.seconds(1):.3f} s")
    if seconds > spec.max_seconds + 1e-6:
        raise InputError(
            f"{name}: {seconds:.1f} s is longer than the allowed {spec.max_seconds:g} s; trim the audio first"
        )
    return waveform
