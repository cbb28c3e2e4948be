"""AceForge: ACE-Step music generation for ComfyUI, on its own PyTorch core (``ace_core``).

ComfyUI imports this folder as a package; the nodes live in ``nodes/`` and the frontend extension
and help pages in ``web/``.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
