"""Empty latent node: a silent latent of a given duration, in the layout of the connected model's family
(ACE-Step v1 without a model, as before)."""

from __future__ import annotations

from ..ace_core.family import adapter_for
from ..ace_core.loading.recognise import ACE_V1, ACE_V15

CATEGORY = "audio/ACE-Step"
MAX_BATCH = 64


def _spec(family: str):
    return adapter_for(family).latent


class EmptyAceStepLatentAudio:
    DESCRIPTION = (
        "Creates an empty latent of the given length to generate into with the ACE-Step KSampler. Connect the "
        "model to get its family's layout: ACE-Step 1.5 (10-600 s, batch up to 8, core's [B, 64, frames] at "
        "25 Hz, interchangeable with EmptyAceStep1.5LatentAudio and VAEEncodeAudio latents) or ACE-Step v1 "
        "(1-240 s, [B, 8, 16, frames] at 10.77 Hz). Without a model the latent is ACE-Step v1's."
    )
    CATEGORY = CATEGORY
    FUNCTION = "create"
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("An all-zero latent: (batch, 8, 16, frames) for v1, (batch, 64, frames) for 1.5.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "seconds": ("FLOAT", {
                    "default": 60.0, "min": 1.0, "max": _spec(ACE_V15).max_seconds, "step": 0.1,
                    "tooltip": "Length of the audio to generate, in seconds: ACE-Step 1.5 takes 10-600, "
                               "ACE-Step v1 1-240.",
                }),
                "batch_size": ("INT", {
                    "default": 1, "min": 1, "max": MAX_BATCH,
                    "tooltip": "How many songs to generate at once (item k draws its noise from seed + k); "
                               "ACE-Step 1.5 takes up to 8.",
                }),
            },
            "optional": {
                "model": ("ACE_MODEL", {
                    "tooltip": "The loaded model: the latent takes its family's layout and limits. "
                               "Not connected: ACE-Step v1.",
                }),
            },
        }

    def create(self, seconds, batch_size=1, model=None):
        adapter = model.adapter if model is not None else adapter_for(ACE_V1)
        return (adapter.empty_latent(seconds, batch_size),)


NODE_CLASS_MAPPINGS = {"AceForge_EmptyAceStepLatentAudio": EmptyAceStepLatentAudio}
NODE_DISPLAY_NAME_MAPPINGS = {"AceForge_EmptyAceStepLatentAudio": "Empty ACE-Step Latent Audio (AceForge)"}
