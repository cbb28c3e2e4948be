"""Lyric romanizer node and the lyrics path of the text encoder: the romanizer's output, fed back
into the encoder, gives exactly the ids of the original lyrics (the official tokenization)."""

from __future__ import annotations

import json

import pytest

from workflow_tools import load_pack, lyrics_vocab, shared_dir

VOCAB = lyrics_vocab()
pytestmark = pytest.mark.skipif(VOCAB is None, reason="no ACE-Step v1 lyric vocabulary (../shared or $ACEFORGE_LYRICS_VOCAB)")


def cases():
    path = shared_dir() / "reference" / "tokenization" / "v1_lyrics.json" if shared_dir() else None
    if path is None or not path.is_file():
        return []
    return [(c["name"], c["text"], c["official_ids"]) for c in json.loads(path.read_text(encoding="utf-8"))["cases"]]


@pytest.fixture(scope="module")
def pipeline():
    import importlib

    pack = load_pack()
    return importlib.import_module(f"{pack.__name__}.ace_core.v1.pipeline")


@pytest.mark.parametrize("name,text,official", cases(), ids=[c[0] for c in cases()])
def test_romanized_lyrics_round_trip(pipeline, name, text, official):
    if name.startswith("comfy_lang_prefix"):
        pytest.skip("ComfyUI-style [xx] lines: read as that language on purpose (test_comfy_language_prefix)")
    if not text:  # what the pipeline feeds the model without lyrics (tokenize_lyrics itself gives [261, 2])
        official = [0]
    ids, mask = pipeline.tokenize_lyrics(text, "auto", VOCAB)
    assert ids == official
    assert mask == ([0] if not text else [1] * len(ids))
    romanized, report = pipeline.romanize(text, "auto")
    assert pipeline.tokenize_lyrics(romanized, "auto", VOCAB)[0] == official
    assert len(report.split("\n")) == len(text.split("\n"))


def test_romanizer_node_shows_languages(monkeypatch):
    monkeypatch.setenv("ACEFORGE_LYRICS_VOCAB", str(VOCAB))
    pack = load_pack()
    cls = pack.NODE_CLASS_MAPPINGS["AceForge_LyricRomanizer"]
    out = getattr(cls(), cls.FUNCTION)("[chorus]\n我爱你\n사랑해\nこんにちは\nhello 42", "auto")
    text, report = out["result"]
    assert out["ui"]["text"] == [report]
    assert cls.HAS_INTERMEDIATE_OUTPUT is True  # ComfyUI re-sends the cached report on later runs
    lines = text.split("\n")
    assert lines[0] == "[chorus]"
    assert lines[1].startswith("[zh]wo3") and lines[2].startswith("[ko]") and lines[3].startswith("[ja]")
    assert lines[4] == "[en]hello forty-two"
    langs = [row.split("|")[1].strip() for row in report.split("\n")]
    assert langs == ["en", "zh", "ko", "ja", "en"]
    # a fixed language applies to every non-tag line
    text_ru, _ = getattr(cls(), cls.FUNCTION)("[verse]\nпривет", "ru")["result"]
    assert text_ru.split("\n") == ["[verse]", "[ru]привет"]


def test_fixed_language_and_bad_language(pipeline):
    err = __import__(pipeline.__name__.rsplit(".v1", 1)[0] + ".errors", fromlist=["InputError"]).InputError
    with pytest.raises(err, match="language"):
        pipeline.tokenize_lyrics("hello", "klingon", VOCAB)
    assert pipeline.tokenize_lyrics("", "auto", VOCAB) == ([0], [0])
    a = pipeline.tokenize_lyrics("ni hao", "zh", VOCAB)[0]
    assert a[1] == 5023  # [zh-cn]


def test_comfy_language_prefix(pipeline):
    """``[zh]你好`` (ComfyUI's convention) is Chinese romanised to pinyin, not a [structure] line."""
    direct = pipeline.tokenize_lyrics("你好世界", "zh", VOCAB)[0]
    assert pipeline.tokenize_lyrics("[zh]你好世界", "auto", VOCAB)[0] == direct
    assert pipeline.tokenize_lyrics("[zh]ni3hao3shi4jie4", "auto", VOCAB)[0] == direct
    assert 1 not in direct  # no [UNK]
    ru = pipeline.tokenize_lyrics("привет мир", "ru", VOCAB)[0]
    assert pipeline.tokenize_lyrics("[ru]привет мир", "auto", VOCAB)[0] == ru


def test_vocab_lookup_order(pipeline, tmp_path, monkeypatch):
    import shutil

    err = __import__(pipeline.__name__.rsplit(".v1", 1)[0] + ".errors", fromlist=["InputError"]).InputError
    monkeypatch.delenv("ACEFORGE_LYRICS_VOCAB", raising=False)
    if pipeline.find_lyrics_vocab() is not None:
        pytest.skip("a ComfyUI copy of the vocabulary is installed here")
    with pytest.raises(err, match=r"ACEFORGE_LYRICS_VOCAB.*comfy/text_encoders/ace_lyrics_tokenizer/vocab.json"):
        pipeline.tokenize_lyrics("hello", "auto")
    folder = tmp_path / "ace_step"
    folder.mkdir()
    shutil.copy(VOCAB, folder / "ace_lyrics_vocab.json")
    assert pipeline.find_lyrics_vocab(extra_dirs=[folder]) == folder / "ace_lyrics_vocab.json"
    monkeypatch.setenv("ACEFORGE_LYRICS_VOCAB", str(VOCAB))
    assert pipeline.find_lyrics_vocab(extra_dirs=[folder]) == VOCAB  # the environment comes first
    assert pipeline.find_lyrics_vocab(folder / "ace_lyrics_vocab.json") == folder / "ace_lyrics_vocab.json"
    with pytest.raises(err, match="not a file"):
        pipeline.find_lyrics_vocab(tmp_path / "nope.json")
