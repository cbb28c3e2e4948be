"""The ACE-Step KSampler: the official v1 sampling loop (euler / heun / pingpong, APG / CFG /
CFG-zero-star, guidance interval, ERG) for text-to-audio and, with denoise < 1, audio-to-audio."""

from __future__ import annotations

from ..ace_core.v1 import pipeline
from ..ace_core.v1.pipeline import SamplerSettings
from . import comfy_compat
from .conditioning import decode_for

CATEGORY = "audio/ACE-Step"
_DEFAULTS = SamplerSettings()


def _advanced(spec: dict) -> dict:
    spec["advanced"] = True
    return spec


class AceStepKSampler:
    DESCRIPTION = (
        "Samples an ACE-Step v1 latent exactly as the official pipeline does (defaults = the official "
        "Gradio settings: 60 steps, guidance 15, euler, APG, granularity 10, guidance interval 0.5, ERG on "
        "tags and diffusion). denoise 1.0 generates from noise over the latent's length; below 1.0 the "
        "input latent is the source of an audio-to-audio run (the official ref_audio_strength = 1 - denoise)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The sampled latent; decode it with ACE-Step VAE Decode.",)

    @classmethod
    def INPUT_TYPES(cls):
        d = _DEFAULTS
        return {
            "required": {
                "model": ("ACE_MODEL", {"tooltip": "The model bundle from the ACE-Step Checkpoint Loader."}),
                "positive": ("CONDITIONING", {"tooltip": "Tags and lyrics to generate (Text Encode ACE-Step Audio)."}),
                "latent": ("LATENT", {
                    "tooltip": "An empty latent (sets the length and batch size) or, for audio-to-audio with "
                               "denoise below 1, the encoded source audio.",
                }),
                "seed": ("INT", {
                    "default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                    "tooltip": "Noise seed. Batch item k draws its noise from seed + k.",
                }),
                "steps": ("INT", {
                    "default": d.steps, "min": 1, "max": 1000,
                    "tooltip": "Diffusion steps (official default 60; 27 is the fast setting).",
                }),
                "guidance_scale": ("FLOAT", {
                    "default": d.guidance_scale, "min": 0.0, "max": 200.0, "step": 0.1,
                    "tooltip": "How strongly to follow the conditioning (official default 15 with APG). 0 or 1 turns guidance off.",
                }),
                "sampler": (list(pipeline.SAMPLERS), {
                    "default": d.sampler,
                    "tooltip": "euler: the official default; heun: second order (about twice the model calls); "
                               "pingpong: stochastic, fresh noise each step.",
                }),
                "guidance_type": (list(pipeline.GUIDANCE_TYPES), {
                    "default": d.guidance_type,
                    "tooltip": "apg: adaptive projected guidance (official default, less oversaturated vocals); "
                               "cfg: classic classifier-free guidance; cfg_star: CFG-zero-star.",
                }),
                "denoise": ("FLOAT", {
                    "default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                    "tooltip": "1.0: generate from noise. Below 1.0: audio-to-audio, re-generating this share of the "
                               "schedule from the input latent (0.3 keeps most of the source, 0.7 changes a lot). "
                               "Not used for edit latents (RepaintMask, Outpaint, ...), which carry their own strength.",
                }),
                "shift": ("FLOAT", _advanced({
                    "default": d.shift, "min": 0.01, "max": 100.0, "step": 0.01,
                    "tooltip": "Flow-matching timestep shift of the noise schedule (official 3.0).",
                })),
                "omega": ("FLOAT", _advanced({
                    "default": d.omega, "min": -100.0, "max": 100.0, "step": 0.1,
                    "tooltip": "Granularity scale: the euler/heun mean-shift strength (official 10; 0 = plain step).",
                })),
                "guidance_interval": ("FLOAT", _advanced({
                    "default": d.guidance_interval, "min": 0.0, "max": 1.0, "step": 0.01,
                    "tooltip": "Share of the steps (centred) where guidance is applied (official 0.5; 1.0 = all steps).",
                })),
                "guidance_interval_decay": ("FLOAT", _advanced({
                    "default": d.guidance_interval_decay, "min": 0.0, "max": 1.0, "step": 0.01,
                    "tooltip": "Above 0, the guidance scale falls linearly towards min_guidance_scale across the interval.",
                })),
                "min_guidance_scale": ("FLOAT", _advanced({
                    "default": d.min_guidance_scale, "min": 0.0, "max": 200.0, "step": 0.1,
                    "tooltip": "Where the guidance decay ends (official 3.0).",
                })),
                "guidance_scale_text": ("FLOAT", _advanced({
                    "default": d.guidance_scale_text, "min": 0.0, "max": 200.0, "step": 0.1,
                    "tooltip": "With guidance_scale_lyric, both above 1: separate guidance for tags and for lyrics "
                               "(overrides guidance_type). 0 = off.",
                })),
                "guidance_scale_lyric": ("FLOAT", _advanced({
                    "default": d.guidance_scale_lyric, "min": 0.0, "max": 200.0, "step": 0.1,
                    "tooltip": "Lyric guidance scale for the separate text/lyric guidance. 0 = off.",
                })),
                "erg_tag": ("BOOLEAN", _advanced({
                    "default": d.erg_tag,
                    "tooltip": "Entropy-rectifying guidance on the tags: the unconditional branch uses softened tag "
                               "attention instead of empty tags. As in the official code it only matters together "
                               "with erg_lyric (official UI: on).",
                })),
                "erg_lyric": ("BOOLEAN", _advanced({
                    "default": d.erg_lyric,
                    "tooltip": "ERG on the lyrics: the unconditional branch keeps the lyrics with softened attention "
                               "(official UI: off).",
                })),
                "erg_diffusion": ("BOOLEAN", _advanced({
                    "default": d.erg_diffusion,
                    "tooltip": "ERG in the diffusion model: softened attention in the unconditional pass (official UI: on).",
                })),
            },
            "optional": {
                "negative": ("CONDITIONING", {
                    "tooltip": "Optional. Replaces the unconditional branch (e.g. tags to steer away from). "
                               "When absent the model's own null condition is used, as in the official pipeline.",
                }),
            },
        }

    def sample(self, model, positive, latent, seed, steps, guidance_scale, sampler, guidance_type, denoise,
               shift=_DEFAULTS.shift, omega=_DEFAULTS.omega, guidance_interval=_DEFAULTS.guidance_interval,
               guidance_interval_decay=_DEFAULTS.guidance_interval_decay,
               min_guidance_scale=_DEFAULTS.min_guidance_scale, guidance_scale_text=_DEFAULTS.guidance_scale_text,
               guidance_scale_lyric=_DEFAULTS.guidance_scale_lyric, erg_tag=_DEFAULTS.erg_tag,
               erg_lyric=_DEFAULTS.erg_lyric, erg_diffusion=_DEFAULTS.erg_diffusion, negative=None):
        settings = model.adapter.sampler_settings(dict(
            steps=steps, guidance_scale=guidance_scale, sampler=sampler, shift=shift, omega=omega,
            guidance_type=guidance_type, guidance_interval=guidance_interval,
            guidance_interval_decay=guidance_interval_decay, min_guidance_scale=min_guidance_scale,
            guidance_scale_text=guidance_scale_text, guidance_scale_lyric=guidance_scale_lyric,
            erg_tag=erg_tag, erg_lyric=erg_lyric, erg_diffusion=erg_diffusion,
        ))
        pos = decode_for(model, positive, "positive")
        neg = decode_for(model, negative, "negative") if negative is not None else None
        # an edit LATENT (RepaintMask / Outpaint / Retake / FlowEdit) runs its edit
        return (model.adapter.sample(model.bundle, pos, neg, latent=latent, seed=seed, settings=settings,
                                     denoise=denoise, progress=comfy_compat.progress_hook("sampling"),
                                     prepare=model.prepare),)


NODE_CLASS_MAPPINGS = {"AceForge_KSampler": AceStepKSampler}
NODE_DISPLAY_NAME_MAPPINGS = {"AceForge_KSampler": "ACE-Step KSampler (AceForge)"}
