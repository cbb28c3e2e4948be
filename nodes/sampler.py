"""The ACE-Step KSampler, one node for both families: the official v1 loop (euler / heun / pingpong,
APG / CFG / CFG-zero-star, guidance interval, ERG) and the official 1.5 loops (turbo; base / sft
with APG or CFG and the CFG interval; ODE or SDE; DCW), for text to music, audio to audio
(denoise < 1) and the edit latents of the edit nodes. The model's adapter reads the settings."""

from __future__ import annotations

import logging

from dataclasses import fields

from ..ace_core.errors import InputError
from ..ace_core.v1 import pipeline
from ..ace_core.v1.pipeline import SamplerSettings
from . import comfy_compat
from .conditioning import decode_for

log = logging.getLogger("AceForge")
CATEGORY = "audio/ACE-Step"
_DEFAULTS = SamplerSettings()
AUTO = 0
DCW_CHOICES = ["auto", "on", "off"]
EDIT_KEY = "aceforge_edit"


def _advanced(spec: dict) -> dict:
    spec["advanced"] = True
    return spec


class AceStepKSampler:
    DESCRIPTION = (
        "Samples a latent for the loaded model exactly as the official pipeline of its family does. steps 0 and "
        "guidance_scale 0 take the variant's official defaults (v1: 60 steps, guidance 15 with APG; 1.5 turbo: 8 "
        "steps, no CFG (distilled); 1.5 base: 32 steps, sft: 50 steps, guidance 7 with APG). denoise 1.0 generates "
        "from noise over the latent's length; below 1.0 the input latent is the source of an audio-to-audio run. "
        "An edit latent (RepaintMask, Outpaint, Retake, FlowEdit, Cover, Stems) runs its edit with its own "
        "strength and refuses denoise below 1. Settings the loaded family does not use are listed in a note."
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
                    "default": AUTO, "min": 0, "max": 1000,
                    "tooltip": "Diffusion steps. 0 = the official default of the loaded variant (v1: 60, 27 is the "
                               "fast setting; 1.5 turbo: 8, at most 20; 1.5 base: 32; 1.5 sft: 50).",
                }),
                "guidance_scale": ("FLOAT", {
                    "default": float(AUTO), "min": 0.0, "max": 200.0, "step": 0.1,
                    "tooltip": "How strongly to follow the conditioning. 0 = the official default (v1: 15 with APG; "
                               "1.5 base/sft: 7); 1 turns guidance off. No effect on a 1.5 turbo model (CFG-distilled).",
                }),
                "sampler": (list(pipeline.SAMPLERS), {
                    "default": d.sampler,
                    "tooltip": "euler: the official default (1.5: the ODE sampler); heun: second order, v1 only (about "
                               "twice the model calls); pingpong: stochastic, fresh noise each step (1.5: the SDE sampler).",
                }),
                "guidance_type": (list(pipeline.GUIDANCE_TYPES), {
                    "default": d.guidance_type,
                    "tooltip": "apg: adaptive projected guidance (official default of both families); cfg: classic "
                               "classifier-free guidance; cfg_star: CFG-zero-star (v1 only).",
                }),
                "denoise": ("FLOAT", {
                    "default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                    "tooltip": "1.0: generate from noise. Below 1.0: audio-to-audio, re-generating this share of the "
                               "schedule from the input latent (0.3 keeps most of the source, 0.7 changes a lot). "
                               "Edit latents (RepaintMask, Outpaint, Retake, FlowEdit, Cover, Stems) carry their own "
                               "strength: with them denoise must stay 1.0 (below 1 is refused, not ignored).",
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
                "dcw": (DCW_CHOICES, _advanced({
                    "default": "auto",
                    "tooltip": "ACE-Step 1.5 only. Wavelet-domain correction after every step (DCW). auto: on for "
                               "turbo, off for base/sft (the official UI).",
                })),
                "cfg_interval_start": ("FLOAT", _advanced({
                    "default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                    "tooltip": "ACE-Step 1.5 base/sft only. Guidance applies while the noise level t is in "
                               "[start, end] (official 0 .. 1 = every step).",
                })),
                "cfg_interval_end": ("FLOAT", _advanced({
                    "default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                    "tooltip": "ACE-Step 1.5 base/sft only. End of the guidance interval (see cfg_interval_start).",
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
               negative=None, **advanced):
        options = {**_ADVANCED_DEFAULTS, **advanced, "steps": steps, "guidance_scale": guidance_scale,
                   "sampler": sampler, "guidance_type": guidance_type}
        if isinstance(latent, dict) and isinstance(latent.get(EDIT_KEY), dict) and float(denoise) < 1.0:
            raise InputError(f"denoise: {denoise:g} is not used for a {latent[EDIT_KEY].get('task')} edit latent; "
                             "the edit node sets its own strength (e.g. RepaintMask strength, FlowEdit n_min). "
                             "Set denoise to 1.0")
        settings, unused = settings_for(model.adapter, options)
        notes = [f"{name} has no effect on {model.adapter.title}" for name in unused
                 if options[name] != _ADVANCED_DEFAULTS.get(name, options[name])]
        if hasattr(model.adapter, "notes"):  # variant-specific (e.g. guidance on a CFG-distilled turbo)
            notes += model.adapter.notes(model.bundle, settings)
        for note in notes:
            log.warning("AceForge: sampler: %s", note)
        pos = decode_for(model, positive, "positive")
        neg = decode_for(model, negative, "negative") if negative is not None else None
        # an edit LATENT (RepaintMask / Outpaint / Retake / FlowEdit / Cover / Stems) runs its edit
        out = model.adapter.sample(model.bundle, pos, neg, latent=latent, seed=seed, settings=settings,
                                   denoise=denoise, progress=comfy_compat.progress_hook("sampling"),
                                   prepare=model.prepare)
        return {"ui": {"text": notes}, "result": (out,)} if notes else (out,)


_ADVANCED_DEFAULTS = {name: spec[1]["default"] for name, spec in AceStepKSampler.INPUT_TYPES()["required"].items()
                      if spec[1].get("advanced")}


def settings_for(adapter, options: dict):
    """(the family's sampler settings, the option names it does not use). 0 for steps or guidance_scale
    means the family's default. A family may translate the shared options itself
    (``settings_from_options``); otherwise the options named like its settings' fields are used."""
    translate = getattr(adapter, "settings_from_options", None)
    if translate is not None:
        return translate(options)
    defaults = adapter.sampler_settings(None)
    names = {f.name for f in fields(defaults)}
    kept = {k: v for k, v in options.items() if k in names}
    for name in ("steps", "guidance_scale"):
        if kept.get(name) == AUTO:
            kept[name] = getattr(defaults, name)
    return adapter.sampler_settings(kept), sorted(k for k in options if k not in names)


NODE_CLASS_MAPPINGS = {"AceForge_KSampler": AceStepKSampler}
NODE_DISPLAY_NAME_MAPPINGS = {"AceForge_KSampler": "ACE-Step KSampler (AceForge)"}
