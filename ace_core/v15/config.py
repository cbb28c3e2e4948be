"""Configuration of the ACE-Step 1.5 DiT family (``AceStepConfig``, reference field names).

One dataclass covers the whole ``model.safetensors`` of a 1.5 checkpoint folder: the DiT
(``decoder``), the condition encoder (``encoder``), the FSQ audio tokenizer (``tokenizer``)
and the detokenizer. Defaults are the published 2B values; :data:`XL` lists the 4B (XL)
overrides. The XL code differs from 2B in two ways that the config alone does not spell
out: the encoder has its own width (``encoder_*`` fields) and the timbre encoder prepends its
CLS ``special_token``; both follow from :attr:`AceStep15Config.is_xl`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Optional


@dataclass
class AceStep15Config:
    hidden_size: int = 2048
    intermediate_size: int = 6144
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    num_key_value_heads: int = 8
    head_dim: int = 128
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    max_position_embeddings: int = 32768
    attention_bias: bool = False
    use_sliding_window: bool = True
    sliding_window: int = 128
    layer_types: Optional[list] = None  # None: even layers sliding, odd layers full
    patch_size: int = 2
    in_channels: int = 192  # 64 context latent + 64 chunk mask + 64 x_t
    audio_acoustic_hidden_dim: int = 64  # latent channels (DiT output)
    text_hidden_dim: int = 1024  # Qwen3-Embedding width
    timbre_hidden_dim: int = 64
    timbre_fix_frame: int = 750  # 30 s of 25 Hz latents per reference clip
    num_lyric_encoder_hidden_layers: int = 8
    num_timbre_encoder_hidden_layers: int = 4
    num_attention_pooler_hidden_layers: int = 2
    pool_window_size: int = 5  # 25 Hz -> 5 Hz
    fsq_dim: int = 2048
    fsq_input_levels: list = field(default_factory=lambda: [8, 8, 8, 5, 5, 5])
    fsq_input_num_quantizers: int = 1
    vocab_size: int = 64003
    # XL: the condition encoder / tokenizer width differs from the DiT width.
    encoder_hidden_size: Optional[int] = None
    encoder_intermediate_size: Optional[int] = None
    encoder_num_attention_heads: Optional[int] = None
    encoder_num_key_value_heads: Optional[int] = None
    is_turbo: bool = False
    model_version: Optional[str] = None

    # --- derived ---------------------------------------------------------------------------
    @property
    def is_xl(self) -> bool:
        """XL checkpoints configure a separate encoder width (and prepend the timbre CLS)."""
        return self.encoder_hidden_size is not None

    @property
    def enc_hidden(self) -> int:
        return self.encoder_hidden_size or self.hidden_size

    @property
    def enc_intermediate(self) -> int:
        return self.encoder_intermediate_size or self.intermediate_size

    @property
    def enc_heads(self) -> int:
        return self.encoder_num_attention_heads or self.num_attention_heads

    @property
    def enc_kv_heads(self) -> int:
        return self.encoder_num_key_value_heads or self.num_key_value_heads

    def is_sliding(self, index: int) -> bool:
        """Whether layer ``index`` of any stack uses the bidirectional sliding window."""
        if not self.use_sliding_window:
            return False
        if self.layer_types is not None and index < len(self.layer_types):
            return self.layer_types[index] == "sliding_attention"
        return index % 2 == 0

    @classmethod
    def from_dict(cls, data: dict) -> "AceStep15Config":
        """Build from a ``config.json`` / fixture config; unknown fields are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


XL = dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=32, num_attention_heads=32,
          num_key_value_heads=8, encoder_hidden_size=2048, encoder_intermediate_size=6144,
          encoder_num_attention_heads=16, encoder_num_key_value_heads=8)


def xl_config(**overrides) -> AceStep15Config:
    """The published XL (4B) configuration."""
    return replace(AceStep15Config(**XL), **overrides)
