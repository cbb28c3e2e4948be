"""Checkpoint loader: one model bundle (ACE-Step v1: DiT, UMT5 text encoder, music VAE) from a file
or an official folder, cached so a second run with the same file does not reload it. The family is
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
        """Place one component (``dit``, ``text_encoder``, ``vae``) for running."""
        self.parts[part].load()

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
    path = comfy_compat.resolve_checkpoint(ckpt_name)
    dtype = comfy_compat.choose_dtype(dtype_choice)
    key = _cache_key(path, dtype)
    with _cache_lock:
        if _cache["key"] == key:
            return _cache["model"]
        _cache["key"] = _cache["model"] = None  # let the old model go before loading the new one
        log.info("AceForge: loading ACE-Step checkpoint %s (%s)", path, dtype)
        adapter = adapter_for_path(path)
        bundle = adapter.load(path, dtype=dtype, device=comfy_compat.offload_device(),
                              progress=comfy_compat.progress_hook("loading"))
        model = AceModel(bundle, ckpt_name, adapter)
        _cache["key"], _cache["model"] = key, model
        return model


def clear_cache() -> None:
    with _cache_lock:
        _cache["key"] = _cache["model"] = None


class AceStepCheckpointLoader:
    DESCRIPTION = (
        "Loads an ACE-Step v1 (3.5B) checkpoint: the ComfyUI all-in-one file "
        "(ace_step_v1_3.5b.safetensors in models/checkpoints) or the official ACE-Step-v1-3.5B folder "
        "(in models/ace_step). Outputs one model bundle for the other AceForge nodes. The last loaded "
        "model stays cached, so running again with the same file does not reload it."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("ACE_MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The ACE-Step v1 model bundle (diffusion model, text encoder, music VAE).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "ckpt_name": (comfy_compat.list_checkpoints(), {
                    "tooltip": "The checkpoint: a file from models/ace_step, models/checkpoints or "
                               "models/diffusion_models, or an official folder (shown with a trailing /).",
                }),
                "dtype": (DTYPE_CHOICES, {
                    "default": "auto",
                    "tooltip": "Weight precision. auto: bf16 on GPUs that support it, else fp32. "
                               "fp16 saves memory on older GPUs but may be less stable.",
                }),
            }
        }

    def load(self, ckpt_name, dtype="auto"):
        return (load_model(ckpt_name, dtype),)


NODE_CLASS_MAPPINGS = {"AceForge_CheckpointLoader": AceStepCheckpointLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"AceForge_CheckpointLoader": "ACE-Step Checkpoint Loader (AceForge)"}
