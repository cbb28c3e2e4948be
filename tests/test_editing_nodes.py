"""The editing nodes (RepaintMask, Outpaint, Retake, FlowEdit): definitions, behaviour, bad input, and
the shape of the inpaint / outpaint workflows (tests/test_workflows.py converts and executes them)."""

from __future__ import annotations

import importlib
import json

import pytest
import torch

from ace_core.v1 import edit_pipeline as ep
from ace_core.v1 import pipeline
from editing_tools import conditioning, tiny_bundle, tone
from workflow_tools import REPO, ui_to_api

NODE_IDS = ("AceForge_RepaintMask", "AceForge_Outpaint", "AceForge_Retake", "AceForge_FlowEdit")
WORKFLOWS = ("inpaint", "outpaint")


@pytest.fixture(scope="module")
def editing(pack):
    return importlib.import_module(pack.__name__ + ".nodes.editing")


def pack_module(pack, name: str):
    """The pack's own copy of a module (loaded by path as ComfyUI does; its classes differ from the
    top-level ``ace_core`` ones, so objects built by nodes go through the pack's functions)."""
    root = pack.__name__.split(".")[0]
    return importlib.import_module(f"{root}.{name}")


# ------------------------------------------------------------------------------ definitions

def test_node_definitions(pack, editing):
    assert set(editing.NODE_CLASS_MAPPINGS) == set(NODE_IDS) == set(editing.NODE_DISPLAY_NAME_MAPPINGS)
    assert set(NODE_IDS) <= set(pack.NODE_CLASS_MAPPINGS)  # merged into the pack's mappings
    assert editing.NODE_CLASS_MAPPINGS["AceForge_RepaintMask"].__name__ == "RepaintMask"
    assert editing.NODE_CLASS_MAPPINGS["AceForge_Outpaint"].__name__ == "Outpaint"
    for node_id, cls in editing.NODE_CLASS_MAPPINGS.items():
        assert cls.CATEGORY == "audio/ACE-Step" and len(cls.DESCRIPTION) > 80
        assert cls.RETURN_TYPES == ("LATENT",) and callable(getattr(cls(), cls.FUNCTION))
        spec = cls.INPUT_TYPES()
        for section in spec.values():
            for name, s in section.items():
                assert len(s) > 1 and s[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
        assert (REPO / "web" / "docs" / f"{node_id}.md").exists()


def test_runcomfy_defaults(editing):
    req = editing.RepaintMask.INPUT_TYPES()["required"]
    assert req["start_time"][1]["default"] == 0.0 and req["end_time"][1]["default"] == 30.0
    assert req["start_time_relative_to"][0] == ["start", "end"]
    assert req["start_time_relative_to"][1]["default"] == req["end_time_relative_to"][1]["default"] == "start"
    out = editing.Outpaint.INPUT_TYPES()["required"]
    assert out["extend_before_duration"][1]["default"] == 0.0 and out["extend_after_duration"][1]["default"] == 30.0
    # issue 12 (9): the declared maximum is what every family accepts (v1: its 240 s window less context)
    assert out["extend_before_duration"][1]["max"] == out["extend_after_duration"][1]["max"] == editing.OUTPAINT_MAX_SECONDS
    assert 238.0 <= editing.OUTPAINT_MAX_SECONDS < 240.0


# ------------------------------------------------------------------------------ behaviour

@pytest.fixture(scope="module")
def bundle():
    return tiny_bundle()


@pytest.fixture(scope="module")
def source(bundle):
    return ep.encode_source(bundle.vae, {"waveform": tone(3.0, 44100), "sample_rate": 44100})


def test_repaint_node_latent(editing, source):
    (latent,) = editing.RepaintMask().apply(source, 1.0, "start", 0.5, "end", 0.7, 3, 25.0, "linear")
    edit = latent[ep.EDIT_KEY]
    assert edit["task"] == "repaint" and edit["variance"] == 0.7 and edit["crossfade_curve"] == "linear"
    assert latent["samples"].shape == source["samples"].shape and torch.equal(latent["samples"], source["samples"])
    plan = edit["plan"]
    assert plan["regen"] == [[int(1.0 * 44100 / 4096), int(2.5 * 44100 / 4096)]]
    assert latent["noise_mask"].shape == (1, 1, 1, source["samples"].shape[-1])
    assert edit["source"]["waveform"] is source[ep.SOURCE_KEY]["waveform"]  # a reference, not a copy


def test_bad_input_names_the_input(editing, source):
    # the nodes raise the pack's own InputError (loaded as ComfyUI loads it), a ValueError
    rm, op = editing.RepaintMask(), editing.Outpaint()
    with pytest.raises(ValueError, match="start_time"):
        rm.apply(source, 2.0, "start", 1.0, "start")
    with pytest.raises(ValueError, match="end_time"):
        rm.apply(source, 0.0, "start", 30.0, "start")  # the default end is past a 3 s source
    with pytest.raises(ValueError, match="extend_before_duration"):
        op.apply(source, -1.0, 10.0)
    with pytest.raises(ValueError, match="both are 0"):
        op.apply(source, 0.0, 0.0)
    with pytest.raises(ValueError, match="another model family"):
        rm.apply({"samples": torch.zeros(1, 64, 40), "type": "audio"}, 0.0, "start", 1.0, "start")
    (edit,) = rm.apply(source, 0.5, "start", 1.5, "start")
    shorter = dict(edit, samples=edit["samples"][..., :-3])
    with pytest.raises(ValueError, match="another length"):
        ep.run_edit(None, shorter, None, seed=0)
    with pytest.raises(ValueError, match="already an edit"):
        rm.apply(edit, 0.5, "start", 1.5, "start")


def test_flowedit_presets(editing, source, bundle):
    conv = pack_module(editing, "nodes.conditioning")
    src_cond = conv.to_comfy(conditioning(bundle, seed=3))
    (lyr,) = editing.FlowEdit().apply(source, src_cond, "lyrics only", 0.0, 0.0, 1)
    (rmx,) = editing.FlowEdit().apply(source, src_cond, "remix", 0.0, 0.0, 2)
    (cus,) = editing.FlowEdit().apply(source, src_cond, "custom", 0.3, 0.5, 1)
    got = [(x[ep.EDIT_KEY]["flowedit"]["n_min"], x[ep.EDIT_KEY]["flowedit"]["n_max"]) for x in (lyr, rmx, cus)]
    assert got == [(0.6, 1.0), (0.2, 0.4), (0.3, 0.5)]
    with pytest.raises(ValueError, match="n_min"):
        editing.FlowEdit().apply(source, src_cond, "custom", 0.8, 0.5, 1)
    pep, ppl = pack_module(editing, "ace_core.v1.edit_pipeline"), pack_module(editing, "ace_core.v1.pipeline")
    target = conv.from_comfy(conv.to_comfy(conditioning(bundle, seed=4)), "positive")  # the pack's TextConditioning
    out = pep.run_edit(bundle, rmx, target, seed=1, settings=ppl.SamplerSettings(steps=5))
    assert out["samples"].shape == source["samples"].shape and torch.isfinite(out["samples"]).all()
    assert not torch.equal(out["samples"], source["samples"])


def test_retake_is_the_official_variance_mix(editing, bundle):
    empty = pipeline.empty_latent(2.0)
    cond = conditioning(bundle)
    settings = pipeline.SamplerSettings(steps=4, guidance_scale=5.0)
    original = pipeline.generate(bundle, cond, latent=empty["samples"], seed=11, settings=settings)
    (same,) = editing.Retake().apply(empty, 11, 0.0)
    again = ep.run_edit(bundle, same, cond, seed=99, settings=settings)["samples"]
    assert torch.allclose(again, original, atol=1e-5)  # variance 0 gives the original back
    (var,) = editing.Retake().apply(empty, 11, 0.5)
    varied = ep.run_edit(bundle, var, cond, seed=99, settings=settings)["samples"]
    fresh = pipeline.generate(bundle, cond, latent=empty["samples"], seed=99, settings=settings)
    assert not torch.allclose(varied, original, atol=1e-3) and not torch.allclose(varied, fresh, atol=1e-3)


# ------------------------------------------------------------------------------ workflows

def ui(name):
    return json.loads((REPO / "workflows" / f"{name}.json").read_text(encoding="utf-8"))


def api(name):
    return json.loads((REPO / "workflows" / "api" / f"{name}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_chain(pack, name):
    """LoadAudio -> VAE Encode -> RepaintMask / Outpaint -> KSampler -> VAE Decode -> SaveAudioAdvanced."""
    wf = ui(name)
    assert ui_to_api(pack, wf) == api(name)
    types = {n["id"]: n["type"] for n in wf["nodes"]}
    edges = {(types[src], types[dst], next(i["name"] for i in nodes["inputs"] if i["link"] == lid))
             for lid, src, _s, dst, _d, _t in wf["links"] for nodes in wf["nodes"] if nodes["id"] == dst}
    edit = "AceForge_RepaintMask" if name == "inpaint" else "AceForge_Outpaint"
    for edge in [("LoadAudio", "AceForge_VAEEncode", "audio"), ("AceForge_VAEEncode", edit, "source"),
                 (edit, "AceForge_KSampler", "latent"), ("AceForge_KSampler", "AceForge_VAEDecode", "latent"),
                 ("AceForge_VAEDecode", "SaveAudioAdvanced", "audio")]:
        assert edge in edges, edge
