"""The loaded ACE-Step 1.5 model (:class:`AceStep15Bundle`), and writers of the published layouts.

:func:`~.loader.load_v15` returns an :class:`AceStep15Bundle`: the DiT-family model, the VAE, the
Qwen3 text encoder and its tokenizer, the silence latent and what was loaded (:class:`V15Variant`).

The writers put a bundle on disk in the exact published layouts, streamed tensor by tensor, so
tests and ``--demo`` can exercise the real loader on tiny random models
(:func:`tiny_v15_bundle`): :func:`save_v15_all_in_one` (ComfyUI's all-in-one file),
:func:`save_v15_split` (ComfyUI's ``diffusion_models/``, ``text_encoders/``, ``vae/`` files) and
:func:`save_v15_official` (``acestep-v15-*/``, ``vae/``, ``Qwen3-Embedding-0.6B/``). Files carry
the model configs in their metadata (``aceforge.v15.config``) unless ``embed_config=False``.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Union

import torch
from torch import nn

from ..errors import InputError
from ..loading.safetensors_io import write_safetensors
from ..model_bundle import ModuleBundle
from .config import AceStep15Config
from .layouts import (
    AIO_LM_PREFIX,
    AIO_PREFIXES,
    CONFIG_METADATA_KEY,
    OFFICIAL_DIRS,
    OFFICIAL_FILES,
    SILENCE_FILE,
    SPLIT_FOLDERS,
    SPLIT_FILES,
    SPLIT_PREFIXES,
    UNKNOWN_KIND_BEHAVES_AS,
    diffusers_to_comfy_vae_key,
)
from .model import AceStep15Model
from .oobleck import OobleckConfig, OobleckVAE
from .qwen3 import Qwen3Config, Qwen3Model
from .silence import pattern_silence, silence_latent
from .text_tokenizer import BUNDLED_DIR, Qwen3Tokenizer, load_tokenizer
from .vae import MusicVAE15

__all__ = [
    "AceStep15Bundle", "V15Variant", "KINDS", "COMFY_LOGIT_SCALE", "config_dicts",
    "save_v15_all_in_one", "save_v15_split", "save_v15_official",
    "tiny_v15_bundle", "tiny_v15_lm", "TINY_DIT", "TINY_DIT_XL", "TINY_QWEN3", "TINY_VAE",
]

KINDS = ("turbo", "base", "sft")
#: the value ComfyUI stores in ``text_encoders.*.logit_scale`` (unused by Qwen3)
COMFY_LOGIT_SCALE = 4.6052
PathLike = Union[str, Path]


@dataclass(frozen=True)
class V15Variant:
    """What was loaded. family ``v15``; size ``2B`` / ``XL`` (else ``hidden N``); kind ``turbo`` /
    ``base`` / ``sft`` / ``unknown`` and how it was told (``config.json``, ``embedded config``,
    ``file name``, ``nothing``); layout ``comfy_aio`` / ``comfy_split`` / ``official`` (``""``
    built in memory); files: part -> file path."""

    size: str
    kind: str
    kind_basis: str = "nothing"
    layout: str = ""
    files: Mapping[str, str] = field(default_factory=dict)
    family: str = "v15"

    @property
    def sampler_kind(self) -> str:
        """The kind the samplers follow: ``kind``, or turbo when it is unknown (see layouts.py)."""
        return self.kind if self.kind in KINDS else UNKNOWN_KIND_BEHAVES_AS

    @property
    def is_xl(self) -> bool:
        return self.size == "XL"


@dataclass
class AceStep15Bundle(ModuleBundle):
    """ACE-Step 1.5 as loaded by :func:`~.loader.load_v15`.

    model: :class:`~.model.AceStep15Model` (decoder = DiT, condition encoder, FSQ tokenizer,
    detokenizer, null condition); vae: :class:`~.vae.MusicVAE15` (audio <-> (B, 64, frames));
    text_encoder: :class:`~.qwen3.Qwen3Model` (ids (B, L) -> (B, L, 1024)); text_tokenizer:
    :class:`~.text_tokenizer.Qwen3Tokenizer`; silence_latent: [1, S, 64] float32 from
    ``silence_latent.pt``, or None for the built-in pattern (:meth:`silence`); variant:
    :class:`V15Variant`; dtype: the weights' dtype; skipped: checkpoint keys deliberately not
    loaded -> reason; lm_sources: 5 Hz LMs found beside the model
    (:class:`~.layouts.PartSource`, file + prefix), for the LM loader.
    """

    model: AceStep15Model
    vae: MusicVAE15
    text_encoder: Qwen3Model
    text_tokenizer: Qwen3Tokenizer
    variant: V15Variant
    dtype: torch.dtype
    silence_latent: Optional[torch.Tensor] = None
    silence_source: str = "built-in pattern"
    skipped: dict = field(default_factory=dict, repr=False)
    lm_sources: tuple = ()

    MODEL_FAMILY = "ace-step-v1.5"

    @property
    def config(self) -> AceStep15Config:
        return self.model.config

    @property
    def device(self) -> torch.device:
        return self.model.device

    def modules(self) -> dict:
        """The weight-holding modules by role."""
        return {"model": self.model, "vae": self.vae, "text_encoder": self.text_encoder}

    def silence(self, frames: int, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        """[1, frames, 64] silence latent (the loaded one tiled, or the built-in pattern)."""
        return silence_latent(frames, source=self.silence_latent, dtype=dtype, device=device)


# --------------------------------------------------------------------------------------------
# configs and state dicts in the published key layouts


def config_dicts(bundle: AceStep15Bundle) -> dict:
    """part -> its config as written to ``config.json`` / our metadata."""
    dit = asdict(bundle.model.config)
    kind = bundle.variant.kind
    if kind in KINDS:
        dit.update(is_turbo=kind == "turbo", model_version=kind)
    vae = dict(asdict(bundle.vae.model.config), _class_name="AutoencoderOobleck")
    te = asdict(bundle.text_encoder.config)
    return {"dit": dit, "vae": vae, "text_encoder": dict(te, model_type="qwen3")}


def _vae_comfy_state(vae: OobleckVAE, weight_norm: str = "gv") -> dict:
    """ComfyUI key -> tensor: stable-audio-tools names, Snake (C,), weight norm as asked."""
    blocks = len(vae.config.downsampling_ratios)
    out = {}
    for key, t in vae.state_dict().items():
        name = diffusers_to_comfy_vae_key(key, blocks)
        if name.endswith((".alpha", ".beta")):
            t = t.reshape(-1)  # (1, C, 1) -> (C,)
        if weight_norm == "parametrizations":
            name = name.replace(".weight_g", ".parametrizations.weight.original0").replace(
                ".weight_v", ".parametrizations.weight.original1")
        out[name] = t
    return out


def _prefixed(state: Mapping[str, torch.Tensor], prefix: str) -> dict:
    return {prefix + k: v for k, v in state.items()}


def _write(path: Path, tensors: Mapping[str, torch.Tensor], metadata: Optional[dict] = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    specs = {k: (v.dtype, tuple(v.shape)) for k, v in tensors.items()}
    return write_safetensors(path, specs, lambda k: tensors[k], {"format": "pt", **(metadata or {})})


def _meta(configs: dict, parts: tuple, embed: bool) -> dict:
    return {CONFIG_METADATA_KEY: json.dumps({p: configs[p] for p in parts})} if embed else {}


def _logit_scale() -> torch.Tensor:
    return torch.tensor(COMFY_LOGIT_SCALE, dtype=torch.float32)


def _file_kind(bundle: AceStep15Bundle) -> str:
    return bundle.variant.kind if bundle.variant.kind in KINDS else "turbo"


# --------------------------------------------------------------------------------------------
# writers


def save_v15_all_in_one(bundle: AceStep15Bundle, path: PathLike, *, lm: Optional[Qwen3Model] = None,
                        lm_name: str = "qwen3_2b", embed_config: bool = True) -> Path:
    """ComfyUI's all-in-one layout (``ace_step_1.5_turbo_aio.safetensors``), streamed.

    ``model.diffusion_model.*`` (DiT), ``vae.*`` (ComfyUI Oobleck naming), the text encoder under
    ``text_encoders.qwen3_06b.transformer.model.``, an optional 5 Hz LM (a :class:`Qwen3Model`)
    under ``text_encoders.{lm_name}.transformer.model.``, and a ``logit_scale`` per text encoder.
    """
    configs = config_dicts(bundle)
    tensors = _prefixed(bundle.model.state_dict(), AIO_PREFIXES["dit"])
    tensors.update(_prefixed(_vae_comfy_state(bundle.vae.model), AIO_PREFIXES["vae"]))
    tensors.update(_prefixed(bundle.text_encoder.state_dict(), AIO_PREFIXES["text_encoder"]))
    tensors["text_encoders.qwen3_06b.logit_scale"] = _logit_scale()
    if lm is not None:
        tensors.update(_prefixed(lm.state_dict(), AIO_LM_PREFIX.replace("qwen3_2b", lm_name)))
        tensors[f"text_encoders.{lm_name}.logit_scale"] = _logit_scale()
    return _write(Path(path), tensors, _meta(configs, ("dit", "vae", "text_encoder"), embed_config))


def save_v15_split(bundle: AceStep15Bundle, folder: PathLike, *, dit_prefix: str = "",
                   vae_weight_norm: str = "gv", embed_config: bool = True) -> dict:
    """ComfyUI's split files under ``folder`` (a ComfyUI ``models`` folder) -> part -> path.

    ``diffusion_models/acestep_v1.5_{kind}.safetensors`` (``xl_`` before the kind for XL; keys
    bare or under ``dit_prefix``, e.g. ``model.diffusion_model.``), ``text_encoders/
    qwen_0.6b_ace15.safetensors`` (``model.`` keys), ``vae/ace_1.5_vae.safetensors`` (ComfyUI
    naming; weight norm ``gv`` = ``weight_g``/``weight_v`` or ``parametrizations``).
    """
    if vae_weight_norm not in ("gv", "parametrizations"):
        raise InputError(f"vae_weight_norm: expected 'gv' or 'parametrizations', got {vae_weight_norm!r}")
    folder = Path(folder)
    configs = config_dicts(bundle)
    xl = "xl_" if bundle.model.config.is_xl else ""
    dit_name = f"acestep_v1.5_{xl}{_file_kind(bundle)}.safetensors"
    out = {
        "dit": _write(folder / SPLIT_FOLDERS["dit"] / dit_name, _prefixed(bundle.model.state_dict(), dit_prefix),
                      _meta(configs, ("dit",), embed_config)),
        "text_encoder": _write(folder / SPLIT_FOLDERS["text_encoder"] / SPLIT_FILES["text_encoder"],
                               _prefixed(bundle.text_encoder.state_dict(), SPLIT_PREFIXES["text_encoder"]),
                               _meta(configs, ("text_encoder",), embed_config)),
        "vae": _write(folder / SPLIT_FOLDERS["vae"] / SPLIT_FILES["vae"],
                      _vae_comfy_state(bundle.vae.model, vae_weight_norm), _meta(configs, ("vae",), embed_config)),
    }
    return out


def save_v15_official(bundle: AceStep15Bundle, root: PathLike, *, dit_folder: Optional[str] = None,
                      lm: Optional[Qwen3Model] = None, lm_folder: str = "acestep-5Hz-lm-1.7B",
                      silence_frames: int = 750) -> Path:
    """The official folders under ``root``; returns ``root``.

    ``{dit_folder}/`` (default ``acestep-v15-[xl-]{kind}``): ``model.safetensors``, ``config.json``
    and ``silence_latent.pt`` ([1, 64, S] float32: the bundle's, else ``silence_frames`` of the
    pattern); ``vae/``: ``diffusion_pytorch_model.safetensors`` + ``config.json``;
    ``Qwen3-Embedding-0.6B/``: ``model.safetensors``, ``config.json`` and the tokenizer files
    (the bundled vocab.json / merges.txt / tokenizer_config.json); optionally a 5 Hz LM folder
    (``model.*`` keys).
    """
    root = Path(root)
    configs = config_dicts(bundle)
    xl = "xl-" if bundle.model.config.is_xl else ""
    dit_dir = root / (dit_folder or f"acestep-v15-{xl}{_file_kind(bundle)}")
    folders = {"dit": dit_dir, "vae": root / OFFICIAL_DIRS["vae"], "text_encoder": root / OFFICIAL_DIRS["text_encoder"]}
    states = {"dit": bundle.model.state_dict(), "vae": bundle.vae.model.state_dict(),
              "text_encoder": bundle.text_encoder.state_dict()}
    for part, folder in folders.items():
        _write(folder / OFFICIAL_FILES[part], states[part])
        (folder / "config.json").write_text(json.dumps(configs[part], indent=2), encoding="utf-8")
    silence = bundle.silence_latent if bundle.silence_latent is not None else pattern_silence(silence_frames)
    torch.save(silence.float().transpose(1, 2).contiguous(), dit_dir / SILENCE_FILE)  # [1, 64, S]
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copyfile(BUNDLED_DIR / name, folders["text_encoder"] / name)
    if lm is not None:
        _write(root / lm_folder / "model.safetensors", _prefixed(lm.state_dict(), "model."))
        (root / lm_folder / "config.json").write_text(
            json.dumps(dict(asdict(lm.config), model_type="qwen3"), indent=2), encoding="utf-8")
    return root


# --------------------------------------------------------------------------------------------
# tiny random models for tests and --demo

#: tiny DiT sizes; latent width 64 and the FSQ levels stay published so silence and codes fit
TINY_DIT = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, head_dim=16, text_hidden_dim=16, num_lyric_encoder_hidden_layers=2,
                num_timbre_encoder_hidden_layers=2, num_attention_pooler_hidden_layers=1, fsq_dim=32)
#: the XL shape in small: a DiT wider than its condition encoder
TINY_DIT_XL = dict(TINY_DIT, hidden_size=48, intermediate_size=64, num_attention_heads=3,
                   encoder_hidden_size=32, encoder_intermediate_size=48, encoder_num_attention_heads=2,
                   encoder_num_key_value_heads=1)
#: Qwen3 with the real vocabulary (151669 rows, so the real tokenizer fits) and a tiny width
TINY_QWEN3 = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=8)
#: the published geometry (48 kHz, hop 1920, 64 latent channels) with few channels
TINY_VAE = dict(encoder_hidden_size=128, channel_multiples=[1, 1, 1, 1, 1], decoder_channels=2)  # 64 latent channels (mean + scale)


def _randomize(module: nn.Module, gen: torch.Generator, dtype: torch.dtype) -> None:
    """Fill every parameter from ``gen`` (drawn in float32, then cast): norms near 1, weights
    ~ 1/sqrt(fan_in), Snake parameters near 0, weight-norm gains positive."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("alpha", "beta"):
                x = 0.1 * torch.randn(p.shape, generator=gen)
            elif leaf == "weight_g":
                x = 0.5 + torch.rand(p.shape, generator=gen)
            elif p.dim() == 1 and "norm" in name:
                x = 1.0 + 0.1 * torch.randn(p.shape, generator=gen)
            elif p.dim() >= 2 and leaf in ("weight", "weight_v"):
                fan_in = max(1, math.prod(p.shape[1:]))
                x = torch.randn(p.shape, generator=gen) / math.sqrt(fan_in)
            else:
                x = 0.1 * torch.randn(p.shape, generator=gen)
            p.copy_(x.to(dtype))


def _tiny(cls, config, gen: torch.Generator, dtype: torch.dtype):
    module = cls(config, dtype=dtype, device="meta").to_empty(device="cpu")
    _randomize(module, gen, dtype)
    return module.requires_grad_(False).eval()


def tiny_v15_bundle(seed: int = 0, dtype: torch.dtype = torch.float32, *, kind: str = "turbo",
                    xl: bool = False) -> AceStep15Bundle:
    """A tiny random ACE-Step 1.5 (DiT hidden 32 or 48 for ``xl``, 2 layers; Qwen3 hidden 16 with
    the real 151669-row vocabulary and the bundled tokenizer; VAE with the published geometry),
    drawn from ``torch.Generator().manual_seed(seed)``, for tests and ``--demo``."""
    if kind not in KINDS:
        raise InputError(f"kind: expected one of {KINDS}, got {kind!r}")
    gen = torch.Generator().manual_seed(seed)
    dit_cfg = AceStep15Config(**(TINY_DIT_XL if xl else TINY_DIT), is_turbo=kind == "turbo", model_version=kind)
    model = _tiny(AceStep15Model, dit_cfg, gen, dtype)
    text_encoder = _tiny(Qwen3Model, Qwen3Config(**TINY_QWEN3), gen, dtype)
    vae = MusicVAE15(_tiny(OobleckVAE, OobleckConfig(**TINY_VAE), gen, dtype)).eval()
    return AceStep15Bundle(model=model, vae=vae, text_encoder=text_encoder, text_tokenizer=load_tokenizer(),
                           variant=V15Variant(size=f"hidden {dit_cfg.hidden_size}", kind=kind, kind_basis="in memory"),
                           dtype=dtype)


def tiny_v15_lm(seed: int = 1, dtype: torch.dtype = torch.float32, extra_rows: int = 64) -> Qwen3Model:
    """A tiny 5 Hz LM stand-in: a Qwen3 whose vocabulary has ``extra_rows`` audio-code rows past
    Qwen3's 151669 (what tells an LM from the text encoder)."""
    cfg = Qwen3Config(**dict(TINY_QWEN3, hidden_size=8, intermediate_size=16), vocab_size=151669 + extra_rows)
    return _tiny(Qwen3Model, cfg, torch.Generator().manual_seed(seed), dtype)
