"""The loaded ACE-Step v1 model: every module a generation needs, in one object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..model_bundle import ModuleBundle

__all__ = ["AceStepV1"]


@dataclass
class AceStepV1(ModuleBundle):
    """ACE-Step v1 (3.5B) as loaded by :func:`ace_core.v1.loader.load_v1`.

    dit: :class:`~ace_core.v1.dit.AceStepDiT` (latent (B, 8, 16, T) denoiser + lyric encoder);
    text_encoder: :class:`~ace_core.v1.umt5.UMT5Encoder` (ids (B, S) -> (B, S, 768));
    text_tokenizer: :class:`~ace_core.v1.text_tokenizer.UMT5Tokenizer` (texts -> ids, mask);
    vae: :class:`~ace_core.v1.music_vae.MusicVAE` (waveform <-> latent);
    source: the file or folder it came from; dtype: the compute dtype the weights were cast to;
    layout: ``"comfy"`` (all-in-one file), ``"official"`` (four folders) or ``""`` (built in memory);
    skipped: checkpoint keys deliberately not loaded -> reason.
    """

    dit: Any
    text_encoder: Any
    text_tokenizer: Any
    vae: Any
    source: str
    dtype: torch.dtype
    layout: str = ""
    skipped: dict = field(default_factory=dict, repr=False)

    MODEL_FAMILY = "ace-step-v1"

    @property
    def device(self) -> torch.device:
        return next(self.dit.parameters()).device

    def modules(self) -> dict:
        """The three weight-holding modules by role."""
        return {"dit": self.dit, "text_encoder": self.text_encoder, "vae": self.vae}
