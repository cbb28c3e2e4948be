"""ACE-Step v1 lyric tokenizer against the reference tokenisation cases.

Reference: shared/reference/tokenization/v1_lyrics.json (official ACE-Step v1 path) and the
lyric BPE vocabulary shared/reference/data/ace_v1_lyrics_vocab.json.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest

from ace_core.errors import CheckpointError, InputError
from ace_core.v1 import lyrics as lyr
from ace_core.v1.lyrics import (
    SUPPORTED_LANGUAGES,
    LyricsDependencyError,
    LyricTokenizer,
    default_vocab_path,
    language_counts,
    romanize_lyrics,
)
from ace_core.v1.lyrics.numbers import chinese_cardinal, normalize_chinese
from ace_core.v1.lyrics.tokenizer import bpe_text

SHARED = Path(__file__).resolve().parents[2] / "shared"
CASES_FILE = SHARED / "reference" / "tokenization" / "v1_lyrics.json"
VOCAB_FILE = SHARED / "reference" / "data" / "ace_v1_lyrics_vocab.json"

pytestmark = pytest.mark.skipif(
    not (CASES_FILE.is_file() and VOCAB_FILE.is_file()), reason="shared reference data not found"
)


def _cases():
    if not CASES_FILE.is_file():
        return []
    return json.loads(CASES_FILE.read_text(encoding="utf-8"))["cases"]


CASES = _cases()


@pytest.fixture(scope="module")
def tokenizer():
    return LyricTokenizer(VOCAB_FILE)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_reference_case(case, tokenizer):
    assert tokenizer.encode(case["text"]) == case["official_ids"]
    infos = tokenizer.encode_lines(case["text"])
    assert len(infos) == len(case["official_lines"])
    for info, ref in zip(infos, case["official_lines"]):
        assert info.raw.strip() == ref["stripped"]
        if ref.get("kind") == "empty":
            assert info.ids == [2] and info.encode_lang is None
            continue
        assert language_counts(ref["stripped"]) == [tuple(pair) for pair in ref["langsegment_counts"]]
        assert info.langid_lang == ref["get_lang"]
        assert info.detected_lang == ref["detected_lang"]
        assert info.structure == ref["structure_pattern_match"]
        assert info.encode_lang == ref["encode_lang"]
        assert info.text == ref["cleaned_romanised"]
        assert info.bpe_input == ref["bpe_input"]
        assert info.ids == ref["ids"]


def test_sequence_is_start_plus_line_ids(tokenizer):
    text = "[verse]\nI love you\n\n我爱你"
    infos = tokenizer.encode_lines(text)
    assert tokenizer.encode(text) == [261] + [i for info in infos for i in info.ids]
    assert [info.ids[-1] for info in infos] == [2, 2, 2, 2]


def test_empty_lyrics(tokenizer):
    assert tokenizer.encode("") == [261, 2]  # the reference tokenize_lyrics("")
    assert tokenizer.encode_for_model("") == ([0], [0])  # what the pipeline feeds the model
    ids, mask = tokenizer.encode_for_model("la la")
    assert ids == tokenizer.encode("la la") and mask == [1] * len(ids)


# ---------------------------------------------------------------------------------------------
# fixed language
# ---------------------------------------------------------------------------------------------
def test_fixed_language_replaces_detection_but_not_for_tags(tokenizer):
    # "Te amo" is detected as en; forced to es it gets the es token (284)
    auto = tokenizer.encode_lines("[chorus]\nTe amo")
    fixed = tokenizer.encode_lines("[chorus]\nTe amo", language="es")
    assert auto[1].encode_lang == "en" and fixed[1].encode_lang == "es"
    assert fixed[1].ids[0] == 284 and fixed[1].detected_lang is None
    assert fixed[0].encode_lang == "en" and fixed[0].ids == [259, 6684, 2]
    assert tokenizer.encode("[chorus]\nTe amo", "es") == [261, 259, 6684, 2] + fixed[1].ids


def test_fixed_language_zh_equals_detected_zh(tokenizer):
    case = next(c for c in CASES if c["name"] == "zh_simplified_numbers")
    assert tokenizer.encode(case["text"], language="zh") == case["official_ids"]
    assert tokenizer.encode(case["text"], language="ZH-cn") == case["official_ids"]


def test_fixed_language_validation(tokenizer):
    with pytest.raises(InputError, match="not supported"):
        tokenizer.encode("hello", language="xx")
    assert tokenizer.encode("hello", language="auto") == tokenizer.encode("hello")
    assert set(SUPPORTED_LANGUAGES) == {
        "en", "de", "fr", "es", "it", "pt", "pl", "tr", "ru", "cs", "nl", "ar", "zh", "ja", "hu", "ko", "hi"
    }


# ---------------------------------------------------------------------------------------------
# romanize_lyrics
# ---------------------------------------------------------------------------------------------
def test_romanize_lyrics_layout():
    text, langs = romanize_lyrics("[verse]\n我爱你\n\n  Hello 25  \n사랑해")
    assert text == "[verse]\n[zh]wo3ai4ni3\n\n[en]hello twenty-five\n[ko]salanghae"
    assert langs == ["en", "zh", "", "en", "ko"]


def test_romanize_lyrics_fixed_language_and_tag_prefix():
    text, langs = romanize_lyrics("愛してる\n[zh]你好", language="ja")
    assert text == "[ja]aishiteru\n[en][zh]你好"  # a "[zh]" tag line is encoded as en upstream
    assert langs == ["ja", "en"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_romanized_lines_rebuild_bpe_input(case):
    """Each "[xx]text" line gives back the reference BPE input (ComfyUI-chainable)."""
    text, _ = romanize_lyrics(case["text"])
    out_lines = text.split("\n")
    refs = case["official_lines"]
    assert len(out_lines) == len(refs)
    for out, ref in zip(out_lines, refs):
        if ref.get("kind") == "empty":
            assert out == ""
        elif ref["structure_pattern_match"]:
            assert out.endswith(ref["stripped"])
        else:
            lang, _, body = out[1:].partition("]")
            assert bpe_text(body, lang) == ref["bpe_input"]


# ---------------------------------------------------------------------------------------------
# dropped lines and missing libraries
# ---------------------------------------------------------------------------------------------
def test_line_that_fails_to_clean_is_dropped(tokenizer, monkeypatch):
    from ace_core.v1.lyrics import tokenizer as tok_mod

    def broken(text):
        raise RuntimeError("romaji failed")

    monkeypatch.setattr(tok_mod, "japanese_to_romaji", broken)
    infos = tokenizer.encode_lines("hello\n愛してる\nhello")
    assert infos[1].ids == [] and "romaji failed" in infos[1].error
    assert tokenizer.encode("hello\n愛してる") == [261] + infos[0].ids
    text, langs = romanize_lyrics("hello\n愛してる")
    assert text == "[en]hello" and langs == ["en", ""]


def test_missing_optional_library_names_package_and_language(tokenizer, monkeypatch):
    from ace_core.v1.lyrics import romanize

    monkeypatch.setitem(sys.modules, "pypinyin", None)
    monkeypatch.setattr(romanize, "_CACHE", {})
    monkeypatch.setitem(sys.modules, "cutlet", None)
    assert tokenizer.encode("hello world")[:2] == [261, 259]  # other languages still work
    with pytest.raises(LyricsDependencyError, match=r"'zh'.*pypinyin"):
        tokenizer.encode("我爱你中国")
    with pytest.raises(LyricsDependencyError, match=r"'ja'.*cutlet"):
        romanize_lyrics("こんにちは")


def test_missing_vocab_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        LyricTokenizer(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{}", encoding="utf-8")
    with pytest.raises(CheckpointError):
        LyricTokenizer(bad)


# ---------------------------------------------------------------------------------------------
# default_vocab_path
# ---------------------------------------------------------------------------------------------
def test_default_vocab_path_env_var(monkeypatch, tmp_path):
    monkeypatch.setenv("ACEFORGE_LYRICS_VOCAB", str(VOCAB_FILE))
    assert default_vocab_path() == VOCAB_FILE
    assert LyricTokenizer().encode("[verse]") == [261, 259, 6683, 2]
    missing = tmp_path / "missing.json"
    monkeypatch.setenv("ACEFORGE_LYRICS_VOCAB", str(missing))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert default_vocab_path() != missing
    assert any("ACEFORGE_LYRICS_VOCAB" in str(w.message) for w in caught)


def test_default_vocab_path_finds_comfy_without_importing(monkeypatch, tmp_path):
    monkeypatch.delenv("ACEFORGE_LYRICS_VOCAB", raising=False)
    package = tmp_path / "comfy"
    vocab = package / "text_encoders" / "ace_lyrics_tokenizer" / "vocab.json"
    vocab.parent.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('comfy must not be imported')\n")
    vocab.write_bytes(VOCAB_FILE.read_bytes())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "comfy", raising=False)
    assert default_vocab_path() == vocab
    assert "comfy" not in sys.modules


# ---------------------------------------------------------------------------------------------
# pieces
# ---------------------------------------------------------------------------------------------
def test_chinese_numbers():
    assert chinese_cardinal("2024") == "两千零二十四"
    assert chinese_cardinal("2024", alt_two=False, use_units=False) == "二零二四"
    assert chinese_cardinal("12") == "十二"
    assert chinese_cardinal("0.5") == "零点五"
    assert chinese_cardinal("100000001") == "一亿零一"
    assert normalize_chinese("在12.5秒内") == "在十二点五秒内"
    assert normalize_chinese("有50名士兵") == "有五十名士兵"
    assert normalize_chinese("1/2的人，50%！") == "二分之一的人,百分之五十,"
    assert normalize_chinese("P2P平台") == "P2P平台"


def test_public_api_exports():
    for name in ("LyricTokenizer", "LineInfo", "romanize_lyrics", "default_vocab_path", "SUPPORTED_LANGUAGES"):
        assert hasattr(lyr, name)


def test_encode_prepared_and_decode(tokenizer):
    assert tokenizer.encode_prepared("wo3ai4ni3", "zh") == [5023, 4893, 4568, 27, 4554]
    assert tokenizer.encode("我爱你") == [261] + tokenizer.encode_prepared("wo3ai4ni3", "zh") + [2]
    with pytest.raises(InputError):
        tokenizer.encode_prepared("x", "auto")
    assert tokenizer.decode(tokenizer.encode_prepared("i love you", "en")) == "[en]i love you"


def test_line_info_fields(tokenizer):
    info = tokenizer.encode_lines("  Te amo  ")[0]
    assert (info.raw, info.detected_lang, info.encode_lang, info.text) == ("  Te amo  ", "en", "en", "te amo")
    assert info.ids[0] == 259 and info.ids[-1] == 2
