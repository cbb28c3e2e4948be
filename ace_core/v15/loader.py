"""Load ACE-Step 1.5 from any published layout, strictly and one tensor at a time.

``load_v15(path, vae=None, text_encoder=None, dtype=None, device="cpu", progress=None)`` takes
ComfyUI's all-in-one file, ComfyUI's split files or the official folders (see
:mod:`~ace_core.v15.layouts`) and returns an :class:`~ace_core.v15.bundle.AceStep15Bundle`.

1. :func:`~.layouts.detect_v15` reads the safetensors headers only and resolves where each part
   lives (another family, a part in the wrong place, a missing part, a truncated file stop here).
2. Each part's config comes from its tensor shapes, then ``config.json`` (official folders) or
   the config our writers embed in the metadata.
3. Each part is built on ``meta``; every key of every file read must fill a tensor of the same
   shape or be skipped by name (the 5 Hz LM of the all-in-one, ``logit_scale``); anything
   missing, unexpected or of another shape raises one CheckpointError naming the file.
4. The tokenizer and the silence latent are read first (cheap); then tensors are streamed with
   plain file reads, cast to the parameters' dtype, and installed with ``assign=True``: memory
   stays close to the size of the weights in the target dtype.

One line on the ``AceForge`` logger says what was loaded and what was skipped on purpose; another
says so when an LM was found and left for the LM loader; a warning when the kind is unknown.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import torch
from torch import nn

from ..errors import CheckpointError, InputError
from ..loading.keys import count_indices, listing, match_state_keys, rename_weight_norm
from ..loading.streaming import check_float_dtype, default_dtype, materialize_buffers, stream_into
from ..progress import ProgressHook
from .bundle import AceStep15Bundle, V15Variant
from .config import AceStep15Config
from .layouts import (
    LAYOUT_AIO,
    LAYOUT_OFFICIAL,
    TITLES,
    UNKNOWN_KIND_BEHAVES_AS,
    PartSource,
    V15Layout,
    detect_v15,
    tensor_info_as,
)
from .model import AceStep15Model
from .oobleck import OobleckConfig, OobleckVAE, comfy_to_diffusers, infer_config
from .qwen3 import Qwen3Config, Qwen3Model, infer_qwen3_config
from .silence import load_silence_latent
from .text_tokenizer import load_tokenizer
from .vae import MusicVAE15

__all__ = ["load_v15", "plan_v15", "infer_dit_config", "V15Plan"]

logger = logging.getLogger("AceForge")
PathLike = Union[str, Path]


# --------------------------------------------------------------------------------------------
# configs from shapes


def infer_dit_config(shapes: Mapping[str, tuple], where: str = "checkpoint") -> dict:
    """Reference-named :class:`AceStep15Config` fields told by the bare DiT-family shapes.

    The encoder fields (``encoder_hidden_size`` ...) are set only when the condition encoder is
    narrower than the DiT (XL). FSQ levels, RoPE theta, the sliding window and other values that
    shapes cannot show keep the published defaults (the FSQ level *count* is checked).
    """
    s = {k: tuple(v) for k, v in shapes.items()}

    def shape(key: str) -> tuple:
        if key not in s:
            raise CheckpointError(f"{where}: no {key!r}; cannot work out the ACE-Step 1.5 DiT config")
        return s[key]

    hidden = shape("decoder.norm_out.weight")[0]
    head_dim = shape("decoder.layers.0.self_attn.q_norm.weight")[0]
    width, in_ch, patch = shape("decoder.proj_in.1.weight")
    enc = shape("encoder.lyric_encoder.norm.weight")[0]
    enc_head_dim = shape("encoder.lyric_encoder.layers.0.self_attn.q_norm.weight")[0]
    cfg = dict(
        hidden_size=hidden,
        intermediate_size=shape("decoder.layers.0.mlp.gate_proj.weight")[0],
        num_hidden_layers=count_indices(s, r"decoder\.layers\.(\d+)\."),
        num_attention_heads=shape("decoder.layers.0.self_attn.q_proj.weight")[0] // head_dim,
        num_key_value_heads=shape("decoder.layers.0.self_attn.k_proj.weight")[0] // head_dim,
        head_dim=head_dim,
        patch_size=patch,
        in_channels=in_ch,
        audio_acoustic_hidden_dim=shape("decoder.proj_out.1.weight")[1],
        text_hidden_dim=shape("encoder.text_projector.weight")[1],
        timbre_hidden_dim=shape("encoder.timbre_encoder.embed_tokens.weight")[1],
        num_lyric_encoder_hidden_layers=count_indices(s, r"encoder\.lyric_encoder\.layers\.(\d+)\."),
        num_timbre_encoder_hidden_layers=count_indices(s, r"encoder\.timbre_encoder\.layers\.(\d+)\."),
        num_attention_pooler_hidden_layers=count_indices(s, r"tokenizer\.attention_pooler\.layers\.(\d+)\."),
        pool_window_size=shape("detokenizer.special_tokens")[1],
        fsq_dim=shape("tokenizer.quantizer.project_in.weight")[1],
    )
    if enc != hidden:
        cfg.update(
            encoder_hidden_size=enc,
            encoder_intermediate_size=shape("encoder.lyric_encoder.layers.0.mlp.gate_proj.weight")[0],
            encoder_num_attention_heads=shape("encoder.lyric_encoder.layers.0.self_attn.q_proj.weight")[0]
            // enc_head_dim,
            encoder_num_key_value_heads=shape("encoder.lyric_encoder.layers.0.self_attn.k_proj.weight")[0]
            // enc_head_dim,
        )
    levels = shape("tokenizer.quantizer.project_in.weight")[0]
    if levels != len(AceStep15Config().fsq_input_levels):
        cfg["_fsq_level_count"] = levels  # only a config (config.json / metadata) can tell the levels
    return cfg


def _merge(base: dict, *overrides: Optional[dict]) -> dict:
    out = dict(base)
    for extra in overrides:
        if extra:
            out.update(extra)
    return out


def _dit_config(part: PartSource, embedded: Optional[dict]) -> AceStep15Config:
    file_shapes = part.shapes()
    shapes = {bare: file_shapes[full] for bare, full in part.bare_keys().items()}
    cfg = _merge(infer_dit_config(shapes, where=str(part.file)), embedded, part.config_json)
    count = cfg.pop("_fsq_level_count", None)
    if count is not None and len(cfg.get("fsq_input_levels") or ()) != count:
        raise CheckpointError(f"{part.file}: the FSQ quantizer has {count} dimensions, but no config.json / "
                              "embedded config gives its levels (published: 6)")
    try:
        return AceStep15Config.from_dict(cfg)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{part.file}: invalid ACE-Step 1.5 DiT config: {exc}") from exc


def _vae_config(part: PartSource, shapes: Mapping[str, tuple], embedded: Optional[dict]) -> OobleckConfig:
    base = asdict(infer_config(shapes, source=str(part.file)))
    try:
        return OobleckConfig.from_reference(_merge(base, embedded, part.config_json))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{part.file}: invalid Oobleck VAE config: {exc}") from exc


def _text_config(part: PartSource, embedded: Optional[dict]) -> Qwen3Config:
    inferred = infer_qwen3_config(part.shapes(), part.prefix, where=str(part.file))
    try:
        return Qwen3Config.from_dict(_merge(asdict(inferred), embedded, part.config_json))
    except CheckpointError as exc:
        raise CheckpointError(f"{part.file}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{part.file}: invalid Qwen3 config: {exc}") from exc


# --------------------------------------------------------------------------------------------
# key plans


def _vae_keys(part: PartSource) -> tuple:
    """(diffusers key -> full file key, full key -> shape as the model reads it) of a VAE part."""
    bare = part.bare_keys()
    shapes = part.shapes()
    if part.naming != "comfy":
        return rename_weight_norm(dict(bare)), shapes
    # the converter renames tensors; probes carrying their index tell which file key went where
    names = list(bare)
    probes = {name: torch.tensor([float(i)]) for i, name in enumerate(names)}
    try:
        renamed = comfy_to_diffusers(probes, source=str(part.file))
    except CheckpointError as exc:
        raise CheckpointError(f"{exc} (keys under '{part.prefix}')" if part.prefix else str(exc)) from exc
    key_map = {dkey: bare[names[int(t.reshape(-1)[0])]] for dkey, t in renamed.items()}
    effective = dict(shapes)
    for dkey, full in key_map.items():
        if dkey.endswith((".alpha", ".beta")) and len(shapes[full]) == 1:
            effective[full] = (1, shapes[full][0], 1)  # Snake (C,) -> (1, C, 1)
    return key_map, effective


def _short(config) -> str:
    d = asdict(config)
    keys = ("hidden_size", "num_hidden_layers", "encoder_hidden_size", "vocab_size", "downsampling_ratios",
            "decoder_channels")
    return ", ".join(f"{k}={d[k]}" for k in keys if d.get(k) is not None)


def _plan_part(part: PartSource, module: nn.Module, config, key_map: Mapping[str, str],
               shapes: Mapping[str, tuple], what: str) -> tuple:
    """-> (module key -> (file, TensorInfo read as the module's shape), {(file, key) loaded}).

    Strict: CheckpointError naming the file for missing / unexpected / mismatched keys."""
    state = module.state_dict()
    own = {k: tuple(v.shape) for k, v in state.items()}
    params = {n for n, _ in module.named_parameters()}
    load, _ = match_state_keys(part.file, f"{what} built from its config ({_short(config)})", own, params,
                               key_map, shapes, prefix=part.prefix)
    tensors = part.tensors()
    plan, used = {}, set()
    for name, full in load.items():
        path, info = tensors[full]
        plan[name] = (path, info if tuple(info.shape) == own[name] else tensor_info_as(info, own[name]))
        used.add((path, full))
    return plan, used


@dataclass
class V15Plan:
    """Everything decided before a byte of weights is read (part = dit / vae / text_encoder).

    configs / modules (on ``meta``) / plans (module key -> (file, TensorInfo)) per part; loaded:
    {(file, key)} read into a module; skipped: key -> why, for the other keys of the files read.
    """

    layout: V15Layout
    configs: dict
    modules: dict
    plans: dict
    loaded: set
    skipped: dict

    @property
    def total(self) -> int:
        return sum(len(p) for p in self.plans.values())


def plan_v15(layout: V15Layout, dtype: torch.dtype = torch.bfloat16) -> V15Plan:
    """Configs, modules on ``meta`` and strict key plans for a resolved layout (no weights read).

    Raises CheckpointError naming the file for a key missing, unexpected (also outside every
    part's prefix) or of another shape.
    """
    parts, embedded = layout.parts, layout.embedded
    dit_cfg = _dit_config(parts["dit"], embedded.get("dit"))
    vae_map, vae_shapes = _vae_keys(parts["vae"])
    vae_cfg = _vae_config(parts["vae"], {k: vae_shapes[f] for k, f in vae_map.items()}, embedded.get("vae"))
    te_cfg = _text_config(parts["text_encoder"], embedded.get("text_encoder"))
    try:
        modules = {
            "dit": AceStep15Model(dit_cfg, dtype=dtype, device="meta"),
            "vae": OobleckVAE(vae_cfg, dtype=dtype, device="meta"),
            "text_encoder": Qwen3Model(te_cfg, dtype=dtype, device="meta"),
        }
    except (InputError, ValueError) as exc:
        raise CheckpointError(f"{layout.source}: the model config is inconsistent: {exc}") from exc
    maps = {"dit": (parts["dit"].bare_keys(), parts["dit"].shapes()), "vae": (vae_map, vae_shapes),
            "text_encoder": (parts["text_encoder"].bare_keys(), parts["text_encoder"].shapes())}
    configs = {"dit": dit_cfg, "vae": vae_cfg, "text_encoder": te_cfg}
    plans, loaded = {}, set()
    for c in modules:
        plans[c], used = _plan_part(parts[c], modules[c], configs[c], *maps[c], what=TITLES[c])
        loaded |= used
    skipped = {}
    for header in layout.headers:
        stray = []
        for k in header.tensors:
            if (header.path, k) in loaded:
                continue
            if k in layout.ignored:
                skipped[k] = layout.ignored[k]
            else:
                stray.append(k)
        if stray:
            raise CheckpointError(f"{header.path}: unexpected {len(stray)} keys outside the ACE-Step 1.5 parts: "
                                  f"{listing(stray)}")
    return V15Plan(layout, configs, modules, plans, loaded, skipped)


# --------------------------------------------------------------------------------------------
# loading


def load_v15(
    path: Union[PathLike, Sequence[PathLike]],
    *,
    vae: Optional[PathLike] = None,
    text_encoder: Optional[PathLike] = None,
    dtype: Optional[torch.dtype] = None,
    device: Union[str, torch.device] = "cpu",
    progress: Optional[ProgressHook] = None,
) -> AceStep15Bundle:
    """Load ACE-Step 1.5 (DiT family + VAE + Qwen3 text encoder) from any published layout.

    path: ComfyUI's all-in-one file, a split DiT file (its VAE / text encoder found in the ComfyUI
    models folder), an official DiT folder or the root holding it, or a list of the files of one
    model in any order (see :func:`~.layouts.detect_v15`).
    vae / text_encoder: a file or folder that supplies or replaces that part. dtype: the weights'
    dtype (None: bfloat16 where supported, else float32). device: where the weights go.
    progress: ``hook(done, total)`` after each tensor. The 5 Hz LM of an all-in-one file is not
    loaded (``bundle.lm_sources`` says where it is). Raises CheckpointError naming the file.
    """
    device = torch.device(device)
    dtype = check_float_dtype(default_dtype(device) if dtype is None else dtype)
    layout = detect_v15(path, vae=vae, text_encoder=text_encoder)
    plan = plan_v15(layout, dtype)

    # cheap parts first: a bad tokenizer or silence file fails before gigabytes are read
    tokenizer = load_tokenizer(layout.tokenizer_dir)
    rows = plan.configs["text_encoder"].vocab_size
    if tokenizer.vocab_size > rows:
        raise CheckpointError(f"{layout.parts['text_encoder'].file}: the text encoder has {rows} embedding rows, "
                              f"its tokenizer ({tokenizer.source}) {tokenizer.vocab_size} ids")
    silence = load_silence_latent(layout.silence_file) if layout.silence_file is not None else None

    counter = [0, plan.total]
    for comp, module in plan.modules.items():
        stream_into(module, plan.plans[comp], device, progress, counter)
        materialize_buffers(module, device)
        module.requires_grad_(False)
        module.eval()

    variant = V15Variant(size=layout.size, kind=layout.kind, kind_basis=layout.kind_basis,
                         layout=layout.layout, files=layout.files())
    bundle = AceStep15Bundle(
        model=plan.modules["dit"], vae=MusicVAE15(plan.modules["vae"]).eval(), text_encoder=plan.modules["text_encoder"],
        text_tokenizer=tokenizer, variant=variant, dtype=dtype, silence_latent=silence,
        silence_source=str(layout.silence_file) if silence is not None else "built-in pattern",
        skipped=plan.skipped, lm_sources=layout.lm_sources,
    )
    _log(layout, bundle)
    return bundle


_LAYOUT_WORDS = {LAYOUT_AIO: "ComfyUI all-in-one", LAYOUT_OFFICIAL: "official folders"}


def _log(layout: V15Layout, bundle: AceStep15Bundle) -> None:
    by_reason: dict = {}
    for why in bundle.skipped.values():
        by_reason[why] = by_reason.get(why, 0) + 1
    skipped = "; ".join(f"{n} {why}" for why, n in sorted(by_reason.items(), key=lambda kv: -kv[1])) or "nothing"
    v = bundle.variant
    logger.info(
        "AceForge: loaded ACE-Step 1.5 %s %s (kind from %s) from %s (%s) as %s; tokenizer %s; silence latent %s; "
        "skipped on purpose: %s",
        v.size, v.kind, v.kind_basis, layout.source, _LAYOUT_WORDS.get(layout.layout, "ComfyUI split files"),
        str(bundle.dtype).replace("torch.", ""), bundle.text_tokenizer.source, bundle.silence_source, skipped,
    )
    for note in layout.notes:
        logger.info("AceForge: %s", note)
    for lm in layout.lm_sources:
        logger.info("AceForge: %s holds a 5 Hz LM (%s) under '%s'; not loaded now (bundle.lm_sources keeps it "
                    "for the LM loader)", lm.file, lm.variant or "unknown size", lm.prefix)
    if v.kind == "unknown":
        logger.warning(
            "AceForge: %s does not say whether it is turbo, base or sft (no config.json, no such word in its "
            "name); sampling as %s. Rename the file to include turbo / base / sft to choose.",
            layout.parts["dit"].file, UNKNOWN_KIND_BEHAVES_AS,
        )
