"""Server side of the waveform editor (``web/js/waveform.js``): two small JSON routes under the
pack's prefix, registered on ComfyUI's server through :func:`comfy_compat.add_json_route`.

``GET /aceforge/waveform?filename=&type=input|output|temp&subfolder=&width=N[&start=&end=][&missing_ok=1]``
    Peaks of an audio file in ComfyUI's input / output / temp folder (``ace_core.audio.peaks``:
    header first, bounded memory, cached). Only names inside those folders are served: no ``..``,
    no absolute paths, no symlink leading out. Errors are ``{"error": message}`` with HTTP 400
    (bad request, not audio) or 404 (no such file); with ``missing_ok=1`` a file that is not there
    (yet: a workflow's example name before the upload) is a quiet 200 ``{"missing": true, "error": ...}``,
    so the editor asks without the browser logging a failed request.
``GET /aceforge/latent_grid[?ckpt_name=|?dit_name=]``
    The latent frame grid the region snaps to: the family of the checkpoint (or of the split
    loader's diffusion model, from its safetensors header) or, without a name or when it cannot be
    recognised, the finest grid of the families we support.

The handlers take a request-like object (``.query``: a mapping) and return ``(status, body)``, so
tests call them without a server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional

from ..ace_core.audio import peaks
from ..ace_core.errors import AceStepError, InputError
from ..ace_core.family import ADAPTERS, adapter_for, family_of_path
from . import comfy_compat

PREFIX = "/aceforge"
FOLDER_TYPES = ("input", "output", "temp")
DEFAULT_WIDTH = 1024


def resolve_audio(query: Mapping, roots: Mapping[str, Path]) -> Path:
    """The real path of ``filename`` in ``subfolder`` of the ``type`` folder; InputError when the
    name is not a plain name inside that folder (also after following symlinks), FileNotFoundError
    when no such file exists."""
    kind = query.get("type") or "input"
    if kind not in FOLDER_TYPES or kind not in roots:
        raise InputError(f"type: {kind!r} is not one of {', '.join(FOLDER_TYPES)}")
    filename, subfolder = query.get("filename") or "", query.get("subfolder") or ""
    if not filename or "\x00" in filename + subfolder or "/" in filename or "\\" in filename:
        raise InputError(f"filename: {filename!r} is not a file name (give the name, and the folder in subfolder)")
    parts = [p for p in subfolder.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts or filename == ".." or subfolder.startswith(("/", "\\")) or os.path.isabs(subfolder):
        raise InputError(f"subfolder: {subfolder!r} leaves the {kind} folder")
    root = Path(os.path.realpath(roots[kind]))
    path = Path(os.path.realpath(root.joinpath(*parts, filename)))
    if os.path.commonpath([root, path]) != str(root):
        raise InputError(f"filename: {filename!r} leads outside the {kind} folder")
    if not path.is_file():
        raise FileNotFoundError(f"filename: no file {'/'.join([*parts, filename])!r} in the {kind} folder")
    return path


def _number(query: Mapping, name: str, cast, default=None):
    raw = query.get(name)
    if raw in (None, ""):
        return default
    try:
        return cast(raw)
    except (TypeError, ValueError):
        raise InputError(f"{name}: {raw!r} is not a number") from None


def waveform(request, roots: Optional[Mapping[str, Path]] = None) -> tuple[int, dict]:
    """``GET /aceforge/waveform``: (200, peaks JSON) or (400 / 404, {"error": ...}); see the module."""
    query = request.query
    try:
        path = resolve_audio(query, roots or comfy_compat.io_folders())
        width = _number(query, "width", int, DEFAULT_WIDTH)
        found = peaks.file_peaks(path, width, _number(query, "start", float), _number(query, "end", float),
                                 name="filename")
    except FileNotFoundError as exc:
        if query.get("missing_ok") in ("1", "true"):
            return 200, {"missing": True, "error": str(exc)}
        return 404, {"error": str(exc)}
    except InputError as exc:
        return 400, {"error": str(exc)}
    return 200, {**found.to_json(), "filename": query.get("filename"), "type": query.get("type") or "input",
                 "subfolder": query.get("subfolder") or ""}


def _grid(family: str) -> dict:
    spec = adapter_for(family).latent
    return {"family": family, "sample_rate": spec.sample_rate, "samples_per_frame": spec.samples_per_frame,
            "seconds_per_frame": spec.samples_per_frame / spec.sample_rate}


def _model_path(query: Mapping) -> Optional[Path]:
    if query.get("dit_name"):
        return comfy_compat.resolve_in(query["dit_name"], ("diffusion_models", comfy_compat.PACK_FOLDER), "dit_name")
    if query.get("ckpt_name"):
        return comfy_compat.resolve_checkpoint(query["ckpt_name"])
    return None


def latent_grid(request) -> tuple[int, dict]:
    """``GET /aceforge/latent_grid``: the grid of ``ckpt_name``'s (or ``dit_name``'s) family, else
    the finest one (with the reason)."""
    grids = {family: _grid(family) for family in ADAPTERS}
    finest = min(grids.values(), key=lambda g: g["seconds_per_frame"])
    try:
        path = _model_path(request.query)
        if path is None:
            return 200, {**finest, "known": False, "grids": grids}
        family = family_of_path(path)
    except (AceStepError, OSError) as exc:
        return 200, {**finest, "known": False, "reason": str(exc), "grids": grids}
    return 200, {**grids[family], "known": True, "grids": grids}


ROUTES = {f"{PREFIX}/waveform": waveform, f"{PREFIX}/latent_grid": latent_grid}


def register() -> bool:
    """Serve :data:`ROUTES` on ComfyUI's server (also under ``/api``); False outside ComfyUI."""
    return all([comfy_compat.add_json_route(path, handler) for path, handler in ROUTES.items()])
