"""ACE-Step v1 lyric tokenizer: lines -> language -> cleaned/romanised text -> BPE ids.

Per line of the lyrics (split at "\\n", each line stripped), as the reference pipeline
(``ACEStepPipeline.tokenize_lyrics`` + ``VoiceBpeTokenizer``) does:

* an empty line gives ``[2]`` (``[SPACE]``, the line separator);
* otherwise the line's language is detected (``language.detect_line_language``) and mapped to
  the 17 languages of the model (anything else -> ``en``); a fixed language can replace it;
* a line that starts with a ``[...]`` tag is encoded as ``en`` whatever its language;
* the text is cleaned (``cleaners``) and romanised (zh pinyin, ko Latin, ja romaji), prefixed
  with the language token (``[zh-cn]`` for zh), spaces become ``[SPACE]``, and the BPE
  vocabulary encodes it; the line's ids are followed by ``2``;
* a line whose cleaning or encoding fails is dropped (no ids at all, not even the ``2``).

The sequence starts with ``261`` (``[START]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ...errors import CheckpointError, InputError
from .cleaners import CLEANED_LANGUAGES, basic_clean, multilingual_clean
from .language import detect_line_language
from .romanize import LyricsDependencyError, chinese_to_pinyin, japanese_to_romaji, korean_to_latin

__all__ = [
    "LANGUAGE_TOKEN_IDS",
    "SUPPORTED_LANGUAGES",
    "START_ID",
    "LINE_BREAK_ID",
    "LineInfo",
    "LyricTokenizer",
    "preprocess_line",
    "resolve_language",
    "romanize_lyrics",
    "is_structure_line",
]

# language -> id of its "[xx]" token in the vocabulary (zh is written "[zh-cn]")
LANGUAGE_TOKEN_IDS = {
    "en": 259, "de": 260, "fr": 262, "es": 284, "it": 285, "pt": 286, "pl": 294, "tr": 295,
    "ru": 267, "cs": 293, "nl": 297, "ar": 5022, "zh": 5023, "ja": 5412, "hu": 5753, "ko": 6152,
    "hi": 6680,
}
SUPPORTED_LANGUAGES = tuple(LANGUAGE_TOKEN_IDS)
START_ID = 261  # [START]
LINE_BREAK_ID = 2  # [SPACE], emitted after every line and for every empty line
EMPTY_LYRICS_IDS = (0,)  # what the pipeline feeds the model when there are no lyrics at all

_STRUCTURE_RE = re.compile(r"\[.*?\]")
_LANG_PREFIX_RE = re.compile(r"\[(?:" + "|".join(LANGUAGE_TOKEN_IDS) + r"|zh-cn)\]", re.IGNORECASE)


def is_structure_line(line: str) -> bool:
    """True when the (stripped) line starts with a ``[...]`` tag such as ``[verse]``."""
    return _STRUCTURE_RE.match(line) is not None


def _map_detected(lang: str) -> str:
    return lang if lang in LANGUAGE_TOKEN_IDS else "en"


def resolve_language(language: Optional[str]) -> Optional[str]:
    """``"auto"``/``None``/``""`` -> None (detect per line); else a supported code.

    Accepts any case and region suffixes (``"zh-CN"`` -> ``"zh"``); raises ``InputError`` for a
    language the model does not know.
    """
    if language is None:
        return None
    code = str(language).strip().lower().replace("_", "-")
    if code in ("", "auto"):
        return None
    base = code.split("-")[0]
    if base in LANGUAGE_TOKEN_IDS:
        return base
    raise InputError(
        f"lyrics language {language!r} is not supported by ACE-Step v1; use 'auto' or one of "
        f"{', '.join(SUPPORTED_LANGUAGES)}"
    )


def preprocess_line(text: str, lang: str) -> str:
    """Clean and romanise one line for ``lang`` (the reference ``preprocess_text``)."""
    if lang in CLEANED_LANGUAGES:
        text = multilingual_clean(text, lang)
        if lang == "zh":
            text = chinese_to_pinyin(text)
        elif lang == "ko":
            text = korean_to_latin(text)
        return text
    if lang == "ja":
        return japanese_to_romaji(text)
    if lang == "hi":
        return basic_clean(text)
    raise InputError(f"lyrics language {lang!r} is not one of {', '.join(SUPPORTED_LANGUAGES)}")


def language_token(lang: str) -> str:
    """The vocabulary token of a language: ``[xx]``, written ``[zh-cn]`` for zh."""
    return "[zh-cn]" if lang == "zh" else f"[{lang}]"


def bpe_text(cleaned: str, lang: str) -> str:
    """The string given to the BPE model: language token + text, spaces as ``[SPACE]``."""
    return f"{language_token(lang)}{cleaned}".replace(" ", "[SPACE]")


@dataclass
class LineInfo:
    """One lyric line as tokenised (for display and debugging).

    raw: the line as given (not stripped); detected_lang: the detected language mapped to the
    model's languages (None for empty lines and in fixed-language mode); encode_lang: the
    language used to encode it (``en`` for ``[tag]`` lines; None for empty lines); text: the
    cleaned/romanised text; ids: the line's token ids including the trailing 2 (``[2]`` for an
    empty line, ``[]`` for a dropped line). langid_lang: the raw detector label before mapping
    (e.g. ``sk``); bpe_input: the string given to the BPE model; error: why a line was dropped.
    """

    raw: str
    detected_lang: Optional[str]
    encode_lang: Optional[str]
    text: str
    ids: list = field(default_factory=list)
    langid_lang: Optional[str] = None
    bpe_input: str = ""
    structure: bool = False
    error: Optional[str] = None


def _analyse_line(raw: str, fixed: Optional[str]) -> LineInfo:
    """Language and cleaned text of one line (no BPE)."""
    line = raw.strip()
    if not line:
        return LineInfo(raw=raw, detected_lang=None, encode_lang=None, text="")
    langid_lang = detected = None
    if fixed is None:
        langid_lang = detect_line_language(line)
        detected = _map_detected(langid_lang)
    structure = is_structure_line(line)
    lang = "en" if structure else (fixed or detected)
    info = LineInfo(raw=raw, detected_lang=detected, encode_lang=lang, text="", langid_lang=langid_lang,
                    structure=structure)
    try:
        info.text = preprocess_line(line, lang)
        info.bpe_input = bpe_text(info.text, lang)
    except LyricsDependencyError:
        raise
    except Exception as exc:  # the reference drops a line that fails to clean
        info.error = f"{type(exc).__name__}: {exc}"
    return info


def _lines(lyrics: str) -> list:
    if lyrics is None:
        return [""]
    if not isinstance(lyrics, str):
        raise InputError(f"lyrics must be a string, got {type(lyrics).__name__}")
    return lyrics.split("\n")


class LyricTokenizer:
    """ACE-Step v1 lyric tokenizer over the BPE vocabulary ``vocab_path``.

    ``vocab_path``: the HF ``tokenizers`` JSON (``vocab.json`` of ACE-Step or ComfyUI's
    ``comfy/text_encoders/ace_lyrics_tokenizer/vocab.json``); None -> ``default_vocab_path()``.
    """

    def __init__(self, vocab_path=None):
        if vocab_path is None:
            from .vocab import default_vocab_path

            vocab_path = default_vocab_path()
            if vocab_path is None:
                raise CheckpointError(
                    "no ACE-Step v1 lyrics vocabulary found: pass vocab_path, set "
                    "ACEFORGE_LYRICS_VOCAB, or install ComfyUI (comfy/text_encoders/"
                    "ace_lyrics_tokenizer/vocab.json)"
                )
        path = Path(vocab_path)
        if not path.is_file():
            raise CheckpointError(f"lyrics vocabulary file not found: {path}")
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise LyricsDependencyError(
                f"the lyric tokenizer needs the Python package tokenizers (pip install tokenizers): {exc}"
            ) from exc
        try:
            self._bpe = Tokenizer.from_file(str(path))
        except Exception as exc:
            raise CheckpointError(f"lyrics vocabulary {path} is not a tokenizers JSON file: {exc}") from exc
        self.vocab_path = path
        vocab = self._bpe.get_vocab()
        for lang, expected in LANGUAGE_TOKEN_IDS.items():
            token = language_token(lang)
            if vocab.get(token) != expected:
                raise CheckpointError(
                    f"lyrics vocabulary {path} is not the ACE-Step v1 one: token {token} has id "
                    f"{vocab.get(token)}, expected {expected}"
                )

    @property
    def vocab_size(self) -> int:
        return self._bpe.get_vocab_size()

    def encode_lines(self, lyrics: str, language: str = "auto") -> list:
        """Per-line ``LineInfo`` (the ids of all lines, after ``[START]``, give ``encode``)."""
        fixed = resolve_language(language)
        infos = []
        for raw in _lines(lyrics):
            info = _analyse_line(raw, fixed)
            if info.encode_lang is None:
                info.ids = [LINE_BREAK_ID]
            elif info.error is None:
                info.ids = list(self._bpe.encode(info.bpe_input).ids) + [LINE_BREAK_ID]
            infos.append(info)
        return infos

    def encode(self, lyrics: str, language: str = "auto") -> list:
        """Token ids as the reference ``tokenize_lyrics``: ``[261, ...line ids...]``.

        ``language="auto"`` detects each line's language; a code (``"zh"``, ``"ja"``...) is
        used for every line that is not a ``[tag]`` line. ``""`` gives ``[261, 2]`` like the
        reference function; see ``encode_for_model`` for what the pipeline feeds the model.
        """
        ids = [START_ID]
        for info in self.encode_lines(lyrics, language):
            ids.extend(info.ids)
        return ids

    def encode_for_model(self, lyrics: str, language: str = "auto") -> tuple:
        """(ids, mask) as the reference pipeline builds them: no lyrics (``""``) -> ``([0], [0])``."""
        if not lyrics:
            return list(EMPTY_LYRICS_IDS), [0]
        ids = self.encode(lyrics, language)
        return ids, [1] * len(ids)

    def encode_prepared(self, text: str, lang: str) -> list:
        """BPE ids of one already cleaned/romanised line in ``lang`` (no detection, no cleaning,
        no trailing 2): ``[lang-token, ...]``."""
        code = resolve_language(lang)
        if code is None:
            raise InputError("encode_prepared needs a fixed language, not 'auto'")
        return list(self._bpe.encode(bpe_text(text, code)).ids)

    def decode(self, ids) -> str:
        """Readable text of ids (``[SPACE]`` -> space)."""
        text = self._bpe.decode(list(ids), skip_special_tokens=False).replace(" ", "")
        return text.replace("[SPACE]", " ").replace("[STOP]", "")


def romanize_lyrics(lyrics: str, language: str = "auto") -> tuple:
    """Cleaned and romanised lyrics, one output line per input line, plus per-line languages.

    Each lyric line becomes ``[xx]<cleaned text>`` (``[zh]wo3ai4ni3``), which ComfyUI's own
    ACE-Step lyric tokenizer (TextEncodeAceStepAudio) reads as language ``xx``; ``[tag]`` lines
    are kept as they are (stripped), empty lines stay empty, and a line that fails to clean
    (the reference drops it) is left out of the text. The second value lists, per input line,
    the language used for it (``en`` for ``[tag]`` lines, ``""`` for empty or dropped lines).
    Needs no vocabulary file.
    """
    fixed = resolve_language(language)
    out, langs = [], []
    for raw in _lines(lyrics):
        info = _analyse_line(raw, fixed)
        if info.encode_lang is None:
            out.append("")
            langs.append("")
        elif info.error is not None:
            langs.append("")
        elif info.structure:
            line = raw.strip()
            # a tag line that itself starts like a language prefix ("[zh]...") is encoded as en
            # by the reference; say so explicitly, or ComfyUI would take the tag as the language
            out.append(f"[en]{line}" if _LANG_PREFIX_RE.match(line) else line)
            langs.append("en")
        else:
            out.append(f"[{info.encode_lang}]{info.text}")
            langs.append(info.encode_lang)
    return "\n".join(out), langs
