"""ACE-Step 1.5 through the shared AceForge nodes (issue 9) and the node defects of issue 12
(3: symlinked model files, 9: Outpaint's declared range, 10: denoise after the edit nodes,
11: repaint ranges checked before running). Tiny random 1.5 checkpoints in every published layout."""

from __future__ import annotations

import importlib
import math
import os

import pytest
import torch

from workflow_tools import models_under

pytestmark = pytest.mark.usefixtures("quiet")

RATE = 48000


def sub(pack, name):
    return importlib.import_module(f"{pack.__name__}.{name}")


def call(pack, node_id, *args, **kwargs):
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    out = getattr(cls(), cls.FUNCTION)(*args, **kwargs)
    return out["result"] if isinstance(out, dict) else out


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from ace_core.v15.bundle import save_v15_all_in_one, save_v15_official, save_v15_split, tiny_v15_bundle
    from ace_core.v1.testing import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("models15")
    turbo = tiny_v15_bundle(seed=0, kind="turbo")
    save_v15_all_in_one(turbo, root / "checkpoints" / "ace_step_1.5_turbo_aio.safetensors")
    save_v15_split(tiny_v15_bundle(seed=1, kind="base"), root)
    save_v15_official(tiny_v15_bundle(seed=2, kind="sft"), root / "ace_step" / "ACE-Step-1.5")
    write_tiny_checkpoint(root / "checkpoints" / "ace_step_v1_3.5b.safetensors", layout="comfy", seed=0)
    outside = tmp_path_factory.mktemp("elsewhere") / "linked_turbo.safetensors"
    os.replace(root / "checkpoints" / "ace_step_1.5_turbo_aio.safetensors", outside)
    os.symlink(outside, root / "checkpoints" / "ace_step_1.5_turbo_aio.safetensors")  # issue 12 (3)
    return root


@pytest.fixture()
def models(pack, root):
    with models_under(pack, root):
        yield root


@pytest.fixture()
def turbo(pack, models):
    return call(pack, "AceForge_CheckpointLoader", "ace_step_1.5_turbo_aio.safetensors", "fp32")[0]


@pytest.fixture()
def base(pack, models):
    return call(pack, "AceForge_SplitCheckpointLoader", "acestep_v1.5_base.safetensors",
                "qwen_0.6b_ace15.safetensors", "ace_1.5_vae.safetensors", "fp32")[0]


def tone(seconds=1.0, rate=RATE):
    t = torch.arange(int(seconds * rate)) / rate
    return {"waveform": (0.3 * torch.sin(2 * math.pi * 330 * t))[None, None].repeat(1, 2, 1), "sample_rate": rate}


def encode_text(pack, model, **meta):
    return call(pack, "AceForge_TextEncodeAceStepAudio", model, "pop, piano", "[verse]\nla la la", 1.0, "auto", **meta)[0]


def err(pack):
    return sub(pack, "ace_core.errors").InputError


# ------------------------------------------------------------------------------------ loading


def test_loader_takes_every_layout_and_shows_the_variant(pack, models):
    listed = pack.NODE_CLASS_MAPPINGS["AceForge_CheckpointLoader"].INPUT_TYPES()["required"]["ckpt_name"][0]
    assert "ace_step_1.5_turbo_aio.safetensors" in listed and "ACE-Step-1.5/" in listed
    cls = pack.NODE_CLASS_MAPPINGS["AceForge_CheckpointLoader"]
    out = cls().load("ace_step_1.5_turbo_aio.safetensors", "fp32")  # a symlink (issue 12, 3): listed and loaded
    assert "ACE-Step 1.5" in out["ui"]["text"][0] and "turbo" in out["ui"]["text"][0]
    official = cls().load("ACE-Step-1.5/", "fp32")
    assert "sft" in official["ui"]["text"][0] and "official" in official["ui"]["text"][0]
    split = pack.NODE_CLASS_MAPPINGS["AceForge_SplitCheckpointLoader"]
    req = split.INPUT_TYPES()["required"]
    assert "acestep_v1.5_base.safetensors" in req["dit_name"][0] and "ace_1.5_vae.safetensors" in req["vae_name"][0]
    shown = split().load("acestep_v1.5_base.safetensors", "qwen_0.6b_ace15.safetensors", "ace_1.5_vae.safetensors", "fp32")
    assert "base" in shown["ui"]["text"][0] and shown["result"][0].family == "ace_v15"
    with pytest.raises(err(pack), match="ckpt_name"):
        pack.nodes.comfy_compat.resolve_checkpoint("../elsewhere/linked_turbo.safetensors")


# ------------------------------------------------------------------------------------ text to music


def test_text_to_music_turbo_through_the_shared_nodes(pack, turbo):
    cond = call(pack, "AceForge_TextEncodeAceStepAudio", turbo, "pop", "[verse]\nla", 1.0, "auto",
                bpm=120, keyscale="F# minor", timesignature="3", vocal_language="zh", duration=10.0)[0]
    meta = cond[0][1]
    assert cond[0][0].shape[-1] == turbo.bundle.text_encoder.config.hidden_size
    assert "conditioning_lyrics" in meta and "bpm: 120" in meta["aceforge_v15"]["prompts"][0].caption_prompt
    (latent,) = call(pack, "AceForge_EmptyAceStepLatentAudio", 10.0, 2, model=turbo)
    assert latent["samples"].shape == (2, 64, 250)  # core's 1.5 layout, 25 Hz
    (out,) = call(pack, "AceForge_KSampler", turbo, cond, latent, 7, 2, 0.0, "euler", "apg", 1.0)
    (again,) = call(pack, "AceForge_KSampler", turbo, cond, latent, 7, 2, 0.0, "euler", "apg", 1.0)
    assert out["samples"].shape == (2, 64, 250) and torch.equal(out["samples"], again["samples"])
    assert not torch.equal(out["samples"][0], out["samples"][1])  # item k from seed + k
    (audio,) = call(pack, "AceForge_VAEDecode", turbo, out)
    assert audio["sample_rate"] == RATE and audio["waveform"].shape == (2, 2, 10 * RATE)
    # core's untagged 1.5 latent (EmptyAceStep1.5LatentAudio) is taken as it is
    (core,) = call(pack, "AceForge_KSampler", turbo, cond, {"samples": torch.zeros(1, 64, 250), "type": "audio"},
                   7, 1, 0.0, "pingpong", "apg", 1.0)
    assert core["samples"].shape == (1, 64, 250)


def test_notes_for_settings_without_effect(pack, turbo):
    cond = encode_text(pack, turbo)
    (latent,) = call(pack, "AceForge_EmptyAceStepLatentAudio", 10.0, 1, model=turbo)
    cls = pack.NODE_CLASS_MAPPINGS["AceForge_KSampler"]
    out = cls().sample(turbo, cond, latent, 0, 1, 7.0, "euler", "apg", 1.0, omega=5.0)
    notes = " ".join(out["ui"]["text"])
    assert "guidance_scale" in notes and "omega" in notes
    enc = pack.NODE_CLASS_MAPPINGS["AceForge_TextEncodeAceStepAudio"]().encode(turbo, "pop", "la", 2.0, "auto")
    assert "lyrics_strength has no effect" in " ".join(enc["ui"]["text"])
    with pytest.raises(err(pack), match="steps.*1–20"):
        call(pack, "AceForge_KSampler", turbo, cond, latent, 0, 30, 0.0, "euler", "apg", 1.0)
    with pytest.raises(err(pack), match="sampler.*1.5"):
        call(pack, "AceForge_KSampler", turbo, cond, latent, 0, 2, 0.0, "heun", "apg", 1.0)


def test_bad_inputs_name_the_input(pack, turbo, models):
    (v1,) = call(pack, "AceForge_CheckpointLoader", "ace_step_v1_3.5b.safetensors", "fp32")
    cond = encode_text(pack, turbo)
    (latent15,) = call(pack, "AceForge_EmptyAceStepLatentAudio", 10.0, 1, model=turbo)
    (latent1,) = call(pack, "AceForge_EmptyAceStepLatentAudio", 2.0, 1)
    E = err(pack)
    with pytest.raises(E, match="latent.*ace_v15"):  # a 1.5 latent into a v1 model
        call(pack, "AceForge_KSampler", v1, encode_text(pack, v1), latent15, 0, 2, 0.0, "euler", "apg", 1.0)
    with pytest.raises(E, match="latent.*ACE-Step 1.5"):  # and the reverse
        call(pack, "AceForge_KSampler", turbo, cond, latent1, 0, 2, 0.0, "euler", "apg", 1.0)
    with pytest.raises(E, match="positive.*1.5"):  # v1 conditioning into a 1.5 model
        call(pack, "AceForge_KSampler", turbo, encode_text(pack, v1), latent15, 0, 2, 0.0, "euler", "apg", 1.0)
    with pytest.raises(E, match="seconds.*10"):
        call(pack, "AceForge_EmptyAceStepLatentAudio", 5.0, 1, model=turbo)
    with pytest.raises(E, match="keyscale"):
        encode_text(pack, turbo, keyscale="H major")
    with pytest.raises(E, match="language"):
        encode_text(pack, turbo, vocal_language="xx")
    with pytest.raises(E, match="bpm"):
        turbo.adapter.check_text("pop", "", bpm=-5)
    node = pack.NODE_CLASS_MAPPINGS["AceForge_TextEncodeAceStepAudio"]
    assert "bpm" in node.VALIDATE_INPUTS(bpm=10) and node.VALIDATE_INPUTS(bpm=0, duration=0.0) is True
    (source,) = call(pack, "AceForge_VAEEncode", turbo, tone(1.0))
    with pytest.raises(E, match="task.*base"):  # a stem task on turbo
        (stem,) = call(pack, "AceForge_Stems", source, "extract", "vocals", "")
        call(pack, "AceForge_KSampler", turbo, cond, stem, 0, 2, 0.0, "euler", "apg", 1.0)
    with pytest.raises(E, match="reference_audio.*0 s"):
        call(pack, "AceForge_ReferenceTimbre", turbo, cond, {"waveform": torch.zeros(1, 2, 0), "sample_rate": RATE})
    long = {"samples": torch.zeros(()).expand(1, 64, 16000), "type": "audio", "aceforge_family": "ace_v15",
            "aceforge_source": {"waveform": torch.zeros(()).expand(1, 1, 640 * 8000), "sample_rate": 8000,
                                "encoded": False}}
    with pytest.raises(E, match="source.*600 s"):  # a cover source longer than the model takes
        call(pack, "AceForge_Cover", long, 1.0, 0.0, "cover")
    with pytest.raises(E, match="flowedit"):
        call(pack, "AceForge_FlowEdit", source, cond)
    with pytest.raises(E, match="reference_timbre"):
        call(pack, "AceForge_ReferenceTimbre", v1, cond, tone(1.0))


# ------------------------------------------------------------------------------------ tasks


def test_every_task_on_the_base_model(pack, base):
    cond = encode_text(pack, base, duration=10.0)
    (source,) = call(pack, "AceForge_VAEEncode", base, tone(1.0))
    assert source["samples"].shape == (1, 64, 25)
    (cond_t,) = call(pack, "AceForge_ReferenceTimbre", base, cond, tone(0.5), reference_audio_2=tone(1.0))
    assert len(cond_t[0][1]["reference_audio_timbre_latents"]) == 2
    edits = {
        "repaint": call(pack, "AceForge_RepaintMask", source, 0.2, "start", 0.4, "end", 0.5, 2, 40.0,
                        "equal_power", "conservative")[0],
        "extend": call(pack, "AceForge_Outpaint", source, 0.4, 0.4)[0],
        "cover": call(pack, "AceForge_Cover", source, 0.5, 0.3, "remix raw")[0],
        "lego": call(pack, "AceForge_Stems", source, "lego", "drums", "")[0],
        "complete": call(pack, "AceForge_Stems", source, "complete", "vocals", "drums, bass")[0],
    }
    lengths = {"extend": RATE + 2 * int(0.4 * RATE)}
    for task, edit in edits.items():
        (out,) = call(pack, "AceForge_KSampler", base, cond_t, edit, 3, 2, 0.0, "euler", "apg", 1.0)
        (audio,) = call(pack, "AceForge_VAEDecode", base, out)
        assert audio["sample_rate"] == RATE, task
        assert audio["waveform"].shape[-1] == lengths.get(task, RATE), task
        assert torch.isfinite(audio["waveform"]).all(), task
    (empty,) = call(pack, "AceForge_EmptyAceStepLatentAudio", 10.0, 1, model=base)
    (retake,) = call(pack, "AceForge_Retake", empty, 5, 0.0)
    (a,) = call(pack, "AceForge_KSampler", base, cond, retake, 9, 2, 0.0, "euler", "apg", 1.0)
    (b,) = call(pack, "AceForge_KSampler", base, cond, empty, 5, 2, 0.0, "euler", "apg", 1.0)
    assert torch.allclose(a["samples"], b["samples"], atol=1e-5)  # variance 0: the original back


# ------------------------------------------------------------------------------------ issue 12


def test_denoise_below_one_after_an_edit_node_is_refused(pack, turbo):
    """issue 12 (10): it used to be ignored silently."""
    cond = encode_text(pack, turbo)
    (source,) = call(pack, "AceForge_VAEEncode", turbo, tone(1.0))
    (edit,) = call(pack, "AceForge_RepaintMask", source, 0.2, "start", 0.6, "start")
    with pytest.raises(err(pack), match="denoise.*repaint"):
        call(pack, "AceForge_KSampler", turbo, cond, edit, 0, 2, 0.0, "euler", "apg", 0.5)
    tip = pack.NODE_CLASS_MAPPINGS["AceForge_KSampler"].INPUT_TYPES()["required"]["denoise"][1]["tooltip"]
    assert "refused" in tip


def test_outpaint_accepts_its_declared_maximum(pack):
    """issue 12 (9): declared and accepted ranges agree, for v1 sources of any length."""
    editing = pack.nodes.editing
    top = editing.Outpaint.INPUT_TYPES()["required"]["extend_after_duration"][1]["max"]
    assert editing.Outpaint.VALIDATE_INPUTS(extend_before_duration=0.0, extend_after_duration=top) is True
    assert "extend_after_duration" in editing.Outpaint.VALIDATE_INPUTS(extend_before_duration=0.0,
                                                                       extend_after_duration=top + 0.1)
    for frames in (1, 11, 500, 2000):
        v1 = {"samples": torch.zeros(1, 8, 16, frames), "type": "audio", "aceforge_family": "ace_v1"}
        for before, after in ((top, 0.0), (0.0, top)):  # both at once: one pass each side on v1
            (out,) = editing.Outpaint().apply(v1, before, after)
            assert out["aceforge_edit"]["task"] == "extend"
    v15 = {"samples": torch.zeros(1, 64, 250), "type": "audio", "aceforge_family": "ace_v15"}
    (out,) = editing.Outpaint().apply(v15, top, top)
    assert out["aceforge_edit"]["family"] == "ace_v15"


def test_repaint_range_checked_before_running(pack):
    """issue 12 (11): what /prompt can know (HTTP 400): a section that starts after it ends."""
    check = pack.NODE_CLASS_MAPPINGS["AceForge_RepaintMask"].VALIDATE_INPUTS
    assert check(start_time=10.0, start_time_relative_to="start", end_time=30.0, end_time_relative_to="start") is True
    assert "start_time" in check(start_time=40.0, start_time_relative_to="start", end_time=20.0,
                                 end_time_relative_to="start")
    assert "start_time" in check(start_time=5.0, start_time_relative_to="end", end_time=10.0,
                                 end_time_relative_to="end")
    assert "end_time" in check(start_time=0.0, start_time_relative_to="start", end_time=4000.0,
                               end_time_relative_to="start")
    assert check(start_time=["3", 0], start_time_relative_to="start", end_time=1.0,
                 end_time_relative_to="start") is True  # a linked input is checked when it runs
    source = {"samples": torch.zeros(1, 64, 250), "type": "audio", "aceforge_family": "ace_v15"}
    with pytest.raises(err(pack), match="end_time.*past the end"):  # past the song: refused by the node
        pack.nodes.editing.RepaintMask().apply(source, 5.0, "start", 20.0, "start")
