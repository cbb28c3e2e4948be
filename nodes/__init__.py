"""AceForge ComfyUI nodes (classic node API). Every node ID starts with ``AceForge_``; category
``audio/ACE-Step``. The model work happens in ``ace_core``; ComfyUI is touched only in
``comfy_compat``."""

from . import editing, latent, lm, loader, lyrics, sampler, tasks, text_encode, vae

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
for _module in (loader, text_encode, lyrics, latent, sampler, vae, editing, tasks, lm):
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
