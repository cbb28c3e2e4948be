"""AceForge core: our own PyTorch implementation of the ACE-Step models.

Imports nothing from ComfyUI. Family-neutral parts: ``audio`` (DSP helpers), ``sampling``
(guidance, seeded noise, schedules, the step loop), ``editing`` (time ranges, long-source windows,
seams, the masked loop), ``loading`` (safetensors, strict key checks, the recognition table),
``family`` (the adapter protocol and registry), ``latent_spec``, ``validation``. Model families:
``v1`` (ACE-Step v1 3.5B), ``v15`` (ACE-Step 1.5).
"""

__version__ = "0.1.0"
