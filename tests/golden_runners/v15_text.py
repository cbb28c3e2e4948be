"""Golden runners for the ACE-Step 1.5 text side: Qwen3 text encoder, lyric embedding, prompt strings."""

from __future__ import annotations

import torch

from ace_core.v15 import prompts as P
from ace_core.v15.qwen3 import Qwen3Config, Qwen3Model


def _load_qwen3(fx) -> Qwen3Model:
    model = Qwen3Model(Qwen3Config.from_dict(fx.config), dtype=fx.dtype).eval()
    model.load_state_dict(fx.state_dict, strict=True)
    return model


def run_qwen3_embed(fx) -> None:
    model = _load_qwen3(fx)
    ids, mask = fx.inputs["input_ids"], fx.inputs["attention_mask"]
    with torch.no_grad():
        fx.check("last_hidden_state", model(ids))
        fx.check("last_hidden_state_with_mask", model(ids, mask))


def run_lyric_embed(fx) -> None:
    model = Qwen3Model(Qwen3Config.from_dict(fx.config), dtype=fx.dtype)
    assert set(fx.state_dict) == {"embed_tokens.weight"}, "the lyric fixture holds the embedding only"
    model.embed_tokens.load_state_dict({"weight": fx.state_dict["embed_tokens.weight"]}, strict=True)
    with torch.no_grad():
        fx.check("embeddings", model.embed(fx.inputs["input_ids"]))


def _same(fx, name: str, actual, expected) -> None:
    assert actual == expected, f"{fx.stem}:{name}:\n  ours     {actual!r}\n  expected {expected!r}"
    fx.checks.append(name)


def _check_constants(fx) -> None:
    m = fx.meta
    _same(fx, "task_instructions", {k: P.TASK_INSTRUCTIONS[k] for k in m["task_instructions"]},
          m["task_instructions"])
    _same(fx, "default_dit_instruction", P.DEFAULT_DIT_INSTRUCTION, m["default_dit_instruction"])
    _same(fx, "sft_gen_prompt", P.SFT_GEN_PROMPT, m["sft_gen_prompt"])


def _check_dit_case(fx, i: int, case: dict) -> None:
    inp = case["inputs"]
    built = P.build_dit_prompts(
        inp["task_type"], inp["caption"], inp["lyrics"], bpm=inp["bpm"], keyscale=inp["key_scale"],
        timesignature=inp["time_signature"], duration=inp["duration"], language=inp["vocal_language"],
        track_name=inp["track_name"], complete_track_classes=inp["complete_track_classes"])
    for field in ("instruction", "metas_string", "caption_prompt", "lyric_prompt"):
        _same(fx, f"dit_cases[{i}].{field}", getattr(built, field), case[field])
    _same(fx, f"dit_cases[{i}].metas_dict", built.metas, case["metas_dict"])
    _same(fx, f"dit_cases[{i}].is_cover_by_instruction", built.is_cover, case["is_cover_by_instruction"])
    # the pieces one by one, as the handler calls them
    _same(fx, f"dit_cases[{i}].metas_string(dict)", P.metas_string(case["metas_dict"]), case["metas_string"])
    _same(fx, f"dit_cases[{i}].caption_prompt(parts)",
          P.caption_prompt(case["instruction"], inp["caption"], case["metas_string"]), case["caption_prompt"])
    _same(fx, f"dit_cases[{i}].is_cover(instruction)", P.is_cover_by_instruction(case["instruction"]),
          case["is_cover_by_instruction"])


def _check_lm(fx) -> None:
    lm = fx.meta["lm"]
    caption, lyrics, cot = lm["caption"], lm["lyrics"], lm["cot_text"]
    _same(fx, "lm.lm_instruction", P.DEFAULT_LM_INSTRUCTION, lm["lm_instruction"])
    phases = {
        "phase1_cot": (P.lm_cot_messages(caption, lyrics), True),
        "phase1_cot_unconditional": (P.lm_cot_messages(caption, lyrics, unconditional=True), True),
        "phase2_codes": (P.lm_codes_messages(caption, lyrics, cot), False),
        "phase2_codes_unconditional": (P.lm_codes_messages(caption, lyrics, cot, unconditional=True), False),
    }
    for name, (messages, generation_prompt) in phases.items():
        rec = lm[name]
        _same(fx, f"lm.{name}.messages", messages, rec["messages"])
        _same(fx, f"lm.{name}.add_generation_prompt", generation_prompt, rec["add_generation_prompt"])
        _same(fx, f"lm.{name}.rendered", P.render_chat(messages, generation_prompt), rec["rendered"])
    # the fixture recorded upstream 53067ab: the closed-turn layout of the phase-2 prompt
    _same(fx, "lm.phase1_cot.prompt", P.lm_cot_prompt(caption, lyrics), lm["phase1_cot"]["rendered"])
    _same(fx, "lm.phase1_cot_unconditional.prompt", P.lm_cot_prompt(caption, lyrics, unconditional=True),
          lm["phase1_cot_unconditional"]["rendered"])
    _same(fx, "lm.phase2_codes.prompt", P.lm_codes_prompt(caption, lyrics, cot, style="closed_turn"),
          lm["phase2_codes"]["rendered"])
    _same(fx, "lm.phase2_codes_unconditional.prompt",
          P.lm_codes_prompt(caption, lyrics, cot, unconditional=True, style="closed_turn"),
          lm["phase2_codes_unconditional"]["rendered"])
    parsed, _ = P.parse_lm_output(cot)
    _same(fx, "lm.cot_text", P.format_cot(parsed), cot)


def _check_lm_parse(fx) -> None:
    rec = fx.meta["lm_parse"]
    metadata, codes = P.parse_lm_output(rec["output_text"])
    _same(fx, "lm_parse.metadata", metadata, rec["metadata"])
    _same(fx, "lm_parse.audio_codes", codes, rec["audio_codes"])


def run_prompts(fx) -> None:
    _check_constants(fx)
    for i, case in enumerate(fx.meta["dit_cases"]):
        _check_dit_case(fx, i, case)
    _check_lm(fx)
    _check_lm_parse(fx)


RUNNERS = {
    "v15.qwen3_embed": run_qwen3_embed,
    "v15.lyric_embed": run_lyric_embed,
    "v15.prompts": run_prompts,
}
