"""Empty latent node: a silent ACE-Step v1 latent of a given duration."""

from __future__ import annotations

from ..ace_core.family import adapter_for
from ..ace_core.loading.recognise import ACE_V1

CATEGORY = "audio/ACE-Step"


def _v1():
    return adapter_for(ACE_V1)


class EmptyAceStepLatentAudio:
    DESCRIPTION = (
        "Creates an empty ACE-Step v1 latent of the given length (10.77 latent frames per second, "
        "up to 240 s) to generate into with the ACE-Step KSampler at denoise 1.0."
    )
    CATEGORY = CATEGORY
    FUNCTION = "create"
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("An all-zero latent of shape (batch, 8, 16, frames).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "seconds": ("FLOAT", {
                    "default": 60.0, "min": 1.0, "max": _v1().latent.max_seconds, "step": 0.1,
                    "tooltip": "Length of the audio to generate, in seconds (ACE-Step v1 allows up to 240).",
                }),
                "batch_size": ("INT", {
                    "default": 1, "min": 1, "max": 64,
                    "tooltip": "How many songs to generate at once (item k draws its noise from seed + k).",
                }),
            }
        }

    def create(self, seconds, batch_size=1):
        return (_v1().empty_latent(seconds, batch_size),)


NODE_CLASS_MAPPINGS = {"AceForge_EmptyAceStepLatentAudio": EmptyAceStepLatentAudio}
NODE_DISPLAY_NAME_MAPPINGS = {"AceForge_EmptyAceStepLatentAudio": "Empty ACE-Step Latent Audio (AceForge)"}
