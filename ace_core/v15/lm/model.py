"""The ACE-Step 1.5 5 Hz LM: a Qwen3 causal LM (HF ``Qwen3ForCausalLM``) with audio-code tokens.

The published LMs (0.6B, 1.7B, 4B) are Qwen3 fine-tunes whose vocabulary adds 64,000 tokens
``<|audio_code_0|>`` .. ``<|audio_code_63999|>`` at ids 151669 .. 215668 (the embedding has
217,204 rows: the rest is padding). The output head is tied to ``model.embed_tokens`` (no
``lm_head.weight`` is stored); an untied head is accepted when a file carries one.

Keys: ``model.*`` (the :class:`~..qwen3.Qwen3Model` stack) and, untied only, ``lm_head.weight``.

Speed: :meth:`FiveHzLM.forward` returns hidden states, not logits; :meth:`FiveHzLM.logits`
multiplies them with only the head rows a decoding step may pick (the 64,000 code rows in the
codes phase, a handful of rows for a metadata value), so the 217k-row head never runs in full
unless asked to.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import nn

from ..blocks import rope_tables
from ..qwen3 import KVCache, Qwen3Config, Qwen3Model, _cached_layer

__all__ = ["FiveHzLM", "AUDIO_CODE_START", "AUDIO_CODE_COUNT", "CODE_ROWS", "TEXT_ROWS"]

AUDIO_CODE_START = 151669
"""Token id of ``<|audio_code_0|>``."""
AUDIO_CODE_COUNT = 64000
CODE_ROWS = slice(AUDIO_CODE_START, AUDIO_CODE_START + AUDIO_CODE_COUNT)
TEXT_ROWS = slice(0, 151643)
"""The byte-level BPE rows (everything before ``<|endoftext|>`` and the added special tokens)."""

Rows = Union[None, slice, torch.Tensor]


def _decode_mask(length: int, past: int, valid: Optional[torch.Tensor], device) -> Optional[torch.Tensor]:
    """Bool attention mask for ``length`` new queries after ``past`` cached keys.

    valid (B, past + length), True = a real token (left padding is False). A query sees the
    causal keys that are real, and always itself, so a padding query never has an empty row
    (sdpa would return NaN there, and the NaN would reach real tokens through the cache).
    Returns None when nothing needs masking (one new token, no padding).
    """
    if valid is None and length == 1:
        return None
    keys = torch.arange(past + length, device=device)
    queries = torch.arange(past, past + length, device=device)
    causal = keys[None, :] <= queries[:, None]  # (L, past + L)
    if valid is None:
        return causal
    own = keys[None, :] == queries[:, None]
    return (causal & valid.to(device)[:, None, None, :]) | own  # (B, 1, L, past + L)


class FiveHzLM(nn.Module):
    """HF ``Qwen3ForCausalLM``: ``model`` (Qwen3 stack) + output head (tied unless configured)."""

    def __init__(self, config: Qwen3Config, *, dtype=None, device=None):
        super().__init__()
        self.config = config
        self.model = Qwen3Model(config, dtype=dtype, device=device)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False, dtype=dtype, device=device)

    @property
    def head_weight(self) -> torch.Tensor:
        """(vocab, hidden): the output head (``embed_tokens.weight`` when tied)."""
        return self.model.embed_tokens.weight if self.config.tie_word_embeddings else self.lm_head.weight

    @property
    def device(self) -> torch.device:
        return self.head_weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.head_weight.dtype

    @property
    def has_audio_codes(self) -> bool:
        return self.config.vocab_size >= AUDIO_CODE_START + AUDIO_CODE_COUNT

    def forward(self, input_ids: torch.Tensor, valid: Optional[torch.Tensor] = None, *,
                cache: Optional[KVCache] = None) -> torch.Tensor:
        """``input_ids`` (B, L) -> last hidden states (B, L, hidden), after the final norm.

        valid (B, L_past + L): False marks left padding (None = no padding). ``cache``: the new
        tokens take positions L_past.. and their keys/values are appended (ids are range-checked on
        the first call only: later ones are the decoder's own tokens). Every row shares the
        positions; RoPE only sees relative offsets, so left padding does not shift the result.
        """
        m = self.model
        x = m.embed_tokens(input_ids) if cache is not None and cache.length else m.embed(input_ids)  # (B, L, H)
        length = input_ids.shape[1]
        past = cache.length if cache is not None else 0
        table = -(-(past + length) // 256) * 256  # grow the RoPE table in blocks so it stays cached
        cos, sin = rope_tables(table, self.config.head_dim, self.config.rope_theta, x.device, x.dtype)
        rope = (cos[past:past + length], sin[past:past + length])  # (L, hd) each
        mask = _decode_mask(length, past, valid, x.device)
        for index, layer in enumerate(m.layers):
            x = layer(x, rope, mask) if cache is None else _cached_layer(layer, x, rope, mask, cache, index)
        return m.norm(x)

    def logits(self, hidden: torch.Tensor, rows: Rows = None) -> torch.Tensor:
        """Float32 logits of ``hidden`` (..., hidden) over head ``rows``: None = every row,
        a slice (a contiguous block, no copy) or a LongTensor of ids (gathered)."""
        weight = self.head_weight
        if rows is not None:
            weight = weight[rows] if isinstance(rows, slice) else weight.index_select(0, rows.to(weight.device))
        return (hidden.to(weight.dtype) @ weight.T).float()  # matmul in the model dtype, as HF
