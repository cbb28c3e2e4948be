"""The shipped workflows: each UI workflow is valid for the frontend and converts exactly to its API
twin; every API workflow runs through NODE_CLASS_MAPPINGS on a tiny random model written to disk in
the published ComfyUI layout and loaded by the real loader, with the core audio nodes stood in."""

from __future__ import annotations

import json
import math

import pytest
import torch

from workflow_tools import (
    CORE_NODES, FRONTEND_ONLY, REPO, WIDGET_TYPES, has_control_slot, lyrics_vocab,
    node_inputs, run_api, ui_to_api, widget_slots,
)

NAMES = ["text_to_audio", "audio_to_audio", "inpaint", "outpaint"]  # the last two: issue 4 (editing)
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
CHECKPOINT = "ace_step_v1_3.5b.safetensors"


VOCAB = lyrics_vocab()


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("ACEFORGE_QUIET", "1")
    if VOCAB is not None:
        monkeypatch.setenv("ACEFORGE_LYRICS_VOCAB", str(VOCAB))


def ui(name):
    return json.loads((REPO / "workflows" / f"{name}.json").read_text(encoding="utf-8"))


def api(name):
    return json.loads((REPO / "workflows" / "api" / f"{name}.json").read_text(encoding="utf-8"))


def test_every_workflow_has_a_twin():
    ui_names = sorted(p.stem for p in (REPO / "workflows").glob("*.json"))
    api_names = sorted(p.stem for p in (REPO / "workflows" / "api").glob("*.json"))
    assert ui_names == api_names and set(NAMES) <= set(ui_names)  # + the ACE-Step 1.5 ones (test_v15_workflows)


@pytest.mark.parametrize("name", NAMES)
def test_ui_converts_to_api_twin(pack, name):
    assert ui_to_api(pack, ui(name)) == api(name)


@pytest.mark.parametrize("name", NAMES)
def test_ui_links_consistent(pack, name):
    wf = ui(name)
    assert wf["version"] == 0.4
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert len(nodes) == len(wf["nodes"])
    assert wf["last_node_id"] >= max(nodes)
    link_ids = [link[0] for link in wf["links"]]
    assert len(set(link_ids)) == len(link_ids) and wf["last_link_id"] >= max(link_ids)
    for link_id, src, src_slot, dst, dst_slot, typ in wf["links"]:
        out = nodes[src]["outputs"][src_slot]
        inp = nodes[dst]["inputs"][dst_slot]
        assert link_id in (out["links"] or []), f"link {link_id} missing from node {src} output"
        assert inp["link"] == link_id, f"link {link_id} missing from node {dst} input {inp['name']}"
        assert out["type"] == typ
        assert inp["type"] == typ or ("widget" in inp and typ in WIDGET_TYPES)
    for n in wf["nodes"]:
        for inp in n.get("inputs", []):
            if inp.get("link") is not None:
                assert inp["link"] in link_ids
        for out in n.get("outputs", []):
            for lid in out.get("links") or []:
                assert lid in link_ids
        if n["type"] not in FRONTEND_ONLY:
            declared = {name for name, _kind, _opts in node_inputs(pack, n["type"])}
            assert {i["name"] for i in n["inputs"]} <= declared
            assert n["properties"]["Node name for S&R"] == n["type"]
    # execution order respects the links
    order = {n["id"]: n["order"] for n in wf["nodes"]}
    assert all(order[src] < order[dst] for _l, src, _s, dst, _d, _t in wf["links"])


@pytest.mark.parametrize("name", NAMES)
def test_ui_widget_values_match_node_definitions(pack, name):
    for n in ui(name)["nodes"]:
        if n["type"] in FRONTEND_ONLY:
            continue
        values = n.get("widgets_values") or []
        slots = widget_slots(pack, n)
        expected = 0
        for wname, kind, options in node_inputs(pack, n["type"]):
            if kind in WIDGET_TYPES:
                expected += 1 + (1 if has_control_slot(wname, kind, options) else 0)
        expected += sum(1 for s in slots if "." in s[0]) + sum(
            1 for _n, k, _o in node_inputs(pack, n["type"]) if k == "DYNAMIC_COMBO")
        if n["type"] in CORE_NODES:
            assert len(values) >= expected  # upload widgets keep trailing helper values
        else:
            assert len(values) == expected, f"{n['type']}: {len(values)} widget values, expected {expected}"
        i = 0
        for wname, kind, options in node_inputs(pack, n["type"]):
            if kind not in WIDGET_TYPES:
                if kind == "DYNAMIC_COMBO":
                    i += 1 + len(options["options"][values[i]])
                continue
            value = values[i]
            if kind == "COMBO" and options.get("choices"):
                if not (n["type"] == "AceForge_CheckpointLoader"):  # model lists depend on the machine
                    assert value in options["choices"], f"{n['type']}.{wname}={value!r}"
            elif kind == "INT":
                assert isinstance(value, int) and options["min"] <= value <= options["max"], wname
            elif kind == "FLOAT":
                assert isinstance(value, (int, float)) and options["min"] <= value <= options["max"], wname
            elif kind == "BOOLEAN":
                assert isinstance(value, bool), wname
            elif kind == "STRING":
                assert isinstance(value, str), wname
            i += 1
            if has_control_slot(wname, kind, options):
                assert values[i] in CONTROL_VALUES
                i += 1


def test_converter_follows_frontend_rules(pack):
    """Seeds' control slot is skipped, linked widgets keep their slot, notes are not sent."""
    wf = ui("text_to_audio")
    sampler = next(n for n in wf["nodes"] if n["type"] == "AceForge_KSampler")
    assert sampler["widgets_values"][1] in CONTROL_VALUES
    prompt = ui_to_api(pack, wf)
    ks = prompt[str(sampler["id"])]["inputs"]
    assert ks["seed"] == sampler["widgets_values"][0] and ks["steps"] == sampler["widgets_values"][2]
    assert "control_after_generate" not in ks
    encoder = next(n for n in wf["nodes"] if n["type"] == "AceForge_TextEncodeAceStepAudio")
    enc = prompt[str(encoder["id"])]["inputs"]
    assert isinstance(enc["lyrics"], list) and enc["lyrics_strength"] == encoder["widgets_values"][2]
    assert all(v["class_type"] not in FRONTEND_ONLY for v in prompt.values())
    assert api("audio_to_audio")["8"]["inputs"]["format.quality"] == "V0"


# ------------------------------------------------------------------------------ execution

# the shipped values are the real ones (60 s, 60 steps, edits 20-40 s into a song); the example
# source here is 1.5 s, so the runs use these instead
FAST = {"seconds": 1.0, "steps": 3, "start_time": 0.4, "end_time": 1.0, "extend_before_duration": 0.5,
        "extend_after_duration": 1.0}
SOURCE_RATE, SOURCE_SECONDS = 48000, 1.5


@pytest.fixture(scope="module")
def models_root(tmp_path_factory, pack):
    from ace_core.v1.testing import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("comfy_models")
    write_tiny_checkpoint(root / "checkpoints" / CHECKPOINT, layout="comfy", seed=0)
    return root


@pytest.fixture()
def core_nodes(tmp_path):
    """Stand-ins for core LoadAudio / PreviewAudio / SaveAudioAdvanced (capture what they get)."""
    from ace_core.audio.io import load_audio, save_audio

    captured = {"saved": [], "previewed": [], "loaded": []}
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    t = torch.arange(int(SOURCE_SECONDS * SOURCE_RATE)) / SOURCE_RATE
    tone = 0.3 * torch.sin(2 * math.pi * 220 * t) + 0.05 * torch.randn(t.shape, generator=torch.Generator().manual_seed(1))
    save_audio(input_dir / "example.wav", tone[None], SOURCE_RATE)  # mono, 48 kHz, 1.5 s

    def load_audio_node(audio):
        waveform, rate = load_audio(input_dir / audio)
        out = {"waveform": waveform.unsqueeze(0), "sample_rate": rate}
        captured["loaded"].append(out)
        return (out,)

    def preview_audio(audio):
        captured["previewed"].append(audio)
        return (audio,)

    def save_audio_advanced(audio, filename_prefix, format, **sub):
        assert format in ("flac", "mp3", "opus") and set(sub) <= {"format.quality"}
        captured["saved"].append((audio, filename_prefix, format, sub))
        return (audio,)

    nodes = {"LoadAudio": load_audio_node, "PreviewAudio": preview_audio, "SaveAudioAdvanced": save_audio_advanced}
    return nodes, captured


def check_audio(audio, samples):
    w = audio["waveform"]
    assert audio["sample_rate"] == 44100
    assert w.dim() == 3 and w.shape[:2] == (1, 2) and w.shape[-1] == samples
    assert torch.isfinite(w).all()
    assert w.std() > 1e-4, "silent output"


@pytest.mark.skipif(VOCAB is None, reason="no ACE-Step v1 lyric vocabulary (../shared or $ACEFORGE_LYRICS_VOCAB)")
@pytest.mark.parametrize("name", NAMES)
def test_api_workflow_executes(pack, name, models_root, core_nodes):
    nodes, captured = core_nodes
    prompt, results = run_api(pack, api(name), models_root, nodes, FAST)
    classes = {v["class_type"] for v in prompt.values()}
    assert {"AceForge_CheckpointLoader", "AceForge_KSampler", "AceForge_VAEDecode"} <= classes
    assert captured["saved"], "nothing reached SaveAudioAdvanced"
    if name == "text_to_audio":
        frames = int(FAST["seconds"] * 44100 / 4096)
        romanizer = next(k for k, v in prompt.items() if v["class_type"] == "AceForge_LyricRomanizer")
        text, report = results[romanizer]
        assert "wo3" in text and "zh" in report  # the Chinese bridge line was romanised
        for audio, *_ in captured["saved"]:
            check_audio(audio, frames * 4096)
    elif name == "audio_to_audio":
        samples = round(SOURCE_SECONDS * 44100)  # the source's length, not padded to whole latent frames
        assert captured["previewed"]
        assert captured["saved"][0][3] == {"format.quality": "V0"}
        for audio, *_ in captured["saved"]:
            check_audio(audio, samples)
    else:  # edits come back spliced into the source: the source's rate and the edited length
        source = captured["loaded"][0]["waveform"]
        n = source.shape[-1]
        expected = n if name == "inpaint" else n + round(FAST["extend_before_duration"] * SOURCE_RATE) + round(
            FAST["extend_after_duration"] * SOURCE_RATE)
        for audio, *_ in captured["saved"] + [(a,) for a in captured["previewed"]]:
            w = audio["waveform"]
            assert audio["sample_rate"] == SOURCE_RATE and tuple(w.shape) == (1, 2, expected)
            assert torch.isfinite(w).all() and w.std() > 1e-4
        if name == "inpaint":  # before the edit (and its crossfade) the source is kept bit for bit
            keep = round(FAST["start_time"] * SOURCE_RATE) - round(0.04 * SOURCE_RATE)
            w = captured["saved"][0][0]["waveform"]
            assert torch.equal(w[0, :, :keep], source[0, 0, :keep].expand(2, keep))
