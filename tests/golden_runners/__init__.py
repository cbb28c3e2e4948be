"""Collects ``RUNNERS`` from every module in this folder: ``{component_id: fn(fixture)}``."""

from __future__ import annotations

import importlib
import pkgutil

RUNNERS: dict = {}
for _info in pkgutil.iter_modules(__path__):
    _module = importlib.import_module(f"{__name__}.{_info.name}")
    for _component, _fn in getattr(_module, "RUNNERS", {}).items():
        if _component in RUNNERS:
            raise RuntimeError(f"golden component {_component!r} has two runners")
        RUNNERS[_component] = _fn
