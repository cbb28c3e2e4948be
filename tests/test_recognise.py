"""The one recognition table: every published manifest -> (family, variant, components), from keys
and shapes only; unknown and wrong-family files -> CheckpointError naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ace_core.errors import CheckpointError
from ace_core.loading import recognise as rec
from ace_core.loading.safetensors_io import write_safetensors

MANIFESTS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "checkpoints"
V1, V15 = rec.ACE_V1, rec.ACE_V15
AIO_V15 = {("dit", "2B", "model.diffusion_model.", "official"),
           ("text_encoder", "0.6B", "text_encoders.qwen3_06b.transformer.model.", "hf"),
           ("lm", "1.7B", "text_encoders.qwen3_2b.transformer.model.", "hf"),
           ("vae", "", "vae.", "comfy")}
AIO_V1 = {("dit", "3.5B", "model.diffusion_model.", "official"),
          ("dcae", "3.5B", "vae.dcae.", "diffusers"),
          ("vocoder", "3.5B", "vae.vocoder.", "official"),
          ("umt5", "3.5B", "text_encoders.umt5base.transformer.", "hf")}

# manifest -> (family, variant, layout, {(component, variant, prefix, naming)})
EXPECTED = {
    "v1__ace_step_transformer__diffusion_pytorch_model.safetensors.json":
        (V1, "3.5B", "component", {("dit", "3.5B", "", "official")}),
    "v1__music_dcae_f8c8__diffusion_pytorch_model.safetensors.json":
        (V1, "3.5B", "component", {("dcae", "3.5B", "", "diffusers")}),
    "v1__music_vocoder__diffusion_pytorch_model.safetensors.json":
        (V1, "3.5B", "component", {("vocoder", "3.5B", "", "official")}),
    "v1__umt5-base__model.safetensors.json": (V1, "3.5B", "component", {("umt5", "3.5B", "", "hf")}),
    "comfy__ace_step_v1_3.5b.safetensors.json": (V1, "3.5B", "all_in_one", AIO_V1),
    "v15__acestep-v15-turbo__model.safetensors.json": (V15, "2B", "component", {("dit", "2B", "", "official")}),
    "v15__acestep-v15-xl-turbo__model.safetensors.json": (V15, "XL", "component", {("dit", "XL", "", "official")}),
    "comfy__acestep_v1.5_turbo.safetensors.json": (V15, "2B", "component", {("dit", "2B", "", "official")}),
    "comfy__ace_step_1.5_turbo_aio.safetensors.json": (V15, "2B", "all_in_one", AIO_V15),
    "v15__vae__diffusion_pytorch_model.safetensors.json": (V15, "", "component", {("vae", "", "", "diffusers")}),
    "comfy__ace_1.5_vae.safetensors.json": (V15, "", "component", {("vae", "", "", "comfy")}),
    "v15__Qwen3-Embedding-0.6B__model.safetensors.json":
        (V15, "0.6B", "component", {("text_encoder", "0.6B", "", "hf")}),
    "comfy__qwen_0.6b_ace15.safetensors.json": (V15, "0.6B", "component", {("text_encoder", "0.6B", "model.", "hf")}),
    "v15__acestep-5Hz-lm-0.6B__model.safetensors.json": (V15, "0.6B", "component", {("lm", "0.6B", "model.", "hf")}),
    "v15__acestep-5Hz-lm-1.7B__model.safetensors.json": (V15, "1.7B", "component", {("lm", "1.7B", "model.", "hf")}),
    "v15__acestep-5Hz-lm-4B__model.safetensors.json": (V15, "4B", "component", {("lm", "4B", "model.", "hf")}),
    "comfy__qwen_1.7b_ace15.safetensors.json": (V15, "1.7B", "component", {("lm", "1.7B", "model.", "hf")}),
    "comfy__qwen_4b_ace15.safetensors.json": (V15, "4B", "component", {("lm", "4B", "model.", "hf")}),
}

needs_manifests = pytest.mark.skipif(not MANIFESTS.is_dir(), reason="reference manifests not available")


def _shapes(name: str) -> dict:
    return {k: tuple(v["shape"]) for k, v in json.loads((MANIFESTS / name).read_text())["tensors"].items()}


@needs_manifests
def test_every_manifest_has_an_expected_answer():
    assert {p.name for p in MANIFESTS.glob("*.json")} == set(EXPECTED)


@needs_manifests
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_table_recognises_manifest(name):
    family, variant, layout, parts = EXPECTED[name]
    found = rec.recognise(_shapes(name), name)
    assert (found.family, found.variant, found.layout) == (family, variant, layout)
    assert {(p.component, p.variant, p.prefix, p.naming) for p in found.parts} == parts
    assert all(p.family == family for p in found.parts)


@needs_manifests
def test_stable_audio_oobleck_is_not_ace15():
    shapes = _shapes("comfy__ace_1.5_vae.safetensors.json")
    shapes["decoder.layers.2.layers.1.weight_v"] = (1024, 512, 16)  # stride 8: Stable Audio's 44.1 kHz VAE
    found = rec.recognise(shapes)
    assert found.family == "stable_audio" and "Stable Audio" in found.description


def _write(path: Path, shapes: dict) -> Path:
    specs = {k: (torch.float32, tuple(s)) for k, s in shapes.items()}
    return write_safetensors(path, specs, lambda k: torch.zeros(specs[k][1]))


def _small(name: str, keep) -> dict:
    """The manifest's keys with shapes shrunk to (2,) except those ``keep`` says to keep."""
    return {k: (s if keep(k) else (2,)) for k, s in _shapes(name).items()}


@needs_manifests
def test_recognise_file_reads_the_header_only(tmp_path, monkeypatch):
    from ace_core.loading import safetensors_io

    shapes = _small("v15__acestep-v15-xl-turbo__model.safetensors.json",
                    lambda k: k == "decoder.layers.0.cross_attn_norm.weight")
    path = _write(tmp_path / "acestep_v1.5_xl_base_bf16.safetensors", shapes)
    monkeypatch.setattr(safetensors_io, "read_tensor", lambda *a, **k: pytest.fail("tensor data was read"))
    found = rec.recognise_file(path, V15)
    assert (found.family, found.variant, found.flavour, found.source) == (V15, "XL", "base", str(path))


def test_unknown_and_wrong_family_files_name_the_file(tmp_path):
    unknown = _write(tmp_path / "mystery.safetensors", {"foo.weight": (2, 2)})
    with pytest.raises(CheckpointError, match="mystery.safetensors.*no known model"):
        rec.recognise_file(unknown)
    unet = _write(tmp_path / "sd15.safetensors", {"model.diffusion_model.input_blocks.0.0.weight": (4, 4, 3, 3)})
    with pytest.raises(CheckpointError, match=r"sd15\.safetensors: not an ace_v1 checkpoint.*Stable Diffusion"):
        rec.recognise_file(unet, V1)
    v1_dit = _write(tmp_path / "v1_dit.safetensors", {k: (2,) for k in (
        "genre_embedder.weight", "lyric_embs.weight", "transformer_blocks.0.attn.to_q.weight")})
    assert rec.recognise_file(v1_dit, V1).part("dit").family == V1
    with pytest.raises(CheckpointError, match=r"v1_dit\.safetensors: not an ace_v15 checkpoint.*ACE-Step v1 DiT"):
        rec.recognise_file(v1_dit, V15)


def test_t5_is_told_from_umt5():
    blocks = {f"encoder.block.{i}.layer.0.SelfAttention.q.weight": (4, 4) for i in range(3)}
    umt5 = {**blocks, "encoder.final_layer_norm.weight": (4,),
            **{f"encoder.block.{i}.layer.0.SelfAttention.relative_attention_bias.weight": (32, 2) for i in range(3)}}
    assert rec.recognise(umt5).part("umt5", V1) is not None
    t5 = {k: v for k, v in umt5.items() if "relative_attention_bias" not in k or ".block.0." in k}
    found = rec.recognise(t5)
    assert found.family == "t5" and "T5 encoder" in found.description


@pytest.mark.parametrize("name,config,flavour", [
    ("acestep_v1.5_turbo.safetensors", None, "turbo"),
    ("acestep_v1.5_xl_sft_bf16.safetensors", None, "sft"),
    ("acestep-v15-base/model.safetensors", None, "base"),
    ("acestep-v15-base-sft-fix-inst/model.safetensors", None, "sft"),
    ("acestep-v15-turbo-shift3/model.safetensors", None, "turbo"),
    ("acestep-v15-x/model.safetensors", {"is_turbo": True}, "turbo"),
    ("acestep-v15-x/model.safetensors", {"is_turbo": False, "model_version": "sft"}, "sft"),
    ("acestep-v15-x/model.safetensors", {"is_turbo": False}, None),
    ("checkpoints/model.safetensors", None, None),
])
def test_flavour_hint_from_config_or_name(tmp_path, name, config, flavour):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    if config is not None:
        (path.parent / "config.json").write_text(json.dumps(config))
    assert rec.flavour_hint(path) == flavour
