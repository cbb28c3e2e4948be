"""Full-size v1 models (built on ``meta``) mapped to each published layout == the published manifests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ace_core.v1.layouts import COMFY_SPIECE_KEY, OFFICIAL_FILES, identify
from ace_core.v1.loader import _typed_configs, checkpoint_specs, infer_config_from_shapes

MANIFESTS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "checkpoints"
OFFICIAL = {
    "v1__ace_step_transformer__diffusion_pytorch_model.safetensors.json": ("dit", OFFICIAL_FILES["dit"]),
    "v1__music_dcae_f8c8__diffusion_pytorch_model.safetensors.json": ("dcae", OFFICIAL_FILES["dcae"]),
    "v1__music_vocoder__diffusion_pytorch_model.safetensors.json": ("vocoder", OFFICIAL_FILES["vocoder"]),
    "v1__umt5-base__model.safetensors.json": ("umt5", OFFICIAL_FILES["umt5"]),
}
COMFY = "comfy__ace_step_v1_3.5b.safetensors.json"

pytestmark = pytest.mark.skipif(not MANIFESTS.is_dir(), reason="reference manifests not available")


def _manifest(name: str) -> dict:
    return {k: v["shape"] for k, v in json.loads((MANIFESTS / name).read_text())["tensors"].items()}


@pytest.fixture(scope="module")
def full_configs():
    # published sizes = our config defaults
    return _typed_configs({"dit": {}, "dcae": {}, "vocoder": {}, "umt5": {}}, where="defaults")


@pytest.fixture(scope="module")
def official_specs(full_configs):
    return checkpoint_specs(full_configs, "official", dtype=torch.bfloat16)


def test_every_v1_manifest_is_covered():
    names = {p.name for p in MANIFESTS.glob("*.json")}
    v1 = {n for n in names if n.startswith("v1__") or n == COMFY}
    assert v1 == set(OFFICIAL) | {COMFY}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_component_matches_manifest(name, official_specs):
    comp, rel = OFFICIAL[name]
    ours = {k: list(shape) for k, (_, shape) in official_specs[rel].items()}
    expected = _manifest(name)
    assert set(ours) - set(expected) == set(), "keys we write that the published file lacks"
    assert set(expected) - set(ours) == set(), "published keys we do not account for"
    bad = {k: (ours[k], expected[k]) for k in ours if ours[k] != expected[k]}
    assert not bad


def test_comfy_all_in_one_matches_manifest(full_configs):
    ours = {k: list(shape) for k, (_, shape) in checkpoint_specs(full_configs, "comfy")[""].items()}
    expected = _manifest(COMFY)
    # the embedded SentencePiece model has a data-dependent length: compare its presence only
    assert COMFY_SPIECE_KEY in expected
    expected.pop(COMFY_SPIECE_KEY)
    assert set(ours) ^ set(expected) == set()
    bad = {k: (ours[k], expected[k]) for k in ours if ours[k] != expected[k]}
    assert not bad
    ident = identify({**{k: tuple(v) for k, v in expected.items()}, COMFY_SPIECE_KEY: (100,)})
    assert ident.is_v1 and set(ident.components) == {"dit", "dcae", "vocoder", "umt5"}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_shape_inference_recovers_published_config(name, full_configs):
    comp, rel = OFFICIAL[name]
    inferred = _typed_configs({comp: infer_config_from_shapes(comp, _manifest(name))}, where=name)[comp]
    configs = dict(full_configs, **{comp: inferred})
    ours = {k: list(shape) for k, (_, shape) in checkpoint_specs(configs, "official")[rel].items()}
    assert ours == _manifest(name)
    if comp != "dcae":  # DCAE: qkv_multiscales of ResBlock stages are unused, shapes cannot show them
        assert inferred == full_configs[comp]
