"""Checkpoint loaders: one model bundle (v1: DiT, UMT5 text encoder, music VAE; 1.5: DiT, Qwen3 text
encoder, VAE) from a file, an official folder or ComfyUI's split files, cached so a second run with the same file does not reload it. The family is
recognised from the safetensors headers and the family's adapter loads it."""

from __future__ import annotations

import logging
import threading

from ..ace_core.family import adapter_for_path
from ..ace_core.validation import validate_choice
from . import comfy_compat
from .comfy_compat import ManagedModule

log = logging.getLogger("AceForge")

CATEGORY = "audio/ACE-Step"
DTYPE_CHOICES = ["auto", "bf16", "fp16", "fp32"]


class AceModel:
    """What travels on an ``ACE_MODEL`` socket: the loaded bundle (e.g.
    :class:`ace_core.v1.bundle.AceStepV1`), its family's adapter
    (:class:`ace_core.family.FamilyAdapter`) and one memory-managed handle per component
    (``bundle.modules()``: ``dit``, ``text_encoder``, ``vae`` for v1), reachable as attributes."""

    def __init__(self, bundle, name: str, adapter):
        self.bundle = bundle
        self.name = name
        self.adapter = adapter
        self.parts = {role: ManagedModule(module, role) for role, module in bundle.modules().items()}

    @property
    def family(self) -> str:
        return self.adapter.family

    def __getattr__(self, part: str) -> ManagedModule:
        parts = self.__dict__.get("parts", {})
        if part in parts:
            return parts[part]
        raise AttributeError(part)

    def prepare(self, part: str) -> None:
        """Place one component (``dit`` / ``model``, ``text_encoder``, ``vae``) for running."""
        alias = {"dit": "model", "model": "dit"}.get(part)
        self.parts[part if part in self.parts or alias not in self.parts else alias].load()

    def describe(self) -> str:
        """What was loaded, for the node's display: family, variant, layout."""
        variant = getattr(self.bundle, "variant", None)
        if variant is None:
            return f"{self.adapter.title}: {self.name}"
        words = [self.adapter.title, variant.size, variant.kind]
        if getattr(variant, "layout", ""):
            words.append(f"({variant.layout})")
        note = ""
        if variant.kind not in ("turbo", "base", "sft"):
            note = f"; kind not told by the files, sampled as {variant.sampler_kind}"
        return " ".join(str(w) for w in words) + note

    def __repr__(self) -> str:
        return f"AceModel({self.name!r}, dtype={getattr(self.bundle, 'dtype', None)})"


_cache_lock = threading.Lock()
_cache: dict = {"key": None, "model": None}


def _cache_key(path, dtype) -> tuple:
    stat = path.stat()
    stamp = (stat.st_mtime_ns, stat.st_size)
    if path.is_dir():  # official folder: any component file changing invalidates the cache
        stamp = tuple(sorted((str(p.relative_to(path)), st.st_mtime_ns, st.st_size)
                             for p in path.rglob("*") if p.is_file() for st in (p.stat(),)))
    return (str(path), str(dtype), stamp)


def load_model(ckpt_name: str, dtype_choice: str = "auto") -> AceModel:
    """Resolve, load (or reuse) a checkpoint. Only the most recent model is kept in the cache."""
    validate_choice(dtype_choice, DTYPE_CHOICES, "dtype")
    return _load([comfy_compat.resolve_checkpoint(ckpt_name)], ckpt_name, dtype_choice)


def load_split(dit_name: str, text_encoder_name: str, vae_name: str, dtype_choice: str = "auto") -> AceModel:
    """ComfyUI's split files: the DiT from diffusion_models, the text encoder from text_encoders,
    the VAE from vae (ACE-Step 1.5)."""
    validate_choice(dtype_choice, DTYPE_CHOICES, "dtype")
    paths = [comfy_compat.resolve_in(dit_name, ("diffusion_models", comfy_compat.PACK_FOLDER), "dit_name"),
             comfy_compat.resolve_in(text_encoder_name, ("text_encoders", comfy_compat.PACK_FOLDER), "text_encoder_name"),
             comfy_compat.resolve_in(vae_name, ("vae", comfy_compat.PACK_FOLDER), "vae_name")]
    return _load(paths, dit_name, dtype_choice)


def _load(paths: list, name: str, dtype_choice: str) -> AceModel:
    dtype = comfy_compat.choose_dtype(dtype_choice)
    key = tuple(_cache_key(p, dtype) for p in paths)
    with _cache_lock:
        if _cache["key"] == key:
            return _cache["model"]
        _cache["key"] = _cache["model"] = None  # let the old model go before loading the new one
        log.info("AceForge: loading ACE-Step checkpoint %s (%s)", ", ".join(map(str, paths)), dtype)
        adapter = adapter_for_path(paths[0])
        bundle = adapter.load(paths if len(paths) > 1 else paths[0], dtype=dtype,
                              device=comfy_compat.offload_device(), progress=comfy_compat.progress_hook("loading"))
        model = AceModel(bundle, name, adapter)
        _cache["key"], _cache["model"] = key, model
        return model


def clear_cache() -> None:
    with _cache_lock:
        _cache["key"] = _cache["model"] = None


class AceStepCheckpointLoader:
    DESCRIPTION = (
        "Loads an ACE-Step checkpoint of either family, recognised from the file: ACE-Step v1 (3.5B: "
        "ace_step_v1_3.5b.safetensors in models/checkpoints, or the official ACE-Step-v1-3.5B folder in "
        "models/ace_step) or ACE-Step 1.5 (2B or XL; turbo, base or sft: ComfyUI's all-in-one "
        "ace_step_1.5_*_aio.safetensors, a split DiT file from models/diffusion_models with its text encoder "
        "and VAE found in text_encoders/ and vae/, or the official folders). The loaded variant is shown on "
        "the node. Outputs one model bundle for the other AceForge nodes; the last model stays cached."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("ACE_MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The model bundle (diffusion model, text encoder, VAE) of the checkpoint's family.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "ckpt_name": (comfy_compat.list_checkpoints(), {
                    "tooltip": "The checkpoint: a file from models/ace_step, models/checkpoints or "
                               "models/diffusion_models, or an official folder (shown with a trailing /).",
                }),
                "dtype": _DTYPE_INPUT,
            }
        }

    def load(self, ckpt_name, dtype="auto"):
        return _shown(load_model(ckpt_name, dtype))


def _shown(model: AceModel) -> dict:
    text = model.describe()
    log.info("AceForge: loaded %s", text)
    return {"ui": {"text": [text]}, "result": (model,)}


_DTYPE_INPUT = (DTYPE_CHOICES, {
    "default": "auto",
    "tooltip": "Weight precision. auto: bf16 on GPUs that support it, else fp32. "
               "fp16 saves memory on older GPUs but may be less stable.",
})


class AceStepSplitLoader:
    DESCRIPTION = (
        "Loads ACE-Step 1.5 from ComfyUI's split files, as core's split templates use them: the DiT "
        "(acestep_v1.5_turbo.safetensors, ..._base, ..._sft, ..._xl_*) from models/diffusion_models, the Qwen3 "
        "text encoder (qwen_0.6b_ace15.safetensors) from models/text_encoders and the VAE "
        "(ace_1.5_vae.safetensors) from models/vae. The loaded variant is shown on the node."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("ACE_MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The ACE-Step 1.5 model bundle (DiT, text encoder, VAE).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "dit_name": (comfy_compat.list_files("diffusion_models"), {
                    "tooltip": "The ACE-Step 1.5 diffusion model from models/diffusion_models "
                               "(acestep_v1.5_turbo.safetensors, _base, _sft, _xl_turbo, ...).",
                }),
                "text_encoder_name": (comfy_compat.list_files("text_encoders"), {
                    "tooltip": "The Qwen3-Embedding-0.6B text encoder from models/text_encoders "
                               "(qwen_0.6b_ace15.safetensors). The 5 Hz LMs (qwen_1.7b/4b_ace15) are not used here.",
                }),
                "vae_name": (comfy_compat.list_files("vae"), {
                    "tooltip": "The ACE-Step 1.5 VAE from models/vae (ace_1.5_vae.safetensors).",
                }),
                "dtype": _DTYPE_INPUT,
            }
        }

    def load(self, dit_name, text_encoder_name, vae_name, dtype="auto"):
        return _shown(load_split(dit_name, text_encoder_name, vae_name, dtype))


NODE_CLASS_MAPPINGS = {"AceForge_CheckpointLoader": AceStepCheckpointLoader,
                       "AceForge_SplitCheckpointLoader": AceStepSplitLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"AceForge_CheckpointLoader": "ACE-Step Checkpoint Loader (AceForge)",
                              "AceForge_SplitCheckpointLoader": "ACE-Step 1.5 Split Files Loader (AceForge)"}
