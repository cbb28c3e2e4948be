"""Multilingual text cleaners of the ACE-Step v1 lyric tokenizer.

``multilingual_clean(text, lang)``: drop double quotes, fold a few Turkish capitals, lower-case,
spell out numbers (``numbers.expand_numbers``), expand per-language abbreviations and symbols,
collapse whitespace. Each of the three expansion steps that fails leaves the text as it was
before that step (as the reference does).
"""

from __future__ import annotations

import re

from .numbers import expand_numbers

__all__ = ["multilingual_clean", "basic_clean", "collapse_whitespace", "CLEANED_LANGUAGES"]

# languages that go through multilingual_clean (ja and hi have their own paths)
CLEANED_LANGUAGES = ("ar", "cs", "de", "en", "es", "fr", "hu", "it", "nl", "pl", "pt", "ru", "tr", "zh", "ko")

# abbreviation (matched as a word followed by ".", or for Russian as a whole word) -> words
_ABBREVIATIONS = {
    "en": {"mrs": "misess", "mr": "mister", "dr": "doctor", "st": "saint", "co": "company",
           "jr": "junior", "maj": "major", "gen": "general", "drs": "doctors", "rev": "reverend",
           "lt": "lieutenant", "hon": "honorable", "sgt": "sergeant", "capt": "captain",
           "esq": "esquire", "ltd": "limited", "col": "colonel", "ft": "fort"},
    "es": {"sra": "señora", "sr": "señor", "dr": "doctor", "dra": "doctora", "st": "santo",
           "co": "compañía", "jr": "junior", "ltd": "limitada"},
    "fr": {"mme": "madame", "mr": "monsieur", "dr": "docteur", "st": "saint", "co": "compagnie",
           "jr": "junior", "ltd": "limitée"},
    "de": {"fr": "frau", "dr": "doktor", "st": "sankt", "co": "firma", "jr": "junior"},
    "pt": {"sra": "senhora", "sr": "senhor", "dr": "doutor", "dra": "doutora", "st": "santo",
           "co": "companhia", "jr": "júnior", "ltd": "limitada"},
    "it": {"sig": "signore", "dr": "dottore", "st": "santo", "co": "compagnia", "jr": "junior",
           "ltd": "limitata"},
    "pl": {"p": "pani", "m": "pan", "dr": "doktor", "sw": "święty", "jr": "junior"},
    "ar": {},
    "zh": {},
    "cs": {"dr": "doktor", "ing": "inženýr", "p": "pan"},
    "ru": {"г-жа": "госпожа", "г-н": "господин", "д-р": "доктор"},
    "nl": {"dhr": "de heer", "mevr": "mevrouw", "dr": "dokter", "jhr": "jonkheer"},
    "tr": {"b": "bay", "byk": "büyük", "dr": "doktor"},
    "hu": {"dr": "doktor", "b": "bácsi", "nőv": "nővér"},
    "ko": {},
}
_ABBREVIATION_RES = {
    lang: [
        (re.compile(r"\b" + abbr + (r"\b" if lang == "ru" else r"\."), re.IGNORECASE), words)
        for abbr, words in table.items()
    ]
    for lang, table in _ABBREVIATIONS.items()
}

# symbol -> spoken word, per language; symbols are replaced in the order & @ % # $ £ °
_SYMBOL_ORDER = "&@%#$£°"
_SYMBOL_WORDS = {
    "en": ("and", "at", "percent", "hash", "dollar", "pound", "degree"),
    "es": ("y", "arroba", "por ciento", "numeral", "dolar", "libra", "grados"),
    "fr": ("et", "arobase", "pour cent", "dièse", "dollar", "livre", "degrés"),
    "de": ("und", "at", "prozent", "raute", "dollar", "pfund", "grad"),
    "pt": ("e", "arroba", "por cento", "cardinal", "dólar", "libra", "graus"),
    "it": ("e", "chiocciola", "per cento", "cancelletto", "dollaro", "sterlina", "gradi"),
    "pl": ("i", "małpa", "procent", "krzyżyk", "dolar", "funt", "stopnie"),
    "ar": ("و", "على", "في المئة", "رقم", "دولار", "جنيه", "درجة"),
    "zh": ("和", "在", "百分之", "号", "美元", "英镑", "度"),
    "cs": ("a", "na", "procento", "křížek", "dolar", "libra", "stupně"),
    "ru": ("и", "собака", "процентов", "номер", "доллар", "фунт", "градус"),
    "nl": ("en", "bij", "procent", "hekje", "dollar", "pond", "graden"),
    "tr": ("ve", "at", "yüzde", "diyez", "dolar", "sterlin", "derece"),
    "hu": ("és", "kukac", "százalék", "kettőskereszt", "dollár", "font", "fok"),
    "ko": ("그리고", "에", "퍼센트", "번호", "달러", "파운드", "도"),
}

_WHITESPACE_RE = re.compile(r"\s+")


def collapse_whitespace(text: str) -> str:
    return _WHITESPACE_RE.sub(" ", text)


def expand_abbreviations(text: str, lang: str) -> str:
    for pattern, words in _ABBREVIATION_RES[lang]:
        text = pattern.sub(words, text)
    return text


def expand_symbols(text: str, lang: str) -> str:
    for symbol, word in zip(_SYMBOL_ORDER, _SYMBOL_WORDS[lang]):
        text = text.replace(symbol, f" {word} ").replace("  ", " ")
    return text.strip()


def multilingual_clean(text: str, lang: str) -> str:
    """Clean one lyric line for ``lang`` (one of ``CLEANED_LANGUAGES``)."""
    text = text.replace('"', "")
    if lang == "tr":
        text = text.replace("İ", "i").replace("Ö", "ö").replace("Ü", "ü")
    text = text.lower()
    for step in (expand_numbers, expand_abbreviations, expand_symbols):
        try:
            text = step(text, lang)
        except Exception:  # the reference keeps the text of the previous step
            pass
    return collapse_whitespace(text)


def basic_clean(text: str) -> str:
    """Lower-case and collapse whitespace (the ``hi`` path)."""
    return collapse_whitespace(text.lower())
