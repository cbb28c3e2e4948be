"""Loading the 5 Hz LM from every layout (official folder, ComfyUI split file, inside the
all-in-one) strictly, and the published full-size layouts checked on ``meta``."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

from ace_core.errors import CheckpointError
from safetensors.torch import save_file
from ace_core.v15.bundle import save_v15_all_in_one, tiny_v15_bundle
from ace_core.v15.lm import load_lm, tiny_five_hz_lm
from ace_core.v15.lm.loader import plan_lm
from ace_core.v15.loader import load_v15

MANIFESTS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "checkpoints"


@pytest.fixture(scope="module")
def lm():
    return tiny_five_hz_lm(seed=5)


def _save(path: Path, tensors: dict) -> None:
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))


def _same(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _state(lm, prefix: str = "") -> dict:
    return {prefix + k: v.contiguous() for k, v in lm.state_dict().items()}


def test_official_folder_and_root(lm, tmp_path):
    folder = tmp_path / "acestep-5Hz-lm-0.6B"
    folder.mkdir()
    _save(folder / "model.safetensors", _state(lm))
    (folder / "config.json").write_text(json.dumps({"vocab_size": lm.config.vocab_size, "tie_word_embeddings": True,
                                                    "rope_theta": 1000000, "use_sliding_window": False}))
    _same(load_lm(folder, dtype=torch.float32), lm)
    _same(load_lm(tmp_path, dtype=torch.float32), lm)  # the root holding one LM folder
    (tmp_path / "acestep-5Hz-lm-4B").mkdir()
    _save(tmp_path / "acestep-5Hz-lm-4B" / "model.safetensors", _state(lm))
    with pytest.raises(CheckpointError, match="several 5 Hz LMs"):
        load_lm(tmp_path)


def test_comfy_split_file_untied_head_and_strictness(lm, tmp_path):
    path = tmp_path / "qwen_1.7b_ace15.safetensors"
    _save(path, _state(lm))
    got = load_lm(path, dtype=torch.float32)
    _same(got, lm)
    assert got.variant == "hidden 16" and got.config.tie_word_embeddings
    # an untied head beside model.* is loaded into lm_head
    head = torch.randn(lm.config.vocab_size, lm.config.hidden_size)
    _save(path, {**_state(lm), "lm_head.weight": head})
    untied = load_lm(path, dtype=torch.float32)
    assert not untied.config.tie_word_embeddings and torch.equal(untied.head_weight, head)
    bad = dict(_state(lm))
    bad.pop("model.layers.1.mlp.up_proj.weight")
    _save(path, bad)
    with pytest.raises(CheckpointError, match=r"qwen_1.7b_ace15.safetensors.*missing 1 keys.*up_proj"):
        load_lm(path)
    _save(path, {**_state(lm), "extra.weight": torch.zeros(2)})
    with pytest.raises(CheckpointError, match="unexpected 1 keys beside the 5 Hz LM: extra.weight"):
        load_lm(path)


def test_text_encoder_is_not_the_lm(tmp_path):
    b = tiny_v15_bundle()
    path = tmp_path / "qwen_0.6b_ace15.safetensors"
    _save(path, _state(b.text_encoder, "model."))
    with pytest.raises(CheckpointError, match="caption encoder, not the LM"):
        load_lm(path)


def test_inside_the_all_in_one(lm, tmp_path):
    b = tiny_v15_bundle()
    path = save_v15_all_in_one(b, tmp_path / "ace_step_1.5_turbo_aio.safetensors", lm=lm.model)
    bundle = load_v15(path, dtype=torch.float32)
    for source in (bundle, bundle.lm_sources[0], path):
        _same(load_lm(source, dtype=torch.float32), lm)


def _sparse(path: Path, tensors: dict) -> Path:
    """A safetensors file with the manifest's keys and full shapes whose data is a hole."""
    header, offset = {}, 0
    for key, entry in tensors.items():
        shape = [int(s) for s in entry["shape"]]
        n = 2 * int(torch.Size(shape).numel())
        header[key] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        fh.truncate(8 + len(raw) + offset)
    return path


@pytest.mark.parametrize("name, variant, layers", [
    ("v15__acestep-5Hz-lm-0.6B__model.safetensors.json", "0.6B", 28),
    ("v15__acestep-5Hz-lm-1.7B__model.safetensors.json", "1.7B", 28),
    ("v15__acestep-5Hz-lm-4B__model.safetensors.json", "4B", 36),
    ("comfy__qwen_1.7b_ace15.safetensors.json", "1.7B", 28),
    ("comfy__qwen_4b_ace15.safetensors.json", "4B", 36),
])
def test_published_layouts(tmp_path, name, variant, layers):
    path = MANIFESTS / name
    if not path.exists():
        pytest.skip(f"manifest {name} not available")
    tensors = json.loads(path.read_text())["tensors"]
    part, module, plan = plan_lm(_sparse(tmp_path / "model.safetensors", tensors))
    assert part.variant == variant and module.config.num_hidden_layers == layers
    assert module.config.vocab_size == 217204 and module.config.tie_word_embeddings
    assert set(plan) == {k for k in module.state_dict()} == set(tensors)
