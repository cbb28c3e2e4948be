"""Time-range editing nodes: RepaintMask (inpaint), Outpaint (extend), Retake (variations) and
FlowEdit (new tags / lyrics for a whole song). Each emits a LATENT carrying an ``aceforge_edit``
description (see ``ace_core/v1/edit_pipeline.py``) that the ACE-Step KSampler runs with the
official editing loops and ACE-Step VAE Decode splices back into the source audio."""

from __future__ import annotations

from ..ace_core.editing import regions as er
from ..ace_core.editing.seams import CROSSFADE_CURVES
from ..ace_core.v1 import edit_pipeline as ep
from ..ace_core.v1.pipeline import validate_choice

CATEGORY = "audio/ACE-Step"
ANCHORS = list(er.ANCHORS)
FLOWEDIT_PRESETS = [*ep.FLOWEDIT_PRESETS, "custom"]

_SOURCE_TOOLTIP = ("The encoded source audio from ACE-Step VAE Encode (AceForge). It carries the audio itself, "
                   "so the untouched parts come back bit-identical; sources up to 60 minutes are encoded "
                   "only around the edit.")


def _seam_inputs(feather_tooltip: str) -> dict:
    return {
        "feather_frames": ("INT", {
            "default": ep.DEFAULT_FEATHER_FRAMES, "min": 0, "max": ep.MAX_FEATHER_FRAMES,
            "tooltip": feather_tooltip,
        }),
        "crossfade_ms": ("FLOAT", {
            "default": ep.DEFAULT_CROSSFADE_MS, "min": 0.0, "max": ep.MAX_CROSSFADE_MS, "step": 1.0,
            "tooltip": "After decoding, the source audio is put back outside the edited range; at each edge it "
                       "crossfades into the new audio over this many milliseconds (on the kept side). Everything "
                       "further out is bit-identical to the source. 0 = hard cut.",
        }),
        "crossfade_curve": (list(CROSSFADE_CURVES), {
            "default": "equal_power",
            "tooltip": "equal_power: constant loudness when the two sides differ (default); linear: constant "
                       "amplitude when they are nearly the same sound.",
        }),
    }


class RepaintMask:
    DESCRIPTION = (
        "Inpaint: regenerate a time range of an existing track (RunComfy's audio-inpaint parameters). "
        "start_time and end_time are seconds measured from the track's start or end. Tags and lyrics for the "
        "new section come from the sampler's conditioning. Connect the output to the ACE-Step KSampler, then "
        "ACE-Step VAE Decode: outside the range the result is the source, bit for bit, with a short crossfade "
        "at the edges. Long sources (up to 60 min) are edited through a window of at most 240 s."
    )
    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The source latent with the repaint mask and edit settings, for the ACE-Step KSampler.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "source": ("LATENT", {"tooltip": _SOURCE_TOOLTIP}),
                "start_time": ("FLOAT", {
                    "default": 0.0, "min": 0.0, "max": er.MAX_TIME_SECONDS, "step": 0.1,
                    "tooltip": "Start of the section to regenerate, in seconds from the anchor below.",
                }),
                "start_time_relative_to": (ANCHORS, {
                    "default": "start",
                    "tooltip": "start: start_time counts from the beginning of the track; end: from its end "
                               "(15 with 'end' = 15 s before the end).",
                }),
                "end_time": ("FLOAT", {
                    "default": 30.0, "min": 0.0, "max": er.MAX_TIME_SECONDS, "step": 0.1,
                    "tooltip": "End of the section to regenerate, in seconds from the anchor below (0 with 'end' = "
                               "the very end). At most 240 s after start_time.",
                }),
                "end_time_relative_to": (ANCHORS, {
                    "default": "start",
                    "tooltip": "start: end_time counts from the beginning of the track; end: from its end.",
                }),
                "strength": ("FLOAT", {
                    "default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                    "tooltip": "Repaint strength (the official retake variance). 1.0 regenerates the section from "
                               "scratch; lower values keep more of the original (the official UI uses 0.2, a light "
                               "touch; 0.7 and up give a clearly new section).",
                }),
                **_seam_inputs("Soft edge of the regenerated section in latent frames (1 frame = 93 ms): the first "
                               "and last frames blend from the source into the new audio. 0 = the official hard mask."),
            }
        }

    def apply(self, source, start_time, start_time_relative_to, end_time, end_time_relative_to, strength=1.0,
              feather_frames=ep.DEFAULT_FEATHER_FRAMES, crossfade_ms=ep.DEFAULT_CROSSFADE_MS,
              crossfade_curve="equal_power"):
        return (ep.repaint_latent(source, start_time, start_time_relative_to, end_time, end_time_relative_to,
                                  strength=strength, feather_frames=feather_frames, crossfade_ms=crossfade_ms,
                                  crossfade_curve=crossfade_curve),)


class Outpaint:
    DESCRIPTION = (
        "Outpaint: extend a track with new audio before and/or after it (RunComfy's audio-outpaint parameters, "
        "0-240 s each). Tags and lyrics for the new parts come from the sampler's conditioning. Connect the "
        "output to the ACE-Step KSampler, then ACE-Step VAE Decode: the original stays bit-identical apart from "
        "a short crossfade where the new audio joins it. On long sources the model sees the 240 s nearest the join."
    )
    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The padded source latent with the extension mask, for the ACE-Step KSampler.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "source": ("LATENT", {"tooltip": _SOURCE_TOOLTIP}),
                "extend_before_duration": ("FLOAT", {
                    "default": 0.0, "min": 0.0, "max": er.MAX_EXTEND_SECONDS, "step": 0.1,
                    "tooltip": "Seconds of new audio before the original (an intro). 0 = none.",
                }),
                "extend_after_duration": ("FLOAT", {
                    "default": 30.0, "min": 0.0, "max": er.MAX_EXTEND_SECONDS, "step": 0.1,
                    "tooltip": "Seconds of new audio after the original (an outro). 0 = none; not both 0.",
                }),
                **_seam_inputs("Latent frames of the original next to each join that are partly regenerated so the "
                               "new audio grows out of it (1 frame = 93 ms). 0 = the official hard edge."),
            }
        }

    def apply(self, source, extend_before_duration, extend_after_duration, feather_frames=ep.DEFAULT_FEATHER_FRAMES,
              crossfade_ms=ep.DEFAULT_CROSSFADE_MS, crossfade_curve="equal_power"):
        return (ep.outpaint_latent(source, extend_before_duration, extend_after_duration,
                                   feather_frames=feather_frames, crossfade_ms=crossfade_ms,
                                   crossfade_curve=crossfade_curve),)


class Retake:
    DESCRIPTION = (
        "Retake: a variation of a song you generated, the official way. Give the seed the song was made with; "
        "the sampler's seed becomes the retake seed, and variance mixes the two noises (cos/sin 'trigFlow' mix): "
        "0 gives the original back, 1 a new song. Use the same conditioning and sampler settings as the original."
    )
    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The latent with the retake settings, for the ACE-Step KSampler.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "latent": ("LATENT", {
                    "tooltip": "The empty latent the original song was generated into (it sets length and batch).",
                }),
                "original_seed": ("INT", {
                    "default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                    "tooltip": "The sampler seed the original song was generated with.",
                }),
                "variance": ("FLOAT", {
                    "default": 0.2, "min": 0.0, "max": 1.0, "step": 0.01,
                    "tooltip": "How far the variation may move from the original (official UI default 0.2).",
                }),
            }
        }

    def apply(self, latent, original_seed, variance=0.2):
        return (ep.retake_latent(latent, original_seed, variance),)


class FlowEdit:
    DESCRIPTION = (
        "FlowEdit: change the tags and/or lyrics of an existing song over its whole length (official "
        "flowedit semantics). source_conditioning describes the source audio; the sampler's positive "
        "conditioning is the target. Presets: 'lyrics only' (n_min 0.6, n_max 1.0) keeps the melody and "
        "changes the words; 'remix' (0.2, 0.4) may change melody and genre. At most 240 s."
    )
    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The source latent with the FlowEdit settings, for the ACE-Step KSampler.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "source": ("LATENT", {"tooltip": "The encoded song to edit (ACE-Step VAE Encode), at most 240 s."}),
                "source_conditioning": ("CONDITIONING", {
                    "tooltip": "Tags and lyrics that describe the source song as it is (Text Encode ACE-Step Audio).",
                }),
                "preset": (FLOWEDIT_PRESETS, {
                    "default": "lyrics only",
                    "tooltip": "lyrics only: n_min 0.6 / n_max 1.0 (new words, same melody); remix: 0.2 / 0.4 "
                               "(melody and genre may change); custom: use n_min and n_max below.",
                }),
                "n_min": ("FLOAT", {
                    "default": 0.6, "min": 0.0, "max": 1.0, "step": 0.01,
                    "tooltip": "custom only: share of the schedule skipped before editing starts (higher keeps more).",
                }),
                "n_max": ("FLOAT", {
                    "default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                    "tooltip": "custom only: share of the schedule after which plain sampling of the target takes over "
                               "(1.0 = edit until the end).",
                }),
                "n_avg": ("INT", {
                    "default": 1, "min": 1, "max": 16,
                    "tooltip": "Noise samples averaged per edit step (more = smoother, slower; official 1).",
                }),
            }
        }

    def apply(self, source, source_conditioning, preset="lyrics only", n_min=0.6, n_max=1.0, n_avg=1):
        from .conditioning import from_comfy

        validate_choice(preset, FLOWEDIT_PRESETS, "preset")
        if preset != "custom":
            n_min, n_max = ep.FLOWEDIT_PRESETS[preset]
        cond = from_comfy(source_conditioning, "source_conditioning")
        return (ep.flowedit_latent(source, cond, n_min, n_max, n_avg),)


NODE_CLASS_MAPPINGS = {
    "AceForge_RepaintMask": RepaintMask,
    "AceForge_Outpaint": Outpaint,
    "AceForge_Retake": Retake,
    "AceForge_FlowEdit": FlowEdit,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "AceForge_RepaintMask": "ACE-Step Repaint Mask / Inpaint (AceForge)",
    "AceForge_Outpaint": "ACE-Step Outpaint / Extend (AceForge)",
    "AceForge_Retake": "ACE-Step Retake (AceForge)",
    "AceForge_FlowEdit": "ACE-Step FlowEdit (AceForge)",
}
