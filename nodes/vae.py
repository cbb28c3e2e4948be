"""VAE nodes: the loaded family's latent <-> core AUDIO (v1: stereo 44.1 kHz out; 1.5: stereo 48 kHz out;
any rate and channel count in)."""

from __future__ import annotations

from . import comfy_compat

CATEGORY = "audio/ACE-Step"


class AceStepVAEDecode:
    DESCRIPTION = (
        "Decodes a latent of the loaded model's family: ACE-Step v1 to stereo 44.1 kHz (music DCAE and HiFi-GAN "
        "vocoder), ACE-Step 1.5 to stereo 48 kHz (Oobleck VAE); long songs are decoded in overlapping windows. "
        "A sampled repaint/extend is spliced into its source audio. Connect the AUDIO to Preview or Save Audio."
    )
    CATEGORY = CATEGORY
    FUNCTION = "decode"
    RETURN_TYPES = ("AUDIO",)
    OUTPUT_TOOLTIPS = ("Stereo audio: 44100 Hz (v1) or 48000 Hz (1.5).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("ACE_MODEL", {"tooltip": "The model bundle from the ACE-Step Checkpoint Loader."}),
                "latent": ("LATENT", {"tooltip": "A latent of the model's family, e.g. from the ACE-Step KSampler."}),
            }
        }

    def decode(self, model, latent):
        # a sampled repaint/outpaint LATENT is spliced into its source audio
        audio = model.adapter.decode_audio(model.bundle, latent, progress=comfy_compat.progress_hook("decoding"),
                                           prepare=model.prepare)
        return ({"waveform": audio["waveform"].float().cpu(), "sample_rate": audio["sample_rate"]},)


class AceStepVAEEncode:
    DESCRIPTION = (
        "Encodes audio (any sample rate, mono, stereo or more channels) to a latent of the loaded model's family "
        "(v1: 44.1 kHz, (batch, 8, 16, frames); 1.5: 48 kHz, (batch, 64, frames) as core's VAEEncodeAudio): the "
        "source of an audio-to-audio run (v1 at most 240 s, 1.5 at most 600 s) or of the edit nodes (RepaintMask, "
        "Outpaint, Cover, Stems: songs up to 60 minutes, only the edited window is encoded)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The audio's latent: (batch, 8, 16, frames) for v1, (batch, 64, frames) for 1.5.",)

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
