"""Text encoder node: tags + lyrics -> ACE-Step v1 conditioning."""

from __future__ import annotations

from ..ace_core.v1 import pipeline
from . import comfy_compat
from .conditioning import encode_for

CATEGORY = "audio/ACE-Step"


class TextEncodeAceStepAudio:
    DESCRIPTION = (
        "Encodes the style tags with the UMT5 text encoder and the lyrics with the v1 lyric tokenizer "
        "(Chinese, Japanese and Korean romanised, numbers spelled out, language detected per line as the "
        "official ACE-Step pipeline does). Outputs a CONDITIONING for the ACE-Step KSampler."
    )
    CATEGORY = CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = ("CONDITIONING",)
    OUTPUT_TOOLTIPS = ("Tags and lyrics conditioning for the ACE-Step KSampler (positive or negative).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("ACE_MODEL", {"tooltip": "The model bundle from the ACE-Step Checkpoint Loader."}),
                "tags": ("STRING", {
                    "multiline": True, "dynamicPrompts": True,
                    "default": "pop, piano, guitar, female vocals, upbeat, 120 bpm",
                    "tooltip": "Comma-separated style tags: genre, mood, instruments, voice, tempo.",
                }),
                "lyrics": ("STRING", {
                    "multiline": True, "dynamicPrompts": True, "default": "[verse]\n\n[chorus]\n",
                    "tooltip": "Lyrics, one line per sung line, with structure tags such as [verse], "
                               "[chorus], [bridge]. Use [inst] for an instrumental.",
                }),
                "lyrics_strength": ("FLOAT", {
                    "default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01,
                    "tooltip": "Multiplies the lyric encoder's output: below 1 the lyrics steer less, above 1 more.",
                }),
                "language": (list(pipeline.LANGUAGES), {
                    "default": "auto",
                    "tooltip": "Lyric language. auto detects it for every line (as the official pipeline); "
                               "a fixed language treats every line as that language.",
                }),
            }
        }

    def encode(self, model, tags, lyrics, lyrics_strength=1.0, language="auto"):
        model.prepare("text_encoder")
        cond = model.adapter.encode_text(model.bundle, tags, lyrics, lyrics_strength=lyrics_strength, language=language,
                                         vocab_dirs=comfy_compat.folder_paths_for(comfy_compat.PACK_FOLDER))
        return (encode_for(model, cond),)


NODE_CLASS_MAPPINGS = {"AceForge_TextEncodeAceStepAudio": TextEncodeAceStepAudio}
NODE_DISPLAY_NAME_MAPPINGS = {"AceForge_TextEncodeAceStepAudio": "Text Encode ACE-Step Audio (AceForge)"}
