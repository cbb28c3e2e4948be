"""ACE-Step 1.5 condition encoder (checkpoint prefix ``encoder.``).

Turns the three conditions into the one sequence the DiT cross-attends to:

* caption: Qwen3-Embedding hidden states -> ``text_projector`` (Linear, no bias);
* lyrics: raw Qwen3 token embeddings -> ``lyric_encoder`` (bidirectional Qwen3 layers that
  alternate sliding/full attention, padded *keys* masked);
* timbre: reference-clip VAE latents (packed, any number of clips per item) ->
  ``timbre_encoder`` (same layers, no padding mask), one vector per clip taken at position 0
  (XL prepends its CLS ``special_token`` first; 2B does not), regrouped per batch item.

The pieces are then packed: ``[lyrics | timbre]`` then ``[that | text]``, each step a stable
sort that moves valid rows first while padded rows keep their values, in order, at the end.
The widths are the encoder widths of the config (``enc_hidden`` ...), which differ from the
DiT in XL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..errors import InputError
from .blocks import EncoderLayer, RMSNorm, band_mask, rope_tables
from .config import AceStep15Config


# --- shared encoder-stack helpers ------------------------------------------------------------

def make_encoder_layers(config: AceStep15Config, count: int, *, dtype=None, device=None) -> nn.ModuleList:
    """``count`` bidirectional Qwen3 layers at the encoder width of ``config``."""
    return nn.ModuleList(
        EncoderLayer(config.enc_hidden, config.enc_intermediate, config.enc_heads, config.enc_kv_heads,
                     config.head_dim, config.rms_norm_eps, dtype=dtype, device=device)
        for _ in range(count)
    )


def additive_mask(valid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """bool mask (True = attend) -> additive float mask: 0 where valid, the dtype's minimum elsewhere.

    The reference masks this way, so a query whose every key is masked attends uniformly to
    all keys (score + min rounds to min) instead of producing NaN. Padded lyric rows reach
    the DiT, so that behaviour is reproduced.
    """
    return torch.zeros(valid.shape, dtype=dtype, device=valid.device).masked_fill(
        ~valid, torch.finfo(dtype).min)


def run_encoder_layers(layers, x: torch.Tensor, config: AceStep15Config,
                       key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """x (B, L, H) through ``layers`` with RoPE at positions 0..L-1 -> (B, L, H).

    Layer ``i`` is bidirectional with |i-j| <= ``sliding_window`` when ``config.is_sliding(i)``
    and full otherwise; ``key_mask`` (B, L), nonzero = valid, masks padded keys.
    """
    length = x.shape[1]
    rope = rope_tables(length, config.head_dim, config.rope_theta, x.device, x.dtype)
    band = band_mask(length, config.sliding_window, x.device)  # (L, L)
    keys = None if key_mask is None else key_mask.bool()[:, None, None, :]  # (B, 1, 1, L)
    masks = {}
    for index, layer in enumerate(layers):
        sliding = config.is_sliding(index)
        if sliding not in masks:
            geometry = band if sliding else None
            if keys is None:
                masks[sliding] = geometry
            else:
                valid = keys if geometry is None else keys & geometry  # (B, 1, L, L) or (B, 1, 1, L)
                masks[sliding] = additive_mask(valid.expand(-1, 1, length, length), x.dtype)
        x = layer(x, rope, masks[sliding])
    return x


# --- packing / unpacking -----------------------------------------------------------------------

def pack_sequences(first: torch.Tensor, first_mask: torch.Tensor,
                   second: torch.Tensor, second_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate (B, L1, D) and (B, L2, D) and move the valid rows first (stable).

    Padded rows keep their values and their order after the valid ones. Returns
    ``(packed (B, L1+L2, D), mask (B, L1+L2) bool)`` with mask = position < number of valid rows.
    """
    hidden = torch.cat([first, second], dim=1)  # (B, L, D)
    valid = torch.cat([first_mask.bool(), second_mask.bool()], dim=1)  # (B, L)
    order = (~valid).to(torch.int64).argsort(dim=1, stable=True)  # valid (0) first, order kept
    packed = hidden.gather(1, order[..., None].expand_as(hidden))
    positions = torch.arange(valid.shape[1], device=valid.device)
    return packed, positions[None, :] < valid.sum(dim=1, keepdim=True)


def unpack_clips(clip_embs: torch.Tensor, refer_order: torch.Tensor,
                 batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Regroup per-clip vectors (N, D) by batch item, keeping clip order within each item.

    ``refer_order`` (N,) is each clip's batch item. Returns ``(embs (B, R, D), mask (B, R) bool)``
    with R = the largest clip count; missing slots are zero vectors with mask False.
    """
    n, dim = clip_embs.shape
    onehot = torch.nn.functional.one_hot(refer_order, batch_size)  # (N, B)
    counts = onehot.sum(dim=0)  # (B,)
    slots = int(counts.max().item()) if n else 0
    slot = (onehot.cumsum(dim=0) - 1).gather(1, refer_order[:, None])[:, 0]  # (N,) rank within item
    out = clip_embs.new_zeros(batch_size, slots, dim)
    out[refer_order, slot] = clip_embs
    mask = torch.arange(slots, device=clip_embs.device)[None, :] < counts[:, None]  # (B, R)
    return out, mask


# --- sub-encoders ------------------------------------------------------------------------------

class LyricEncoder(nn.Module):
    """``encoder.lyric_encoder``: Linear(text_dim -> H, bias), encoder layers, final RMSNorm."""

    def __init__(self, config: AceStep15Config, *, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.config = config
        self.embed_tokens = nn.Linear(config.text_hidden_dim, config.enc_hidden, **kw)
        self.layers = make_encoder_layers(config, config.num_lyric_encoder_hidden_layers, **kw)
        self.norm = RMSNorm(config.enc_hidden, config.rms_norm_eps, **kw)

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """embeddings (B, Ll, text_dim), mask (B, Ll) -> (B, Ll, H); padded rows are kept (not zeroed)."""
        x = self.embed_tokens(embeddings)
        # the reference runs only the first num_hidden_layers layers of each condition stack
        x = run_encoder_layers(self.layers[: self.config.num_hidden_layers], x, self.config, key_mask=mask)
        return self.norm(x)


class TimbreEncoder(nn.Module):
    """``encoder.timbre_encoder``: Linear(64 -> H, bias), encoder layers, RMSNorm, position 0.

    XL prepends ``special_token`` (a CLS token) so position 0 is that token; the 2B code keeps
    the weight but does not use it, so position 0 is the first latent frame.
    """

    def __init__(self, config: AceStep15Config, *, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.config = config
        self.embed_tokens = nn.Linear(config.timbre_hidden_dim, config.enc_hidden, **kw)
        self.layers = make_encoder_layers(config, config.num_timbre_encoder_hidden_layers, **kw)
        self.norm = RMSNorm(config.enc_hidden, config.rms_norm_eps, **kw)
        self.special_token = nn.Parameter(torch.zeros(1, 1, config.enc_hidden, **kw))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """clips (N, Tr, timbre_dim) -> one vector per clip (N, H)."""
        x = self.embed_tokens(clips)  # (N, Tr, H)
        if self.config.is_xl:
            x = torch.cat([self.special_token.to(x.dtype).expand(x.shape[0], 1, -1), x], dim=1)  # (N, 1+Tr, H)
        x = run_encoder_layers(self.layers[: self.config.num_hidden_layers], x, self.config)
        return self.norm(x)[:, 0]


# --- the condition encoder ---------------------------------------------------------------------

@dataclass
class ConditionEncoderOutput:
    """Everything :meth:`AceStep15ConditionEncoder.encode` computes.

    ``encoder_hidden_states`` (B, Ll+R+Lt, H) and ``encoder_attention_mask`` (B, same, bool)
    feed the DiT; the rest are intermediates: ``text_projected`` (B, Lt, H),
    ``lyric_hidden_states`` (B, Ll, H), ``timbre_embs`` (B, R, H), ``timbre_mask`` (B, R, bool).
    """

    encoder_hidden_states: torch.Tensor
    encoder_attention_mask: torch.Tensor
    text_projected: torch.Tensor
    lyric_hidden_states: torch.Tensor
    timbre_embs: torch.Tensor
    timbre_mask: torch.Tensor


class AceStep15ConditionEncoder(nn.Module):
    """``encoder.*`` of a 1.5 checkpoint: text projector, lyric encoder, timbre encoder, packing."""

    def __init__(self, config: AceStep15Config, *, dtype=None, device=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.config = config
        self.text_projector = nn.Linear(config.text_hidden_dim, config.enc_hidden, bias=False, **kw)
        self.lyric_encoder = LyricEncoder(config, **kw)
        self.timbre_encoder = TimbreEncoder(config, **kw)

    def forward(self, text_hidden_states: torch.Tensor, text_attention_mask: torch.Tensor,
                lyric_hidden_states: torch.Tensor, lyric_attention_mask: torch.Tensor,
                refer_packed: torch.Tensor, refer_order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ``(encoder_hidden_states (B, Ll+R+Lt, H), encoder_attention_mask (B, Ll+R+Lt) bool)``.

        See :meth:`encode` for the inputs.
        """
        out = self.encode(text_hidden_states, text_attention_mask, lyric_hidden_states,
                          lyric_attention_mask, refer_packed, refer_order)
        return out.encoder_hidden_states, out.encoder_attention_mask

    def encode(self, text_hidden_states: torch.Tensor, text_attention_mask: torch.Tensor,
               lyric_hidden_states: torch.Tensor, lyric_attention_mask: torch.Tensor,
               refer_packed: torch.Tensor, refer_order: torch.Tensor) -> ConditionEncoderOutput:
        """Encode and pack the conditions.

        text_hidden_states (B, Lt, text_dim) with text_attention_mask (B, Lt);
        lyric_hidden_states (B, Ll, text_dim) (raw token embeddings) with lyric_attention_mask (B, Ll);
        refer_packed (N, Tr, timbre_dim): every reference clip of the batch;
        refer_order (N,) int: the batch item of each clip (any order, an item may have none).
        Masks: nonzero = valid.
        """
        batch = self._check_inputs(text_hidden_states, text_attention_mask, lyric_hidden_states,
                                   lyric_attention_mask, refer_packed, refer_order)
        text = self.text_projector(text_hidden_states)
        lyrics = self.lyric_encoder(lyric_hidden_states, lyric_attention_mask)
        if refer_packed.shape[0]:
            clips = self.timbre_encoder(refer_packed)  # (N, H)
        else:
            clips = text.new_zeros(0, self.config.enc_hidden)
        timbre, timbre_mask = unpack_clips(clips, refer_order.to(torch.int64), batch)
        packed, mask = pack_sequences(lyrics, lyric_attention_mask, timbre, timbre_mask)
        packed, mask = pack_sequences(packed, mask, text, text_attention_mask)
        return ConditionEncoderOutput(packed, mask, text, lyrics, timbre, timbre_mask)

    def _check_inputs(self, text, text_mask, lyrics, lyric_mask, refer, order) -> int:
        cfg = self.config
        if text.ndim != 3 or text.shape[-1] != cfg.text_hidden_dim:
            raise InputError(f"text_hidden_states must be (B, Lt, {cfg.text_hidden_dim}); got {tuple(text.shape)}")
        batch = text.shape[0]
        if tuple(text_mask.shape) != tuple(text.shape[:2]):
            raise InputError(f"text_attention_mask must be {tuple(text.shape[:2])}; got {tuple(text_mask.shape)}")
        if lyrics.ndim != 3 or lyrics.shape[0] != batch or lyrics.shape[-1] != cfg.text_hidden_dim:
            raise InputError(f"lyric_hidden_states must be ({batch}, Ll, {cfg.text_hidden_dim}); "
                             f"got {tuple(lyrics.shape)}")
        if tuple(lyric_mask.shape) != tuple(lyrics.shape[:2]):
            raise InputError(f"lyric_attention_mask must be {tuple(lyrics.shape[:2])}; got {tuple(lyric_mask.shape)}")
        if refer.ndim != 3 or refer.shape[-1] != cfg.timbre_hidden_dim:
            raise InputError(f"refer_packed must be (N, Tr, {cfg.timbre_hidden_dim}); got {tuple(refer.shape)}")
        if order.ndim != 1 or order.shape[0] != refer.shape[0]:
            raise InputError(f"refer_order must be ({refer.shape[0]},), one batch index per clip; "
                             f"got {tuple(order.shape)}")
        if order.is_floating_point() or order.dtype == torch.bool:
            raise InputError(f"refer_order must hold integer batch indices; got {order.dtype}")
        if order.numel() and (int(order.min()) < 0 or int(order.max()) >= batch):
            raise InputError(f"refer_order values must be in 0..{batch - 1} (the batch items); "
                             f"got {order.tolist()}")
        return batch
