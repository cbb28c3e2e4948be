"""Per-line language detection of the ACE-Step v1 pipeline.

The reference pipeline picks each lyric line's language with LangSegment 0.3.5 (all 97 langid.py
languages allowed, with its "preview" handling of Latin-script words) and then
``get_lang``: take the language with the most characters, unless it is ``en`` and another one
was seen, in which case take the runner-up. This module re-implements that decision on top of
the py3langid classifier, reproducing LangSegment's character counts exactly:

1. Script runs are cut out of the line and replaced by placeholders, in this order:
   ``<tag>…</tag>`` markup, Hangul (-> ko), Thai (-> th), Cyrillic (-> ru), number groups,
   Latin-script words (classified with langid per sentence), '…'/"…" quotes and bracketed
   quotes.
2. The remaining text is split at punctuation; short pieces are glued to the next one; each
   piece is classified with langid, with extra rules for short Han pieces (zh vs ja).
3. Consecutive pieces of one language merge; a piece made only of digits/punctuation takes
   the previous language; Han characters count double.

The counts depend on the langid.py model shipped with py3langid < 0.4 (97 languages). py3langid
0.4 ships a different, retrained model (142 classes, other scores) that changes the result of
30 of the 56 reference cases (Chinese lines become Japanese): it is refused with
``LyricsDependencyError`` (a fixed language still works without py3langid).

Detection of one line depends on that line only (LangSegment's one-entry cache returns the same
result for a repeated line), so results are memoised per line.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import Counter
from typing import Callable

from .numbers import zh_numeral_symbols
from .romanize import LyricsDependencyError

__all__ = ["detect_line_language", "language_counts", "LANGID_LANGUAGES"]

# the labels of the langid.py model, in model order; LangSegment's filter list equals it
LANGID_LANGUAGES = (
    "af", "am", "an", "ar", "as", "az", "be", "bg", "bn", "br", "bs", "ca", "cs", "cy", "da",
    "de", "dz", "el", "en", "eo", "es", "et", "eu", "fa", "fi", "fo", "fr", "ga", "gl", "gu",
    "he", "hi", "hr", "ht", "hu", "hy", "id", "is", "it", "ja", "jv", "ka", "kk", "km", "kn",
    "ko", "ku", "ky", "la", "lb", "lo", "lt", "lv", "mg", "mk", "ml", "mn", "mr", "ms", "mt",
    "nb", "ne", "nl", "nn", "no", "oc", "or", "pa", "pl", "ps", "pt", "qu", "ro", "ru", "rw",
    "se", "si", "sk", "sl", "sq", "sr", "sv", "sw", "ta", "te", "th", "tl", "tr", "ug", "uk",
    "ur", "vi", "vo", "wa", "xh", "zh", "zu",
)
# LangSegment tests membership both in the list and (in places) in its "-"-joined string
_ALLOWED = frozenset(LANGID_LANGUAGES)
_ALLOWED_TEXT = "-".join(LANGID_LANGUAGES)
_FIRST_ALLOWED = LANGID_LANGUAGES[0]

# ---------------------------------------------------------------------------------------------
# langid
# ---------------------------------------------------------------------------------------------
_LOCK = threading.Lock()
_IDENTIFIER = None


def _identifier():
    global _IDENTIFIER
    if _IDENTIFIER is not None:
        return _IDENTIFIER
    with _LOCK:
        if _IDENTIFIER is None:
            try:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier
            except ImportError as exc:
                raise LyricsDependencyError(
                    "automatic lyric language detection needs the Python package py3langid<0.4 "
                    "(pip install 'py3langid>=0.2.2,<0.4'), or pass a fixed language; "
                    f"import failed: {exc}"
                ) from exc
            if not hasattr(LanguageIdentifier, "from_pickled_model"):
                # py3langid >= 0.4 ships a retrained model: Chinese lines come out as Japanese,
                # English ones as Albanian... (30 of the 56 reference cases change)
                raise LyricsDependencyError(
                    "automatic lyric language detection needs the langid.py model of "
                    "py3langid<0.4 (pip install 'py3langid>=0.2.2,<0.4'); the installed "
                    "py3langid ships a different model. Or pass a fixed lyrics language."
                )
            _IDENTIFIER = LanguageIdentifier.from_pickled_model(MODEL_FILE, norm_probs=True)
        return _IDENTIFIER


def _langid(text: str) -> tuple[str, float]:
    lang, score = _identifier().classify(text)
    return lang, float(score)


def _langid_rounded(text: str) -> tuple[str, float]:
    lang, score = _langid(text)
    return lang, round(score, 3)


# ---------------------------------------------------------------------------------------------
# patterns
# ---------------------------------------------------------------------------------------------
_KEY_RE = re.compile(r"(⑥\$*\d+[\d]{6,}⑥)")  # placeholder of a cut-out run
_NUMBER_KEY_RE = re.compile(r"(⑥\d{6,}⑥)")
_PUNCT_RE = re.compile(r"([^\w\s]+)")
_NON_WORD_RE = re.compile(r"[^\w]+")
_REPEAT_RE = re.compile(r"(.)\1+")
_SENTENCE_RE = re.compile(r"(.*?[。.?？!！]+[\n]{,1})")
_KANA_RE = re.compile(r"[\u3040-\u309F\u30A0-\u30FF]")
_CAPITAL_RE = re.compile(r"(?<=\w)([A-Z])")


def _script_run(chars: str) -> re.Pattern:
    """A run of words of one script, with opening quotes before and non-word chars after."""
    return re.compile("((" + "[【《（(“‘\"']*" + "[" + chars + r"]+[\W\s]*)+)")


_LATIN = (
    "a-zA-Z"
    "àáâãäåæçèéêëìíîïðñòóôõöùúûüýþÿ"  # French (and other western) letters
    "đơưăảạắằẳẵặấầẩẫậẻẽẹếềểễệỉĩịỏọốồổỗộớờởỡợủũụứừửữựỷỹ"  # Vietnamese letters
)
# (placeholder tag, pattern, handler kind), applied in this order
_RUNS = (
    ("$1", re.compile(r"(<([a-zA-Z|-]*)>(.*?)<\/*[a-zA-Z|-]*>)"), "markup"),
    ("$6", _script_run("\uac00-\ud7a3"), "ko"),
    ("$8", _script_run("\u0e00-\u0e7f"), "th"),
    ("$7", _script_run("А-Яа-яЁё"), "ru"),
    ("00", re.compile(r"(\W*\d+\W+\d*\W*\d*)"), "number"),
    ("$5", _script_run(_LATIN), "latin"),
    ("$3", re.compile(r'(["\'])(.*?)(\1)'), "quote"),
    ("$4", re.compile(r"([\n]*[【《（(“‘])([^【《（(“‘’”)）》】]{3,})([’”)）》】][\W\s]*[\n]{,1})"), "quote"),
)

_PRIORITY_THRESHOLD = 0.89  # below it, a short Han piece follows the filter order (ja before zh)


def _squeeze(text: str) -> str:
    """Non-word runs -> one space, repeated characters -> one, stripped (text fed to langid)."""
    return _REPEAT_RE.sub(r"\1", _NON_WORD_RE.sub(" ", text)).strip()


def _is_punctuation(text: str) -> bool:
    return not _PUNCT_RE.sub("", re.sub(r"\n+", "", text)).strip()


def _numeric_view(text: str) -> tuple[str, bool]:
    """(text without punctuation, whether it is only digits or empty)."""
    if text == "\n":
        return text, False
    clear = _PUNCT_RE.sub("", re.sub(r"\n+", "", text)).strip()
    return clear, not re.sub(r"(\d+)", "", clear)


def _has_han(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def _spread_capitals(text: str) -> str:
    """English pieces: a space before each capital inside a word, one space at the end."""
    return _CAPITAL_RE.sub(r" \1", text).strip("-") + " "


# --- <number>/<telephone>/<currency>/<date> markup (SSML-like tags, read as Chinese) ---------
_DIGIT_CHARS = dict(zip("0123456789", "零一二三四五六七八九"))
_SMALL_UNITS = ((1, "十"), (2, "百"), (3, "千"), (4, "万"), (8, "亿"))


def _digits_each(text: str) -> str:
    parts = re.split(r"(\d+)", text)
    out = "".join("".join(_DIGIT_CHARS.get(d, "") for d in p) if re.match(r"\d+", p) else p for p in parts)
    return out.replace(".", "点")


def _cardinal_simple(digits: str) -> str:
    digits = digits.lstrip("0")
    if not digits:
        return "零"
    units = dict(_SMALL_UNITS)
    chars = [_DIGIT_CHARS[str(v)] if k == "d" else units[v] for k, v in zh_numeral_symbols(digits, _SMALL_UNITS)]
    if len(chars) >= 2 and chars[0] == "一" and chars[1] == "十":
        chars = chars[1:]
    return "".join(chars)


def _amounts(text: str) -> str:
    parts = re.split(r"(\d+)", text)
    return "".join(_cardinal_simple(p) if re.match(r"\d+", p) else p for p in parts).replace(".", "点")


def _date(text: str) -> str:
    if text is None or not text.strip():
        return ""
    text = re.sub(r"日", "", re.sub(r"[/._|年月]", "-", text))
    fields = text.split(" ")
    if len(fields) == 1 and ":" in fields[0]:
        time_text, fields = fields[0], []
    else:
        time_text = fields[1] if len(fields) >= 2 else ""

    def part(value, suffix, convert):
        value = convert(value)
        return f"{value}{suffix}" if value not in (None, "", "0") else ""

    ymd = ""
    if fields:
        year = month = day = ""
        pieces = fields[0].split("-")
        if len(pieces) == 3:
            year, month, day = pieces
        elif len(pieces) == 2:
            if len(pieces[0]) == 4:
                year, month = pieces
            else:
                month, day = pieces
        elif len(pieces[0]) > 0:
            if len(pieces[0]) == 4:
                year = pieces[0]
            else:
                day = pieces[0]
        ymd = part(year, "年", _digits_each) + part(month, "月", _amounts) + part(day, "日", _amounts)
        ymd = re.sub(r"([年月日|])+", r"\1", ymd)
    clock = re.sub(r"[/.\-：_]", ":", time_text).split(":")
    hours = minutes = seconds = ""
    if len(clock) == 3:
        hours, minutes, seconds = clock
    elif len(clock) == 2:
        hours, minutes = clock
    elif len(clock[0]) > 0:
        hours = f"{clock[0]}点"
    if len(clock) > 1:
        hours, minutes, seconds = part(hours, "点", _amounts), part(minutes, "分", _amounts), part(seconds, "秒", _amounts)
    return ymd + re.sub(r"([点分秒|])+", r"\1", hours + minutes + seconds)


_MARKUP_READERS: dict[str, Callable[[str], str]] = {
    "telephone": lambda t: _digits_each(t.replace("+86", "")).replace("一", "幺"),
    "number": _digits_each,
    "currency": _amounts,
    "date": _date,
}


# ---------------------------------------------------------------------------------------------
# one detection run
# ---------------------------------------------------------------------------------------------
class _Run:
    """Character counts per language for one text (one LangSegment.getTexts call)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.pending: list[dict] = []  # pieces whose language is still "zh|ja|…"
        self.hidden: dict[str, tuple] = {}  # placeholder -> (kind, regex match)
        self.at_end = False  # the piece being parsed is the last one of the line

    # -- driver ----------------------------------------------------------------------------
    def run(self, text: str) -> dict[str, int]:
        text = _KEY_RE.sub("", text)
        for line in re.findall(r".*\n*", text):
            if not line.strip():
                continue
            self.at_end = False
            self.hidden = {}
            for tag, pattern, kind in _RUNS:
                line = self._hide(tag, pattern, kind, line)
            self._walk([], line, root=True)
        return self.counts

    def _hide(self, tag: str, pattern: re.Pattern, kind: str, line: str) -> str:
        found = pattern.findall(line)
        if len(found) == 1 and "".join(found[0]) == line:
            return line  # the whole line is one run: leave it to the generic parser
        for index, match in enumerate(found):
            key = f"⑥{tag}{index:06d}⑥"
            line = pattern.sub(key, line, count=1)
            self.hidden[key] = (kind, match)
        return line

    def _walk(self, words: list, text: str, root: bool) -> list:
        segments = _KEY_RE.split(text)
        for index, segment in enumerate(segments):
            if root:
                self.at_end = index >= len(segments) - 1
            if _KEY_RE.match(segment):
                kind, match = self.hidden[segment]
                self._run_handler(words, kind, match)
            else:
                self._pieces(words, segment)
        return words

    # -- cut-out runs ----------------------------------------------------------------------
    def _run_handler(self, words: list, kind: str, match) -> None:
        if kind in ("ko", "th", "ru"):
            self._add(words, kind, match[0], 1.0)
        elif kind == "number":
            self._add(words, words[0]["lang"] if words else "zh", match, 0.0)
        elif kind == "latin":
            self._latin(words, match[0])
        elif kind == "quote":
            self._quote(words, match)
        else:
            self._markup(words, match)

    def _latin(self, words: list, text: str) -> None:
        for sentence in _SENTENCE_RE.split(text):
            if not sentence.strip():
                continue
            squeezed = _squeeze(sentence)
            lang, score = _langid_rounded(squeezed)
            if lang not in _ALLOWED_TEXT:
                lang, score = self._majority(squeezed)
            if lang is None or score <= 0.0:
                continue
            if lang not in _ALLOWED_TEXT:
                if score >= 0.95:
                    continue
                lang = _ALLOWED_TEXT[:2] if score <= 0.15 and _ALLOWED_TEXT[:2] == "fr" else "en"
            self._add(words, lang, sentence, score)

    @staticmethod
    def _majority(text: str) -> tuple[str | None, float]:
        """Most frequent langid label over the words longer than 3 characters."""
        if text is None or not text.strip():
            return None, 0.0
        tokens = re.sub(r"(?<!^)(?=[A-Z])", " ", text).split(" ")
        labels = [_langid(t)[0] for t in tokens if len(t.strip()) > 3]
        if not labels:
            return None, 0.0
        return Counter(labels).most_common(1)[0][0], 1.0

    def _quote(self, words: list, match: tuple) -> None:
        text = "".join(match)
        if _KEY_RE.findall(text):
            self._walk(words, text, root=False)
            return
        inner = _squeeze(match[1])
        if len(inner) <= 5:
            self._pieces(words, text)
        else:
            lang, score = _langid_rounded(inner)
            self._add(words, lang, text, score)

    def _markup(self, words: list, match: tuple) -> None:
        _, name, text = match
        if name in _ALLOWED_TEXT:  # <en>…</en> style language tag
            self._add(words, name, text, 1.0, True)
            return
        lang = name
        reader = _MARKUP_READERS.get(name)
        if reader is not None:
            lang, text = "zh", reader(text)
        self._add(words, lang, text, 1.0, name)

    # -- generic text ----------------------------------------------------------------------
    def _pieces(self, words: list, segment: str) -> None:
        pieces = _PUNCT_RE.split(segment)
        count = len(pieces)
        for index in range(count):
            text = pieces[index]
            if not text:
                continue
            last = index >= count - 1
            following = "" if last else pieces[index + 1]
            if not last and (_is_punctuation(text) or _is_punctuation(following)):
                pieces[index + 1] = text + following
                continue
            squeezed = _squeeze(re.sub(r"\d+", "", _NUMBER_KEY_RE.sub("", text)))
            if not last and len(squeezed) <= 2:  # too short for langid: glue to the next piece
                pieces[index + 1] = text + following
                continue
            lang, score = _langid_rounded(squeezed)
            prev_lang = words[-1]["lang"] if words else None
            if lang != "zh" and all("\u4e00" <= ch <= "\u9fff" for ch in re.sub(r"\s", "", squeezed)):
                lang, score = "zh", 1
            if len(squeezed) <= 5 and _has_han(squeezed):
                lang = self._short_han(words, text, squeezed, lang, score, prev_lang, last)
            text = _NUMBER_KEY_RE.sub(self._restore_number, text)
            self._add(words, lang, text, score)

    def _short_han(self, words, text, squeezed, lang, score, prev_lang, last) -> str:
        if score < _PRIORITY_THRESHOLD:
            ja_at, zh_at = _ALLOWED_TEXT.find("ja"), _ALLOWED_TEXT.find("zh")
            if ja_at != -1 and ja_at < zh_at:
                lang = "ja"
            elif zh_at != -1 and zh_at < ja_at:
                lang = "zh"
        if _KANA_RE.search(squeezed):
            return "ja"
        if len(squeezed) > 2 and score > 0.90:
            return lang
        if last and self.at_end:
            return "zh" if len(squeezed) <= 1 else lang
        undecided = "zh|ja" if lang == "zh" or (len(squeezed) <= 2 and prev_lang == "zh") else "ja|zh"
        visible = re.sub(r"\s+", "", text)
        if not visible:
            raise ValueError("no visible character in a Han piece")
        related = (prev_lang in undecided or undecided in prev_lang) if prev_lang else False
        if visible[-1] in "。.":
            return prev_lang if related and words else lang
        return undecided + "|…"

    def _restore_number(self, found: re.Match) -> str:
        key = found.group(0)
        return self.hidden[key][1] if key in self.hidden else key

    # -- bookkeeping -----------------------------------------------------------------------
    def _add(self, words: list, lang, text, score, symbol=None) -> None:
        if text != "\n" and (text is None or not text.strip()):
            return
        lang = (lang or "").lower()
        if lang == "en":
            text = _spread_capitals(text)
        from_pending = bool(self.pending)
        previous = self.pending.pop() if from_pending else None
        if previous is None:
            previous = words[-1] if words else None
        if previous and "|" in previous["lang"]:
            if lang in previous["lang"]:
                lang = lang.split("|")[0]
                previous["lang"] = lang
            else:
                previous["lang"] = previous["lang"].split("|")[0]
            if from_pending:
                previous = self._save(words, previous["lang"], previous["text"], previous["score"], previous["symbol"])
        prev_lang = previous["lang"] if previous else None
        if "|" in lang and prev_lang and prev_lang not in lang and "…" not in lang:
            lang = lang.split("|")[0]
        if "|" in lang:
            self.pending.append({"lang": lang, "text": text, "score": score, "symbol": symbol})
        else:
            self._save(words, lang, text, score, symbol)

    def _save(self, words: list, lang: str, text: str, score, symbol=None) -> dict:
        clear, numeric = _numeric_view(text)
        previous = words[-1] if words else None
        if symbol is not None:
            pass
        elif previous is not None and previous["symbol"] is None:
            if not clear or numeric:  # digits/punctuation only: continue the previous language
                lang = previous["lang"]
            _, previous_numeric = _numeric_view(previous["text"])
            if previous["lang"] == lang:
                self._count(lang, text)
                previous["text"] += text
                return previous
            if previous_numeric:  # a numeric piece joins the following language
                text = previous["text"] + text
                words.pop()
        elif numeric and _FIRST_ALLOWED in "ja-zh-en-ko-fr-vi":
            lang = _FIRST_ALLOWED
        data = {"lang": lang, "text": text, "score": score, "symbol": symbol}
        if "?" in lang or lang in _ALLOWED or lang in _FIRST_ALLOWED:
            words.append(data)
            self._count(lang, text)
        return data

    def _count(self, lang: str, text: str) -> None:
        if "|" not in lang:
            self.counts[lang] = self.counts.get(lang, 0) + (2 * len(text) if lang == "zh" else len(text))


# ---------------------------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def _counts_cached(line: str) -> tuple:
    counts = _Run().run(line)
    return tuple(sorted(counts.items(), key=lambda item: item[1], reverse=True))


def language_counts(line: str) -> list[tuple[str, int]]:
    """LangSegment's ``getCounts()`` for ``line``: (language, characters), most first.

    ``[("zh", 0)]`` when nothing was counted (as the reference).
    """
    if line is None or not line.strip():
        return [("zh", 0)]
    return list(_counts_cached(line)) or [("zh", 0)]


def detect_line_language(line: str) -> str:
    """The reference ``get_lang(line)``: a langid label (not yet mapped to the model's 17).

    Errors inside the detection give ``"en"`` (as the reference); a missing py3langid raises
    ``LyricsDependencyError``.
    """
    try:
        counts = language_counts(line)
    except LyricsDependencyError:
        raise
    except Exception:
        return "en"
    lang = counts[0][0]
    if lang == "en" and len(counts) > 1:
        lang = counts[1][0]
    return lang
