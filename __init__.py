"""AceForge: ACE-Step music generation for ComfyUI, on its own PyTorch core (``ace_core``).

ComfyUI imports this folder as a package; the nodes live in ``nodes/`` and the frontend extension
and help pages in ``web/``.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .nodes.waveform_route import register as _register_routes

_register_routes()  # GET /aceforge/waveform and /aceforge/latent_grid (a no-op outside ComfyUI)

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
