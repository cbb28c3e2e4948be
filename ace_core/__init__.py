"""AceForge core: our own PyTorch implementation of the ACE-Step models.

Imports nothing from ComfyUI. Sub-packages: ``v1`` (ACE-Step v1 3.5B), ``audio`` (DSP helpers).
"""

__version__ = "0.1.0"
