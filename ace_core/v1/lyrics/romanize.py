"""Romanisation back-ends of the ACE-Step v1 lyric tokenizer (optional libraries).

* zh: pypinyin, style TONE3 with neutral tone written as 5 (``我爱你`` -> ``wo3ai4ni3``);
  characters without a reading are kept as they are.
* ko: hangul-romanize, "academic" rule (``사랑해`` -> ``salanghae``).
* ja: cutlet (MeCab via fugashi + unidic-lite) Hepburn romaji, lower-cased.

Each library is imported on first use; a missing one raises ``LyricsDependencyError`` naming
the package and the language. The cutlet and hangul converters are built once per process.
"""

from __future__ import annotations

import threading

from ...errors import AceStepError

__all__ = ["LyricsDependencyError", "chinese_to_pinyin", "korean_to_latin", "japanese_to_romaji"]


class LyricsDependencyError(AceStepError, ImportError):
    """An optional library needed to romanise a language is not installed."""


_LOCK = threading.Lock()
_CACHE: dict = {}


def _missing(package: str, language: str, exc: Exception) -> LyricsDependencyError:
    module = getattr(exc, "name", None)
    detail = f"missing module '{module}'" if module else str(exc)
    return LyricsDependencyError(
        f"lyrics in language '{language}' need the Python package(s) {package} "
        f"(pip install {package}); {detail}"
    )


def chinese_to_pinyin(text: str) -> str:
    """Tone-numbered pinyin of every Han character, concatenated without separators."""
    try:
        from pypinyin import Style, lazy_pinyin
    except ImportError as exc:
        raise _missing("pypinyin", "zh", exc) from exc
    return "".join(lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True))


def _hangul_converter():
    with _LOCK:
        if "ko" not in _CACHE:
            try:
                from hangul_romanize import Transliter
                from hangul_romanize.rule import academic
            except ImportError as exc:
                raise _missing("hangul-romanize", "ko", exc) from exc
            _CACHE["ko"] = Transliter(academic)
        return _CACHE["ko"]


def korean_to_latin(text: str) -> str:
    return _hangul_converter().translit(text)


def _cutlet():
    with _LOCK:
        if "ja" not in _CACHE:
            try:
                import cutlet
            except ImportError as exc:
                raise _missing("cutlet", "ja", exc) from exc
            try:
                _CACHE["ja"] = cutlet.Cutlet()
            except Exception as exc:  # fugashi / dictionary missing or broken
                raise _missing("fugashi unidic-lite", "ja", exc) from exc
        return _CACHE["ja"]


def japanese_to_romaji(text: str) -> str:
    return _cutlet().romaji(text).lower()
