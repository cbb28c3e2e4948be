"""Full-size 1.5 models (2B and XL, built on ``meta``) == the published ``model.safetensors`` layouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ace_core.v15.config import AceStep15Config, xl_config
from ace_core.v15.model import AceStep15Model

MANIFESTS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "checkpoints"
TURBO = "v15__acestep-v15-turbo__model.safetensors.json"
XL_TURBO = "v15__acestep-v15-xl-turbo__model.safetensors.json"
COMFY = "comfy__acestep_v1.5_turbo.safetensors.json"
COMFY_AIO = "comfy__ace_step_1.5_turbo_aio.safetensors.json"
AIO_PREFIX = "model.diffusion_model."

pytestmark = pytest.mark.skipif(not MANIFESTS.is_dir(), reason="reference manifests not available")


def _manifest(name: str) -> dict:
    path = MANIFESTS / name
    if not path.exists():
        pytest.skip(f"manifest {name} not available")
    return {k: v["shape"] for k, v in json.loads(path.read_text())["tensors"].items()}


def _layout(model: torch.nn.Module) -> dict:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def model_2b() -> AceStep15Model:
    return AceStep15Model(AceStep15Config(), dtype=torch.bfloat16, device="meta")


@pytest.fixture(scope="module")
def model_xl() -> AceStep15Model:
    return AceStep15Model(xl_config(), dtype=torch.bfloat16, device="meta")


def _assert_same_layout(ours: dict, expected: dict) -> None:
    assert set(ours) - set(expected) == set(), "keys we create that the published file lacks"
    assert set(expected) - set(ours) == set(), "published keys we do not create"
    bad = {k: (ours[k], expected[k]) for k in ours if ours[k] != expected[k]}
    assert not bad


@pytest.mark.parametrize("name", [TURBO, COMFY])
def test_2b_matches_manifest(name, model_2b):
    _assert_same_layout(_layout(model_2b), _manifest(name))


def test_2b_matches_comfy_all_in_one_diffusion_model(model_2b):
    aio = _manifest(COMFY_AIO)
    dit = {k[len(AIO_PREFIX):]: v for k, v in aio.items() if k.startswith(AIO_PREFIX)}
    _assert_same_layout(_layout(model_2b), dit)


def test_xl_matches_manifest(model_xl):
    _assert_same_layout(_layout(model_xl), _manifest(XL_TURBO))


def test_2b_parameter_counts(model_2b):
    """acestep15.md §1.4 / §1.5 (the total also matches the published file size in bf16)."""
    assert _count(model_2b) == 2_393_872_518
    dec, enc = model_2b.decoder, model_2b.encoder
    assert _count(dec) == 1_575_458_880
    assert _count(dec.layers) == 24 * 62_933_504 == 1_510_404_096
    assert _count(dec.time_embed) == _count(dec.time_embed_r) == 29_900_800
    assert _count(enc) == 608_367_616
    assert _count(enc.lyric_encoder) == 404_789_248
    assert _count(enc.timbre_encoder) == 201_481_216
    assert _count(enc.text_projector) == 2_097_152
    assert _count(model_2b.tokenizer) == 105_032_198
    assert _count(model_2b.tokenizer.quantizer) == 26_630
    assert _count(model_2b.detokenizer) == 105_011_776
    assert len(model_2b.state_dict()) == 677


def test_xl_parameter_counts(model_xl, model_2b):
    """XL: 4,987,310,726 in total, decoder 4,168,897,088; encoder/tokenizer/detokenizer as 2B."""
    assert _count(model_xl) == 4_987_310_726
    assert _count(model_xl.decoder) == 4_168_897_088
    for part in ("encoder", "tokenizer", "detokenizer", "null_condition_emb"):
        assert _layout_of(model_xl, part) == _layout_of(model_2b, part)
    assert len(model_xl.state_dict()) == 829


def _layout_of(model: AceStep15Model, part: str) -> dict:
    return {k: v for k, v in _layout(model).items() if k.split(".")[0] == part}


def test_every_15_dit_manifest_is_covered():
    names = {p.name for p in MANIFESTS.glob("*.json")}
    dit_family = {n for n in names if "acestep-v15" in n or "acestep_v1.5" in n or "ace_step_1.5" in n}
    assert dit_family == {TURBO, XL_TURBO, COMFY, COMFY_AIO}
