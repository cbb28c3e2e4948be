"""ACE-Step v1 loading: both published layouts, recognition, strictness and every error case."""

from __future__ import annotations

import json
import logging
import shutil
import struct
from pathlib import Path

import pytest
import torch

from ace_core.errors import CheckpointError
from ace_core.loading.safetensors_io import read_header, read_tensor, write_safetensors
from ace_core.v1.bundle import AceStepV1
from ace_core.v1.layouts import COMFY_SPIECE_KEY, detect_v1, identify
from ace_core.v1.loader import load_v1, save_v1_all_in_one, save_v1_official
from ace_core.v1.testing import write_tiny_checkpoint

MANIFESTS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "checkpoints"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    comfy = write_tiny_checkpoint(root / "ace_step_v1_tiny.safetensors", "comfy", seed=3)
    official = write_tiny_checkpoint(root / "ACE-Step-v1-3.5B", "official", seed=3)
    return comfy, official


@pytest.fixture(scope="module")
def loaded(tiny):
    comfy, official = tiny
    return load_v1(comfy, dtype=torch.float32), load_v1(official, dtype=torch.float32)


def _file_tensors(path: Path) -> dict:
    header = read_header(path)
    with open(path, "rb") as fh:
        return {k: read_tensor(fh, info) for k, info in header.tensors.items()}


def _rewrite(src: Path, dst: Path, edit) -> Path:
    """Copy a safetensors file through ``edit(dict) -> dict`` (metadata kept)."""
    header = read_header(src)
    tensors = edit(_file_tensors(src))
    specs = {k: (v.dtype, tuple(v.shape)) for k, v in tensors.items()}
    return write_safetensors(dst, specs, lambda k: tensors[k], header.metadata)


def _states(bundle: AceStepV1) -> dict:
    return {f"{role}.{k}": v for role, m in bundle.modules().items() for k, v in m.state_dict().items()}


# --- round trips ---------------------------------------------------------------------------------
def test_both_layouts_load_the_same_model(loaded):
    a, b = loaded
    assert a.layout == "comfy" and b.layout == "official"
    sa, sb = _states(a), _states(b)
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    texts = ["pop rock, energetic, female vocals", "calm piano"]
    ia, ma = a.text_tokenizer(texts)
    ib, mb = b.text_tokenizer(texts)
    assert torch.equal(ia, ib) and torch.equal(ma, mb)


def test_loaded_values_equal_the_file(tiny, loaded):
    comfy, _ = tiny
    bundle, _ = loaded
    file = _file_tensors(comfy)
    dit = bundle.dit.state_dict()
    for k, v in dit.items():
        assert torch.equal(v, file["model.diffusion_model." + k]), k
    te = bundle.text_encoder.state_dict()
    for k, v in te.items():
        assert torch.equal(v, file["text_encoders.umt5base.transformer." + k]), k
    for k, v in bundle.vae.state_dict().items():
        assert torch.equal(v, file["vae." + k]), k
    # nothing left on meta, inference mode
    for m in bundle.modules().values():
        assert all(t.device.type == "cpu" for t in list(m.parameters()) + list(m.buffers()))
        assert not any(p.requires_grad for p in m.parameters()) and not m.training


def test_loaded_model_runs(loaded):
    bundle, _ = loaded
    ids, mask = bundle.text_tokenizer(["hip hop beat with heavy bass"])
    with torch.no_grad():
        text = bundle.text_encoder(ids, mask)
        enc, enc_mask = bundle.dit.encode(text, mask, None, torch.tensor([[261, 300, 6000]]), torch.ones(1, 3))
        v = bundle.dit.decode(torch.randn(1, 8, 16, 6, generator=torch.Generator().manual_seed(0)),
                              torch.ones(1, 6), enc, enc_mask, torch.tensor([500.0]))
    assert text.shape == (1, ids.shape[1], 32) and v.shape == (1, 8, 16, 6)
    assert torch.isfinite(text).all() and torch.isfinite(v).all()


def test_default_dtype_and_half_precision(tiny, caplog):
    comfy, official = tiny
    with caplog.at_level(logging.INFO, logger="AceForge"):
        bundle = load_v1(comfy)
    assert bundle.dtype == torch.bfloat16
    assert bundle.dit.dtype == torch.bfloat16 and bundle.text_encoder.dtype == torch.bfloat16
    assert bundle.vae.vocoder.mel_transform.window.dtype == torch.float32  # DSP buffers stay fp32
    lines = [r.getMessage() for r in caplog.records if r.name == "AceForge"]
    assert len(lines) == 1 and "skipped on purpose" in lines[0]
    assert "projectors" in lines[0] and "logit_scale" in lines[0] and "mel_transform" in lines[0]
    assert bundle.skipped["text_encoders.umt5base.logit_scale"]
    assert "model.diffusion_model.projectors.0.0.weight" in bundle.skipped
    half = load_v1(official, dtype=torch.float16)
    ffn = half.text_encoder.encoder.block[0].layer[1].DenseReluDense
    assert ffn.wo.weight.dtype == torch.float32 and ffn.wi_0.weight.dtype == torch.float16


def test_progress_hook_counts_every_tensor(tiny):
    comfy, _ = tiny
    calls = []
    load_v1(comfy, dtype=torch.float32, progress=lambda d, t: calls.append((d, t)))
    total = calls[-1][1]
    assert [c[0] for c in calls] == list(range(1, total + 1))


def test_save_all_in_one_round_trip(tiny, loaded, tmp_path):
    comfy, _ = tiny
    bundle, _ = loaded
    out = save_v1_all_in_one(bundle, tmp_path / "resaved.safetensors")
    assert set(read_header(out).tensors) == set(read_header(comfy).tensors)
    again = load_v1(out, dtype=torch.float32)
    sa, sb = _states(bundle), _states(again)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert again.text_tokenizer.spiece_bytes == bundle.text_tokenizer.spiece_bytes
    # a plain state dict in the all-in-one layout is written as is
    state = _file_tensors(comfy)
    out2 = save_v1_all_in_one(state, tmp_path / "from_state.safetensors")
    assert set(read_header(out2).tensors) == set(state)


def test_save_official_round_trip(loaded, tmp_path):
    bundle, _ = loaded
    root = save_v1_official(bundle, tmp_path / "folder")
    again = load_v1(root, dtype=torch.float32)
    sa, sb = _states(bundle), _states(again)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert (root / "umt5-base" / "spiece.model").is_file()


# --- recognition -----------------------------------------------------------------------------
def test_detects_layouts_and_paths_inside_the_folder(tiny):
    comfy, official = tiny
    assert detect_v1(comfy).kind == "comfy"
    for p in (official, official / "umt5-base", official / "music_vocoder" / "diffusion_pytorch_model.safetensors"):
        lay = detect_v1(p)
        assert lay.kind == "official" and lay.root == official
    ident = identify(read_header(comfy))
    assert ident.is_v1 and ident.has_spiece and ident.components["dit"] == "model.diffusion_model."


def _fake_from_manifest(name: str, path: Path, limit: int = 40) -> Path:
    """A small file with the first ``limit`` keys of a published manifest (tiny shapes)."""
    keys = list(json.loads((MANIFESTS / name).read_text())["tensors"])[:limit]
    if name.startswith("comfy__ace_step_1.5"):
        keys += [k for k in json.loads((MANIFESTS / name).read_text())["tensors"] if "qwen3_06b" in k][:3]
    specs = {k: (torch.float32, (2,)) for k in keys}
    return write_safetensors(path, specs, lambda k: torch.zeros(2))


@pytest.mark.parametrize("name,expect", [
    ("v15__acestep-v15-turbo__model.safetensors.json", "ACE-Step 1.5 DiT"),
    ("comfy__ace_step_1.5_turbo_aio.safetensors.json", "ACE-Step 1.5"),
    ("comfy__ace_1.5_vae.safetensors.json", "ACE-Step 1.5 VAE"),
    ("v15__vae__diffusion_pytorch_model.safetensors.json", "ACE-Step 1.5 VAE"),
    ("comfy__qwen_0.6b_ace15.safetensors.json", "Qwen3"),
])
def test_other_families_are_named(name, expect, tmp_path):
    if not (MANIFESTS / name).exists():
        pytest.skip("manifest not available")
    path = _fake_from_manifest(name, tmp_path / "other.safetensors", limit=400)
    with pytest.raises(CheckpointError) as err:
        load_v1(path)
    msg = str(err.value)
    assert str(path) in msg and "not an ACE-Step v1 checkpoint" in msg and expect in msg


def test_t5_is_not_umt5(tiny, tmp_path):
    comfy, _ = tiny
    bad = _rewrite(comfy, tmp_path / "t5.safetensors", lambda t: {
        k: v for k, v in t.items() if not (k.endswith("relative_attention_bias.weight") and ".block.0." not in k)})
    with pytest.raises(CheckpointError, match="T5 encoder"):
        load_v1(bad)


def test_unknown_file_and_missing_path(tmp_path):
    path = write_safetensors(tmp_path / "x.safetensors", {"foo.weight": (torch.float32, (2, 2))}, lambda k: torch.ones(2, 2))
    with pytest.raises(CheckpointError, match="no known model"):
        load_v1(path)
    with pytest.raises(CheckpointError, match="no such file"):
        load_v1(tmp_path / "nope.safetensors")
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="not an ACE-Step v1 folder"):
        load_v1(empty)


def test_pickle_checkpoints_refused(tmp_path):
    p = tmp_path / "ace_step.ckpt"
    p.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="only .safetensors"):
        load_v1(p)


# --- damaged files -----------------------------------------------------------------------------
def test_truncated_file(tiny, tmp_path):
    comfy, _ = tiny
    data = comfy.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) - 1000])
    with pytest.raises(CheckpointError, match="truncated") as err:
        load_v1(cut)
    assert str(cut) in str(err.value)
    tiny_cut = tmp_path / "cut2.safetensors"
    tiny_cut.write_bytes(data[:100])
    with pytest.raises(CheckpointError, match="truncated"):
        load_v1(tiny_cut)
    stub = tmp_path / "stub.safetensors"
    stub.write_bytes(b"\x01\x02")
    with pytest.raises(CheckpointError, match="too short"):
        load_v1(stub)


def test_corrupt_header(tiny, tmp_path):
    comfy, _ = tiny
    data = bytearray(comfy.read_bytes())
    (n,) = struct.unpack("<Q", bytes(data[:8]))
    bad_json = bytearray(data)
    bad_json[8:20] = b"\x00garbage!!\xff\xfe"
    p1 = tmp_path / "badjson.safetensors"
    p1.write_bytes(bytes(bad_json))
    with pytest.raises(CheckpointError, match="corrupt safetensors header"):
        load_v1(p1)
    p2 = tmp_path / "badlen.safetensors"
    p2.write_bytes(struct.pack("<Q", 2**40) + bytes(data[8:]))
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_v1(p2)
    # a shape that disagrees with its byte range
    header = json.loads(bytes(data[8 : 8 + n]))
    key = next(k for k in header if k != "__metadata__")
    header[key]["shape"] = [s + 1 for s in header[key]["shape"]] or [3]
    raw = json.dumps(header).encode()
    p3 = tmp_path / "badshape.safetensors"
    p3.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(data[8 + n :]))
    with pytest.raises(CheckpointError, match="does not\\s+match its byte range|corrupt"):
        load_v1(p3)
    p4 = tmp_path / "ace.safetensors"
    p4.write_bytes(b"PK\x03\x04" + b"\x00" * 200)  # a torch zip renamed
    with pytest.raises(CheckpointError):
        load_v1(p4)


def test_corrupt_spiece_model(tiny, tmp_path):
    comfy, _ = tiny
    bad = _rewrite(comfy, tmp_path / "sp.safetensors",
                   lambda t: {**t, COMFY_SPIECE_KEY: torch.full((64,), 7, dtype=torch.uint8)})
    with pytest.raises(CheckpointError, match="SentencePiece") as err:
        load_v1(bad)
    assert COMFY_SPIECE_KEY in str(err.value)


# --- missing / unexpected / mismatched -----------------------------------------------------
@pytest.mark.parametrize("folder", ["music_vocoder", "umt5-base", "ace_step_transformer", "music_dcae_f8c8"])
def test_missing_folder_component(tiny, tmp_path, folder):
    _, official = tiny
    root = tmp_path / "partial"
    shutil.copytree(official, root)
    shutil.rmtree(root / folder)
    with pytest.raises(CheckpointError, match="incomplete ACE-Step v1 folder") as err:
        load_v1(root)
    assert folder in str(err.value) and str(root) in str(err.value)


def test_component_file_of_the_wrong_kind(tiny, tmp_path):
    _, official = tiny
    root = tmp_path / "swapped"
    shutil.copytree(official, root)
    shutil.copy(root / "umt5-base" / "model.safetensors", root / "music_vocoder" / "diffusion_pytorch_model.safetensors")
    with pytest.raises(CheckpointError, match="expected the HiFi-GAN vocoder"):
        load_v1(root)


def test_official_folder_with_bin_only(tiny, tmp_path):
    _, official = tiny
    root = tmp_path / "bin"
    shutil.copytree(official, root)
    (root / "umt5-base" / "model.safetensors").rename(root / "umt5-base" / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"\.safetensors is required"):
        load_v1(root)


def test_missing_tokenizer_files(tiny, tmp_path):
    _, official = tiny
    root = tmp_path / "notok"
    shutil.copytree(official, root)
    (root / "umt5-base" / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="no UMT5 tokenizer"):
        load_v1(root)


def test_partial_all_in_one(tiny, tmp_path):
    comfy, _ = tiny
    dit_only = _rewrite(comfy, tmp_path / "dit.safetensors",
                        lambda t: {k: v for k, v in t.items() if k.startswith("model.diffusion_model.")})
    with pytest.raises(CheckpointError, match="only part of ACE-Step v1") as err:
        load_v1(dit_only)
    assert "vocoder" in str(err.value) and "UMT5" in str(err.value)
    no_tok = _rewrite(comfy, tmp_path / "notok.safetensors", lambda t: {k: v for k, v in t.items() if k != COMFY_SPIECE_KEY})
    with pytest.raises(CheckpointError, match="spiece_model"):
        load_v1(no_tok)


def test_shape_mismatch(tiny, tmp_path):
    comfy, _ = tiny
    key = "model.diffusion_model.transformer_blocks.1.attn.to_k.weight"
    bad = _rewrite(comfy, tmp_path / "shape.safetensors", lambda t: {**t, key: torch.zeros(32, 31)})
    with pytest.raises(CheckpointError, match="shape mismatch") as err:
        load_v1(bad)
    assert key in str(err.value) and str(bad) in str(err.value)
    # an ignored key must still have its published shape
    ign = "model.diffusion_model.projectors.1.4.weight"
    bad2 = _rewrite(comfy, tmp_path / "shape2.safetensors", lambda t: {**t, ign: torch.zeros(3, 3)})
    with pytest.raises(CheckpointError, match="shape mismatch") as err:
        load_v1(bad2)
    assert ign in str(err.value)


def test_official_config_json_disagreeing_with_shapes(tiny, tmp_path):
    _, official = tiny
    root = tmp_path / "cfg"
    shutil.copytree(official, root)
    cfg_path = root / "umt5-base" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["d_ff"] = 64
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="shape mismatch") as err:
        load_v1(root)
    assert "DenseReluDense" in str(err.value) and "umt5-base" in str(err.value)


def test_unexpected_and_missing_keys(tiny, tmp_path):
    comfy, _ = tiny
    extra = _rewrite(comfy, tmp_path / "extra.safetensors",
                     lambda t: {**t, "model.diffusion_model.foo.weight": torch.zeros(2)})
    with pytest.raises(CheckpointError, match="unexpected 1 keys: model.diffusion_model.foo.weight"):
        load_v1(extra)
    stray = _rewrite(comfy, tmp_path / "stray.safetensors", lambda t: {**t, "cond_stage_model.x": torch.zeros(2)})
    with pytest.raises(CheckpointError, match="cond_stage_model.x"):
        load_v1(stray)
    gone = "vae.vocoder.head.conv_post.weight_v"
    missing = _rewrite(comfy, tmp_path / "missing.safetensors", lambda t: {k: v for k, v in t.items() if k != gone})
    with pytest.raises(CheckpointError, match="missing 1 keys") as err:
        load_v1(missing)
    assert gone in str(err.value)


def test_accepted_variants(tiny, tmp_path):
    """Tied embedding stored twice, UMT5 decoder keys, torch weight-norm parametrization names."""
    comfy, _ = tiny
    te = "text_encoders.umt5base.transformer."

    def edit(t):
        t = dict(t)
        t[te + "encoder.embed_tokens.weight"] = t[te + "shared.weight"].clone()
        t[te + "decoder.block.0.layer.0.SelfAttention.q.weight"] = torch.zeros(4, 4)
        t[te + "lm_head.weight"] = torch.zeros(4, 4)
        g = t.pop("vae.vocoder.head.conv_pre.weight_g")
        v = t.pop("vae.vocoder.head.conv_pre.weight_v")
        t["vae.vocoder.head.conv_pre.parametrizations.weight.original0"] = g
        t["vae.vocoder.head.conv_pre.parametrizations.weight.original1"] = v
        return t

    variant = _rewrite(comfy, tmp_path / "variant.safetensors", edit)
    a = load_v1(comfy, dtype=torch.float32)
    b = load_v1(variant, dtype=torch.float32)
    sa, sb = _states(a), _states(b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert te + "lm_head.weight" in b.skipped and te + "encoder.embed_tokens.weight" in b.skipped
    # only the tied copy present (shared.weight absent): accepted as the embedding
    only_tied = _rewrite(comfy, tmp_path / "tied.safetensors", lambda t: {
        (te + "encoder.embed_tokens.weight" if k == te + "shared.weight" else k): v for k, v in t.items()})
    c = load_v1(only_tied, dtype=torch.float32)
    assert torch.equal(c.text_encoder.shared.weight, a.text_encoder.shared.weight)


def test_bad_dtype_argument(tiny):
    comfy, _ = tiny
    with pytest.raises(Exception, match="dtype"):
        load_v1(comfy, dtype=torch.int8)
