"""Audio codes: text forms and the path from codes to the DiT's 25 Hz hints.

A code is an FSQ index 0..63999 at 5 Hz (one code = 5 latent frames). Users may give codes as
the LM writes them (``<|audio_code_N|>`` tokens) or as integers separated by spaces/commas.
Codes -> FSQ ``codes_to_quantized`` -> detokenizer -> hints [B, 5·N, 64], padded with the silence
latent or cut to the song's length, as upstream prepares ``precomputed_lm_hints_25Hz``.
"""

from __future__ import annotations

import re
from typing import Sequence, Union

import torch

from ...errors import InputError
from ..conditioning import hints_from_codes
from ..prompts import MAX_AUDIO_CODE, audio_code_values

__all__ = ["CODES_PER_SECOND", "FRAMES_PER_CODE", "parse_codes", "codes_text", "codes_to_hints"]

CODES_PER_SECOND = 5
FRAMES_PER_CODE = 5  # 25 Hz latents / 5 Hz codes

CodesLike = Union[str, Sequence[int], torch.Tensor]


def parse_codes(codes: CodesLike, name: str = "audio codes") -> torch.Tensor:
    """``<|audio_code_N|>`` text, integers (text or a sequence) or a tensor -> LongTensor (N,).

    Token text is read as upstream does (values clamped to 0..63999); plain integers must lie in
    that range (InputError naming the first bad one)."""
    if isinstance(codes, torch.Tensor):
        values = codes.reshape(-1).tolist()
    elif isinstance(codes, str):
        if "<|audio_code_" in codes:
            return torch.tensor(audio_code_values(codes), dtype=torch.long)
        words = [w for w in re.split(r"[\s,;]+", codes.strip()) if w]
        bad = [w for w in words if not re.fullmatch(r"\d+", w)]
        if bad:
            raise InputError(f"{name}: {bad[0]!r} is not a code; give <|audio_code_N|> tokens or integers "
                             f"0-{MAX_AUDIO_CODE}")
        values = [int(w) for w in words]
    else:
        values = [int(v) for v in codes]
    if not values:
        raise InputError(f"{name}: empty; give <|audio_code_N|> tokens or integers 0-{MAX_AUDIO_CODE}")
    out = [v for v in values if not 0 <= int(v) <= MAX_AUDIO_CODE]
    if out:
        raise InputError(f"{name}: {out[0]} is out of range; codes are integers 0-{MAX_AUDIO_CODE}")
    return torch.tensor(values, dtype=torch.long)


def codes_text(codes: CodesLike) -> str:
    """The ``<|audio_code_N|>`` string of one item's codes."""
    return "".join(f"<|audio_code_{int(v)}|>" for v in parse_codes(codes).tolist())


@torch.no_grad()
def codes_to_hints(model, codes: torch.Tensor, frames: int, silence: torch.Tensor) -> torch.Tensor:
    """Codes (B, N) -> 25 Hz hints (B, frames, 64) in the model's dtype and device.

    model: :class:`~..model.AceStep15Model` (its FSM quantizer and detokenizer); silence
    [1, ≥frames, 64]: fills frames past the codes (upstream pads the hints with silence).
    """
    if codes.dim() != 2 or codes.shape[1] == 0:
        raise InputError(f"audio codes: expected (batch, count) codes, got shape {tuple(codes.shape)}")
    have = codes.shape[1] * FRAMES_PER_CODE
    hints = hints_from_codes(model, codes.to(model.device), min(frames, have))  # (B, ≤frames, 64)
    if have < frames:
        if silence.shape[1] < frames:
            raise InputError(f"silence latent: {silence.shape[1]} frames, need {frames}")
        pad = silence[:, have:frames].to(hints.device, hints.dtype).expand(hints.shape[0], -1, -1)
        hints = torch.cat([hints, pad], dim=1)
    return hints
