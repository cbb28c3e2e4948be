"""ACE-Step 1.5 text side: Qwen3 tokenizer, full-size Qwen3 layouts, prompt validation, LM prompts, KV cache."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, fields
from pathlib import Path

import pytest
import torch

from ace_core.errors import CheckpointError, InputError
from ace_core.v15 import prompts as P
from ace_core.v15 import text_tokenizer as T
from ace_core.v15.qwen3 import KVCache, Qwen3Config, Qwen3Model, infer_qwen3_config

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
TOKENIZATION = REFERENCE / "tokenization" / "v15_text.json"
MANIFESTS = REFERENCE / "checkpoints"

needs_tokenization = pytest.mark.skipif(not TOKENIZATION.is_file(), reason="reference tokenization not available")
needs_manifests = pytest.mark.skipif(not MANIFESTS.is_dir(), reason="reference manifests not available")


@pytest.fixture(scope="module")
def tok():
    return T.load_tokenizer()


@pytest.fixture(scope="module")
def reference():
    return json.loads(TOKENIZATION.read_text(encoding="utf-8"))


# --- tokenizer -----------------------------------------------------------------------------

@needs_tokenization
def test_bundled_files_are_the_reference_files(reference):
    for name, digest in reference["tokenizer_files_sha256"].items():
        assert hashlib.sha256((T.BUNDLED_DIR / name).read_bytes()).hexdigest() == digest, name


@needs_tokenization
def test_every_reference_case(tok, reference):
    assert tok.vocab_size == reference["base_vocab_len"] == T.BASE_VOCAB_SIZE
    assert len(reference["cases"]) == 10
    for case in reference["cases"]:
        ids = tok.encode(case["text"])
        assert ids == case["ids"] == case["comfy_tokenize_with_weights_ids"], case["name"]
        assert tok.tokens(case["text"]) == case["tokens"], case["name"]
        assert tok.decode(ids) == case["decoded"], case["name"]


@needs_tokenization
def test_comfy_full_prompt_sets(tok, reference):
    for prompt_set in reference["comfy_ace15_full_prompts"]:
        for part in ("qwen3_06b", "lyrics", "lm_prompt", "lm_prompt_negative"):
            rec = prompt_set[part]
            assert tok.encode(rec["decoded"]) == rec["ids"], part
            assert tok.decode(rec["ids"]) == rec["decoded"], part


@needs_tokenization
def test_comfy_lm_prompts_equal_our_closed_turn_layout(reference):
    """ComfyUI's hard-coded LM template == our closed-turn phase-2 prompt with format_cot."""
    for prompt_set in reference["comfy_ace15_full_prompts"]:
        kw = prompt_set["kwargs"]
        # ComfyUI writes a whole duration into its CoT (10.5 s -> 11); we give it that value
        cot = P.format_cot({"bpm": kw["bpm"], "duration": math.ceil(kw["duration"]), "keyscale": kw["keyscale"],
                            "timesignature": kw["timesignature"]})
        caption, lyrics = prompt_set["caption"], kw["lyrics"]
        assert P.lm_codes_prompt(caption, lyrics, cot, style="closed_turn") == prompt_set["lm_prompt"]["decoded"]
        assert (P.lm_codes_prompt(caption, lyrics, cot, unconditional=True, style="closed_turn")
                == prompt_set["lm_prompt_negative"]["decoded"])


@needs_tokenization
def test_special_ids_and_audio_code_text(tok, reference):
    codes = reference["audio_codes"]
    specials = {"<|endoftext|>": T.PAD_ID, "<|im_start|>": T.IM_START_ID, "<|im_end|>": T.IM_END_ID,
                "<think>": T.THINK_ID, "</think>": T.THINK_END_ID}
    for text, expected in specials.items():
        assert tok.encode(text) == [expected]
    assert set(specials.values()) == set(codes["special_ids"].values())
    # the base tokenizer has no audio-code tokens: their text splits into ordinary pieces
    for text, ids in codes["audio_code_string_through_comfy_tokenizer"].items():
        assert tok.encode(text) == ids


def test_endoftext_literal_and_truncation(tok):
    assert tok.encode("a<|endoftext|>") == [64, T.PAD_ID]
    long_text = "la " * 3000
    assert len(tok.encode(long_text)) > T.LYRIC_MAX_TOKENS
    ids, mask = T.tokenize_lyrics([long_text, "la"])
    assert ids.shape == (2, T.LYRIC_MAX_TOKENS) and mask[0].all()
    assert ids[0].tolist() == tok.encode(long_text)[:T.LYRIC_MAX_TOKENS]
    ids, mask = T.tokenize_captions([long_text])
    assert ids.shape == (1, T.CAPTION_MAX_TOKENS)


def test_batch_right_pads_with_pad_id(tok):
    prompts = [P.build_dit_prompts("text2music", "ambient piano", "[Instrumental]").caption_prompt,
               P.build_dit_prompts("text2music", "a much longer caption " * 5, "").caption_prompt]
    ids, mask = T.tokenize_captions(prompts)
    short, full = len(tok.encode(prompts[0])), len(tok.encode(prompts[1]))
    assert ids.dtype == torch.long and mask.dtype == torch.bool and ids.shape == (2, full)
    assert ids[0, :short].tolist() == tok.encode(prompts[0])
    assert (ids[0, short:] == T.PAD_ID).all() and mask[0].sum() == short and not mask[0, short:].any()
    assert mask[1].all()
    with pytest.raises(InputError, match="empty"):
        T.tokenize_captions([])
    with pytest.raises(InputError, match="string"):
        tok.encode(None)


def test_from_folder_tokenizer_json_and_bad_folders(tok, tmp_path):
    tok._tok.save(str(tmp_path / "tokenizer.json"))  # an official HF folder holds tokenizer.json
    other = T.Qwen3Tokenizer.from_folder(tmp_path)
    text = "[verse]\n我爱你中国<|endoftext|>"
    assert other.encode(text) == tok.encode(text)
    with pytest.raises(CheckpointError, match="not a folder"):
        T.Qwen3Tokenizer.from_folder(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="vocab.json"):
        T.Qwen3Tokenizer.from_folder(tmp_path / "empty")


# --- full-size layouts on meta ---------------------------------------------------------------

def _manifest(name: str) -> dict:
    return {k: tuple(v["shape"]) for k, v in json.loads((MANIFESTS / name).read_text())["tensors"].items()}


def _layout(config: Qwen3Config, prefix: str = "") -> dict:
    model = Qwen3Model(config, dtype=torch.bfloat16, device="meta")
    return {prefix + k: tuple(v.shape) for k, v in model.state_dict().items()}


@needs_manifests
def test_qwen3_embedding_full_size_matches_both_published_layouts():
    config = Qwen3Config()
    assert _layout(config) == _manifest("v15__Qwen3-Embedding-0.6B__model.safetensors.json")
    assert _layout(config, "model.") == _manifest("comfy__qwen_0.6b_ace15.safetensors.json")
    model = Qwen3Model(config, device="meta")
    assert sum(p.numel() for p in model.parameters()) == 595_776_512


@needs_manifests
def test_default_config_is_the_published_config():
    published = json.loads((MANIFESTS / "v15__Qwen3-Embedding-0.6B__model.safetensors.json").read_text())["config"]
    assert asdict(Qwen3Config.from_dict(published)) == asdict(Qwen3Config())


@needs_manifests
@pytest.mark.parametrize("name,prefix", [
    ("v15__Qwen3-Embedding-0.6B__model.safetensors.json", ""),
    ("comfy__qwen_0.6b_ace15.safetensors.json", "model."),
    ("v15__acestep-5Hz-lm-0.6B__model.safetensors.json", "model."),
    ("v15__acestep-5Hz-lm-1.7B__model.safetensors.json", "model."),
    ("v15__acestep-5Hz-lm-4B__model.safetensors.json", "model."),
    ("comfy__qwen_1.7b_ace15.safetensors.json", "model."),
    ("comfy__qwen_4b_ace15.safetensors.json", "model."),
])
def test_shape_inference_rebuilds_every_qwen3_file(name, prefix):
    shapes = _manifest(name)
    config = infer_qwen3_config(shapes, prefix, where=name)
    assert _layout(config, prefix) == shapes  # the LMs too: tied embeddings, no lm_head
    published = json.loads((MANIFESTS / name).read_text()).get("config")
    if published:
        ours = Qwen3Config.from_dict(published)
        structural = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                      "num_attention_heads", "num_key_value_heads", "head_dim", "tie_word_embeddings")
        assert {f: getattr(config, f) for f in structural} == {f: getattr(ours, f) for f in structural}


def test_config_refuses_unsupported_options_and_unknown_files():
    with pytest.raises(CheckpointError, match="attention_bias"):
        Qwen3Config.from_dict({"attention_bias": True})
    with pytest.raises(CheckpointError, match="not a Qwen3"):
        infer_qwen3_config({"foo.weight": (3,)}, where="x.safetensors")
    assert {f.name for f in fields(Qwen3Config)} >= {"vocab_size", "rope_theta", "pad_token_id", "head_dim"}


# --- model behaviour -----------------------------------------------------------------------

def _tiny(seed: int = 0) -> Qwen3Model:
    torch.manual_seed(seed)
    config = Qwen3Config(vocab_size=50, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    model = Qwen3Model(config, dtype=torch.float64).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def test_kv_cache_decoding_equals_full_forward():
    model = _tiny()
    ids = torch.randint(0, 50, (2, 262), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids)
        cache = KVCache()
        pieces = [model(ids[:, :250], cache=cache)]
        for i in range(250, 262):  # crosses the 256-position buffer and RoPE-table blocks
            pieces.append(model(ids[:, i:i + 1], cache=cache))
    assert cache.length == 262
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-10, atol=1e-10)


def test_mask_hides_padding_keys_only():
    model = _tiny()
    ids = torch.randint(0, 50, (1, 7), generator=torch.Generator().manual_seed(2))
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        plain, masked = model(ids), model(ids, mask)
        cached = KVCache()
        model(ids[:, :6], mask[:, :6], cache=cached)
        last = model(ids[:, 6:], mask, cache=cached)
    torch.testing.assert_close(masked[:, :5], plain[:, :5])  # causal + right padding: valid rows agree
    assert (masked[:, 5:] - plain[:, 5:]).abs().max() > 1e-3  # padded rows see no padding keys
    torch.testing.assert_close(last, masked[:, 6:])
    with pytest.raises(InputError, match="attention_mask"):
        model(ids, mask[:, :3])


def test_embed_is_a_row_lookup_and_checks_ids():
    model = _tiny()
    ids = torch.tensor([[0, 49, 3]])
    assert torch.equal(model.embed(ids), model.embed_tokens.weight[ids])
    with pytest.raises(InputError, match=r"\[0, 49\]"):
        model.embed(torch.tensor([[50]]))
    with pytest.raises(InputError, match="integer"):
        model.embed(torch.tensor([[1.0]]))
    with pytest.raises(InputError, match="batch, length"):
        model(torch.tensor([1, 2]))


# --- prompt validation ---------------------------------------------------------------------

def test_public_constants():
    assert len(P.VALID_LANGUAGES) == 51 and P.VALID_LANGUAGES[-1] == "unknown"
    assert len(P.VALID_KEYSCALES) == 70 and len(set(P.VALID_KEYSCALES)) == 70
    assert {"C major", "F# minor", "B♭ major", "Bb minor"} <= set(P.VALID_KEYSCALES)
    assert len(P.TRACK_NAMES) == 12 and P.VALID_TIME_SIGNATURES == (2, 3, 4, 6)


@pytest.mark.parametrize("kwargs,field,allowed", [
    (dict(language="xx"), "language", "unknown"),
    (dict(bpm=301), "bpm", "30-300"),
    (dict(bpm=20), "bpm", "30-300"),
    (dict(bpm=120.5), "bpm", "30-300"),
    (dict(bpm="fast"), "bpm", "30-300"),
    (dict(bpm=float("nan")), "bpm", "30-300"),
    (dict(duration=float("nan")), "duration", "10-600"),
    (dict(duration=5), "duration", "10-600"),
    (dict(duration=601), "duration", "10-600"),
    (dict(timesignature="5"), "time signature", "2, 3, 4, 6"),
    (dict(timesignature="7/8"), "time signature", "2, 3, 4, 6"),
    (dict(keyscale="H major"), "keyscale", "major"),
    (dict(keyscale="C dorian"), "keyscale", "minor"),
])
def test_bad_fields_raise_input_error_naming_field_and_range(kwargs, field, allowed):
    with pytest.raises(InputError) as err:
        P.build_dit_prompts("text2music", "pop", "", **kwargs)
    assert field in str(err.value) and allowed in str(err.value)


def test_bad_task_and_track_names():
    with pytest.raises(InputError, match="task.*text2music"):
        P.task_instruction("remix")
    with pytest.raises(InputError, match="track_name.*backing_vocals"):
        P.task_instruction("lego", "kazoo")
    with pytest.raises(InputError, match="complete_track_classes.*vocals"):
        P.task_instruction("complete", complete_track_classes=["drums", "theremin"])


def test_normalised_fields():
    built = P.build_dit_prompts("extract", "pop", "x", bpm=90.0, keyscale="bb MAJOR", timesignature="6/8",
                                duration=59.9, language="EN", track_name="Backing_Vocals")
    assert built.metas == {"bpm": 90, "keyscale": "Bb major", "timesignature": "6", "duration": "59 seconds"}
    assert built.instruction == "Extract the BACKING_VOCALS track from the audio:"
    assert built.lyric_prompt == "# Languages\nen\n\n# Lyric\nx<|endoftext|>"
    assert P.build_dit_prompts("text2music", "a", "b", bpm=0, timesignature=4).metas["bpm"] == "N/A"
    assert P.validate_language(None) == "unknown"
    assert P.task_instruction("cover-nofsq") == P.TASK_INSTRUCTIONS["cover"]


def test_custom_instruction_decides_cover_and_gets_a_colon():
    built = P.build_dit_prompts("text2music", "c", "l", instruction="Generate audio semantic tokens based on the given conditions")
    assert built.is_cover and built.instruction.endswith("conditions:")
    assert built.text2music_caption_prompt.startswith(f"# Instruction\n{P.DEFAULT_DIT_INSTRUCTION}\n")
    assert not P.build_dit_prompts("cover", "c", "l", instruction="Make it jazz").is_cover
    assert P.metas_string(None) == P.DEFAULT_METAS


# --- LM prompts ----------------------------------------------------------------------------

SYSTEM = "<|im_start|>system\n# Instruction\nGenerate audio semantic tokens based on the given conditions:\n\n<|im_end|>\n"


def test_open_turn_codes_prompt_is_current_upstream_layout():
    cot = "<think>\nbpm: 120\n</think>"
    assert P.lm_codes_prompt("pop", "la", cot) == (
        SYSTEM + "<|im_start|>user\n# Caption\npop\n\n# Lyric\nla\n<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nbpm: 120\n</think>\n\n")
    negative = SYSTEM + "<|im_start|>user\nNO USER INPUT<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert P.lm_codes_prompt("pop", "la", cot, unconditional=True) == negative
    assert P.lm_codes_prompt("pop", "la", cot, unconditional=True, negative_prompt="  ") == negative
    assert "<|im_start|>user\nnoise<|im_end|>" in P.lm_codes_prompt("pop", "la", cot, unconditional=True,
                                                                        negative_prompt="noise")
    with pytest.raises(InputError, match="open_turn"):
        P.lm_codes_prompt("pop", "la", cot, style="other")


def test_negative_prompt_variants_of_the_other_prompts():
    assert P.lm_cot_messages("pop", "la", unconditional=True, negative_prompt="noise")[1]["content"] == \
        "# Caption\nnoise\n\n# Lyric\nla\n"
    closed = P.lm_codes_prompt("pop", "la", "<think>\nx: 1\n</think>", unconditional=True,
                               negative_prompt="noise", style="closed_turn")
    assert "# Caption\nnoise\n" in closed and closed.endswith("<think>\n\n</think>\n\n<|im_end|>\n")


def test_render_chat_drops_reasoning_of_earlier_turns():
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u1"},
                {"role": "assistant", "content": "<think>\nr\n</think>\n\na1"}, {"role": "user", "content": "u2"}]
    assert P.render_chat(messages, False) == (
        "<|im_start|>system\ns<|im_end|>\n<|im_start|>user\nu1<|im_end|>\n"
        "<|im_start|>assistant\na1<|im_end|>\n<|im_start|>user\nu2<|im_end|>\n")
    with pytest.raises(InputError, match="role"):
        P.render_chat([{"role": "tool", "content": "x"}], False)


COT_CASES = [
    {"bpm": 120, "caption": "upbeat synth-pop, female vocals", "duration": 30, "keyscale": "C major",
     "language": "en", "timesignature": "4"},
    {"language": "no", "timesignature": "3/4", "keyscale": "F# minor"},
    {"caption": "A calm piano melody with soft strings. The track opens quietly, then builds slowly "
                "into a sweeping orchestral climax with choir and timpani."},
    {"caption": "Ballad: it's a 'slow' one # really", "duration": 30.5},
    {"caption": "tab\there \u2028 and a very long line " + "x" * 90 + " end"},
    {"caption": "yes"}, {"caption": "1.5"}, {"caption": "line one\nline two"}, {},
]


def test_format_cot_known_strings():
    assert P.format_cot(COT_CASES[0]) == ("<think>\nbpm: 120\ncaption: upbeat synth-pop, female vocals\n"
                                          "duration: 30\nkeyscale: C major\nlanguage: en\ntimesignature: 4\n</think>")
    assert P.format_cot(COT_CASES[1]) == "<think>\nkeyscale: F# minor\nlanguage: 'no'\ntimesignature: 3\n</think>"
    assert P.format_cot(COT_CASES[2]) == (
        "<think>\ncaption: A calm piano melody with soft strings. The track opens quietly, then builds\n"
        "  slowly into a sweeping orchestral climax with choir and timpani.\n</think>")
    assert P.format_cot({}) == "<think>\n\n</think>"


@pytest.mark.parametrize("metadata", COT_CASES)
def test_format_cot_equals_pyyaml(metadata):
    yaml = pytest.importorskip("yaml")
    items = {}
    for key in ("bpm", "caption", "duration", "keyscale", "language", "timesignature"):
        value = metadata.get(key)
        if value is not None:
            value = value.split("/")[0] if key == "timesignature" and value.endswith("/4") else value
            items[key] = int(value) if isinstance(value, str) and value.isdigit() else value
    body = yaml.dump(items, allow_unicode=True, sort_keys=True).strip() if items else ""
    assert P.format_cot(metadata) == f"<think>\n{body}\n</think>"


def test_parse_lm_output_round_trips_format_cot_and_edge_cases():
    metadata = COT_CASES[0] | {"timesignature": "4"}
    parsed, codes = P.parse_lm_output(P.format_cot(metadata) + "\n\n<|audio_code_5|><|audio_code_70000|>")
    assert parsed == {**metadata, "timesignature": "4"} and codes == "<|audio_code_5|><|audio_code_70000|>"
    assert P.audio_code_values(codes) == [5, P.MAX_AUDIO_CODE]
    long_caption = COT_CASES[2]["caption"]
    assert P.parse_lm_output(P.format_cot({"caption": long_caption}))[0] == {"caption": long_caption}
    # no <think>: the text before the first code; bpm that is not a number stays a string
    assert P.parse_lm_output("bpm: fast\ngenres: jazz \nmood: x\n<|audio_code_1|>") == (
        {"bpm": "fast", "genres": "jazz"}, "<|audio_code_1|>")
    assert P.parse_lm_output("") == ({}, "")
