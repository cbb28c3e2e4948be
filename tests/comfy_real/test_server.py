"""The pack in a real ComfyUI: its nodes in /object_info, every API workflow run in every layout."""

from __future__ import annotations

import ast
import copy
import hashlib
import re

import pytest

from ace_core.comfy_client import PromptRejected

from checkpoints import workflow_family, workflow_layouts
from stage import FAST, OUTPUT_RATE, REPO, SOURCE, api_workflows, load_api, prepare, saved_audio


def pack_node_ids() -> set:
    """Node IDs of every ``NODE_CLASS_MAPPINGS = {...}`` literal in nodes/*.py (read, not imported)."""
    ids = set()
    for path in sorted((REPO / "nodes").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "NODE_CLASS_MAPPINGS" for t in node.targets):
                if isinstance(node.value, ast.Dict):
                    ids |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
    return ids


def test_every_pack_node_is_registered(server):
    ids = pack_node_ids()
    assert len(ids) >= 10, ids
    info = server.client.object_info()
    missing = sorted(ids - set(info))
    assert not missing, f"pack nodes absent from /object_info: {missing}"
    for node_id in ids:
        assert node_id.startswith("AceForge_"), f"{node_id}: pack node IDs start with AceForge_ (no core clash)"
        module = info[node_id].get("python_module", "")
        assert module.startswith("custom_nodes."), f"{node_id} is served by {module!r}, not the pack"
        assert info[node_id]["category"].startswith("audio/ACE-Step")
    core = {k for k, v in info.items() if not v.get("python_module", "").startswith("custom_nodes.")}
    assert not ids & core


def test_no_import_error_in_log(server):
    server.client.object_info()
    log = server.log_text().split("Starting server")[0]  # start-up only: later runs log their (expected) errors
    assert "IMPORT FAILED" not in log and "Cannot import" not in log, log[-3000:]
    pack = REPO.name
    for block in re.split(r"\n(?=\S)", log):
        assert not ("Traceback" in block and pack in block), block


# ------------------------------------------------------------------------------------------------
# every API workflow, every layout of its family

CASES = [pytest.param(path, layout, id=f"{path.stem}-{layout}")
         for path in api_workflows() for layout in workflow_layouts(load_api(path))]


def _kind(prompt: dict) -> str:
    classes = {v["class_type"] for v in prompt.values()}
    if any("Outpaint" in c for c in classes):
        return "outpaint"
    if any(k in c for c in classes for k in ("RepaintMask", "Retake", "FlowEdit")):
        return "edit"
    if any("EmptyAceStep" in c for c in classes):  # a LoadAudio here is a reference, not the source
        return "text_to_audio"
    if "LoadAudio" in classes:
        return "audio_to_audio" if not any(k in c for c in classes for k in ("Cover", "Extract", "Extend",
                                                                                  "Repaint", "Lego")) else "other"
    return "text_to_audio"


def _node_input(prompt: dict, name: str, default=None):
    for node in prompt.values():
        value = node["inputs"].get(name)
        if value is not None and not isinstance(value, list):
            return value
    return default


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("path,layout", CASES)
def test_api_workflow_runs(server, path, layout):
    import soundfile as sf

    prompt = load_api(path)
    family = workflow_family(prompt)
    prompt = prepare(server, copy.deepcopy(prompt), family, layout)
    source = server.input / f"aceforge_source_{family}.wav"
    before = _digest(source)
    try:
        entry = server.run(prompt)
    except PromptRejected as exc:
        pytest.fail(f"{path.name} [{layout}] refused: " + "; ".join(exc.lines(prompt)))
    status = entry["status"]
    assert status["status_str"] == "success", status.get("messages")
    files = saved_audio(server, entry)
    assert files, f"{path.name}: no audio in the outputs {entry['outputs']}"
    assert _digest(source) == before, "the source file was changed"

    src, src_rate = sf.read(str(source), dtype="float32", always_2d=True)  # (L, C)
    kind = _kind(prompt)
    rate = OUTPUT_RATE[family]
    if kind == "outpaint":
        rate = src_rate
        expected = len(src) + round(FAST[family]["extend_before_duration"] * src_rate) + round(
            FAST[family]["extend_after_duration"] * src_rate)
    elif kind == "edit":
        rate, expected = src_rate, len(src)
    elif kind == "audio_to_audio":  # the source's length at the model's rate (issue 12, defect 12)
        expected = round(len(src) * rate / src_rate)
    else:
        expected = None
    for file in files:
        data, file_rate = sf.read(str(file), dtype="float32", always_2d=True)
        where = f"{path.name} [{layout}] {file.name}"
        assert data.shape[1] == 2, f"{where}: {data.shape[1]} channels"
        if kind in ("outpaint", "edit", "audio_to_audio", "text_to_audio"):
            assert file_rate == rate, f"{where}: {file_rate} Hz"
        assert (abs(data).max() > 1e-4) and not (data != data).any(), f"{where}: silent or NaN"
        if expected is not None:
            assert len(data) == expected, f"{where}: {len(data)} samples, expected {expected}"
        elif kind == "text_to_audio":
            seconds = float(_node_input(prompt, "seconds", _node_input(prompt, "duration", FAST[family]["seconds"])))
            assert abs(len(data) / file_rate - seconds) <= 0.1, f"{where}: {len(data) / file_rate:.3f} s"
        if kind == "edit" and _node_input(prompt, "start_time") is not None:  # the source before the edit is kept
            crossfade = float(_node_input(prompt, "crossfade_ms", 40.0)) / 1000
            keep = round((float(_node_input(prompt, "start_time")) - crossfade) * src_rate)
            assert keep > 0
            diff = abs(data[:keep] - src[:keep, :1]).max()
            assert diff <= 1.5 / 32768, f"{where}: the kept part differs from the source by {diff}"
        if kind == "outpaint":
            crossfade = float(_node_input(prompt, "crossfade_ms", 40.0)) / 1000
            offset = round(FAST[family]["extend_before_duration"] * src_rate)
            margin = round(crossfade * src_rate)
            kept = data[offset + margin: offset + len(src) - margin]
            diff = abs(kept - src[margin: len(src) - margin, :1]).max()
            assert diff <= 1.5 / 32768, f"{where}: the source inside the outpaint differs by {diff}"
    assert server.alive()
