"""Qwen3 decoder stack (HF ``Qwen3Model``): the ACE-Step 1.5 text encoder, reusable by the 5 Hz LM.

ACE-Step 1.5 encodes the caption prompt with Qwen3-Embedding-0.6B (``forward`` ->
``last_hidden_state``) and the lyric prompt with its embedding table only (``embed``). The
5 Hz LM is a Qwen3 causal LM whose ``model.*`` weights are this same module; ``forward`` takes an
optional :class:`KVCache` for token-by-token decoding.

Keys are HF ``Qwen3Model`` names without prefix (``embed_tokens.weight``, ``layers.N.*``,
``norm.weight``), as the official ``Qwen3-Embedding-0.6B/model.safetensors`` stores them;
ComfyUI's ``qwen_0.6b_ace15`` and the LM files put ``model.`` in front.

Math (transformers 4.57, sdpa): token embedding, then per layer pre-norm causal self-attention
(q_norm/k_norm per head, Qwen3 RoPE at positions 0..L-1, GQA) and SwiGLU, then a final RMSNorm.
With an ``attention_mask`` a query sees the keys that are both causal and valid (key padding).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Mapping, Optional

import torch
from torch import nn

from ..errors import CheckpointError, InputError
from .blocks import EncoderLayer, RMSNorm, key_padding_mask, rope_tables

__all__ = ["Qwen3Config", "Qwen3Model", "KVCache", "infer_qwen3_config"]


@dataclass
class Qwen3Config:
    """HF ``Qwen3Config`` fields we use; defaults are Qwen3-Embedding-0.6B."""

    vocab_size: int = 151669
    hidden_size: int = 1024
    intermediate_size: int = 3072
    num_hidden_layers: int = 28
    num_attention_heads: int = 16
    num_key_value_heads: int = 8
    head_dim: int = 128
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    max_position_embeddings: int = 32768
    tie_word_embeddings: bool = True
    pad_token_id: Optional[int] = None  # the checkpoint leaves it unset; the tokenizer pads with 151643

    # HF options this implementation does not have; a config asking for them is refused.
    _UNSUPPORTED = {"attention_bias": False, "use_sliding_window": False, "hidden_act": "silu",
                    "rope_scaling": None}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Qwen3Config":
        """From a ``config.json`` / fixture config; unknown fields are ignored, unsupported
        options (attention bias, sliding window, another activation, RoPE scaling) refused."""
        for key, supported in cls._UNSUPPORTED.items():
            if data.get(key, supported) != supported:
                raise CheckpointError(f"Qwen3 config: {key}={data[key]!r} is not supported "
                                      f"(only {supported!r})")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def infer_qwen3_config(shapes: Mapping[str, tuple], prefix: str = "", where: str = "checkpoint"
                       ) -> Qwen3Config:
    """The config of a Qwen3 state dict from its tensor shapes (keys under ``prefix``).

    Reads vocab/width from ``embed_tokens``, depth from the layer indices, head sizes from
    ``q_norm``/``q_proj``/``k_proj`` and the MLP width from ``gate_proj``; the rest keeps defaults.
    """
    def shape(key: str) -> tuple:
        if prefix + key not in shapes:
            raise CheckpointError(f"{where}: no {prefix + key!r}; not a Qwen3 model")
        return tuple(shapes[prefix + key])

    vocab, hidden = shape("embed_tokens.weight")
    head_dim = shape("layers.0.self_attn.q_norm.weight")[0]
    lead = prefix + "layers."
    depth = 1 + max(int(k[len(lead):].split(".", 1)[0]) for k in shapes if k.startswith(lead))
    # a causal LM stores ``lm_head`` beside ``model.`` unless it is tied to ``embed_tokens``
    head = (prefix[:-len("model.")] if prefix.endswith("model.") else prefix) + "lm_head.weight"
    return Qwen3Config(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=depth, head_dim=head_dim,
        intermediate_size=shape("layers.0.mlp.gate_proj.weight")[0],
        num_attention_heads=shape("layers.0.self_attn.q_proj.weight")[0] // head_dim,
        num_key_value_heads=shape("layers.0.self_attn.k_proj.weight")[0] // head_dim,
        tie_word_embeddings=head not in shapes,
    )


class KVCache:
    """Keys and values of every layer for the tokens seen so far.

    Each layer keeps one buffer pair (B, Hkv, capacity, hd) that grows by doubling, so a
    decoding step writes its new position in place instead of copying the whole history.
    """

    def __init__(self):
        self._buffers: list[Optional[tuple[torch.Tensor, torch.Tensor]]] = []
        self._lengths: list[int] = []

    @property
    def length(self) -> int:
        """Number of cached positions (0 when empty)."""
        return self._lengths[0] if self._lengths else 0

    def append(self, index: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add layer ``index``'s new k, v (B, Hkv, L_new, hd); returns the full (past + new) k, v."""
        while len(self._buffers) <= index:
            self._buffers.append(None)
            self._lengths.append(0)
        past, new = self._lengths[index], k.shape[2]
        buffers = self._buffers[index]
        if buffers is None or buffers[0].shape[2] < past + new:
            capacity = max(2 * (0 if buffers is None else buffers[0].shape[2]), -(-(past + new) // 256) * 256)
            grown = tuple(t.new_empty(*t.shape[:2], capacity, t.shape[3]) for t in (k, v))  # (B, Hkv, cap, hd)
            if buffers is not None:
                for old, fresh in zip(buffers, grown):
                    fresh[:, :, :past] = old[:, :, :past]
            buffers = self._buffers[index] = grown
        buffers[0][:, :, past:past + new] = k
        buffers[1][:, :, past:past + new] = v
        self._lengths[index] = past + new
        return buffers[0][:, :, :past + new], buffers[1][:, :, :past + new]

    def select_rows(self, rows: torch.Tensor) -> "KVCache":
        """A new cache holding batch rows ``rows`` (LongTensor) of this one, e.g. one prompt's
        keys/values repeated for every item of a batch (the prompt is not run again)."""
        out = KVCache()
        for buffers, length in zip(self._buffers, self._lengths):
            out._buffers.append(None if buffers is None else tuple(t[rows] for t in buffers))  # (B', Hkv, cap, hd)
            out._lengths.append(length)
        return out


def _attention_mask(length: int, past: int, attention_mask: Optional[torch.Tensor], device
                    ) -> torch.Tensor:
    """Bool mask (B or 1, 1, L, past + L): key j visible to query i iff j <= past + i and valid."""
    keys = torch.arange(past + length, device=device)
    queries = torch.arange(past, past + length, device=device)
    causal = keys[None, :] <= queries[:, None]  # (L, past + L)
    if attention_mask is None:
        return causal
    if attention_mask.shape[-1] != past + length:
        raise InputError(f"attention_mask: {attention_mask.shape[-1]} columns, expected "
                         f"{past + length} (cached {past} + new {length} tokens)")
    return causal & key_padding_mask(attention_mask.to(device))  # (B, 1, L, past + L)


class Qwen3Model(nn.Module):
    """HF ``Qwen3Model``: ``embed_tokens`` -> causal Qwen3 layers -> ``norm``."""

    def __init__(self, config: Qwen3Config, *, dtype=None, device=None):
        super().__init__()
        self.config = config
        kw = dict(dtype=dtype, device=device)
        c = config
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size, **kw)
        self.layers = nn.ModuleList(
            EncoderLayer(c.hidden_size, c.intermediate_size, c.num_attention_heads,
                         c.num_key_value_heads, c.head_dim, c.rms_norm_eps, **kw)
            for _ in range(c.num_hidden_layers)
        )
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps, **kw)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Raw embedding rows (..., hidden) of ``input_ids`` (...): the lyric path, no scaling."""
        if input_ids.dtype not in (torch.int32, torch.int64):
            raise InputError(f"input_ids: expected integer token ids, got dtype {input_ids.dtype}")
        if input_ids.numel() and (int(input_ids.min()) < 0 or int(input_ids.max()) >= self.config.vocab_size):
            raise InputError(f"input_ids: token ids must lie in [0, {self.config.vocab_size - 1}], "
                             f"got [{int(input_ids.min())}, {int(input_ids.max())}]")
        return self.embed_tokens(input_ids)

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None, *,
                cache: Optional[KVCache] = None) -> torch.Tensor:
        """``input_ids`` (B, L) -> ``last_hidden_state`` (B, L, hidden).

        ``attention_mask`` (B, L_past + L), nonzero = valid: keys that are padding are hidden
        (as HF sdpa); without it every causal key is visible (how ACE-Step calls its text
        encoder). ``cache``: a :class:`KVCache`; the new tokens take positions L_past.. and their
        keys/values are appended to it.
        """
        if input_ids.dim() != 2:
            raise InputError(f"input_ids: expected shape (batch, length), got {tuple(input_ids.shape)}")
        x = self.embed(input_ids)  # (B, L, H)
        length = input_ids.shape[1]
        past = cache.length if cache is not None else 0
        # decoding asks for one more position per step: take tables in blocks of 256 so they stay cached
        positions = past + length if cache is None else -(-(past + length) // 256) * 256
        cos, sin = rope_tables(positions, self.config.head_dim, self.config.rope_theta, x.device, x.dtype)
        rope = (cos[past:past + length], sin[past:past + length])  # positions past.., each (L, hd)
        mask = _attention_mask(length, past, attention_mask, x.device)
        for index, layer in enumerate(self.layers):
            if cache is None:
                x = layer(x, rope, mask)
            else:
                x = _cached_layer(layer, x, rope, mask, cache, index)
        return self.norm(x)


def _cached_layer(layer: EncoderLayer, x: torch.Tensor, rope: tuple, mask: torch.Tensor,
                  cache: KVCache, index: int) -> torch.Tensor:
    """``EncoderLayer.forward`` whose self-attention also sees (and extends) the cached keys."""
    h = layer.input_layernorm(x)
    kv = cache.append(index, *layer.self_attn.project_kv(h, rope))
    x = x + layer.self_attn(h, rope=rope, mask=mask, kv=kv)
    return x + layer.mlp(layer.post_attention_layernorm(x))
