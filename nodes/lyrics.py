"""Lyric romanizer node: shows (and passes on) what the v1 lyric tokenizer will actually sing."""

from __future__ import annotations

from ..ace_core.v1 import pipeline

CATEGORY = "audio/ACE-Step"


class LyricRomanizer:
    DESCRIPTION = (
        "Pinyin/romanization lyric encoder. ACE-Step v1's lyric vocabulary is mostly Latin, Cyrillic, "
        "Arabic and Devanagari, so Chinese is turned into pinyin, Japanese into romaji and Korean into "
        "romanised Hangul before tokenizing. This node shows that text and the language detected for "
        "every line, so you can see what the model will sing. Its output can feed the lyrics of Text "
        "Encode ACE-Step Audio (each line keeps a [lang] tag) or another text node."
    )
    CATEGORY = CATEGORY
    FUNCTION = "romanize"
    # ComfyUI re-sends a cached run's report (``ui``) for such nodes, so the languages stay shown
    # when only later nodes (e.g. the seed) change.
    HAS_INTERMEDIATE_OUTPUT = True
    RETURN_TYPES = ("STRING", "STRING")
    RETURN_NAMES = ("lyrics", "languages")
    OUTPUT_TOOLTIPS = (
        "The romanised lyrics, one [lang]-tagged line per input line (chainable into a text encoder).",
        "The language detected for every line, as 'line: lang | text'.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "lyrics": ("STRING", {
                    "multiline": True, "default": "[verse]\n",
                    "tooltip": "Lyrics in any of the v1 languages; CJK lines are romanised.",
                }),
                "language": (list(pipeline.LANGUAGES), {
                    "default": "auto",
                    "tooltip": "auto detects the language of every line; a fixed language treats all lines as it.",
                }),
            }
        }

    def romanize(self, lyrics, language="auto"):
        text, report = pipeline.romanize(lyrics, language)
        return {"ui": {"text": [report]}, "result": (text, report)}


NODE_CLASS_MAPPINGS = {"AceForge_LyricRomanizer": LyricRomanizer}
NODE_DISPLAY_NAME_MAPPINGS = {"AceForge_LyricRomanizer": "Lyric Romanizer (Pinyin/romanization, AceForge)"}
