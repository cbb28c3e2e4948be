"""ACE-Step v1 conditioning on ComfyUI's CONDITIONING socket.

We use core's own layout, ``[[text_states (B, S, 768), {...}]]`` with the keys core's ACE v1 model
reads (``conditioning_lyrics``: lyric token ids, ``lyrics_strength``), so our conditioning and
core's ``TextEncodeAceStepAudio`` output are interchangeable with the core conditioning nodes
(ConditioningZeroOut, ConditioningSetTimestepRange is ignored, ...). What core has no key for
(masks, the ERG null text states) rides in ``"aceforge_v1"``.

Nodes reach this through :func:`encode_for` / :func:`decode_for`, which pick the codec of the
model's family from :data:`CODECS` (one line per family).
"""

from __future__ import annotations

import logging

import torch

from ..ace_core.errors import InputError
from ..ace_core.v1.latent import LATENT_FAMILY
from ..ace_core.v1.pipeline import TextConditioning, text_embedding_dim

log = logging.getLogger("AceForge")

EXTRA_KEY = "aceforge_v1"


def to_comfy(cond: TextConditioning) -> list:
    extra = {
        "text_mask": cond.text_mask,
        "lyric_mask": cond.lyric_mask,
        "erg_text_states": cond.erg_text_states,
    }
    meta = {
        "pooled_output": None,
        "conditioning_lyrics": cond.lyric_ids,
        "lyrics_strength": float(cond.lyrics_strength),
        EXTRA_KEY: extra,
    }
    return [[cond.text_states, meta]]


def from_comfy(conditioning, name: str, text_dim: int | None = None) -> TextConditioning:
    """A CONDITIONING from our encoder or core's TextEncodeAceStepAudio -> TextConditioning."""
    if not isinstance(conditioning, (list, tuple)) or not conditioning:
        raise InputError(f"{name}: expected a CONDITIONING (a list of [tensor, dict] entries), got {type(conditioning).__name__}")
    if len(conditioning) > 1:
        log.warning("AceForge: %s: %d conditioning entries were combined; ACE-Step uses the first only", name, len(conditioning))
    entry = conditioning[0]
    if not isinstance(entry, (list, tuple)) or len(entry) < 2 or not isinstance(entry[0], torch.Tensor):
        raise InputError(f"{name}: malformed CONDITIONING entry (expected [tensor, dict])")
    states, meta = entry[0], dict(entry[1] or {})
    if states.dim() == 2:
        states = states.unsqueeze(0)
    if states.dim() != 3:
        raise InputError(f"{name}: expected text states of shape (batch, tokens, dim), got {tuple(states.shape)}")
    if text_dim is not None and states.shape[-1] != text_dim:
        raise InputError(
            f"{name}: this conditioning has width {states.shape[-1]}, ACE-Step v1 needs its UMT5 text "
            f"conditioning (width {text_dim}); encode the text with the AceForge text encoder"
        )
    batch, tokens = states.shape[0], states.shape[1]
    extra = meta.get(EXTRA_KEY) or {}
    lyric_ids = meta.get("conditioning_lyrics")
    if lyric_ids is None:
        lyric_ids = torch.zeros(batch, 1, dtype=torch.long)
    lyric_ids = torch.as_tensor(lyric_ids).long()
    if lyric_ids.dim() == 1:
        lyric_ids = lyric_ids.unsqueeze(0)
    text_mask = extra.get("text_mask")
    if text_mask is None or tuple(text_mask.shape) != (batch, tokens):
        text_mask = torch.ones(batch, tokens, dtype=torch.long)
    lyric_mask = extra.get("lyric_mask")
    if lyric_mask is None or tuple(lyric_mask.shape) != tuple(lyric_ids.shape):
        lyric_mask = torch.ones_like(lyric_ids)
    erg = extra.get("erg_text_states")
    if erg is not None and erg.shape != states.shape:
        erg = None
    return TextConditioning(
        text_states=states,
        text_mask=text_mask,
        lyric_ids=lyric_ids,
        lyric_mask=lyric_mask,
        lyrics_strength=float(meta.get("lyrics_strength", 1.0)),
        erg_text_states=erg,
    )


CODECS = {
    LATENT_FAMILY: (to_comfy, lambda conditioning, name, bundle: from_comfy(conditioning, name,
                                                                           text_embedding_dim(bundle))),
}
"""family -> (to_comfy(cond), from_comfy(conditioning, name, bundle))."""


def _codec(model):
    codec = CODECS.get(model.family)
    if codec is None:
        raise InputError(f"model: no CONDITIONING support for the model family {model.family!r}")
    return codec


def encode_for(model, cond) -> list:
    """The family's conditioning as a CONDITIONING for ``model`` (an ``AceModel``)."""
    return _codec(model)[0](cond)


def decode_for(model, conditioning, name: str):
    """A CONDITIONING -> the family's conditioning for ``model`` (checked against its width)."""
    return _codec(model)[1](conditioning, name, model.bundle)
