"""The one place where ComfyUI is imported.

Inside ComfyUI this module registers the pack's ``ace_step`` model folder, hands our models to
ComfyUI's memory management (``ModelPatcher`` + ``load_models_gpu``) and drives ComfyUI's
progress bar and interrupt check. Outside ComfyUI (tests, scripts) every function has a plain
fallback: model folders under a local ``models/`` directory (``$ACEFORGE_MODELS_DIR``), the CPU,
and a console progress line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

import torch

from ..ace_core.progress import ConsoleProgress

try:  # ComfyUI is present only when the pack runs inside it.
    import folder_paths as _folder_paths
    import comfy.model_management as _mm
    import comfy.model_patcher as _model_patcher
    import comfy.utils as _comfy_utils
except ImportError:  # plain Python: tests, scripts
    _folder_paths = None
    _mm = None
    _model_patcher = None
    _comfy_utils = None

IN_COMFYUI = _folder_paths is not None and _mm is not None

PACK_FOLDER = "ace_step"
"""Our model folder name: ``ComfyUI/models/ace_step/``."""

MODEL_EXTENSIONS = {".safetensors", ".sft"}
"""Files the loader lists: safetensors only (the loader reads nothing else)."""

FOLDER_KINDS = (PACK_FOLDER, "checkpoints", "diffusion_models")
"""Where the checkpoint loader looks, in this order."""


def _register_pack_folder() -> None:
    """Register ``models/ace_step`` with an explicit extension set (an empty set would list every
    file). Paths a user added for ``ace_step`` in extra_model_paths.yaml are kept."""
    if not IN_COMFYUI:
        return
    path = os.path.join(_folder_paths.models_dir, PACK_FOLDER)
    extensions = set(getattr(_folder_paths, "supported_pt_extensions", MODEL_EXTENSIONS))
    paths, current = _folder_paths.folder_names_and_paths.get(PACK_FOLDER, ([], set()))
    paths = list(paths) + ([path] if path not in paths else [])
    _folder_paths.folder_names_and_paths[PACK_FOLDER] = (paths, set(current) or extensions)


_register_pack_folder()


# ---------------------------------------------------------------------------------------------
# model folders


_fallback_models_dir: Optional[Path] = None


def set_models_dir(path) -> None:
    """Outside ComfyUI: use ``path`` as the models root (``path/ace_step``, ``path/checkpoints``, ...)."""
    global _fallback_models_dir
    _fallback_models_dir = Path(path) if path is not None else None


def fallback_models_dir() -> Path:
    """The models root used outside ComfyUI: set_models_dir(), else $ACEFORGE_MODELS_DIR, else ./models."""
    if _fallback_models_dir is not None:
        return _fallback_models_dir
    env = os.environ.get("ACEFORGE_MODELS_DIR")
    if env:
        return Path(env)
    return Path.cwd() / "models"


def folder_paths_for(kind: str) -> list[Path]:
    """The folders of one kind (``ace_step``, ``checkpoints``, ``diffusion_models``)."""
    if IN_COMFYUI:
        try:
            return [Path(p) for p in _folder_paths.get_folder_paths(kind)]
        except KeyError:
            return []
    return [fallback_models_dir() / kind]


def _is_official_folder(path: Path) -> bool:
    """An official checkpoint root: v1's ``ace_step_transformer/`` or a 1.5 ``acestep-v15-*/`` DiT folder."""
    if not path.is_dir():
        return False
    if (path / "ace_step_transformer").is_dir():
        return True
    return any(sub.is_dir() and sub.name.lower().startswith("acestep-v15") for sub in path.iterdir())


OFFICIAL_SUBFOLDERS = {"ace_step_transformer", "music_dcae_f8c8", "music_vocoder", "umt5-base"}
"""The four component folders of the official ``ACE-Step/ACE-Step-v1-3.5B`` layout."""


def _listable(rel: str) -> bool:
    parts = rel.replace(os.sep, "/").split("/")
    if Path(parts[-1]).suffix.lower() not in MODEL_EXTENSIONS:
        return False
    return not any(part in OFFICIAL_SUBFOLDERS for part in parts[:-1])  # listed as its folder


def list_checkpoints() -> list[str]:
    """Names for the loader's combo: model files in every folder kind, and official checkpoint
    folders (``<name>/`` holding ``ace_step_transformer/`` ...) in the pack folder and checkpoints."""
    names: list[str] = []
    for kind in FOLDER_KINDS:
        roots = {sub.name for root in folder_paths_for(kind) if root.is_dir()
                 for sub in root.iterdir() if sub.is_dir() and _is_official_folder(sub)}
        names += [f for f in list_files(kind) if _listable(f) and f.split("/")[0] not in roots]  # listed as the folder
        if kind == "diffusion_models":
            continue
        for root in folder_paths_for(kind):
            if root.is_dir():
                names += [sub.name + "/" for sub in sorted(root.iterdir()) if _is_official_folder(sub)]
    return list(dict.fromkeys(names))


def resolve_checkpoint(name: str) -> Path:
    """The full path of a combo name (a file, or an official folder written ``name/``)."""
    from ..ace_core.errors import InputError

    if not name:
        raise InputError("ckpt_name: no checkpoint selected; put a model file in models/ace_step or models/checkpoints")
    return resolve_in(name, FOLDER_KINDS, "ckpt_name")


def resolve_in(name: str, kinds, input_name: str) -> Path:
    """The full path of a combo name inside the folders of ``kinds``. The name may not climb out of
    a folder (``..``, absolute paths), but a listed entry that is a symlink to a file elsewhere is
    followed, as ComfyUI's own loaders do."""
    from ..ace_core.errors import InputError

    rel = name.rstrip("/").replace("\\", "/")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or rel.startswith("/") or Path(rel).is_absolute():
        raise InputError(f"{input_name}: {name!r} is not a name inside the model folders")
    for kind in kinds:
        for root in folder_paths_for(kind):
            candidate = root.joinpath(*parts)
            if candidate.exists():
                return candidate.resolve()
    looked = ", ".join(str(p) for kind in kinds for p in folder_paths_for(kind))
    raise InputError(f"{input_name}: {name!r} was not found in the model folders ({looked})")


def list_files(kind: str) -> list[str]:
    """Model files of one folder kind (``diffusion_models``, ``text_encoders``, ``vae``), for combos."""
    if IN_COMFYUI:
        try:
            files = list(_folder_paths.get_filename_list(kind))
        except KeyError:
            files = []
    else:
        files = []
        for root in folder_paths_for(kind):
            if root.is_dir():
                files += [f.relative_to(root).as_posix() for f in sorted(root.rglob("*")) if f.is_file()]
    return list(dict.fromkeys(f.replace(os.sep, "/") for f in files if Path(f).suffix.lower() in MODEL_EXTENSIONS))


# ---------------------------------------------------------------------------------------------
# devices, dtypes, memory


def torch_device() -> torch.device:
    """The device models run on: ComfyUI's choice, else the CPU."""
    if IN_COMFYUI:
        return _mm.get_torch_device()
    return torch.device("cpu")


def offload_device() -> torch.device:
    if IN_COMFYUI:
        return _mm.unet_offload_device()
    return torch.device("cpu")


DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def choose_dtype(choice: str) -> torch.dtype:
    """``auto``: bf16 where the run device supports it well (ACE-Step v1 ships in bf16), else fp32."""
    if choice in DTYPES:
        return DTYPES[choice]
    device = torch_device()
    if IN_COMFYUI:
        try:
            if _mm.should_use_bf16(device):
                return torch.bfloat16
        except Exception:  # older ComfyUI signatures
            pass
        return torch.float32
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


class _PatcherHost(torch.nn.Module):
    """What a ComfyUI ``ModelPatcher`` holds: our module as the child ``inner``. ModelPatcher keeps
    its bookkeeping as attributes of the model it holds (``device``, ``model_loaded_weight_memory``,
    ...); our modules have read-only properties such as ``device``, so they stay one level down."""

    def __init__(self, module: torch.nn.Module, device: torch.device):
        super().__init__()
        self.inner = module
        self.device = device


_HOST_CLASSES: dict = {}


def _host_class(name: str) -> type:
    """A ``_PatcherHost`` subclass named after the part (``dit`` -> ``AceForgeDit``), so ComfyUI's
    log says "Requested to load AceForgeDit" rather than a generic wrapper name."""
    title = "AceForge" + "".join(word.capitalize() for word in name.replace("-", "_").split("_"))
    if title not in _HOST_CLASSES:
        _HOST_CLASSES[title] = type(title, (_PatcherHost,), {"__doc__": _PatcherHost.__doc__})
    return _HOST_CLASSES[title]


class ManagedModule:
    """One of our nn.Modules as ComfyUI sees it: a ``ModelPatcher`` that ComfyUI loads onto the
    GPU (unloading other models to make room) and may offload later. Outside ComfyUI it is a thin
    holder that keeps the module where it is."""

    def __init__(self, module: torch.nn.Module, name: str):
        self.module = module
        self.name = name
        self.patcher = None
        if IN_COMFYUI and _model_patcher is not None:
            host = _host_class(name)(module, offload_device())
            self.patcher = _model_patcher.ModelPatcher(host, load_device=torch_device(), offload_device=offload_device())

    def load(self, memory_required: int = 0) -> torch.device:
        """Place the module for running; returns the device to put inputs on."""
        if self.patcher is not None:
            _mm.load_models_gpu([self.patcher], memory_required=memory_required, force_full_load=True)
            return self.patcher.load_device
        for p in self.module.parameters():
            return p.device
        return torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# progress and interruption


def check_interrupt() -> None:
    """Raise ComfyUI's interrupt exception when the user pressed Cancel (no-op outside ComfyUI)."""
    if IN_COMFYUI:
        _mm.throw_exception_if_processing_interrupted()


def progress_hook(label: str, quiet: bool = False) -> Callable[[int, int], None]:
    """A ``ProgressHook`` for ace_core loops: ComfyUI's progress bar plus the interrupt check
    inside ComfyUI; a console line outside (none with ``quiet``)."""
    if IN_COMFYUI and _comfy_utils is not None:
        bar = None

        def hook(done: int, total: int) -> None:
            nonlocal bar
            check_interrupt()
            if bar is None:
                bar = _comfy_utils.ProgressBar(total)
            bar.update_absolute(done, total)

        hook.check_interrupt = check_interrupt  # ace_core checks it inside long layers too

        return hook
    if quiet or os.environ.get("ACEFORGE_QUIET"):
        return lambda done, total: None
    return ConsoleProgress(label)


# ---------------------------------------------------------------------------------------------
# server routes (the waveform editor's JSON routes, nodes/waveform_route.py)


def io_folders() -> dict:
    """ComfyUI's input / output / temp folders; outside ComfyUI ``./input``, ``./output``, ``./temp``."""
    if IN_COMFYUI:
        return {kind: Path(_folder_paths.get_directory_by_type(kind)) for kind in ("input", "output", "temp")}
    return {kind: Path.cwd() / kind for kind in ("input", "output", "temp")}


def add_json_route(path: str, handler: Callable) -> bool:
    """Serve ``handler(request) -> (status, body)`` as JSON at GET ``path`` on ComfyUI's server (the
    server adds the ``/api`` alias), run off the event loop. False outside ComfyUI."""
    try:
        import asyncio

        from aiohttp import web
        from server import PromptServer
        routes = PromptServer.instance.routes
    except (ImportError, AttributeError):  # plain Python, or a ComfyUI without a running server
        return False

    async def serve(request):
        status, body = await asyncio.to_thread(handler, request)
        return web.json_response(body, status=status)

    routes.get(path)(serve)
    return True
