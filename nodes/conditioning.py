"""ACE-Step v1 and 1.5 conditioning on ComfyUI's CONDITIONING socket.

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
from ..ace_core.loading.recognise import ACE_V15
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
    states, meta = _entry(conditioning, name)
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


EXTRA_KEY_V15 = "aceforge_v15"
TIMBRE_KEY = "reference_audio_timbre_latents"
CODES_KEY = "audio_codes"
"""Core's key for the 5 Hz LM's audio codes (a list of int lists, one per item)."""
"""Core's key for ReferenceTimbreAudio latents (a list of [1, 64, T]); our Reference Timbre node uses it too."""


def to_comfy15(cond) -> list:
    """ACE-Step 1.5 conditioning in core's 1.5 layout: the caption states as the tensor,
    ``conditioning_lyrics`` = the lyric token embeddings, timbre latents under core's key."""
    extra = {"text_mask": cond.text_mask, "lyric_mask": cond.lyric_mask, "plain_text_hidden": cond.plain_text_hidden,
             "plain_text_mask": cond.plain_text_mask, "prompts": cond.prompts, "fields": cond.fields}
    meta = {"pooled_output": None, "conditioning_lyrics": cond.lyric_hidden, EXTRA_KEY_V15: extra}
    if cond.reference_latents:
        meta[TIMBRE_KEY] = list(cond.reference_latents)
    if getattr(cond, "audio_codes", None) is not None:
        meta[CODES_KEY] = cond.audio_codes.tolist()  # core's layout: [[int, ...], ...]
    return [[cond.text_hidden, meta]]


def from_comfy15(conditioning, name: str, bundle):
    """A CONDITIONING from our encoder or core's TextEncodeAceStepAudio1.5 -> TextConditioning15."""
    from ..ace_core.v15.pipeline import TextConditioning15

    states, meta = _entry(conditioning, name)
    width = bundle.text_encoder.config.hidden_size
    lyrics = meta.get("conditioning_lyrics")
    if states.shape[-1] != width or not isinstance(lyrics, torch.Tensor) or lyrics.shape[-1] != width:
        raise InputError(
            f"{name}: this is not ACE-Step 1.5 conditioning for the loaded model (text width {states.shape[-1]}, "
            f"the model's Qwen3 text encoder has {width}); encode the text with the AceForge text encoder "
            "and this model")
    if lyrics.dim() == 2:
        lyrics = lyrics.unsqueeze(0)
    extra = meta.get(EXTRA_KEY_V15) or {}
    batch, tokens = states.shape[0], states.shape[1]

    def mask(key, shape):
        m = extra.get(key)
        return m if isinstance(m, torch.Tensor) and tuple(m.shape) == tuple(shape) else torch.ones(shape, dtype=torch.long)

    plain = extra.get("plain_text_hidden")
    plain = plain if isinstance(plain, torch.Tensor) else states
    timbre = meta.get(TIMBRE_KEY) or []
    for k, ref in enumerate(timbre):
        if not isinstance(ref, torch.Tensor) or ref.dim() not in (2, 3) or ref.shape[-2] != 64 or ref.shape[-1] < 1:
            raise InputError(f"{name}: reference timbre latent {k + 1} is not an ACE-Step 1.5 latent (64, frames) "
                             "with at least one frame; give a reference clip longer than 0 s")
    return TextConditioning15(states, mask("text_mask", (batch, tokens)), lyrics,
                              mask("lyric_mask", tuple(lyrics.shape[:2])), plain,
                              mask("plain_text_mask", tuple(plain.shape[:2])), list(extra.get("prompts") or []),
                              extra.get("fields"), tuple(timbre), _codes(meta.get(CODES_KEY), name))


def _codes(codes, name: str):
    """Core's ``audio_codes`` ([[int, ...]] or a tensor) -> LongTensor [B, N], or None."""
    if codes is None or (isinstance(codes, (list, tuple)) and not codes):
        return None
    from ..ace_core.v15.lm.codes import parse_codes

    rows = codes if isinstance(codes, (list, tuple)) and isinstance(codes[0], (list, tuple, torch.Tensor)) else [codes]
    parsed = [parse_codes(r, f"{name}: audio codes") for r in rows]
    if len({len(r) for r in parsed}) != 1:
        raise InputError(f"{name}: audio codes of different lengths per item ({sorted({len(r) for r in parsed})})")
    return torch.stack(parsed)


def _entry(conditioning, name: str):
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
    return states, meta


def with_timbre(conditioning, latents: list) -> list:
    """The CONDITIONING with ``latents`` appended to its timbre references (every entry)."""
    out = []
    for entry in conditioning:
        meta = dict(entry[1] or {})
        meta[TIMBRE_KEY] = list(meta.get(TIMBRE_KEY) or []) + list(latents)
        out.append([entry[0], meta])
    return out


CODECS = {
    LATENT_FAMILY: (to_comfy, lambda conditioning, name, bundle: from_comfy(conditioning, name,
                                                                           text_embedding_dim(bundle))),
    ACE_V15: (to_comfy15, from_comfy15),
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
