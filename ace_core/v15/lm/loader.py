"""Load a 5 Hz LM from every published layout, strictly (headers first, then the weights).

Where an LM lives:

* an official folder ``acestep-5Hz-lm-{0.6B,1.7B,4B}/`` (``config.json`` + ``model.safetensors``
  or shards), or the checkpoints root holding exactly one such folder;
* ComfyUI's split ``text_encoders/qwen_{1.7b,4b}_ace15.safetensors`` (same ``model.*`` keys);
* inside ComfyUI's all-in-one file (``text_encoders.qwen3_2b.transformer.model.*``): pass the
  file, or a :class:`~..layouts.PartSource` from ``bundle.lm_sources`` (or the bundle itself).

An LM is told from the Qwen3 text encoder by its vocabulary (more than 151,669 rows; the
recognition table decides). Keys are matched strictly: a missing, unexpected or mis-shaped tensor
raises :class:`~ace_core.errors.CheckpointError` naming the file. The LM may go to another device
than the DiT (``device=``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Union

import torch

from ...errors import CheckpointError, InputError
from ...loading.json_files import read_json_object
from ...loading.keys import listing
from ...loading.recognise import ACE_V15
from ...loading.safetensors_io import read_header
from ...loading.streaming import check_float_dtype, default_dtype, materialize_buffers, stream_into
from ...progress import ProgressHook
from ..bundle import TINY_QWEN3, _tiny
from ..layouts import TITLES, PartSource, _describe, _model_headers, _recognise_headers
from ..loader import _plan_part, _text_config
from ..qwen3 import Qwen3Config
from .model import AUDIO_CODE_COUNT, AUDIO_CODE_START, FiveHzLM

__all__ = ["load_lm", "plan_lm", "find_lm", "tiny_five_hz_lm", "LM_DIR_PATTERN"]

logger = logging.getLogger("AceForge")
LM_DIR_PATTERN = "acestep-5Hz-lm-*"
PathLike = Union[str, Path]


def _lm_parts(headers, source) -> list:
    found = _recognise_headers(headers, source)
    return [PartSource("lm", tuple(headers), p.prefix, p.naming, p.variant)
            for p in found.parts if (p.family, p.component) == (ACE_V15, "lm")]


def _not_an_lm(path, headers) -> CheckpointError:
    found = _recognise_headers(headers, path)
    hint = ""
    if any(p.component == "text_encoder" for p in found.parts):
        hint = " (qwen_0.6b_ace15 / Qwen3-Embedding-0.6B is the caption encoder, not the LM)"
    return CheckpointError(f"{path}: expected the {TITLES['lm']} (acestep-5Hz-lm-*, qwen_1.7b_ace15 or "
                           f"qwen_4b_ace15), found {_describe(found, headers)}{hint}")


def _from_folder(folder: Path) -> PartSource:
    got = _model_headers(folder, "model.safetensors")
    if got is None:
        inner = sorted(d for d in folder.glob(LM_DIR_PATTERN) if d.is_dir())
        if len(inner) == 1:
            return _from_folder(inner[0])
        if inner:
            raise CheckpointError(f"{folder}: several 5 Hz LMs ({', '.join(d.name for d in inner)}); name the "
                                  "folder of the one to use")
        raise CheckpointError(f"{folder}: no model.safetensors and no {LM_DIR_PATTERN} folder")
    headers, index = got
    parts = _lm_parts(headers, folder)
    if len(parts) != 1:
        raise _not_an_lm(index or headers[0].path, headers)
    part = parts[0]
    part.folder, part.index_file = folder, index
    config = folder / "config.json"
    if config.is_file():
        part.config_json = read_json_object(config)
    return part


def find_lm(source) -> PartSource:
    """Resolve a path, a ``bundle.lm_sources`` entry or a bundle to the LM's :class:`PartSource`."""
    if isinstance(source, PartSource):
        return source
    if hasattr(source, "lm_sources"):  # an AceStep15Bundle
        sources = tuple(source.lm_sources)
        if len(sources) != 1:
            raise InputError(f"LM: the loaded model carries {len(sources)} 5 Hz LMs "
                             f"({', '.join(str(s.file) for s in sources) or 'none'}); give the LM file or folder")
        return sources[0]
    path = Path(source)
    if path.is_dir():
        return _from_folder(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file or folder (the 5 Hz LM)")
    header = read_header(path)
    parts = _lm_parts((header,), path)
    if len(parts) != 1:
        raise _not_an_lm(path, (header,)) if not parts else CheckpointError(
            f"{path}: holds {len(parts)} 5 Hz LMs (under {', '.join(p.prefix for p in parts)})")
    return parts[0]


def _key_map(part: PartSource, module: FiveHzLM) -> dict:
    """Module key -> full file key; an untied ``lm_head.weight`` sits beside the ``model.`` prefix."""
    keys = {"model." + bare: full for bare, full in part.bare_keys().items()}
    root = part.prefix[:-len("model.")] if part.prefix.endswith("model.") else part.prefix
    if root + "lm_head.weight" in part.shapes():
        keys["lm_head.weight"] = root + "lm_head.weight"
    return keys


def _check_alone(part: PartSource, used: set) -> None:
    """A file that holds only the LM must hold nothing else (an all-in-one's other parts are fine)."""
    for header in part.headers:
        if len(_recognise_headers((header,), header.path).parts) != 1:
            continue
        stray = [k for k in header.tensors if (header.path, k) not in used]
        if stray:
            raise CheckpointError(f"{header.path}: unexpected {len(stray)} keys beside the 5 Hz LM: {listing(stray)}")


def plan_lm(source, dtype: torch.dtype = torch.bfloat16) -> tuple:
    """Headers only: -> (part, the LM on ``meta``, module key -> (file, TensorInfo)); strict
    (CheckpointError naming the file for a key missing, unexpected or of another shape)."""
    part = find_lm(source)
    config = _text_config(part, None)
    if config.vocab_size < AUDIO_CODE_START + AUDIO_CODE_COUNT:
        raise CheckpointError(f"{part.file}: the LM has {config.vocab_size} vocabulary rows; the audio codes need "
                              f"{AUDIO_CODE_START + AUDIO_CODE_COUNT}")
    module = FiveHzLM(config, dtype=dtype, device="meta")
    plan, used = _plan_part(part, module, config, _key_map(part, module), part.shapes(), what=TITLES["lm"])
    _check_alone(part, used)
    return part, module, plan


def load_lm(source, *, dtype: Optional[torch.dtype] = None, device: Union[str, torch.device] = "cpu",
            progress: Optional[ProgressHook] = None) -> FiveHzLM:
    """Load the 5 Hz LM from a folder, a file, a ``bundle.lm_sources`` entry or a bundle.

    dtype: None = bfloat16 where the device supports it, else float32. Returns the model in eval
    mode with ``.source`` (the file) and ``.variant`` (``0.6B`` / ``1.7B`` / ``4B`` / ``hidden N``).
    """
    device = torch.device(device)
    dtype = check_float_dtype(default_dtype(device) if dtype is None else dtype)
    part, module, plan = plan_lm(source, dtype)
    stream_into(module, plan, device, progress, [0, len(plan)])
    materialize_buffers(module, device)
    module.requires_grad_(False).eval()
    module.source, module.variant = str(part.file), part.variant or f"hidden {module.config.hidden_size}"
    logger.info("AceForge: loaded the 5 Hz LM %s from %s (under '%s') as %s on %s", module.variant, part.file,
                part.prefix, str(dtype).replace("torch.", ""), device)
    return module


def tiny_five_hz_lm(seed: int = 3, dtype: torch.dtype = torch.float32, *, hidden: int = 16) -> FiveHzLM:
    """A tiny random 5 Hz LM with the real vocabulary (Qwen3 + the 64,000 code rows), for tests
    and demos: the real tokenizer ids and code ids all fit."""
    cfg = Qwen3Config(**dict(TINY_QWEN3, hidden_size=hidden), vocab_size=AUDIO_CODE_START + AUDIO_CODE_COUNT)
    lm = _tiny(FiveHzLM, cfg, torch.Generator().manual_seed(seed), dtype)
    lm.source, lm.variant = "tiny random", f"hidden {hidden}"
    return lm
