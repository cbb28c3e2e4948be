"""The ACE-Step 1.5 workflows (issue 9): each UI workflow converts to its API twin, and every API
workflow runs end to end through NODE_CLASS_MAPPINGS on tiny random 1.5 checkpoints written in the
published layouts (ComfyUI's all-in-one file; split files for the base model), writing audio of the
asked length at 48 kHz."""

from __future__ import annotations

import math

import pytest
import torch

from test_workflows import api, ui
from workflow_tools import run_api, ui_to_api

pytestmark = pytest.mark.usefixtures("quiet")

NAMES = ["ace15_text_to_music", "ace15_cover", "ace15_repaint", "ace15_extend", "ace15_extract_stem",
         "ace15_reference_timbre"]
RATE = 48000
SOURCE_SECONDS = 1.0
FAST = {"seconds": 10.0, "steps": 2, "start_time": 0.4, "end_time": 0.8, "extend_after_duration": 0.5,
        "duration": 10.0}


@pytest.fixture(scope="module")
def models_root(tmp_path_factory):
    from ace_core.v15.bundle import save_v15_all_in_one, save_v15_split, tiny_v15_bundle

    root = tmp_path_factory.mktemp("comfy15")
    save_v15_all_in_one(tiny_v15_bundle(seed=0, kind="turbo"), root / "checkpoints" / "ace_step_1.5_turbo_aio.safetensors")
    save_v15_split(tiny_v15_bundle(seed=1, kind="base"), root)
    return root


@pytest.fixture()
def core_nodes(tmp_path):
    from ace_core.audio.io import load_audio, save_audio

    captured = {"saved": [], "loaded": []}
    t = torch.arange(int(SOURCE_SECONDS * RATE)) / RATE
    tone = 0.3 * torch.sin(2 * math.pi * 220 * t) + 0.05 * torch.randn(t.shape, generator=torch.Generator().manual_seed(1))
    save_audio(tmp_path / "example.wav", tone[None], RATE)

    def load_audio_node(audio):
        waveform, rate = load_audio(tmp_path / audio)
        out = {"waveform": waveform.unsqueeze(0), "sample_rate": rate}
        captured["loaded"].append(out)
        return (out,)

    def save_audio_advanced(audio, filename_prefix, format, **sub):
        captured["saved"].append(audio)
        return (audio,)

    return {"LoadAudio": load_audio_node, "SaveAudioAdvanced": save_audio_advanced}, captured


@pytest.mark.parametrize("name", NAMES)
def test_ui_converts_to_api_twin(pack, name):
    assert ui_to_api(pack, ui(name)) == api(name)
    assert all(v["class_type"].startswith("AceForge_") or v["class_type"] in ("LoadAudio", "SaveAudioAdvanced")
               for v in api(name).values())


@pytest.mark.parametrize("name", NAMES)
def test_api_workflow_runs_end_to_end(pack, name, models_root, core_nodes):
    nodes, captured = core_nodes
    run_api(pack, api(name), models_root, nodes, FAST)
    (audio,) = captured["saved"]
    w = audio["waveform"]
    assert audio["sample_rate"] == RATE and w.dim() == 3 and w.shape[:2] == (1, 2)
    assert torch.isfinite(w).all() and w.std() > 1e-5
    n = round(SOURCE_SECONDS * RATE)
    expected = {"ace15_text_to_music": FAST["seconds"] * RATE, "ace15_reference_timbre": FAST["seconds"] * RATE,
                "ace15_extend": n + FAST["extend_after_duration"] * RATE}.get(name, n)
    assert w.shape[-1] == expected
    if name == "ace15_repaint":  # before the section (and its 25 ms crossfade) the source comes back unchanged
        source = captured["loaded"][0]["waveform"]
        keep = round(FAST["start_time"] * RATE) - round(0.025 * RATE)
        assert torch.equal(w[0, :, :keep], source[0, 0, :keep].expand(2, keep))
    if name == "ace15_extend":  # the source is kept and the new part is not silence
        source = captured["loaded"][0]["waveform"]
        assert torch.equal(w[0, :, :n - 2000], source[0, 0, :n - 2000].expand(2, n - 2000))
        assert w[..., n + 2000:].std() > 1e-5
