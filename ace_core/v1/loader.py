"""Load ACE-Step v1 from either published layout; save our own all-in-one file.

``load_v1(path)`` accepts ComfyUI's all-in-one ``ace_step_v1_3.5b.safetensors`` or the official
``ACE-Step-v1-3.5B/`` folder (or any file/folder inside it) and returns an
:class:`~ace_core.v1.bundle.AceStepV1`.

How it loads (memory stays close to the size of the weights in the target dtype):

1. :func:`~ace_core.v1.layouts.detect_v1` reads the safetensors headers only and resolves the
   layout (another model family, a truncated or corrupt file, a missing component all stop here
   with a :class:`~ace_core.errors.CheckpointError` naming the file and what was found).
2. Each model's config is inferred from tensor shapes, then overridden by the folder's
   ``config.json`` (official layout) or by the config we embed in the metadata of files we write.
3. Each model is built on the ``meta`` device (no memory), its key/shape set is compared with the
   file's: every file key must be consumed or be on the explicit ignore list (checked shapes);
   anything missing, unexpected or of another shape raises ``CheckpointError`` listing the keys.
4. Tensors are streamed one at a time with plain file reads, cast to the dtype of the parameter
   they fill, and installed with ``load_state_dict(assign=True)``. Non-persistent buffers are
   then materialised on the target device (modules recompute them in ``reset_buffers()``).

One line on the ``AceForge`` logger says what was skipped on purpose and why.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

import torch
from torch import nn

from ..errors import CheckpointError, InputError
from ..loading.json_files import embedded_config
from ..loading.keys import count_indices, listing, match_state_keys, rename_weight_norm
from ..loading.safetensors_io import read_tensor, write_safetensors
from ..loading.streaming import check_float_dtype, default_dtype, materialize_buffers, stream_into
from .bundle import AceStepV1
from .layouts import (
    COMFY_PREFIXES,
    COMFY_SPIECE_KEY,
    COMPONENT_TITLES,
    OFFICIAL_FILES,
    OFFICIAL_TOKENIZER_DIR,
    ComponentSource,
    V1Layout,
    detect_v1,
)
from .text_tokenizer import UMT5Tokenizer
from .umt5 import UMT5Config, UMT5Encoder

__all__ = [
    "load_v1",
    "default_dtype",
    "infer_configs",
    "infer_config_from_shapes",
    "build_models",
    "checkpoint_specs",
    "save_v1_all_in_one",
    "save_v1_official",
    "CONFIG_METADATA_KEY",
    "COMFY_LOGIT_SCALE",
]

logger = logging.getLogger("AceForge")

#: safetensors metadata key under which files we write carry their model configs (JSON).
CONFIG_METADATA_KEY = "aceforge.v1.config"
#: value ComfyUI stores for ``text_encoders.umt5base.logit_scale`` (unused by T5 encoders).
COMFY_LOGIT_SCALE = 4.6052


# --- small helpers -----------------------------------------------------------------------------
def _config_dict(config) -> dict:
    if hasattr(config, "to_dict"):
        return config.to_dict()
    if is_dataclass(config):
        return json.loads(json.dumps(asdict(config)))
    return dict(config)


# --- config inference from shapes ------------------------------------------------------------
def _infer_dit(shapes: Mapping[str, tuple]) -> dict:
    s = shapes
    cfg: dict = {}
    inner = s["genre_embedder.weight"][0]
    cfg["text_embedding_dim"] = s["genre_embedder.weight"][1]
    if "speaker_embedder.weight" in s:
        cfg["speaker_embedding_dim"] = s["speaker_embedder.weight"][1]
    cfg["lyric_encoder_vocab_size"], cfg["lyric_hidden_size"] = s["lyric_embs.weight"]
    cfg["num_layers"] = count_indices(s, r"transformer_blocks\.(\d+)\.")
    head_dim = 128 if inner % 128 == 0 else next(d for d in (64, 32, 16, 8, 4, 2, 1) if inner % d == 0)
    cfg["attention_head_dim"] = head_dim
    cfg["num_attention_heads"] = inner // head_dim
    cfg["inner_dim"] = inner
    conv = s.get("transformer_blocks.0.ff.inverted_conv.conv.weight")
    if conv is not None:
        cfg["mlp_ratio"] = conv[0] / 2 / inner
    patch = s.get("proj_in.early_conv_layers.0.weight")
    if patch is not None:
        cfg["in_channels"] = patch[1]
        cfg["patch_size"] = [patch[2], patch[3]]
        cfg["max_height"] = patch[2]
        lin = s.get("final_layer.linear.weight")
        if lin is not None:
            cfg["out_channels"] = lin[0] // (patch[2] * patch[3])
    ssl = []
    for i in range(count_indices(s, r"projectors\.(\d+)\.")):
        last = max((int(m.group(1)) for k in s if (m := re.match(rf"projectors\.{i}\.(\d+)\.weight$", k))), default=None)
        if last is not None:
            ssl.append(s[f"projectors.{i}.{last}.weight"][0])
    if ssl:
        cfg["ssl_latent_dims"] = ssl
        if len(ssl) != 2:
            cfg["ssl_names"] = [f"ssl{i}" for i in range(len(ssl))]
            cfg["ssl_encoder_depths"] = [8] * len(ssl)
    over = {}
    if "lyric_proj.weight" in s:
        over["output_size"] = s["lyric_proj.weight"][1]
    if "lyric_encoder.encoders.0.self_attn.pos_bias_u" in s:
        over["attention_heads"] = s["lyric_encoder.encoders.0.self_attn.pos_bias_u"][0]
    if "lyric_encoder.encoders.0.feed_forward.w_1.weight" in s:
        over["linear_units"] = s["lyric_encoder.encoders.0.feed_forward.w_1.weight"][0]
    over["num_blocks"] = count_indices(s, r"lyric_encoder\.encoders\.(\d+)\.")
    cfg["lyric_encoder_overrides"] = over
    return cfg


def _infer_dcae(shapes: Mapping[str, tuple]) -> dict:
    s = shapes
    cfg: dict = {"in_channels": s["encoder.conv_in.weight"][1], "latent_channels": s["encoder.conv_out.weight"][0]}

    def stages(side: str, blocks: str):
        n = count_indices(s, rf"{side}\.{blocks}\.(\d+)\.")
        types, chans, layers, scales = [], [], [], []
        head_dim = None
        for i in range(n):
            idx = sorted({int(m.group(1)) for k in s if (m := re.match(rf"{side}\.{blocks}\.{i}\.(\d+)\.", k))})
            kinds = []
            for j in idx:
                p = f"{side}.{blocks}.{i}.{j}."
                if p + "attn.to_q.weight" in s:
                    kinds.append(("EfficientViTBlock", j))
                elif p + "conv1.weight" in s:
                    kinds.append(("ResBlock", j))
            layers.append(len(kinds))
            if kinds:
                kind, j = kinds[0]
                types.append(kind)
                p = f"{side}.{blocks}.{i}.{j}."
                if kind == "ResBlock":
                    chans.append(s[p + "conv1.weight"][0])
                    scales.append([])
                else:
                    chans.append(s[p + "attn.to_q.weight"][1])
                    ms = count_indices(s, re.escape(p) + r"attn\.to_qkv_multiscale\.(\d+)\.")
                    scales.append([s[f"{p}attn.to_qkv_multiscale.{m}.proj_in.weight"][-1] for m in range(ms)])
                    if ms:
                        head_dim = s[f"{p}attn.to_qkv_multiscale.0.proj_out.weight"][1]
            else:
                types.append("ResBlock")
                chans.append(None)
                scales.append([])
        return types, chans, layers, scales, head_dim

    et, ec, el, es, hd1 = stages("encoder", "down_blocks")
    dt, dc, dl, ds, hd2 = stages("decoder", "up_blocks")
    # stages without blocks: channels from the neighbouring (down/up)sampling convs
    for i, c in enumerate(ec):
        if c is None and f"encoder.down_blocks.{i}.0.conv.weight" in s:
            ec[i] = s[f"encoder.down_blocks.{i}.0.conv.weight"][1]
    for i, c in enumerate(dc):
        if c is None and f"decoder.up_blocks.{i}.0.conv.weight" in s:
            dc[i] = s[f"decoder.up_blocks.{i}.0.conv.weight"][0]
    if None not in ec:
        cfg["encoder_block_out_channels"] = ec
    if None not in dc:
        cfg["decoder_block_out_channels"] = dc
    cfg.update(encoder_block_types=et, decoder_block_types=dt, encoder_layers_per_block=el,
               decoder_layers_per_block=dl, encoder_qkv_multiscales=es, decoder_qkv_multiscales=ds)
    if hd1 or hd2:
        cfg["attention_head_dim"] = hd1 or hd2
    # sampling block types from the conv shapes
    down = s.get("encoder.down_blocks.0.%d.conv.weight" % el[0]) if el else None
    if down is not None and len(ec) > 1 and ec[1] is not None:
        cfg["downsample_block_type"] = "Conv" if down[0] == ec[1] else "pixel_unshuffle"
    up = s.get("decoder.up_blocks.0.0.conv.weight")
    if up is not None and dc and dc[0] is not None:
        cfg["upsample_block_type"] = "interpolate" if up[0] == dc[0] else "pixel_shuffle"
    return cfg


def _infer_vocoder(shapes: Mapping[str, tuple]) -> dict:
    s = shapes
    cfg: dict = {}
    first = s.get("backbone.channel_layers.0.0.weight")
    if first is not None:
        cfg["input_channels"] = first[1]
    n = count_indices(s, r"backbone\.stages\.(\d+)\.")
    if n:
        cfg["depths"] = [count_indices(s, rf"backbone\.stages\.{i}\.(\d+)\.") for i in range(n)]
        dw = [s.get(f"backbone.stages.{i}.0.dwconv.weight") for i in range(n)]
        if all(w is not None for w in dw):
            cfg["dims"] = [w[0] for w in dw]
        if "backbone.stages.0.0.dwconv.weight" in s:
            cfg["kernel_sizes"] = [s["backbone.stages.0.0.dwconv.weight"][-1]]
    pre = s.get("head.conv_pre.weight_v")
    if pre is not None:
        cfg["upsample_initial_channel"], cfg["num_mels"], cfg["pre_conv_kernel_size"] = pre
    ups = count_indices(s, r"head\.ups\.(\d+)\.")
    if ups:
        kernels = [s[f"head.ups.{i}.weight_v"][-1] for i in range(ups)]
        cfg["upsample_kernel_sizes"] = kernels
        cfg["upsample_rates"] = [max(1, k // 2) for k in kernels]
        rates = 1
        for r in cfg["upsample_rates"]:
            rates *= r
        cfg["hop_length"] = rates
        n_res = count_indices(s, r"head\.resblocks\.(\d+)\.")
        per = n_res // ups if ups else 0
        if per:
            cfg["resblock_kernel_sizes"] = [s[f"head.resblocks.{j}.convs1.0.weight_v"][-1] for j in range(per)]
            cfg["resblock_dilation_sizes"] = [
                [1, 3, 5, 7, 9, 11][: count_indices(s, rf"head\.resblocks\.{j}\.convs1\.(\d+)\.")] for j in range(per)
            ]
    post = s.get("head.conv_post.weight_v")
    if post is not None:
        cfg["post_conv_kernel_size"] = post[-1]
    if "mel_transform.spectrogram.window" in s:
        cfg["win_length"] = s["mel_transform.spectrogram.window"][0]
    if "mel_transform.mel_scale.fb" in s:
        freqs, cfg["n_mels"] = s["mel_transform.mel_scale.fb"]
        cfg["n_fft"] = 2 * (freqs - 1)
    return {k: v for k, v in cfg.items() if v is not None}


def _infer_umt5(shapes: Mapping[str, tuple]) -> dict:
    s = shapes
    emb = s.get("shared.weight") or s.get("encoder.embed_tokens.weight")
    cfg: dict = {"vocab_size": emb[0], "d_model": emb[1]}
    cfg["num_layers"] = count_indices(s, r"encoder\.block\.(\d+)\.")
    bias = s["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    cfg["relative_attention_num_buckets"], cfg["num_heads"] = bias
    q = s.get("encoder.block.0.layer.0.SelfAttention.q.weight")
    if q is not None:
        cfg["d_kv"] = q[0] // cfg["num_heads"]
    if "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in s:
        cfg["d_ff"] = s["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"][0]
        cfg["feed_forward_proj"] = "gated-gelu"
    elif "encoder.block.0.layer.1.DenseReluDense.wi.weight" in s:
        cfg["d_ff"] = s["encoder.block.0.layer.1.DenseReluDense.wi.weight"][0]
        cfg["feed_forward_proj"] = "relu"
    return cfg


_INFER = {"dit": _infer_dit, "dcae": _infer_dcae, "vocoder": _infer_vocoder, "umt5": _infer_umt5}


def infer_config_from_shapes(component: str, shapes: Mapping[str, tuple]) -> dict:
    """Reference-named config dict of one component ("dit", "dcae", "vocoder", "umt5") from its
    bare key -> shape mapping. Sizes that shapes cannot tell keep the published values."""
    return _INFER[component]({k: tuple(v) for k, v in shapes.items()})


def _embedded_configs(layout: V1Layout) -> dict:
    return embedded_config(layout.headers, CONFIG_METADATA_KEY)


def infer_configs(layout: V1Layout) -> dict:
    """Reference-named config dicts per component: shapes, then config.json / embedded metadata."""
    embedded = _embedded_configs(layout)
    out = {}
    for comp, src in layout.components.items():
        shapes = {bare: src.header.tensors[full].shape for bare, full in src.bare_keys().items()}
        try:
            cfg = _INFER[comp](shapes)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{src.file}: cannot work out the {COMPONENT_TITLES[comp]} config from its tensors ({exc!r})"
            ) from exc
        for extra in (src.config_json, embedded.get(comp)):
            if extra:
                cfg.update(extra)
        out[comp] = cfg
    return out


# --- building ------------------------------------------------------------------------------
def _model_classes():
    from .dcae import DCAEConfig
    from .dit import AceStepDiT, DiTConfig
    from .music_vae import MusicVAE
    from .vocoder import VocoderConfig

    return AceStepDiT, DiTConfig, MusicVAE, DCAEConfig, VocoderConfig


def _typed_configs(ref: Mapping[str, dict], where: str = "") -> dict:
    _, DiTConfig, _, DCAEConfig, VocoderConfig = _model_classes()
    makers = {"dit": DiTConfig.from_reference, "dcae": DCAEConfig.from_reference,
              "vocoder": VocoderConfig.from_reference, "umt5": UMT5Config.from_reference}
    out = {}
    for comp, cfg in ref.items():
        try:
            out[comp] = makers[comp](dict(cfg))
        except (InputError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{where}: invalid {COMPONENT_TITLES[comp]} config {cfg}: {exc}") from exc
    return out


def build_models(configs: Mapping[str, object], dtype=None, device="meta") -> dict:
    """``{"dit": AceStepDiT, "text_encoder": UMT5Encoder, "vae": MusicVAE}`` from typed configs."""
    AceStepDiT, _, MusicVAE, _, _ = _model_classes()
    return {
        "dit": AceStepDiT(configs["dit"], dtype=dtype, device=device),
        "text_encoder": UMT5Encoder(configs["umt5"], dtype=dtype, device=device),
        "vae": MusicVAE(configs["dcae"], configs["vocoder"], dtype=dtype, device=device),
    }


# (module role, prefix inside that module) for each component
_ROUTE = {"dit": ("dit", ""), "umt5": ("text_encoder", ""), "dcae": ("vae", "dcae."), "vocoder": ("vae", "vocoder.")}


def _ignorable(comp: str, config) -> dict:
    """Keys a published component file may hold that we skip on purpose -> (shape or None, reason)."""
    AceStepDiT, *_ = _model_classes()
    from .vocoder import ADaMoSHiFiGAN

    if comp == "dit":
        out = {}
        for k, shape in AceStepDiT.ignored_checkpoint_keys(config).items():
            why = "training-only DiT projectors" if k.startswith("projectors.") else "unused DiT cross_attn.add_* projections"
            out[k] = (tuple(shape), why)
        return out
    if comp == "vocoder":
        return {k: (tuple(v), "vocoder mel_transform buffers (recomputed)")
                for k, v in ADaMoSHiFiGAN.optional_checkpoint_keys(config).items()}
    return {}


def _umt5_extra(key: str) -> Optional[str]:
    """UMT5 keys that a full (encoder-decoder) save may add: reason to skip, else None."""
    if key.startswith("decoder.") or key == "lm_head.weight":
        return "UMT5 decoder / LM head (the encoder alone is used)"
    return None


def _plan_component(src: ComponentSource, comp: str, config, module: nn.Module) -> tuple:
    """Match a component's file keys to its module: -> (load map module key -> file key, skipped)."""
    role, sub = _ROUTE[comp]
    own = {k[len(sub):]: v for k, v in module.state_dict().items() if k.startswith(sub)}
    params = {n[len(sub):] for n, _ in module.named_parameters() if n.startswith(sub)}
    file_keys = src.bare_keys()
    ignorable = _ignorable(comp, config)

    # aliases: tied UMT5 embedding; torch parametrization names for weight norm
    if comp == "umt5" and "encoder.embed_tokens.weight" in file_keys:
        if "shared.weight" not in file_keys:
            file_keys["shared.weight"] = file_keys.pop("encoder.embed_tokens.weight")
        else:
            ignorable["encoder.embed_tokens.weight"] = (tuple(own["shared.weight"].shape),
                                                        "UMT5 encoder.embed_tokens (tied to shared)")
    rename_weight_norm(file_keys)
    own_shapes = {k: tuple(v.shape) for k, v in own.items()}
    shapes = {full: src.header.tensors[full].shape for full in file_keys.values()}
    load, skipped = match_state_keys(
        src.file, f"{COMPONENT_TITLES[comp]} built from its config ({_short_config(config)})", own_shapes, params,
        file_keys, shapes, ignorable=ignorable, skip=_umt5_extra if comp == "umt5" else None, prefix=src.prefix)
    return {sub + k: full for k, full in load.items()}, skipped


def _short_config(config) -> str:
    d = _config_dict(config)
    keys = ("num_layers", "inner_dim", "d_model", "num_heads", "encoder_block_out_channels", "dims",
            "upsample_rates", "vocab_size")
    return ", ".join(f"{k}={d[k]}" for k in keys if k in d) or "default"


def load_v1(
    path: Union[str, Path],
    dtype: Optional[torch.dtype] = None,
    device: Union[str, torch.device] = "cpu",
    progress: Optional[Callable[[int, int], None]] = None,
) -> AceStepV1:
    """Load ACE-Step v1 from ComfyUI's all-in-one file or the official folder.

    dtype: compute dtype for the weights (None = bfloat16 where supported, else float32).
    device: where the weights go. progress: ``hook(done, total)`` per tensor loaded.
    Raises ``CheckpointError`` (naming the file) for anything that is not a complete v1 checkpoint.
    """
    layout = detect_v1(path)
    device = torch.device(device)
    dtype = check_float_dtype(default_dtype(device) if dtype is None else dtype)
    ref = infer_configs(layout)
    configs = _typed_configs(ref, where=layout.source)
    try:
        models = build_models(configs, dtype=dtype, device="meta")
    except (InputError, ValueError) as exc:
        raise CheckpointError(f"{layout.source}: the inferred model config is inconsistent: {exc}") from exc

    skipped = dict(layout.ignored)
    if layout.kind == "comfy":
        header = layout.headers[0]
        known = tuple(src.prefix for src in layout.components.values())
        stray = [k for k in header.tensors
                 if not k.startswith(known) and k not in skipped and k != COMFY_SPIECE_KEY]
        if stray:
            raise CheckpointError(
                f"{header.path}: unexpected {len(stray)} keys outside the ACE-Step v1 components: {listing(stray)}"
            )
    plans: dict = {role: {} for role in models}
    for comp, src in layout.components.items():
        role, _ = _ROUTE[comp]
        load, skip = _plan_component(src, comp, configs[comp], models[role])
        skipped.update(skip)
        for name, full in load.items():
            plans[role][name] = (src.file, src.header.tensors[full])

    # tokenizer first: cheap, and a bad tokenizer should fail before gigabytes are read
    if layout.spiece is not None:
        header, key = layout.spiece
        info = header.tensors[key]
        if info.dtype != "U8" or len(info.shape) != 1:
            raise CheckpointError(
                f"{header.path}: '{key}' should be a 1-D uint8 tensor (SentencePiece bytes), found {info.dtype} {list(info.shape)}"
            )
        with open(header.path, "rb") as fh:
            raw = read_tensor(fh, info, header.path)
        tokenizer = UMT5Tokenizer.from_spiece_bytes(raw, source=f"{header.path}:{key}")
    else:
        tokenizer = UMT5Tokenizer.from_folder(layout.tokenizer_dir or layout.root / OFFICIAL_TOKENIZER_DIR)
    umt5_vocab = configs["umt5"].vocab_size
    if tokenizer.vocab_size is not None and tokenizer.vocab_size > umt5_vocab:
        raise CheckpointError(
            f"{tokenizer.source}: tokenizer has {tokenizer.vocab_size} pieces but the UMT5 embedding has only "
            f"{umt5_vocab} rows"
        )

    total = sum(len(p) for p in plans.values())
    counter = [0, total]
    for role, module in models.items():
        stream_into(module, plans[role], device, progress, counter)
        materialize_buffers(module, device)
        module.requires_grad_(False)
        module.eval()

    _log_skipped(layout, skipped, dtype)
    return AceStepV1(
        dit=models["dit"], text_encoder=models["text_encoder"], text_tokenizer=tokenizer, vae=models["vae"],
        source=layout.source, dtype=dtype, layout=layout.kind, skipped=skipped,
    )


def _log_skipped(layout: V1Layout, skipped: Mapping[str, str], dtype) -> None:
    by_reason: dict = {}
    for reason in skipped.values():
        by_reason[reason] = by_reason.get(reason, 0) + 1
    what = "; ".join(f"{n} {r}" for r, n in sorted(by_reason.items(), key=lambda kv: -kv[1])) or "nothing"
    kind = "ComfyUI all-in-one" if layout.kind == "comfy" else "official folder"
    logger.info(
        "AceForge: loaded ACE-Step v1 (%s) from %s as %s; skipped on purpose: %s",
        kind, layout.source, str(dtype).replace("torch.", ""), what,
    )


# --- saving --------------------------------------------------------------------------------
def _module_configs(bundle: AceStepV1) -> dict:
    return {"dit": bundle.dit.config, "umt5": bundle.text_encoder.config,
            "dcae": bundle.vae.dcae.config, "vocoder": bundle.vae.vocoder.config}


def checkpoint_specs(configs: Mapping[str, object], layout: str = "comfy", dtype=torch.float32,
                     include_ignored: bool = True) -> dict:
    """Published key -> (dtype, shape) per file for ``configs``, in the given layout.

    Returns ``{relative file: {key: (dtype, shape)}}``: one file (``""``) for ``"comfy"``, the four
    component files for ``"official"``. Ignored-on-purpose keys are included when asked, so a file
    written from these specs looks like a published one. The SentencePiece bytes are not included.
    """
    models = build_models(configs, dtype=dtype, device="meta")
    comps = {}
    for comp, (role, sub) in _ROUTE.items():
        sd = models[role].state_dict()
        keys = {k[len(sub):]: (v.dtype, tuple(v.shape)) for k, v in sd.items() if k.startswith(sub)}
        if include_ignored:
            for k, (shape, _) in _ignorable(comp, configs[comp]).items():
                if k not in keys:
                    buf = comp == "vocoder"
                    keys[k] = (torch.float32 if buf else dtype, tuple(shape))
        comps[comp] = keys
    if layout == "comfy":
        out = {}
        for comp in ("dit", "dcae", "vocoder", "umt5"):
            for k, v in comps[comp].items():
                out[COMFY_PREFIXES[comp] + k] = v
        if include_ignored:
            out["text_encoders.umt5base.logit_scale"] = (torch.float32, ())
        return {"": out}
    if layout == "official":
        return {OFFICIAL_FILES[c]: comps[c] for c in ("dit", "dcae", "vocoder", "umt5")}
    raise InputError(f"layout: expected 'comfy' or 'official', got {layout!r}")


def _bundle_states(bundle: AceStepV1) -> dict:
    """Component -> {bare key: tensor} of a bundle (the vocoder's mel tables included)."""
    vae = bundle.vae.state_dict()
    states = {
        "dit": bundle.dit.state_dict(),
        "umt5": bundle.text_encoder.state_dict(),
        "dcae": {k[len("dcae."):]: v for k, v in vae.items() if k.startswith("dcae.")},
        "vocoder": {k[len("vocoder."):]: v for k, v in vae.items() if k.startswith("vocoder.")},
    }
    mel = getattr(bundle.vae.vocoder, "mel_transform", None)
    if mel is not None:
        states["vocoder"].setdefault("mel_transform.spectrogram.window", mel.window)
        states["vocoder"].setdefault("mel_transform.mel_scale.fb", mel.fb)
    return states


def _write_from(file: Path, specs: dict, tensors: Mapping[str, torch.Tensor], metadata: dict,
                extra: Optional[Mapping[str, Callable[[], torch.Tensor]]] = None) -> Path:
    """Write ``specs`` (key -> (dtype, shape)) taking each key from ``extra`` (a producer), then
    ``tensors`` (its real dtype and shape win over the spec), else zeros (ignored-on-purpose keys)."""
    for key, t in tensors.items():
        if key in specs:
            specs[key] = (t.dtype, tuple(t.shape))

    def produce(key: str) -> torch.Tensor:
        if extra and key in extra:
            return extra[key]()
        t = tensors.get(key)
        if t is not None:
            return t
        dt, shape = specs[key]
        return torch.zeros(shape, dtype=dt)

    return write_safetensors(file, specs, produce, metadata)


def save_v1_all_in_one(bundle_or_state, path: Union[str, Path], metadata: Optional[Mapping[str, str]] = None) -> Path:
    """Write an ACE-Step v1 model as a ComfyUI-layout all-in-one ``.safetensors`` (streamed).

    ``bundle_or_state`` is an :class:`AceStepV1` (its configs are embedded in the metadata; the
    tokenizer must have been built from SentencePiece bytes, which are embedded as
    ``text_encoders.spiece_model``; ignored-on-purpose keys are written as zeros) or a mapping of
    full all-in-one keys to tensors, written as is.
    """
    path = Path(path)
    if isinstance(bundle_or_state, AceStepV1):
        bundle = bundle_or_state
        spiece = getattr(bundle.text_tokenizer, "spiece_bytes", None)
        if not spiece:
            raise InputError(
                "bundle.text_tokenizer: the all-in-one layout embeds SentencePiece bytes, but this tokenizer "
                "was not built from them (use UMT5Tokenizer.from_spiece_bytes)"
            )
        configs = _module_configs(bundle)
        specs = checkpoint_specs(configs, "comfy", dtype=bundle.dtype)[""]
        tensors = {COMFY_PREFIXES[c] + k: t for c, sd in _bundle_states(bundle).items() for k, t in sd.items()}
        specs[COMFY_SPIECE_KEY] = (torch.uint8, (len(spiece),))
        extra = {
            COMFY_SPIECE_KEY: lambda: torch.frombuffer(bytearray(spiece), dtype=torch.uint8),
            "text_encoders.umt5base.logit_scale": lambda: torch.tensor(COMFY_LOGIT_SCALE, dtype=torch.float32),
        }
        meta = {"format": "pt", CONFIG_METADATA_KEY: json.dumps({c: _config_dict(v) for c, v in configs.items()})}
        meta.update(metadata or {})
        return _write_from(path, specs, tensors, meta, extra)
    state = dict(bundle_or_state)
    specs = {k: (v.dtype, tuple(v.shape)) for k, v in state.items()}
    return write_safetensors(path, specs, lambda k: state[k], dict(metadata or {"format": "pt"}))


def save_v1_official(bundle: AceStepV1, root: Union[str, Path], tokenizer_json: Optional[str] = None) -> Path:
    """Write the official four-folder layout (``config.json`` per folder) for a bundle.

    The ``umt5-base/`` folder gets ``tokenizer.json`` (given text) or ``spiece.model`` (the
    tokenizer's SentencePiece bytes).
    """
    root = Path(root)
    configs = _module_configs(bundle)
    files = checkpoint_specs(configs, "official", dtype=bundle.dtype)
    states = _bundle_states(bundle)
    comp_of = {v: k for k, v in OFFICIAL_FILES.items()}
    for rel, specs in files.items():
        comp = comp_of[rel]
        file = root / rel
        file.parent.mkdir(parents=True, exist_ok=True)
        _write_from(file, specs, states[comp], {"format": "pt"})
        cfg = _config_dict(configs[comp])
        (file.parent / "config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    tok_dir = root / OFFICIAL_TOKENIZER_DIR
    if tokenizer_json is not None:
        (tok_dir / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
    elif getattr(bundle.text_tokenizer, "spiece_bytes", None):
        (tok_dir / "spiece.model").write_bytes(bundle.text_tokenizer.spiece_bytes)
    else:
        raise InputError("bundle.text_tokenizer: no tokenizer.json text given and no SentencePiece bytes to write")
    return root
