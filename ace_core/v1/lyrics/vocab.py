"""Locating the ACE-Step v1 lyric BPE vocabulary on disk (without importing ComfyUI)."""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import Optional

__all__ = ["default_vocab_path", "VOCAB_ENV_VAR"]

VOCAB_ENV_VAR = "ACEFORGE_LYRICS_VOCAB"
_COMFY_RELATIVE = Path("text_encoders") / "ace_lyrics_tokenizer" / "vocab.json"  # inside comfy/
_ACESTEP_RELATIVE = Path("models") / "lyrics_utils" / "vocab.json"  # inside acestep/


def _package_dir(name: str) -> Optional[Path]:
    """Directory of an importable top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.origin and spec.origin not in ("namespace", "built-in", "frozen"):
        return Path(spec.origin).parent
    locations = list(spec.submodule_search_locations or [])
    return Path(locations[0]) if locations else None


def default_vocab_path() -> Optional[Path]:
    """The lyric vocabulary to use when none is given, or None.

    Order: the file named by ``$ACEFORGE_LYRICS_VOCAB``; ComfyUI's
    ``comfy/text_encoders/ace_lyrics_tokenizer/vocab.json`` (the ``comfy`` package located with
    ``importlib.util.find_spec``, or a ComfyUI root above this file, e.g. when the pack lives in
    ``ComfyUI/custom_nodes``); the ACE-Step package's ``acestep/models/lyrics_utils/vocab.json``.
    """
    env = os.environ.get(VOCAB_ENV_VAR, "").strip()
    if env:
        path = Path(env).expanduser()
        if path.is_file():
            return path
        warnings.warn(f"{VOCAB_ENV_VAR}={env!r} is not a file; looking for the vocabulary elsewhere",
                      RuntimeWarning, stacklevel=2)
    candidates = []
    comfy = _package_dir("comfy")
    if comfy is not None:
        candidates.append(comfy / _COMFY_RELATIVE)
    for parent in Path(__file__).resolve().parents:
        candidates.append(parent / "comfy" / _COMFY_RELATIVE)
    acestep = _package_dir("acestep")
    if acestep is not None:
        candidates.append(acestep / _ACESTEP_RELATIVE)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None
