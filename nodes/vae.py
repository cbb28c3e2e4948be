"""VAE nodes: ACE-Step v1 latent <-> core AUDIO (stereo 44.1 kHz out; any rate and channel count in)."""

from __future__ import annotations

from . import comfy_compat

CATEGORY = "audio/ACE-Step"


class AceStepVAEDecode:
    DESCRIPTION = (
        "Decodes an ACE-Step v1 latent to stereo 44.1 kHz audio with the music DCAE and the HiFi-GAN "
        "vocoder (long songs are decoded in overlapping windows). Connect the AUDIO to Preview Audio or "
        "Save Audio."
    )
    CATEGORY = CATEGORY
    FUNCTION = "decode"
    RETURN_TYPES = ("AUDIO",)
    OUTPUT_TOOLTIPS = ("Stereo audio at 44100 Hz.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("ACE_MODEL", {"tooltip": "The model bundle from the ACE-Step Checkpoint Loader."}),
                "latent": ("LATENT", {"tooltip": "An ACE-Step v1 latent, e.g. from the ACE-Step KSampler."}),
            }
        }

    def decode(self, model, latent):
        # a sampled repaint/outpaint LATENT is spliced into its source audio
        audio = model.adapter.decode_audio(model.bundle, latent, progress=comfy_compat.progress_hook("decoding"),
                                           prepare=model.prepare)
        return ({"waveform": audio["waveform"].float().cpu(), "sample_rate": audio["sample_rate"]},)


class AceStepVAEEncode:
    DESCRIPTION = (
        "Encodes audio (any sample rate, mono, stereo or more channels; resampled to 44.1 kHz stereo) to "
        "an ACE-Step v1 latent: the source of an audio-to-audio run (at most 240 s) or of the edit nodes "
        "(RepaintMask, Outpaint: longer songs too, only the edited window is encoded)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The audio's latent, (batch, 8, 16, frames).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("ACE_MODEL", {"tooltip": "The model bundle from the ACE-Step Checkpoint Loader."}),
                "audio": ("AUDIO", {"tooltip": "The audio to encode, e.g. from Load Audio."}),
            }
        }

    def encode(self, model, audio):
        # validates the AUDIO; long sources (for the edit nodes) may be encoded only around the edit
        return (model.adapter.encode_audio(model.bundle, audio, progress=comfy_compat.progress_hook("encoding"),
                                           prepare=model.prepare),)


NODE_CLASS_MAPPINGS = {"AceForge_VAEDecode": AceStepVAEDecode, "AceForge_VAEEncode": AceStepVAEEncode}
NODE_DISPLAY_NAME_MAPPINGS = {
    "AceForge_VAEDecode": "ACE-Step VAE Decode (AceForge)",
    "AceForge_VAEEncode": "ACE-Step VAE Encode (AceForge)",
}
