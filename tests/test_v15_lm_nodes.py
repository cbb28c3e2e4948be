"""The 5 Hz LM nodes and the LM text-to-music workflow, run end to end on tiny random models
(a 1.5 all-in-one holding a tiny LM with the real vocabulary)."""

from __future__ import annotations

import copy
import functools
import json

import pytest
import torch

from workflow_tools import REPO, execute, ui_to_api

NAME = "ace15_text_to_music_lm"
CHECKPOINT = "ace_step_1.5_turbo_aio.safetensors"


@pytest.fixture(scope="module")
def models_root(tmp_path_factory):
    from ace_core.v15.bundle import save_v15_all_in_one, tiny_v15_bundle
    from ace_core.v15.lm import tiny_five_hz_lm

    root = tmp_path_factory.mktemp("comfy_models")
    (root / "checkpoints").mkdir()
    save_v15_all_in_one(tiny_v15_bundle(), root / "checkpoints" / CHECKPOINT, lm=tiny_five_hz_lm().model)
    return root


def _workflow(folder: str) -> dict:
    return json.loads((REPO / "workflows" / folder / f"{NAME}.json").read_text(encoding="utf-8"))


def test_ui_matches_api_twin(pack):
    ui = json.loads((REPO / "workflows" / f"{NAME}.json").read_text(encoding="utf-8"))
    assert ui_to_api(pack, ui) == _workflow("api")
    ids = {n["id"] for n in ui["nodes"]}
    for link_id, src, _, dst, _, _ in ui["links"]:
        assert src in ids and dst in ids, link_id


def test_lm_workflow_executes(pack, models_root, monkeypatch):
    monkeypatch.setenv("ACEFORGE_QUIET", "1")
    compat = pack.nodes.comfy_compat
    compat.set_models_dir(models_root)
    saved = []
    try:
        prompt = copy.deepcopy(_workflow("api"))
        think = next(v for v in prompt.values() if v["class_type"] == "AceForge_AceStepThink")
        think["inputs"].update(duration=10.0, think_caption=False, think_language=False, temperature=1.0)
        sampler = next(v for v in prompt.values() if v["class_type"] == "AceForge_KSampler")
        sampler["inputs"]["steps"] = 1
        results = execute(pack, prompt, {"SaveAudioAdvanced": lambda audio, **kw: saved.append(audio) or (audio,)})
    finally:
        compat.set_models_dir(None)
    node_id = next(k for k, v in prompt.items() if v["class_type"] == "AceForge_AceStepThink")
    cond, caption, bpm, keyscale, timesig, language, duration, codes = results[node_id]
    assert duration == 10.0 and 30 <= bpm <= 300 and keyscale != "N/A" and int(timesig) in (2, 3, 4, 6)
    assert len(cond[0][1]["audio_codes"][0]) == 50 and codes.count("<|audio_code_") == 50
    audio = saved[0]
    assert audio["waveform"].shape[-1] == pytest.approx(10 * audio["sample_rate"], abs=2000)
    assert torch.isfinite(audio["waveform"]).all()


def test_write_lyrics_node_and_lm_loader_errors(pack, models_root, monkeypatch):
    monkeypatch.setenv("ACEFORGE_QUIET", "1")
    lm_nodes = __import__(f"{pack.__name__}.nodes.lm", fromlist=["x"])
    errors = __import__(f"{pack.__name__}.ace_core.errors", fromlist=["x"])
    with pytest.raises(errors.InputError, match="from the checkpoint"):
        lm_nodes.LoadAceStepLM().load(lm_nodes.FROM_CHECKPOINT)
    compat = pack.nodes.comfy_compat
    compat.set_models_dir(models_root)
    try:
        from_ckpt = pack.NODE_CLASS_MAPPINGS["AceForge_CheckpointLoader"]
        out = getattr(from_ckpt(), from_ckpt.FUNCTION)(CHECKPOINT, "fp32")
        (model,) = out["result"] if isinstance(out, dict) else out
        (lm,) = lm_nodes.LoadAceStepLM().load(lm_nodes.FROM_CHECKPOINT, "fp32", "cpu", model=model)
    finally:
        compat.set_models_dir(None)
    short = dict(caption_tokens=8, max_lyrics_tokens=8)  # a random LM would write the maximum
    monkeypatch.setattr(lm_nodes, "format_song", functools.partial(lm_nodes.format_song, **short))
    writer = lm_nodes.AceStepWriteLyrics()
    out = writer.write(lm, "format", "", False, "rock", "[verse]\nhey", vocal_language="en", temperature=0.0, seed=0)
    caption, lyrics, bpm, keyscale, timesig, language, duration = out
    assert language == "en" and 30 <= bpm <= 300 and 10 <= duration <= 600 and caption and lyrics
