"""The ComfyUI nodes: registration and conventions, model folders, loader cache, bad inputs,
progress/interrupt, conditioning interop. The pack is imported by path as ComfyUI does."""

from __future__ import annotations

import os
import re

import pytest
import torch

from workflow_tools import REPO, load_pack, models_under

pytestmark = pytest.mark.usefixtures("quiet")

CORE_IDS = {
    "TextEncodeAceStepAudio", "EmptyAceStepLatentAudio", "TextEncodeAceStepAudio1.5",
    "EmptyAceStep1.5LatentAudio", "ReferenceTimbreAudio", "VAEDecodeAudio", "VAEEncodeAudio",
    "VAEDecodeAudioTiled", "KSampler", "KSamplerAdvanced", "CheckpointLoaderSimple", "LoadAudio",
    "SaveAudio", "PreviewAudio", "SaveAudioAdvanced", "EmptyLatentAudio", "VAEDecode", "VAEEncode",
}
EXPECTED_IDS = {
    "AceForge_CheckpointLoader", "AceForge_TextEncodeAceStepAudio", "AceForge_LyricRomanizer",
    "AceForge_EmptyAceStepLatentAudio", "AceForge_KSampler", "AceForge_VAEDecode", "AceForge_VAEEncode",
}
ALL_IDS = sorted(load_pack().NODE_CLASS_MAPPINGS)  # ours plus the editing nodes (issue 4)
WIDGETS = {"INT", "FLOAT", "STRING", "BOOLEAN"}


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A models root with the tiny random model as checkpoints/ace_step_v1_3.5b.safetensors."""
    from ace_core.v1.testing import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("models")
    write_tiny_checkpoint(root / "checkpoints" / "ace_step_v1_3.5b.safetensors", layout="comfy", seed=0)
    return root


@pytest.fixture()
def models_dir(pack, tiny_ckpt):
    with models_under(pack, tiny_ckpt):
        yield tiny_ckpt


@pytest.fixture()
def model(pack, models_dir):
    (m,) = node(pack, "AceForge_CheckpointLoader")[1]("ace_step_v1_3.5b.safetensors", "fp32")
    return m


def sub(pack, name: str):
    """A submodule of the pack, imported under the pack's own name."""
    import importlib

    return importlib.import_module(f"{pack.__name__}.{name}")


def errors(pack):
    return sub(pack, "ace_core.errors")


def node(pack, node_id):
    """(instance, function); a {"ui", "result"} return is unwrapped to its result, as ComfyUI does."""
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    fn = getattr(cls(), cls.FUNCTION)

    def call(*args, **kwargs):
        out = fn(*args, **kwargs)
        return out["result"] if isinstance(out, dict) else out

    return cls(), call


# --------------------------------------------------------------------------------------- registry


def test_node_ids_prefixed_and_not_core(pack):
    ids = set(pack.NODE_CLASS_MAPPINGS)
    assert EXPECTED_IDS <= ids
    assert not ids & CORE_IDS
    assert all(i.startswith("AceForge_") for i in ids)
    assert set(pack.NODE_DISPLAY_NAME_MAPPINGS) == ids  # never renames a foreign (core) node
    assert pack.WEB_DIRECTORY == "./web" and (REPO / "web").is_dir()
    assert pack.NODE_CLASS_MAPPINGS["AceForge_TextEncodeAceStepAudio"].__name__ == "TextEncodeAceStepAudio"
    assert pack.NODE_CLASS_MAPPINGS["AceForge_EmptyAceStepLatentAudio"].__name__ == "EmptyAceStepLatentAudio"


@pytest.mark.parametrize("node_id", ALL_IDS)
def test_node_conventions(pack, node_id):
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    assert cls.CATEGORY == "audio/ACE-Step"
    assert isinstance(cls.DESCRIPTION, str) and len(cls.DESCRIPTION) > 40
    assert callable(getattr(cls, cls.FUNCTION))
    assert isinstance(cls.RETURN_TYPES, tuple) and cls.RETURN_TYPES
    spec = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, s in spec.get(section, {}).items():
            options = s[1] if len(s) > 1 else {}
            assert options.get("tooltip"), f"{node_id}.{name} has no tooltip"
            if s[0] == "INT" and name == "seed":
                assert options.get("control_after_generate") is True
            if s[0] in ("INT", "FLOAT"):
                assert options["min"] <= options["default"] <= options["max"], name
            if isinstance(s[0], list) and s[0]:  # (the checkpoint list may be empty here)
                assert options.get("default", s[0][0]) in s[0], name
    doc = REPO / "web" / "docs" / f"{node_id}.md"
    assert doc.is_file() and doc.read_text(encoding="utf-8").startswith("# ")


def test_frontend_extension_namespaced():
    js = (REPO / "web" / "js" / "aceforge.js").read_text(encoding="utf-8")
    names = re.findall(r'name:\s*"([^"]+)"', js)
    assert names and all(n.startswith("AceForge.") for n in names if "." in n)
    assert all(s.startswith("AceForge.") for s in re.findall(r'SETTING = "([^"]+)"', js))
    # public API only: scripts/widgets.js is an internal module (console warning in current frontends);
    # the display widget is a DOM widget kept out of widgets_values and of the API prompt
    imports = re.findall(r'from\s+"([^"]+)"', js)
    assert imports == ["../../../scripts/app.js"], imports
    assert "scripts/widgets.js" not in js and "ComfyWidgets" not in js and "inputEl" not in js
    assert "addDOMWidget(" in js and "serialize: false" in js and "widget.serialize = false" in js


def test_sampler_defaults_are_official(pack):
    req = pack.NODE_CLASS_MAPPINGS["AceForge_KSampler"].INPUT_TYPES()["required"]
    got = {k: req[k][1]["default"] for k in (
        "steps", "guidance_scale", "sampler", "guidance_type", "shift", "omega", "guidance_interval",
        "guidance_interval_decay", "min_guidance_scale", "erg_tag", "erg_lyric", "erg_diffusion", "denoise")}
    assert got == {"steps": 0, "guidance_scale": 0.0, "sampler": "euler", "guidance_type": "apg", "shift": 3.0,
                   "omega": 10.0, "guidance_interval": 0.5, "guidance_interval_decay": 0.0,
                   "min_guidance_scale": 3.0, "erg_tag": True, "erg_lyric": False, "erg_diffusion": True,
                   "denoise": 1.0}
    # 0 = the loaded variant's official default: v1 60 steps, guidance 15 (issue 9)
    settings, _ = pack.nodes.sampler.settings_for(sub(pack, "ace_core.family").adapter_for("ace_v1"),
                                                  {"steps": 0, "guidance_scale": 0.0})
    assert (settings.steps, settings.guidance_scale) == (60, 15.0)
    assert req["sampler"][0] == ["euler", "heun", "pingpong"]
    assert req["guidance_type"][0] == ["apg", "cfg", "cfg_star"]
    assert "negative" in pack.NODE_CLASS_MAPPINGS["AceForge_KSampler"].INPUT_TYPES()["optional"]


# --------------------------------------------------------------------------------------- model folders


def test_checkpoint_listing_and_resolution(pack, tmp_path):
    compat = pack.nodes.comfy_compat
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "a.safetensors").write_bytes(b"x")
    (tmp_path / "checkpoints" / "readme.txt").write_text("not a model")
    (tmp_path / "diffusion_models" / "sub").mkdir(parents=True)
    (tmp_path / "diffusion_models" / "sub" / "b.sft").write_bytes(b"x")
    official = tmp_path / "ace_step" / "ACE-Step-v1-3.5B"
    (official / "ace_step_transformer").mkdir(parents=True)
    (official / "ace_step_transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"x")
    compat.set_models_dir(tmp_path)
    try:
        names = compat.list_checkpoints()
        assert names == ["ACE-Step-v1-3.5B/", "a.safetensors", "sub/b.sft"]
        assert compat.resolve_checkpoint("ACE-Step-v1-3.5B/") == official.resolve()
        assert compat.resolve_checkpoint("sub/b.sft") == (tmp_path / "diffusion_models" / "sub" / "b.sft").resolve()
        with pytest.raises(errors(pack).InputError, match="ckpt_name"):
            compat.resolve_checkpoint("missing.safetensors")
        with pytest.raises(errors(pack).InputError, match="ckpt_name"):
            compat.resolve_checkpoint("../checkpoints/../../etc/passwd")
        listed = pack.NODE_CLASS_MAPPINGS["AceForge_CheckpointLoader"].INPUT_TYPES()["required"]["ckpt_name"][0]
        assert listed == names
    finally:
        compat.set_models_dir(None)


def test_loader_caches_and_reloads_on_change(pack, models_dir, monkeypatch):
    loader_mod = pack.nodes.loader
    loader_mod.clear_cache()
    calls = []
    loader_core = sub(pack, "ace_core.v1.loader")
    real = loader_core.load_v1

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(loader_core, "load_v1", counting)
    _, load = node(pack, "AceForge_CheckpointLoader")
    (a,) = load("ace_step_v1_3.5b.safetensors", "fp32")
    (b,) = load("ace_step_v1_3.5b.safetensors", "fp32")
    assert a is b and len(calls) == 1
    assert a.bundle.dtype == torch.float32 and a.family == "ace_v1"
    (c,) = load("ace_step_v1_3.5b.safetensors", "bf16")  # another dtype is another model
    assert c is not a and len(calls) == 2 and c.bundle.dtype == torch.bfloat16
    file = models_dir / "checkpoints" / "ace_step_v1_3.5b.safetensors"
    stat = file.stat()
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # the file was replaced
    (d,) = load("ace_step_v1_3.5b.safetensors", "bf16")
    assert d is not c and len(calls) == 3
    loader_mod.clear_cache()


def test_loader_rejects_other_family(pack, models_dir):
    from safetensors.torch import save_file

    bad = models_dir / "checkpoints" / "sdxl_like.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4, 3, 3),
               "first_stage_model.decoder.conv_in.weight": torch.zeros(4, 4, 3, 3)}, str(bad))
    try:
        with pytest.raises(errors(pack).CheckpointError, match="sdxl_like"):
            node(pack, "AceForge_CheckpointLoader")[1]("sdxl_like.safetensors", "fp32")
    finally:
        bad.unlink()
    with pytest.raises(errors(pack).InputError, match="dtype"):
        node(pack, "AceForge_CheckpointLoader")[1]("ace_step_v1_3.5b.safetensors", "int8")


# --------------------------------------------------------------------------------------- latents


def test_empty_latent(pack):
    _, create = node(pack, "AceForge_EmptyAceStepLatentAudio")
    (lat,) = create(10.0, 2)
    assert lat["samples"].shape == (2, 8, 16, int(10.0 * 44100 / 512 / 8))
    assert lat["type"] == "audio" and lat["aceforge_family"] == "ace_v1"
    assert not lat["samples"].any()
    for bad in (0, -1.0, 240.5, float("nan")):
        with pytest.raises(errors(pack).InputError, match=r"seconds.*240"):
            create(bad, 1)


def test_sampler_rejects_bad_inputs(pack, model):
    _, encode = node(pack, "AceForge_TextEncodeAceStepAudio")
    (cond,) = encode(model, "pop", "", 1.0, "auto")
    _, sample = node(pack, "AceForge_KSampler")
    ok = {"samples": torch.zeros(1, 8, 16, 4), "type": "audio"}
    args = dict(seed=0, steps=2, guidance_scale=15.0, sampler="euler", guidance_type="apg", denoise=1.0)
    err = errors(pack).InputError
    with pytest.raises(err, match=r"sampler.*euler, heun, pingpong"):
        sample(model, cond, ok, **{**args, "sampler": "dpmpp_2m"})
    with pytest.raises(err, match=r"guidance_type"):
        sample(model, cond, ok, **{**args, "guidance_type": "pag"})
    with pytest.raises(err, match=r"latent.*ace_v15"):
        sample(model, cond, {"samples": torch.zeros(1, 8, 16, 4), "aceforge_family": "ace_v15"}, **args)
    with pytest.raises(err, match=r"latent.*1\.5"):
        sample(model, cond, {"samples": torch.zeros(1, 64, 25), "type": "audio"}, **args)
    with pytest.raises(err, match=r"latent.*image"):
        sample(model, cond, {"samples": torch.zeros(1, 4, 64, 64)}, **args)
    with pytest.raises(err, match=r"steps"):
        sample(model, cond, ok, **{**args, "steps": -1})
    with pytest.raises(err, match=r"denoise"):
        sample(model, cond, ok, **{**args, "denoise": 1.5})
    with pytest.raises(err, match=r"denoise.*no step"):
        sample(model, cond, ok, **{**args, "denoise": 0.1})
    with pytest.raises(err, match="positive"):
        sample(model, [[torch.zeros(1, 5, 4096), {}]], ok, **args)  # another text encoder's width


def test_text_encoder_rejects_empty_prompt(pack, model):
    _, encode = node(pack, "AceForge_TextEncodeAceStepAudio")
    with pytest.raises(errors(pack).InputError, match=r"tags, lyrics: both are empty"):
        encode(model, "  ", "\n", 1.0, "auto")
    with pytest.raises(errors(pack).InputError, match="lyrics_strength"):
        encode(model, "pop", "", 11.0, "auto")
    with pytest.raises(errors(pack).InputError, match="language"):
        encode(model, "pop", "", 1.0, "xx")


def test_conditioning_is_core_compatible(pack, model):
    _, encode = node(pack, "AceForge_TextEncodeAceStepAudio")
    (cond,) = encode(model, "pop, piano", "", 0.7, "auto")
    assert isinstance(cond, list) and len(cond) == 1
    states, meta = cond[0]
    assert states.shape[0] == 1 and states.shape[-1] == sub(pack, "ace_core.v1.pipeline").text_embedding_dim(model.bundle)
    assert meta["lyrics_strength"] == pytest.approx(0.7)
    assert meta["conditioning_lyrics"].tolist() == [[0]]  # no lyrics: the official [0]
    # core's TextEncodeAceStepAudio layout (no AceForge extras) is accepted as positive and negative
    core_style = [[states.clone(), {"pooled_output": None, "conditioning_lyrics": torch.tensor([[261, 2]]),
                                    "lyrics_strength": 1.0}]]
    _, sample = node(pack, "AceForge_KSampler")
    (out,) = sample(model, core_style, {"samples": torch.zeros(1, 8, 16, 3), "type": "audio"}, 0, 2, 15.0,
                    "euler", "cfg", 1.0, negative=cond)
    assert out["samples"].shape == (1, 8, 16, 3) and torch.isfinite(out["samples"]).all()


def test_combined_conditioning_warns_naming_the_pack(pack, model, caplog):
    """ConditioningCombine gives two entries; ComfyUI's log shows no logger name, so the warning
    says AceForge itself."""
    _, encode = node(pack, "AceForge_TextEncodeAceStepAudio")
    (cond,) = encode(model, "pop, piano", "", 1.0, "auto")
    (other,) = encode(model, "jazz", "", 1.0, "auto")
    _, sample = node(pack, "AceForge_KSampler")
    with caplog.at_level("WARNING", logger="AceForge"):
        sample(model, cond, {"samples": torch.zeros(1, 8, 16, 3), "type": "audio"}, 0, 1, 15.0,
               "euler", "cfg", 1.0, negative=cond + other)
    assert any(r.getMessage().startswith("AceForge: negative: 2 conditioning entries") for r in caplog.records)


# --------------------------------------------------------------------------------------- sampling


def test_sampler_seed_batch_and_reproducibility(pack, model):
    _, encode = node(pack, "AceForge_TextEncodeAceStepAudio")
    (cond,) = encode(model, "pop", "", 1.0, "auto")
    _, sample = node(pack, "AceForge_KSampler")
    lat2 = {"samples": torch.zeros(2, 8, 16, 3), "type": "audio"}
    args = dict(steps=3, guidance_scale=15.0, sampler="euler", guidance_type="apg", denoise=1.0)
    # item k draws its noise from seed + k; with omega 0 the euler step has no batch-wide mean-shift,
    # so a batch item equals the same seed run alone (with omega != 0 the official step couples them)
    (a0,) = sample(model, cond, lat2, seed=5, **args, omega=0.0)
    (b0,) = sample(model, cond, {"samples": torch.zeros(1, 8, 16, 3)}, seed=6, **args, omega=0.0)
    assert torch.allclose(a0["samples"][1:], b0["samples"], atol=1e-4, rtol=1e-4)
    (a,) = sample(model, cond, lat2, seed=5, **args)
    assert a["aceforge_family"] == "ace_v1"
    assert not torch.allclose(a["samples"][0], a["samples"][1])
    (c,) = sample(model, cond, lat2, seed=5, **args)
    assert torch.equal(a["samples"], c["samples"])
    for name in ("heun", "pingpong"):
        (d,) = sample(model, cond, lat2, seed=5, **{**args, "sampler": name})
        assert torch.isfinite(d["samples"]).all() and not torch.allclose(d["samples"], a["samples"])
    # denoise 0: the source comes back unchanged; below 1: changed but keeps the shape
    src = {"samples": torch.randn(1, 8, 16, 3, generator=torch.Generator().manual_seed(0))}
    (same,) = sample(model, cond, src, seed=1, **{**args, "denoise": 0.0})
    assert torch.equal(same["samples"], src["samples"])
    (half,) = sample(model, cond, src, seed=1, **{**args, "steps": 4, "denoise": 0.5})
    assert half["samples"].shape == src["samples"].shape and not torch.equal(half["samples"], src["samples"])


def test_progress_reaches_comfy_hook_and_interrupt_stops(pack, model, monkeypatch):
    compat = pack.nodes.comfy_compat
    seen = []

    class Interrupted(Exception):
        pass

    def fake_hook(label, quiet=False):
        def hook(done, total):
            seen.append((label, done, total))
            if label == "sampling" and done == 2:
                raise Interrupted()  # what ComfyUI's interrupt check does inside the hook
        return hook

    monkeypatch.setattr(compat, "progress_hook", fake_hook)
    _, encode = node(pack, "AceForge_TextEncodeAceStepAudio")
    (cond,) = encode(model, "pop", "", 1.0, "auto")
    _, sample = node(pack, "AceForge_KSampler")
    with pytest.raises(Interrupted):
        sample(model, cond, {"samples": torch.zeros(1, 8, 16, 3)}, 0, 6, 15.0, "euler", "apg", 1.0)
    assert [s for s in seen if s[0] == "sampling"] == [("sampling", 1, 6), ("sampling", 2, 6)]
    seen.clear()
    _, decode = node(pack, "AceForge_VAEDecode")
    (audio,) = decode(model, {"samples": torch.zeros(1, 8, 16, 2)})
    assert seen and seen[-1][0] == "decoding" and seen[-1][1] == seen[-1][2]


def test_compat_fallbacks_outside_comfyui(pack):
    compat = pack.nodes.comfy_compat
    assert compat.IN_COMFYUI is False
    assert compat.torch_device().type == "cpu"
    assert compat.choose_dtype("auto") == torch.float32 and compat.choose_dtype("fp16") == torch.float16
    hook = compat.progress_hook("x", quiet=True)
    hook(1, 2)
    compat.check_interrupt()
    m = compat.ManagedModule(torch.nn.Linear(2, 2), "lin")
    assert m.patcher is None and m.load().type == "cpu"


# --------------------------------------------------------------------------------------- VAE


def test_vae_nodes_round_trip_and_bad_audio(pack, model):
    _, encode = node(pack, "AceForge_VAEEncode")
    _, decode = node(pack, "AceForge_VAEDecode")
    g = torch.Generator().manual_seed(0)
    wave = 0.1 * torch.randn(1, 3, 48000, generator=g)  # 3 channels at 48 kHz, 1 s
    (lat,) = encode(model, {"waveform": wave, "sample_rate": 48000})
    assert lat["samples"].shape == (1, 8, 16, -(-44100 // 4096)) and lat["aceforge_family"] == "ace_v1"
    (audio,) = decode(model, lat)
    # the decode keeps the source's length, not 11 whole latent frames (issue 12, defect 12)
    assert audio["sample_rate"] == 44100 and audio["waveform"].shape == (1, 2, 44100)
    assert torch.isfinite(audio["waveform"]).all()
    err = errors(pack).InputError
    nan = wave.clone()
    nan[0, 0, 5] = float("nan")
    with pytest.raises(err, match=r"audio.*NaN"):
        encode(model, {"waveform": nan, "sample_rate": 48000})
    with pytest.raises(err, match=r"audio.*empty"):
        encode(model, {"waveform": torch.zeros(1, 2, 0), "sample_rate": 44100})
    # over 240 s: a lazy placeholder for the edit nodes; the sampler refuses it for audio-to-audio
    (long,) = encode(model, {"waveform": torch.zeros(1, 1, 241 * 100), "sample_rate": 100})
    assert long["aceforge_source"]["encoded"] is False and long["samples"].shape[-1] > 2583
    (cond,) = node(pack, "AceForge_TextEncodeAceStepAudio")[1](model, "pop", "", 1.0, "auto")
    with pytest.raises(err, match=r"latent: .*240 s\); for longer sources use RepaintMask or Outpaint"):
        node(pack, "AceForge_KSampler")[1](model, cond, long, 0, 2, 15.0, "euler", "apg", 0.5)
    with pytest.raises(err, match=r"latent"):
        decode(model, {"samples": torch.zeros(1, 64, 10)})


def test_erg_tag_states_use_umt5_blocks_8_and_9():
    """The ERG-tag null text is UMT5 with the queries of blocks 8-9 softened (needs >= 10 blocks)."""
    from ace_core.v1 import pipeline
    from ace_core.v1.testing import tiny_spiece_model_bytes
    from ace_core.v1.text_tokenizer import UMT5Tokenizer
    from ace_core.v1.umt5 import UMT5Config, UMT5Encoder

    class Bundle:
        pass

    bundle = Bundle()
    bundle.text_tokenizer = UMT5Tokenizer.from_spiece_bytes(tiny_spiece_model_bytes())
    bundle.text_encoder = UMT5Encoder(UMT5Config(vocab_size=128, d_model=16, d_kv=4, d_ff=24, num_layers=10,
                                                 num_heads=2, relative_attention_num_buckets=8)).eval()
    g = torch.Generator().manual_seed(0)
    for p in bundle.text_encoder.parameters():
        p.data.copy_(torch.randn(p.shape, generator=g) * 0.3)
    bundle.dit = Bundle()
    bundle.dit.config = Bundle()
    bundle.dit.config.lyric_encoder_vocab_size = 6693
    cond = pipeline.encode_conditioning(bundle, "pop rock, energetic", "")
    assert cond.text_states.shape == cond.erg_text_states.shape
    assert not torch.allclose(cond.text_states, cond.erg_text_states)
    # the one forked pass equals a plain pass and a separate pass with blocks 8-9 softened
    from ace_core.v1.erg import erg_text

    ids, mask = bundle.text_tokenizer(["pop rock, energetic"], max_length=256)
    with torch.no_grad():
        plain = bundle.text_encoder(ids, mask)
        with erg_text(bundle.text_encoder):
            softened = bundle.text_encoder(ids, mask)
    assert torch.allclose(cond.text_states, plain, atol=1e-6, rtol=1e-5)
    assert torch.allclose(cond.erg_text_states, softened, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="fork_at"):
        bundle.text_encoder(ids, mask, fork_at=11)
    bundle.text_encoder.encoder.block = bundle.text_encoder.encoder.block[:8]  # no block 8/9: no hooks
    cond = pipeline.encode_conditioning(bundle, "pop rock, energetic", "")
    assert torch.equal(cond.text_states, cond.erg_text_states)
