"""Number spelling for the ACE-Step v1 lyric cleaners.

Two independent parts:

* ``expand_numbers(text, lang)`` for the Latin/Cyrillic/Arabic/Hangul languages: thousand
  separators, currency amounts (£ $ €), decimals, ordinals and plain integers are spelled out
  with ``num2words`` in the line's language, in that order.
* ``normalize_chinese(text)`` for ``zh``: dates, money, phone numbers, fractions, percentages,
  counted quantities, long digit strings and plain numbers become Chinese numerals, then every
  Chinese or ASCII punctuation mark becomes an ASCII comma.

Both reproduce the reference text normaliser of ACE-Step v1 exactly, quirks included (for
example a substitution replaces the *first* occurrence of the matched text, and Czech is
looked up in num2words under the legacy code ``cz``, which num2words 0.5.14 no longer knows,
so Czech digits stay digits).
"""

from __future__ import annotations

import re
import string
from typing import Callable

__all__ = ["expand_numbers", "normalize_chinese", "chinese_cardinal"]

# --------------------------------------------------------------------------------------------
# num2words based expansion (all languages but zh)
# --------------------------------------------------------------------------------------------

# language code given to num2words (the reference passes "cz" for Czech)
_NUM2WORDS_CODE = {"cs": "cz"}

# "<digits><suffix>" ordinal forms, per language
_ORDINAL = {
    "en": r"([0-9]+)(st|nd|rd|th)",
    "es": r"([0-9]+)(º|ª|er|o|a|os|as)",
    "fr": r"([0-9]+)(º|ª|er|re|e|ème)",
    "de": r"([0-9]+)(st|nd|rd|th|º|ª|\.(?=\s|$))",
    "pt": r"([0-9]+)(º|ª|o|a|os|as)",
    "it": r"([0-9]+)(º|°|ª|o|a|i|e)",
    "pl": r"([0-9]+)(º|ª|st|nd|rd|th)",
    "ar": r"([0-9]+)(ون|ين|ث|ر|ى)",
    "cs": r"([0-9]+)\.(?=\s|$)",
    "ru": r"([0-9]+)(-й|-я|-е|-ое|-ье|-го)",
    "nl": r"([0-9]+)(de|ste|e)",
    "tr": r"([0-9]+)(\.|inci|nci|uncu|üncü|\.)",
    "hu": r"([0-9]+)(\.|adik|edik|odik|edik|ödik|ödike|ik)",
    "ko": r"([0-9]+)(번째|번|차|째)",
}
_ORDINAL_RE = {lang: re.compile(p) for lang, p in _ORDINAL.items()}

_INTEGER_RE = re.compile(r"[0-9]+")
_DECIMAL_RE = re.compile(r"([0-9]+[.,][0-9]+)")
# thousands grouped with commas (en, ru) or with any single character (other languages: the
# reference pattern uses an unescaped dot, so "1 000" and "1.000" both match)
_COMMA_GROUPED_RE = re.compile(r"\b\d{1,3}(,\d{3})*(\.\d+)?\b")
_DOT_GROUPED_RE = re.compile(r"\b\d{1,3}(.\d{3})*(\,\d+)?\b")


def _amount_pattern(symbol: str, symbol_first: bool) -> str:
    amount = r"[0-9\.\,]*[0-9]+"
    before, after = f"({re.escape(symbol)}{amount})", f"({amount}{re.escape(symbol)})"
    return f"({before}|{after})" if symbol_first else f"({after}|{before})"


# applied in this order; a failure stops the remaining currencies (the others still run)
_CURRENCIES = (
    ("GBP", re.compile(_amount_pattern("£", True))),
    ("USD", re.compile(_amount_pattern("$", True))),
    ("EUR", re.compile(_amount_pattern("€", False))),
)

# the words num2words puts between units and cents; cut off for whole amounts
_CENTS_JOINER = {
    "en": ", ", "es": " con ", "fr": " et ", "de": " und ", "pt": " e ", "it": " e ",
    "pl": ", ", "cs": ", ", "ru": ", ", "nl": ", ", "ar": ", ", "tr": ", ", "hu": ", ",
    "ko": ", ",
}


def _num2words(value, lang: str, **kwargs) -> str:
    from num2words import num2words  # imported lazily: only cleaners need it

    return num2words(value, lang=_NUM2WORDS_CODE.get(lang, lang), **kwargs)


def _spell_currency(match: re.Match, lang: str, currency: str) -> str:
    amount = float(re.sub(r"[^\d.]", "", match.group(0).replace(",", ".")))
    words = _num2words(amount, lang, to="currency", currency=currency)
    if amount.is_integer():
        cut = words.rfind(_CENTS_JOINER[lang])
        if cut != -1:
            words = words[:cut]
    return words


def expand_numbers(text: str, lang: str) -> str:
    """Spell out the numbers of ``text`` (already lower-cased) in language ``lang``.

    Raises whatever num2words raises (the cleaner catches it and keeps the text unchanged).
    """
    if lang == "zh":
        return normalize_chinese(text)
    grouped = _COMMA_GROUPED_RE if lang in ("en", "ru") else _DOT_GROUPED_RE
    separator = "," if lang in ("en", "ru") else "."
    text = grouped.sub(lambda m: m.group(0).replace(separator, ""), text)
    try:
        for currency, pattern in _CURRENCIES:
            text = pattern.sub(lambda m, c=currency: _spell_currency(m, lang, c), text)
    except Exception:  # an amount num2words cannot spell: later steps still run
        pass
    if lang != "tr":
        text = _DECIMAL_RE.sub(lambda m: _num2words(float(m.group(1).replace(",", ".")), lang), text)
    text = _ORDINAL_RE[lang].sub(lambda m: _num2words(int(m.group(1)), lang, ordinal=True), text)
    return _INTEGER_RE.sub(lambda m: _num2words(int(m.group(0)), lang), text)


# --------------------------------------------------------------------------------------------
# Chinese numerals
# --------------------------------------------------------------------------------------------

_ZH_DIGITS = "零一二三四五六七八九"
_ZH_TWO_ALT = "两"
_ZH_POINT = "点"
# (power of ten, character): 十 百 千 万, then the "mid" system: 亿 = 10^8, 兆 = 10^12, ...
_ZH_UNITS = tuple(zip((1, 2, 3, 4), "十百千万")) + tuple(
    ((i + 2) * 4, ch) for i, ch in enumerate("亿兆京垓秭穰沟涧正载")
)


def zh_numeral_symbols(digits: str, units: tuple = _ZH_UNITS) -> list:
    """Digits -> list of symbols: ``("d", value)`` or ``("u", power)``, with inner zeros.

    ``units``: the (power, character) pairs available, smallest first.
    """
    significant = digits.lstrip("0")
    if not significant:
        return []
    if len(significant) == 1:
        value = ("d", int(significant))
        return [("d", 0), value] if len(digits) != len(significant) else [value]
    power = next(p for p, _ in reversed(units) if p < len(significant))
    return (
        zh_numeral_symbols(digits[:-power], units) + [("u", power)] + zh_numeral_symbols(significant[-power:], units)
    )


def chinese_cardinal(number: str, alt_two: bool = True, use_units: bool = True) -> str:
    """``"2024"`` -> ``"两千零二十四"``; ``use_units=False`` reads digit by digit (``"二零二四"``).

    ``number`` is ASCII digits with at most one decimal point; ``alt_two`` writes 两 for a 2
    directly before 百/千/万/... (not before 十) when no 十 precedes it.
    """
    parts = number.split(".")
    if len(parts) > 2:
        raise ValueError(f"number {number!r} has more than one decimal point")
    integer, decimals = (parts + [""])[:2]
    if use_units and len(integer) > 1:
        symbols = zh_numeral_symbols(integer)
    else:
        symbols = [("d", int(c)) for c in integer]
    if decimals:
        symbols += [("p", 0)] + [("d", int(c)) for c in decimals]
    units = dict(_ZH_UNITS)
    out = []
    for i, (kind, value) in enumerate(symbols):
        if kind == "d":
            char = _ZH_DIGITS[value]
            if alt_two and value == 2 and i + 1 < len(symbols):
                nxt, prev = symbols[i + 1], symbols[i - 1] if i > 0 else None
                if nxt[0] == "u" and nxt[1] != 1 and (prev is None or (prev[0] == "u" and prev[1] != 1)):
                    char = _ZH_TWO_ALT
            out.append(char)
        elif kind == "u":
            out.append(units[value])
        else:
            out.append(_ZH_POINT)
    result = "".join(out)
    if result.startswith(_ZH_POINT):
        return _ZH_DIGITS[0] + result
    if len(result) >= 2 and result[0] == "一" and result[1] == "十":
        result = result[1:]
    return result


def _zh_digits(number: str) -> str:
    return chinese_cardinal(number, alt_two=False, use_units=False)


def _zh_date(date: str) -> str:
    head, sep, rest = date.strip().partition("年")
    if sep:
        year, other = _zh_digits(head) + "年", rest
    else:
        year, other = "", date
    if not other:
        return year
    month_text, sep, day = other.strip().partition("月")
    if sep:
        month = chinese_cardinal(month_text) + "月"
    else:  # (unreachable with the date pattern; kept for parity)
        month, day = "", date
    if day:
        day = chinese_cardinal(day[:-1]) + day[-1]
    return year + month + day


def _zh_money(money: str) -> str:
    for number, _ in re.findall(r"(\d+(\.\d+)?)", money):
        money = money.replace(number, chinese_cardinal(number))
    return money


def _zh_mobile(phone: str) -> str:
    return "".join(_zh_digits(part) for part in phone.strip("+").split())


def _zh_landline(phone: str) -> str:
    return "".join(_zh_digits(part) for part in phone.split("-"))


def _zh_fraction(fraction: str) -> str:
    numerator, denominator = fraction.split("/")
    return chinese_cardinal(denominator) + "分之" + chinese_cardinal(numerator)


def _zh_percent(percent: str) -> str:
    return "百分之" + chinese_cardinal(percent.strip().strip("%"))


_CURRENCY_UNIT = r"((亿|千万|百万|万|千|百)|(亿|千万|百万|万|千|百|)元|(亿|千万|百万|万|千|百|)块|角|毛|分)"
# measure words after a number (single characters, plus the few two-character ones)
_MEASURE_CHARS = (
    "匹张座回场尾条个首阙阵网炮顶丘棵只支袭辆挑担颗壳窠曲墙群腔砣客贯扎捆刀令打手罗坡山岭江溪钟队"
    "单双对出口头脚板跳枝件贴针线管名位身堂课本页家户层丝毫厘分钱两斤铢石钧锱忽寸尺丈里寻常铺程撮"
    "勺合升斗盘碗碟叠桶笼盆盒杯斛锅簋篮罐瓶壶卮盏箩箱煲啖袋钵年月日季刻时周天秒旬纪岁世更夜春夏秋"
    "冬代伏辈丸泡粒幢堆根道面片块"
)
_MEASURE = f"(?:[{_MEASURE_CHARS}]|千克|微克|千米|微米)"

# (pattern, index of the group to rewrite or None for the whole match, rewriter), in order
_ZH_RULES: tuple = (
    (re.compile(r"\D+((([089]\d|(19|20)\d{2})年)?(\d{1,2}月(\d{1,2}[日号])?)?)"), 0, _zh_date),
    (re.compile(r"\D+((\d+(\.\d+)?)[多余几]?" + _CURRENCY_UNIT + r"(\d" + _CURRENCY_UNIT + r"?)?)"), 0, _zh_money),
    (re.compile(r"\D((\+?86 ?)?1([38]\d|5[0-35-9]|7[678]|9[89])\d{8})\D"), 0, _zh_mobile),
    (re.compile(r"\D((0(10|2[1-3]|[3-9]\d{2})-?)?[1-9]\d{6,7})\D"), 0, _zh_landline),
    (re.compile(r"(\d+/\d+)"), None, _zh_fraction),
    (re.compile(r"(\d+(\.\d+)?%)"), 0, _zh_percent),
    (re.compile(r"(\d+(\.\d+)?)[多余几]?" + _MEASURE), 0, chinese_cardinal),
    (re.compile(r"(\d{4,32})"), None, _zh_digits),
    (re.compile(r"(\d+(\.\d+)?)"), 0, chinese_cardinal),
)

# Chinese punctuation (after the Zhon project) and ASCII punctuation all become ","
_ZH_PUNCTUATION = (
    "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃《》「」『』【】〔〕〖〗"
    "〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏·〈〉-"
)
_TO_COMMA = str.maketrans({ch: "," for ch in _ZH_PUNCTUATION + string.punctuation})


def _rewrite_each(text: str, pattern: re.Pattern, group, rewrite: Callable[[str], str]) -> str:
    # every match found in the original text replaces the first occurrence of its text
    for found in pattern.findall(text):
        target = found if group is None else found[group]
        text = text.replace(target, rewrite(target), 1)
    return text


def normalize_chinese(text: str) -> str:
    """Chinese text normalisation: numbers to Chinese numerals, punctuation to ``,``."""
    text = "^" + text + "$"
    for index, (pattern, group, rewrite) in enumerate(_ZH_RULES):
        if index == 5:  # percentages: full-width percent sign first
            text = text.replace("％", "%")
        text = _rewrite_each(text, pattern, group, rewrite)
    # letters around a 2 that became 二 (P2P, B2B, ...) get their digit back
    for whole, left, right in re.findall(r"(([a-zA-Z]+)二([a-zA-Z]+))", text):
        text = text.replace(whole, left + "2" + right, 1)
    text = text.lstrip("^").rstrip("$")
    return text.translate(_TO_COMMA)
