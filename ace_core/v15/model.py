"""The whole ``model.safetensors`` of an ACE-Step 1.5 checkpoint folder (2B or XL).

:class:`AceStep15Model` only groups the published top-level parts under their key prefixes, so
``load_state_dict(strict=True)`` takes the published keys as they are:

- ``decoder``: the DiT (:class:`~.dit.AceStep15DiT`);
- ``encoder``: the condition encoder (text projector, lyric and timbre encoders, packing);
- ``tokenizer`` / ``detokenizer``: the FSQ audio tokenizer (25 Hz latents -> 5 Hz codes) and
  its inverse (codes -> 25 Hz hints);
- ``null_condition_emb`` (1, 1, enc_hidden): the unconditional encoder state for CFG.

Turbo, base and sft files share this layout; only the weights (and the sampler) differ.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError
from .audio_tokenizer import AudioDetokenizer, AudioTokenizer
from .condition_encoder import AceStep15ConditionEncoder
from .config import AceStep15Config
from .dit import AceStep15DiT


class AceStep15Model(nn.Module):
    """Container of one 1.5 ``model.safetensors``: decoder, encoder, tokenizer, detokenizer, null condition."""

    def __init__(self, config: AceStep15Config, *, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.config = config
        self.decoder = AceStep15DiT(config, **kw)
        self.encoder = AceStep15ConditionEncoder(config, **kw)
        self.tokenizer = AudioTokenizer(config, **kw)
        self.detokenizer = AudioDetokenizer(config, **kw)
        self.null_condition_emb = nn.Parameter(torch.zeros(1, 1, config.enc_hidden, **kw))

    @property
    def dtype(self) -> torch.dtype:
        return self.null_condition_emb.dtype

    @property
    def device(self) -> torch.device:
        return self.null_condition_emb.device

    def null_condition(self, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        """The unconditional encoder states for CFG: ``null_condition_emb`` repeated over the
        whole packed sequence, (B, Le, enc_hidden) like ``encoder_hidden_states`` (a view)."""
        width = self.config.enc_hidden
        if encoder_hidden_states.ndim != 3 or encoder_hidden_states.shape[-1] != width:
            raise InputError(
                f"encoder_hidden_states must be (B, Le, {width}); got {tuple(encoder_hidden_states.shape)}"
            )
        return self.null_condition_emb.expand(*encoder_hidden_states.shape[:2], width)
