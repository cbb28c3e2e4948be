"""ACE-Step v1 lyric tokenizer (our own implementation of the reference behaviour).

Public API:

* ``LyricTokenizer(vocab_path)``: ``encode(lyrics, language="auto") -> list[int]`` (the ids the
  reference ``tokenize_lyrics`` gives, starting with 261), ``encode_lines(...) -> list[LineInfo]``
  for display, ``encode_for_model(...) -> (ids, mask)`` (``([0], [0])`` for no lyrics).
* ``romanize_lyrics(lyrics, language="auto") -> (text, languages)``: ``[xx]``-prefixed cleaned and
  romanised lines, usable as input to ComfyUI's own ACE-Step lyric encoder; needs no vocabulary.
* ``default_vocab_path() -> Path | None``.
* ``SUPPORTED_LANGUAGES``: the 17 language codes of the model.

Modules: ``language`` (per-line detection), ``cleaners`` (quotes, case, abbreviations, symbols,
whitespace), ``numbers`` (num2words per language, Chinese numerals), ``romanize`` (pinyin,
Hangul, romaji), ``tokenizer`` (the line loop and BPE), ``vocab`` (finding the vocabulary).
Optional libraries are imported only when a line needs them.
"""

from .language import detect_line_language, language_counts
from .romanize import LyricsDependencyError
from .tokenizer import (
    LANGUAGE_TOKEN_IDS,
    LINE_BREAK_ID,
    START_ID,
    SUPPORTED_LANGUAGES,
    LineInfo,
    LyricTokenizer,
    is_structure_line,
    preprocess_line,
    romanize_lyrics,
)
from .vocab import VOCAB_ENV_VAR, default_vocab_path

__all__ = [
    "LANGUAGE_TOKEN_IDS",
    "LINE_BREAK_ID",
    "START_ID",
    "SUPPORTED_LANGUAGES",
    "VOCAB_ENV_VAR",
    "LineInfo",
    "LyricTokenizer",
    "LyricsDependencyError",
    "default_vocab_path",
    "detect_line_language",
    "is_structure_line",
    "language_counts",
    "preprocess_line",
    "romanize_lyrics",
]
