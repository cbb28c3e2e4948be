"""JSON beside and inside checkpoints: ``config.json`` files and configs our writers embed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from ..errors import CheckpointError
from .safetensors_io import SafetensorsHeader

__all__ = ["embedded_config", "read_json_object"]


def read_json_object(path: Path) -> Optional[dict]:
    """A JSON object file as a dict (None when absent); CheckpointError naming it when unreadable."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def embedded_config(headers: Sequence[SafetensorsHeader], key: str) -> dict:
    """The JSON object stored under metadata ``key`` of the first header that has it, else {}."""
    for h in headers:
        raw = h.metadata.get(key)
        if raw:
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise CheckpointError(f"{h.path}: unreadable '{key}' metadata: {exc}") from exc
            if not isinstance(data, dict):
                raise CheckpointError(f"{h.path}: '{key}' metadata is not a JSON object")
            return data
    return {}
