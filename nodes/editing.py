"""Time-range editing nodes for both families: RepaintMask (inpaint), Outpaint (extend), Retake
(variations) and FlowEdit (v1: new tags / lyrics for a whole song); the 1.5 tasks are in
``tasks.py``. Each edit node
emits a LATENT carrying an ``aceforge_edit`` description (``ace_core/v1/edit_pipeline.py``,
``ace_core/v15/tasks.py``) that the ACE-Step KSampler runs with the family's official loops and
ACE-Step VAE Decode splices back into the source audio. The source latent's family picks the
editor (the adapter's ``editor``)."""

from __future__ import annotations

import inspect
import math

from ..ace_core.editing import regions as er
from ..ace_core.editing.seams import CROSSFADE_CURVES
from ..ace_core.errors import InputError
from ..ace_core.family import adapter_for_latent, require
from ..ace_core.v1 import edit_pipeline as ep
from ..ace_core.v1.latent import LATENT as V1_LATENT
from ..ace_core.v1.pipeline import validate_choice
from ..ace_core.v15 import tasks as v15_tasks
from ..ace_core.v15.repaint import REPAINT_MODES


OUTPAINT_MAX_SECONDS = math.floor(10 * (V1_LATENT.seconds(V1_LATENT.max_frames - math.ceil(V1_LATENT.frames_per_second))
                                        - V1_LATENT.seconds(1))) / 10
"""The longest extension per side every family accepts in one pass (v1: the 240 s window less ~1 s of
source context and one frame), so the declared range and the accepted one agree."""


def editor(latent, task: str, name: str = "source"):
    adapter = adapter_for_latent(latent, name)
    require(adapter, task)
    return adapter.editor


def _call(fn, *args, **kwargs):
    """Call an editor function with the keyword inputs it takes (inputs of the other family are left out)."""
    params = inspect.signature(fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return fn(*args, **kwargs)

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
                **_seam_inputs("ACE-Step v1 only. Soft edge of the regenerated section in latent frames (1 frame = "
                               "93 ms): the first and last frames blend from the source into the new audio. 0 = the "
                               "official hard mask."),
                "repaint_mode": (list(REPAINT_MODES), {
                    "default": v15_tasks.DEFAULT_REPAINT_MODE,
                    "tooltip": "ACE-Step 1.5 only (the official repaint modes). conservative: the source is injected "
                               "outside the section at every step, 25-frame latent crossfade, 50 ms waveform splice; "
                               "balanced: in between, set by strength; aggressive: no injection, no splice (the whole "
                               "decoded window is new audio).",
                }),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, start_time=None, start_time_relative_to=None, end_time=None, end_time_relative_to=None,
                        **_):
        """What can be known before running (HTTP 400 at /prompt): the ranges, and a section that starts
        after it ends when both times count from the same anchor. A section past the end of the song is
        refused when the node runs (the source's length is known then)."""
        return check_region_inputs(start_time, start_time_relative_to, end_time, end_time_relative_to)

    def apply(self, source, start_time, start_time_relative_to, end_time, end_time_relative_to, strength=1.0,
              feather_frames=ep.DEFAULT_FEATHER_FRAMES, crossfade_ms=ep.DEFAULT_CROSSFADE_MS,
              crossfade_curve="equal_power", repaint_mode=v15_tasks.DEFAULT_REPAINT_MODE):
        return (_call(editor(source, "repaint").repaint_latent, source, start_time, start_time_relative_to, end_time,
                      end_time_relative_to, strength=strength, feather_frames=feather_frames,
                      crossfade_ms=crossfade_ms, crossfade_curve=crossfade_curve, repaint_mode=repaint_mode),)


def check_region_inputs(start_time, start_anchor, end_time, end_anchor):
    """True, or the message ComfyUI returns with HTTP 400 for a region known to be wrong."""
    for name, value in (("start_time", start_time), ("end_time", end_time)):
        if isinstance(value, (int, float)) and not (math.isfinite(value) and 0.0 <= value <= er.MAX_TIME_SECONDS):
            return f"{name}: {value!r} is outside the allowed range [0, {er.MAX_TIME_SECONDS:g}] s"
    for name, value in (("start_time_relative_to", start_anchor), ("end_time_relative_to", end_anchor)):
        if value is not None and not isinstance(value, list) and value not in ANCHORS:
            return f"{name}: unknown value {value!r}; allowed: {', '.join(ANCHORS)}"
    numbers = all(isinstance(v, (int, float)) for v in (start_time, end_time))
    if numbers and start_anchor == end_anchor and start_anchor in ANCHORS:
        start, end = (start_time, end_time) if start_anchor == "start" else (-start_time, -end_time)
        if start >= end:
            return (f"start_time, end_time: the section starts at or after its end (start_time {start_time:g} s and "
                    f"end_time {end_time:g} s, both from the {start_anchor}); start_time must come before end_time")
    if numbers and start_anchor == "end" and end_anchor == "start" and end_time <= 0:
        return "end_time: 0 s from the start is the very beginning; the section would be empty"
    return True


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
                    "default": 0.0, "min": 0.0, "max": OUTPAINT_MAX_SECONDS, "step": 0.1,
                    "tooltip": f"Seconds of new audio before the original (an intro), 0-{OUTPAINT_MAX_SECONDS:g}. "
                               "0 = none.",
                }),
                "extend_after_duration": ("FLOAT", {
                    "default": 30.0, "min": 0.0, "max": OUTPAINT_MAX_SECONDS, "step": 0.1,
                    "tooltip": f"Seconds of new audio after the original (an outro), 0-{OUTPAINT_MAX_SECONDS:g}. "
                               "0 = none; not both 0.",
                }),
                **_seam_inputs("Latent frames of the original next to each join that are partly regenerated so the "
                               "new audio grows out of it (1 frame = 93 ms). 0 = the official hard edge."),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, extend_before_duration=None, extend_after_duration=None, **_):
        values = {"extend_before_duration": extend_before_duration, "extend_after_duration": extend_after_duration}
        for name, value in values.items():
            if isinstance(value, (int, float)) and not 0.0 <= value <= OUTPAINT_MAX_SECONDS:
                return f"{name}: {value:g} s is outside the allowed range [0, {OUTPAINT_MAX_SECONDS:g}] s"
        if all(isinstance(v, (int, float)) and v <= 0 for v in values.values()):
            return "extend_before_duration, extend_after_duration: both are 0, so there is nothing to add"
        return True

    def apply(self, source, extend_before_duration, extend_after_duration, feather_frames=ep.DEFAULT_FEATHER_FRAMES,
              crossfade_ms=ep.DEFAULT_CROSSFADE_MS, crossfade_curve="equal_power"):
        for name, value in (("extend_before_duration", extend_before_duration),
                            ("extend_after_duration", extend_after_duration)):
            if isinstance(value, (int, float)) and value > OUTPAINT_MAX_SECONDS + 1e-9:
                raise InputError(f"{name}: {value:g} s is outside the allowed range [0, {OUTPAINT_MAX_SECONDS:g}] s")
        return (_call(editor(source, "extend").outpaint_latent, source, extend_before_duration, extend_after_duration,
                      feather_frames=feather_frames, crossfade_ms=crossfade_ms, crossfade_curve=crossfade_curve),)


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
        return (editor(latent, "retake", "latent").retake_latent(latent, original_seed, variance),)


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
        editor(source, "flowedit")
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
