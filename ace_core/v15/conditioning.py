"""Build the DiT condition of ACE-Step 1.5 (the reference ``prepare_condition``).

1. The condition encoder packs [lyrics | timbre | caption] → ``encoder_hidden_states`` [B, L, H].
2. Cover items (``is_covers``) replace their source latents by *LM hints*: the 25 Hz source
   latents are FSQ-tokenized to 5 Hz codes (padded with silence to a multiple of 5) and
   detokenized back to 25 Hz, cut to T: a lossy "semantic" version of the source. Hints may
   also come precomputed (from LM audio codes, :func:`hints_from_codes`).
3. ``context_latents = cat([src', chunk_mask (64 channels)], -1)`` [B, T, 128].

``model`` is an :class:`~.model.AceStep15Model` (``encoder``, ``tokenizer``, ``detokenizer``).
"""

from __future__ import annotations

from typing import Optional

import torch

from ..errors import InputError
from .sampling import DiTCondition


def lm_hints(model, latents: torch.Tensor, silence_latent: torch.Tensor) -> torch.Tensor:
    """Source latents [B, T, 64] → FSQ round trip → 25 Hz hints [B, T, 64]."""
    frames = latents.shape[1]
    mask = latents.new_ones(latents.shape[0], frames)
    quantized, _, _ = model.tokenizer.tokenize(latents, silence_latent, mask)  # [B, ceil(T/5), H]
    return model.detokenizer(quantized)[:, :frames]


def hints_from_codes(model, codes: torch.Tensor, frames: int) -> torch.Tensor:
    """LM audio codes [B, T5] or [B, T5, 1] → 25 Hz hints [B, frames, 64] (cut to ``frames``)."""
    if codes.dim() == 2:
        codes = codes[..., None]  # [B, T5, 1]
    quantized = model.tokenizer.codes_to_quantized(codes)  # [B, T5, H]
    hints = model.detokenizer(quantized)
    if hints.shape[1] < frames:
        raise InputError(f"audio codes: {codes.shape[1]} codes give {hints.shape[1]} frames, need {frames}")
    return hints[:, :frames]


def context_latents(src_latents: torch.Tensor, chunk_masks: torch.Tensor) -> torch.Tensor:
    """cat([src [B, T, 64], chunk mask [B, T] or [B, T, 64]], -1) → [B, T, 128] (src dtype)."""
    if chunk_masks.dim() == 2:
        chunk_masks = chunk_masks[..., None].expand(*chunk_masks.shape, src_latents.shape[-1])  # [B, T, 64]
    if tuple(chunk_masks.shape) != tuple(src_latents.shape):
        raise InputError(f"chunk_masks: expected {tuple(src_latents.shape[:2])} (or with 64 channels), "
                         f"got {tuple(chunk_masks.shape)}")
    return torch.cat([src_latents, chunk_masks.to(src_latents.dtype)], dim=-1)


@torch.no_grad()
def prepare_condition(model, *, text_hidden_states: torch.Tensor, text_attention_mask: torch.Tensor,
                      lyric_hidden_states: torch.Tensor, lyric_attention_mask: torch.Tensor,
                      refer_packed: torch.Tensor, refer_order: torch.Tensor, src_latents: torch.Tensor,
                      chunk_masks: torch.Tensor, is_covers: Optional[torch.Tensor] = None,
                      silence_latent: Optional[torch.Tensor] = None,
                      precomputed_hints: Optional[torch.Tensor] = None) -> DiTCondition:
    """The DiT condition for one batch.

    text_hidden_states [B, Lt, D_text] / text_attention_mask [B, Lt]; lyric_hidden_states
    [B, Ll, D_text] (raw token embeddings) / lyric_attention_mask [B, Ll]; refer_packed
    [N, Tr, 64] reference clips with refer_order [N] (batch item of each); src_latents [B, T, 64];
    chunk_masks [B, T] or [B, T, 64]; is_covers [B] (nonzero = cover: use LM hints);
    silence_latent [1, ≥4, 64] (tokenizer padding; needed for covers without precomputed hints);
    precomputed_hints [B, ≥T, 64] (e.g. from :func:`hints_from_codes`).
    """
    enc, enc_mask = model.encoder(text_hidden_states, text_attention_mask, lyric_hidden_states,
                                  lyric_attention_mask, refer_packed, refer_order)
    batch, frames = src_latents.shape[:2]
    src = src_latents
    if is_covers is not None:
        covers = is_covers.reshape(-1).to(src.device) != 0
        if covers.numel() != batch:
            raise InputError(f"is_covers: expected {batch} flags, got {covers.numel()}")
        if bool(covers.any()):
            if precomputed_hints is not None:
                hints = precomputed_hints[:, :frames].to(src.dtype)
            else:
                if silence_latent is None:
                    raise InputError("silence_latent: cover items need it to pad the FSQ tokenizer input")
                hints = lm_hints(model, src, silence_latent).to(src.dtype)
            src = torch.where(covers[:, None, None], hints, src)
    return DiTCondition(enc, enc_mask, context_latents(src, chunk_masks))


__all__ = ["context_latents", "hints_from_codes", "lm_hints", "prepare_condition"]
