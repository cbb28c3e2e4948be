"""Text encoder node: tags/caption + lyrics (+ the 1.5 metadata) -> the loaded family's conditioning."""

from __future__ import annotations

import logging

from ..ace_core.v1 import pipeline
from ..ace_core.v15 import prompts as p15
from . import comfy_compat
from .conditioning import encode_for

log = logging.getLogger("AceForge")

CATEGORY = "audio/ACE-Step"
NA = "N/A"
KEYSCALES = [NA] + [f"{note}{acc} {mode}" for note in "CDEFGAB" for acc in ("", "#", "b") for mode in ("major", "minor")]
TIME_SIGNATURES = [NA, "2", "3", "4", "6"]
V15_LANGUAGES = list(p15.VALID_LANGUAGES)
V1_OPTIONS = ("lyrics_strength", "language", "vocab_dirs")
"""What the v1 text encoder takes; a family whose adapter lists ``TEXT_OPTIONS`` takes those."""


def metadata_options(bpm=0, keyscale=NA, timesignature=NA, vocal_language="unknown", duration=0.0) -> dict:
    """The 1.5 metadata widgets as the 1.5 adapter's options (0 / N/A = not given)."""
    return {"bpm": int(bpm) or None, "keyscale": None if keyscale == NA else keyscale,
            "timesignature": None if timesignature == NA else timesignature, "language": vocal_language,
            "duration": float(duration) or None}


V1_INPUTS = ("lyrics_strength", "language")


def _takes(adapter) -> set:
    return set(getattr(adapter, "text_options", V1_OPTIONS))


class TextEncodeAceStepAudio:
    DESCRIPTION = (
        "Encodes the style tags (the 1.5 'caption') and the lyrics for the loaded model. ACE-Step v1: UMT5 for "
        "the tags and the v1 lyric tokenizer (Chinese, Japanese and Korean romanised, numbers spelled out, the "
        "language detected per line). ACE-Step 1.5: the Qwen3 text encoder reads every script natively (no "
        "romanizer needed) plus the 1.5 metadata: bpm, key/scale, time signature, vocal language and duration, "
        "each optional ('N/A' / 0 = let the model decide, as the official API). Inputs of the other family have "
        "no effect; a note says so when one is set. Outputs a CONDITIONING for the ACE-Step KSampler."
    )
    CATEGORY = CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = ("CONDITIONING",)
    OUTPUT_TOOLTIPS = ("Tags and lyrics conditioning for the ACE-Step KSampler (positive or negative).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("ACE_MODEL", {"tooltip": "The model bundle from an ACE-Step loader (either family)."}),
                "tags": ("STRING", {
                    "multiline": True, "dynamicPrompts": True,
                    "default": "pop, piano, guitar, female vocals, upbeat, 120 bpm",
                    "tooltip": "Both families. Comma-separated style tags (1.5: the caption, free text works too): "
                               "genre, mood, instruments, voice, tempo.",
                }),
                "lyrics": ("STRING", {
                    "multiline": True, "dynamicPrompts": True, "default": "[verse]\n\n[chorus]\n",
                    "tooltip": "Both families. Lyrics, one line per sung line, with structure tags such as [verse], "
                               "[chorus], [bridge]. v1: [inst] for an instrumental; 1.5: [Instrumental].",
                }),
                "lyrics_strength": ("FLOAT", {
                    "default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01,
                    "tooltip": "ACE-Step v1 only. Multiplies the lyric encoder's output: below 1 the lyrics steer "
                               "less, above 1 more.",
                }),
                "language": (list(pipeline.LANGUAGES), {
                    "default": "auto",
                    "tooltip": "ACE-Step v1 only. Lyric language for the v1 romanizer: auto detects it for every "
                               "line (as the official pipeline); a fixed language treats every line as it.",
                }),
                "bpm": ("INT", {
                    "default": 0, "min": 0, "max": p15.BPM_RANGE[1],
                    "tooltip": f"ACE-Step 1.5 only. Beats per minute, {p15.BPM_RANGE[0]}-{p15.BPM_RANGE[1]}; "
                               "0 = N/A (the model decides).",
                }),
                "keyscale": (KEYSCALES, {
                    "default": NA,
                    "tooltip": "ACE-Step 1.5 only. Key and scale, e.g. 'C major', 'F# minor'; N/A = the model decides.",
                }),
                "timesignature": (TIME_SIGNATURES, {
                    "default": NA,
                    "tooltip": "ACE-Step 1.5 only. Beats per bar: 2 = 2/4, 3 = 3/4, 4 = 4/4, 6 = 6/8; N/A = the "
                               "model decides.",
                }),
                "vocal_language": (V15_LANGUAGES, {
                    "default": "unknown",
                    "tooltip": "ACE-Step 1.5 only. The language of the lyrics (50 languages; 'unknown' for "
                               "instrumentals or mixed lyrics).",
                }),
                "duration": ("FLOAT", {
                    "default": 0.0, "min": 0.0, "max": float(p15.DURATION_RANGE[1]), "step": 0.1,
                    "tooltip": f"ACE-Step 1.5 only. The song length the caption announces, "
                               f"{p15.DURATION_RANGE[0]}-{p15.DURATION_RANGE[1]} s (set it to the latent's length); "
                               "0 = N/A. The latent sets the real length.",
                }),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, bpm=None, duration=None, **_):
        """What can be known before running: 1.5 metadata ranges (0 = not given)."""
        if isinstance(bpm, int) and bpm != 0 and not p15.BPM_RANGE[0] <= bpm <= p15.BPM_RANGE[1]:
            return f"bpm: {bpm} is out of range; allowed: 0 (N/A) or {p15.BPM_RANGE[0]}-{p15.BPM_RANGE[1]}"
        if isinstance(duration, (int, float)) and duration != 0 and not (
                p15.DURATION_RANGE[0] <= duration <= p15.DURATION_RANGE[1]):
            return (f"duration: {duration:g} s is out of range; allowed: 0 (N/A) or "
                    f"{p15.DURATION_RANGE[0]}-{p15.DURATION_RANGE[1]} s")
        return True

    def encode(self, model, tags, lyrics, lyrics_strength=1.0, language="auto", bpm=0, keyscale=NA,
               timesignature=NA, vocal_language="unknown", duration=0.0):
        takes = _takes(model.adapter)
        reads_metadata = "keyscale" in takes  # ACE-Step 1.5
        meta = metadata_options(bpm, keyscale, timesignature, vocal_language, duration)
        values = {"lyrics_strength": lyrics_strength, "vocab_dirs": comfy_compat.folder_paths_for(comfy_compat.PACK_FOLDER),
                  **meta, "language": meta["language"] if reads_metadata else language}
        options = {k: v for k, v in values.items() if k in takes}
        changed = {"lyrics_strength": lyrics_strength != 1.0, "language": language != "auto", "bpm": bpm != 0,
                   "keyscale": keyscale != NA, "timesignature": timesignature != NA,
                   "vocal_language": vocal_language != "unknown", "duration": duration != 0}
        notes = [f"{name} has no effect on {model.adapter.title}" for name, set_ in changed.items()
                 if set_ and (name in V1_INPUTS) == reads_metadata]
        model.adapter.check_text(tags, lyrics, **{k: v for k, v in options.items() if k != "vocab_dirs"})
        model.prepare("text_encoder")
        cond = model.adapter.encode_text(model.bundle, tags, lyrics, progress=comfy_compat.progress_hook("text encoding"),
                                         **options)
        for note in notes:
            log.warning("AceForge: text encode: %s", note)
        result = (encode_for(model, cond),)
        return {"ui": {"text": notes}, "result": result} if notes else result


NODE_CLASS_MAPPINGS = {"AceForge_TextEncodeAceStepAudio": TextEncodeAceStepAudio}
NODE_DISPLAY_NAME_MAPPINGS = {"AceForge_TextEncodeAceStepAudio": "Text Encode ACE-Step Audio (AceForge)"}
