"""ONE table from a checkpoint's keys and shapes to (family, variant, component), headers only.

Each row of :data:`TABLE` names the key suffixes that must all exist under one prefix (so the same
row finds a component in a bare file and inside an all-in-one file), an optional shape test, and
what the match is. :func:`recognise` runs every row over a key -> shape mapping and returns a
:class:`Recognition` with one :class:`Part` per component found; :func:`recognise_file` does
the same from a safetensors header (no tensor data is read) and raises
:class:`~ace_core.errors.CheckpointError` naming the file when nothing (or another family than
the one asked for) is found.

Variants: ACE-Step 1.5 DiTs are ``2B`` or ``XL`` from their keys alone; turbo / base / sft hold
the same keys, so their *flavour* is unknown until ``config.json`` (``is_turbo``,
``model_version``) or the file name tells (:func:`flavour_hint`). 5 Hz LMs are told from
the text encoder by their vocabulary (Qwen3's 151669 rows plus audio-code rows).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

from ..errors import CheckpointError
from .keys import count_indices, find_prefixes, summarize_keys
from .safetensors_io import SafetensorsHeader, read_header

ACE_V1 = "ace_v1"
ACE_V15 = "ace_v15"
ACE_FAMILIES = (ACE_V1, ACE_V15)
QWEN3_TEXT_VOCAB = 151669
"""Rows of Qwen3's own vocabulary; the 5 Hz LMs add audio-code rows after it."""
FLAVOURS = ("turbo", "base", "sft")
_NAME_HINT_ORDER = ("sft", "turbo", "base")
"""File names are read most specific first: ``acestep-v15-base-sft-fix-inst`` is an sft model."""

Shapes = Mapping[str, tuple]


@dataclass(frozen=True)
class Part:
    """One component found in a file.

    family: ``ace_v1``, ``ace_v15`` or another family's name. component: ``dit``, ``dcae``,
    ``vocoder``, ``umt5`` (v1); ``dit``, ``vae``, ``text_encoder``, ``lm`` (1.5); other families'
    own names. variant: the size (``3.5B``, ``2B``, ``XL``, ``0.6B``, ``1.7B``, ``4B``) or ``""``.
    prefix: the key prefix in the file. naming: the key naming (``official``, ``diffusers``,
    ``comfy``, ``hf``). title: what it is, in words.
    """

    family: str
    component: str
    variant: str
    prefix: str
    naming: str
    title: str

    @property
    def description(self) -> str:
        return self.title + (f" under '{self.prefix}'" if self.prefix else "")


@dataclass(frozen=True)
class Recognition:
    """What a file holds. ``parts``: the components found (sorted by prefix). ``source``: the file.

    flavour: for an ACE-Step 1.5 DiT, ``turbo`` / ``base`` / ``sft`` when config.json or the
    file name tells, else None ("unknown until config.json / file name").
    """

    source: str
    parts: tuple
    key_summary: str = ""
    flavour: Optional[str] = None

    @property
    def families(self) -> tuple:
        return tuple(dict.fromkeys(p.family for p in self.parts))

    @property
    def family(self) -> Optional[str]:
        """The one family of every part, else None (nothing found, or a mix)."""
        fams = self.families
        return fams[0] if len(fams) == 1 else None

    @property
    def variant(self) -> str:
        """The size of the main part (the DiT when there is one, else the only part)."""
        main = self.part("dit") or (self.parts[0] if len(self.parts) == 1 else None)
        return main.variant if main is not None else ""

    @property
    def layout(self) -> str:
        """``all_in_one`` (several components in one file), ``component`` (one), ``unknown`` (none)."""
        return "all_in_one" if len(self.parts) > 1 else "component" if self.parts else "unknown"

    def part(self, component: str, family: Optional[str] = None) -> Optional[Part]:
        for p in self.parts:
            if p.component == component and (family is None or p.family == family):
                return p
        return None

    def components(self, family: str) -> dict:
        """component -> prefix of this family's parts."""
        return {p.component: p.prefix for p in self.parts if p.family == family}

    @property
    def description(self) -> str:
        if not self.parts:
            return f"no known model ({self.key_summary})"
        return ", ".join(p.description for p in self.parts)


# --------------------------------------------------------------------------------------------
# shape tests and variants


def _shape(shapes: Shapes, key: str) -> Optional[tuple]:
    s = shapes.get(key)
    return tuple(s) if s is not None else None


def _width(shapes: Shapes, key: str) -> Optional[int]:
    s = _shape(shapes, key)
    return int(s[0]) if s else None


def _named(width: Optional[int], sizes: Mapping[int, str]) -> str:
    return sizes.get(width, f"hidden {width}") if width is not None else ""


def _v15_dit_variant(shapes: Shapes, p: str) -> str:
    return _named(_width(shapes, p + "decoder.layers.0.cross_attn_norm.weight"), {2048: "2B", 2560: "XL"})


def _qwen_rows(shapes: Shapes, p: str) -> int:
    s = _shape(shapes, p + "embed_tokens.weight")
    return int(s[0]) if s else 0


def _is_lm(shapes: Shapes, p: str) -> bool:
    return _qwen_rows(shapes, p) > QWEN3_TEXT_VOCAB


def _qwen_variant(shapes: Shapes, p: str) -> str:
    return _named(_width(shapes, p + "norm.weight"), {1024: "0.6B", 2048: "1.7B", 2560: "4B"})


def _upsample_kernel(shapes: Shapes, key: str) -> Optional[int]:
    """Last dim of a weight-normed conv (``weight_v`` or ``parametrizations...original1``)."""
    for name in (key + ".weight_v", key + ".parametrizations.weight.original1", key + ".weight"):
        s = _shape(shapes, name)
        if s:
            return int(s[-1])
    return None


# the second decoder block upsamples by 6 in ACE-Step 1.5 (kernel 12), by 8 in Stable Audio (16)
_STABLE_AUDIO_KERNEL = 16


def _not_stable_audio(key: str) -> Callable[[Shapes, str], bool]:
    return lambda shapes, p: _upsample_kernel(shapes, p + key) != _STABLE_AUDIO_KERNEL


def _stable_audio(key: str) -> Callable[[Shapes, str], bool]:
    return lambda shapes, p: _upsample_kernel(shapes, p + key) == _STABLE_AUDIO_KERNEL


def _umt5_bias_everywhere(shapes: Shapes, p: str) -> bool:
    """UMT5 has a relative_attention_bias in every block; T5 in block 0 only."""
    n = count_indices(shapes, re.escape(p) + r"encoder\.block\.(\d+)\.")
    with_bias = sum(1 for i in range(n)
                    if f"{p}encoder.block.{i}.layer.0.SelfAttention.relative_attention_bias.weight" in shapes)
    return not (n > 1 and with_bias == 1)


def _fixed(value: str) -> Callable[[Shapes, str], str]:
    return lambda shapes, p: value


# --------------------------------------------------------------------------------------------
# the table


@dataclass(frozen=True)
class Row:
    """Markers (key suffixes under one prefix) -> a :class:`Part`, when ``when`` holds."""

    markers: tuple
    family: str
    component: str
    naming: str
    title: str
    variant: Callable[[Shapes, str], str] = field(default=_fixed(""))
    when: Optional[Callable[[Shapes, str], bool]] = None


_UMT5_MARKERS = ("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                 "encoder.final_layer_norm.weight")
_QWEN3_MARKERS = ("layers.0.post_attention_layernorm.weight", "embed_tokens.weight", "norm.weight")
_COMFY_VAE_MARKERS = ("decoder.layers.1.layers.0.beta", "encoder.layers.1.layers.0.layers.0.alpha")
_DIFFUSERS_VAE_MARKERS = ("encoder.block.0.res_unit1.snake1.alpha", "decoder.block.0.snake1.alpha")

TABLE: tuple = (
    # ACE-Step v1 (3.5B): official folders hold bare keys, ComfyUI's all-in-one the same under prefixes
    Row(("genre_embedder.weight", "lyric_embs.weight", "transformer_blocks.0.attn.to_q.weight"),
        ACE_V1, "dit", "official", "ACE-Step v1 DiT (ace_step_transformer)", _fixed("3.5B")),
    Row(("encoder.conv_in.weight", "decoder.conv_in.weight", "decoder.conv_out.weight"),
        ACE_V1, "dcae", "diffusers", "music DCAE (music_dcae_f8c8)", _fixed("3.5B")),
    Row(("backbone.channel_layers.0.0.bias",),
        ACE_V1, "vocoder", "official", "HiFi-GAN vocoder (music_vocoder)", _fixed("3.5B")),
    Row(_UMT5_MARKERS, ACE_V1, "umt5", "hf", "UMT5-base text encoder (umt5-base)", _fixed("3.5B"),
        when=_umt5_bias_everywhere),
    Row(_UMT5_MARKERS, "t5", "text_encoder", "hf",
        "a T5 encoder (relative_attention_bias in block 0 only; ACE-Step v1 needs UMT5)",
        when=lambda s, p: not _umt5_bias_everywhere(s, p)),
    # ACE-Step 1.5: official folders and ComfyUI split files share the DiT / Qwen3 key names
    Row(("null_condition_emb", "decoder.layers.0.cross_attn_norm.weight"),
        ACE_V15, "dit", "official", "an ACE-Step 1.5 DiT (acestep-v15)", _v15_dit_variant),
    Row(_DIFFUSERS_VAE_MARKERS, ACE_V15, "vae", "diffusers",
        "an ACE-Step 1.5 VAE (diffusers AutoencoderOobleck)", _fixed(""),
        when=_not_stable_audio("decoder.block.1.conv_t1")),
    Row(_COMFY_VAE_MARKERS, ACE_V15, "vae", "comfy",
        "an ACE-Step 1.5 VAE (Oobleck, ComfyUI naming)", _fixed(""),
        when=_not_stable_audio("decoder.layers.2.layers.1")),
    Row(_QWEN3_MARKERS, ACE_V15, "text_encoder", "hf",
        "a Qwen3-Embedding text encoder (ACE-Step 1.5)", _qwen_variant,
        when=lambda s, p: not _is_lm(s, p)),
    Row(_QWEN3_MARKERS, ACE_V15, "lm", "hf", "an ACE-Step 1.5 5 Hz LM (Qwen3)", _qwen_variant,
        when=_is_lm),
    # other families, named so the error says what the file is
    Row(_DIFFUSERS_VAE_MARKERS, "stable_audio", "vae", "diffusers", "a Stable Audio VAE (Oobleck, 44.1 kHz)",
        when=_stable_audio("decoder.block.1.conv_t1")),
    Row(_COMFY_VAE_MARKERS, "stable_audio", "vae", "comfy", "a Stable Audio VAE (Oobleck, 44.1 kHz)",
        when=_stable_audio("decoder.layers.2.layers.1")),
    Row(("input_blocks.0.0.weight",), "stable_diffusion", "unet", "ldm", "a Stable Diffusion UNet"),
    Row(("double_blocks.0.img_attn.qkv.weight",), "flux", "dit", "bfl", "a Flux transformer"),
    Row(("joint_blocks.0.x_block.attn.qkv.weight",), "sd3", "mmdit", "sai", "an SD3 MMDiT"),
    Row(("text_model.encoder.layers.0.self_attn.q_proj.weight",), "clip", "text_encoder", "hf",
        "a CLIP text encoder"),
)


def recognise(shapes: Shapes, source: str = "") -> Recognition:
    """Run :data:`TABLE` over a key -> shape mapping (shapes as tuples or lists).

    A match under a prefix that lies inside another match's prefix is part of that model (e.g. the
    Qwen3-style encoders inside an ACE-Step 1.5 DiT) and is not listed.
    """
    shapes = {k: tuple(v) for k, v in shapes.items()}
    parts = []
    for row in TABLE:
        for prefix in find_prefixes(shapes, row.markers):
            if row.when is None or row.when(shapes, prefix):
                parts.append(Part(row.family, row.component, row.variant(shapes, prefix), prefix, row.naming,
                                  row.title))
    # a match inside another one's prefix is a sub-module of it (the DiT's Qwen3-style encoders)
    parts = [p for p in parts if not any(p.prefix != q.prefix and p.prefix.startswith(q.prefix) for q in parts)]
    parts.sort(key=lambda p: (p.prefix, TABLE_ORDER[(p.family, p.component, p.naming)]))
    return Recognition(source=source, parts=tuple(parts), key_summary=summarize_keys(shapes))


TABLE_ORDER = {(r.family, r.component, r.naming): i for i, r in enumerate(TABLE)}


def missing_markers(keys, family: str, component: str) -> list:
    """Full key names that would complete ``family``'s ``component`` where only some of its
    recognition keys exist under a prefix (a file with one DiT key missing is then reported by that
    key, not as "no DiT"). Empty when no marker of the component is present at all."""
    keys = set(keys)
    missing = []
    for row in TABLE:
        if row.family != family or row.component != component:
            continue
        for marker in row.markers:
            for k in keys:
                if k.endswith(marker) and (k == marker or k[: len(k) - len(marker)].endswith(".")):
                    prefix = k[: len(k) - len(marker)]
                    missing += [prefix + m for m in row.markers if prefix + m not in keys]
    return sorted(dict.fromkeys(missing))


def flavour_hint(path: Union[str, Path], config: Optional[dict] = None) -> Optional[str]:
    """``turbo`` / ``base`` / ``sft`` of an ACE-Step 1.5 DiT, else None.

    From ``config`` (or the ``config.json`` beside the file): ``is_turbo`` true -> turbo, else a
    ``model_version`` naming a flavour; then from the file or folder name (``acestep_v1.5_turbo``,
    ``acestep-v15-xl-base``, ``..._sft_bf16``).
    """
    path = Path(path)
    if config is None:
        cfg_file = path / "config.json" if path.is_dir() else path.parent / "config.json"
        try:
            config = json.loads(cfg_file.read_text(encoding="utf-8")) if cfg_file.is_file() else None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            config = None
    if isinstance(config, dict):
        if config.get("is_turbo") is True:
            return "turbo"
        version = str(config.get("model_version") or "").lower()
        if config.get("is_turbo") is False and version in ("", "turbo"):
            version = ""
        for flavour in FLAVOURS:
            if flavour in version:
                return flavour
    names = [path.stem.lower()] + ([path.parent.name.lower()] if path.is_file() or path.suffix else [])
    for name in names:
        words = set(re.split(r"[^a-z0-9]+", name))
        for flavour in _NAME_HINT_ORDER:
            if flavour in words:
                return flavour
    return None


def recognise_header(header: SafetensorsHeader) -> Recognition:
    """:func:`recognise` on a parsed header; the flavour hint is added for a 1.5 DiT."""
    found = recognise({k: v.shape for k, v in header.tensors.items()}, str(header.path))
    if found.part("dit", ACE_V15) is not None:
        found = Recognition(found.source, found.parts, found.key_summary, flavour_hint(header.path))
    return found


def recognise_file(path: Union[str, Path], family: Optional[str] = None) -> Recognition:
    """Recognise a safetensors file from its header; CheckpointError (naming the file) when it holds
    no known model, or when ``family`` is given and the file is of another family."""
    found = recognise_header(read_header(path))
    return expect_family(found, family) if family is not None else expect_known(found)


def expect_known(found: Recognition) -> Recognition:
    if not found.parts:
        raise CheckpointError(f"{found.source}: not a model AceForge knows: found {found.description}")
    return found


def expect_family(found: Recognition, family: str) -> Recognition:
    """``found`` when every part is of ``family``; else CheckpointError naming the file and what it holds."""
    expect_known(found)
    if found.family != family:
        raise CheckpointError(f"{found.source}: not an {family} checkpoint: found {found.description}")
    return found


__all__ = [
    "ACE_FAMILIES", "ACE_V1", "ACE_V15", "FLAVOURS", "Part", "Recognition", "Row", "TABLE",
    "expect_family", "expect_known", "flavour_hint", "recognise", "recognise_file", "recognise_header",
]
