"""ACE-Step 1.5 loading: every published layout, recognition of every manifest, strictness, errors."""

from __future__ import annotations

import json
import logging
import shutil
import struct
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from ace_core.errors import CheckpointError
from ace_core.loading.safetensors_io import read_header, read_tensor, write_safetensors
from ace_core.v15.bundle import (
    AceStep15Bundle,
    save_v15_all_in_one,
    save_v15_official,
    save_v15_split,
    tiny_v15_bundle,
    tiny_v15_lm,
)
from ace_core.v15.config import AceStep15Config, xl_config
from ace_core.v15.layouts import (
    LAYOUT_AIO,
    LAYOUT_OFFICIAL,
    LAYOUT_SPLIT,
    detect_v15,
    diffusers_to_comfy_vae_key,
)
from ace_core.v15.loader import load_v15, plan_v15
from ace_core.v15.oobleck import OobleckConfig, OobleckVAE, comfy_to_diffusers
from ace_core.v15.qwen3 import Qwen3Config
from ace_core.v15.silence import pattern_silence

MANIFESTS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "checkpoints"
AIO = "ace_step_1.5_turbo_aio.safetensors"
DIT = "model.diffusion_model."
M_AIO = "comfy__ace_step_1.5_turbo_aio.safetensors.json"
M_SPLIT_DIT = "comfy__acestep_v1.5_turbo.safetensors.json"
M_SPLIT_TE = "comfy__qwen_0.6b_ace15.safetensors.json"
M_SPLIT_LM = {"1.7b": "comfy__qwen_1.7b_ace15.safetensors.json", "4b": "comfy__qwen_4b_ace15.safetensors.json"}
M_SPLIT_VAE = "comfy__ace_1.5_vae.safetensors.json"
M_DIT = "v15__acestep-v15-turbo__model.safetensors.json"
M_DIT_XL = "v15__acestep-v15-xl-turbo__model.safetensors.json"
M_VAE = "v15__vae__diffusion_pytorch_model.safetensors.json"
M_TE = "v15__Qwen3-Embedding-0.6B__model.safetensors.json"
M_LM = {lm: f"v15__acestep-5Hz-lm-{lm}__model.safetensors.json" for lm in ("0.6B", "1.7B", "4B")}
V15_MANIFESTS = {M_AIO, M_SPLIT_DIT, M_SPLIT_TE, *M_SPLIT_LM.values(), M_SPLIT_VAE, M_DIT, M_DIT_XL, M_VAE, M_TE,
                 *M_LM.values()}


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bundles():
    """The in-memory tiny models: fp32 and bf16 (same draws), and an XL-shaped one."""
    return {torch.float32: tiny_v15_bundle(3), torch.bfloat16: tiny_v15_bundle(3, torch.bfloat16),
            "xl": tiny_v15_bundle(4, kind="base", xl=True)}


@pytest.fixture(scope="module")
def written(bundles, tmp_path_factory):
    """Each tiny model in every layout: {(layout, dtype): path to load}."""
    root = tmp_path_factory.mktemp("v15")
    lm = tiny_v15_lm()
    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        b, tag = bundles[dtype], str(dtype).split(".")[-1]
        out["aio", dtype] = save_v15_all_in_one(b, root / tag / AIO, lm=lm)
        out["split", dtype] = save_v15_split(b, root / tag / "models")["dit"]
        out["official", dtype] = save_v15_official(b, root / tag / "official", lm=lm)
    # published files carry no config: the loader must work it out from shapes and names
    out["aio_bare"] = save_v15_all_in_one(bundles[torch.float32], root / "bare" / AIO, embed_config=False)
    out["split_prefixed"] = save_v15_split(bundles[torch.float32], root / "prefixed", dit_prefix=DIT,
                                           vae_weight_norm="parametrizations", embed_config=False)["dit"]
    out["xl"] = save_v15_split(bundles["xl"], root / "xl", embed_config=False)["dit"]
    return out


def _states(bundle: AceStep15Bundle) -> dict:
    return {f"{role}.{k}": v for role, m in bundle.modules().items() for k, v in m.state_dict().items()}


def _assert_same_weights(a: AceStep15Bundle, b: AceStep15Bundle) -> None:
    sa, sb = _states(a), _states(b)
    assert sa.keys() == sb.keys()
    bad = [k for k in sa if sa[k].dtype != sb[k].dtype or not torch.equal(sa[k], sb[k])]
    assert not bad


def _outputs(bundle: AceStep15Bundle) -> list:
    gen = torch.Generator().manual_seed(0)
    cfg, dt = bundle.config, bundle.dtype
    ids, _ = bundle.text_tokenizer.batch(["pop rock, energetic", "calm piano"], 16)
    with torch.no_grad():
        text = bundle.text_encoder(ids)
        v = bundle.model.decoder(torch.randn(1, 6, 64, generator=gen).to(dt), 0.5, None,
                                 torch.randn(1, 4, cfg.enc_hidden, generator=gen).to(dt),
                                 torch.randn(1, 6, 128, generator=gen).to(dt))
        audio = bundle.vae.model.decode(torch.randn(1, 64, 2, generator=gen).to(dt))
    return [text, v, audio]


def _file_tensors(path: Path) -> dict:
    header = read_header(path)
    with open(path, "rb") as fh:
        return {k: read_tensor(fh, info) for k, info in header.tensors.items()}


def _rewrite(src: Path, dst: Path, edit, keep_metadata: bool = True) -> Path:
    """Copy a safetensors file through ``edit(dict) -> dict`` (metadata kept unless asked)."""
    header = read_header(src)
    tensors = edit(_file_tensors(src))
    specs = {k: (v.dtype, tuple(v.shape)) for k, v in tensors.items()}
    dst.parent.mkdir(parents=True, exist_ok=True)
    return write_safetensors(dst, specs, lambda k: tensors[k], header.metadata if keep_metadata else None)


# --- round trips ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("layout,name", [("aio", LAYOUT_AIO), ("split", LAYOUT_SPLIT), ("official", LAYOUT_OFFICIAL)])
def test_round_trip_every_layout(bundles, written, layout, name, dtype):
    ref = bundles[dtype]
    got = load_v15(written[layout, dtype], dtype=dtype)
    assert got.variant.layout == name and got.variant.kind == "turbo" and got.dtype == dtype
    _assert_same_weights(ref, got)
    for a, b in zip(_outputs(ref), _outputs(got)):
        assert torch.equal(a, b)
    for m in got.modules().values():  # nothing left on meta, inference mode
        assert all(t.device.type == "cpu" for t in list(m.parameters()) + list(m.buffers()))
        assert not any(p.requires_grad for p in m.parameters()) and not m.training
    assert asdict(got.config) == asdict(ref.config)


def test_half_precision_from_float32_files(bundles, written):
    got = load_v15(written["split", torch.float32], dtype=torch.float16)
    assert all(t.dtype == torch.float16 for t in _states(got).values())
    ref = _states(bundles[torch.float32])
    assert all(torch.equal(v, ref[k].half()) for k, v in _states(got).items())


def test_published_files_without_configs(bundles, written):
    """No config in the metadata: configs from shapes, kind from the file name, VAE namings."""
    ref = bundles[torch.float32]
    for key in ("aio_bare", "split_prefixed"):
        got = load_v15(written[key], dtype=torch.float32)
        _assert_same_weights(ref, got)
        assert _published(got.config) == _published(ref.config)
        assert (got.variant.kind, got.variant.kind_basis) == ("turbo", "file name")
    vae_keys = read_header(Path(written["split_prefixed"]).parents[1] / "vae" / "ace_1.5_vae.safetensors").tensors
    assert any(k.endswith("parametrizations.weight.original1") for k in vae_keys)
    assert not any(k.endswith(("weight_g", "weight_v")) for k in vae_keys)


def test_xl_shaped_model(bundles, written):
    ref = bundles["xl"]
    got = load_v15(written["xl"], dtype=torch.float32)
    assert got.config.is_xl and got.config.encoder_hidden_size == 32 and got.config.hidden_size == 48
    _assert_same_weights(ref, got)
    assert got.variant.kind == "base" and got.variant.sampler_kind == "base"
    for a, b in zip(_outputs(ref), _outputs(got)):
        assert torch.equal(a, b)


def test_default_dtype_log_lines_and_the_lm(written, caplog):
    path = written["aio", torch.float32]
    with caplog.at_level(logging.INFO, logger="AceForge"):
        got = load_v15(path)
    assert got.dtype == torch.bfloat16 and got.model.dtype == torch.bfloat16
    lines = [r.getMessage() for r in caplog.records if r.name == "AceForge"]
    assert len(lines) == 2
    assert "skipped on purpose" in lines[0] and "5 Hz LM" in lines[0] and "logit_scale" in lines[0]
    assert "5 Hz LM" in lines[1] and "not loaded" in lines[1] and "text_encoders.qwen3_2b." in lines[1]
    (lm,) = got.lm_sources
    assert lm.prefix == "text_encoders.qwen3_2b.transformer.model." and lm.file == path
    header = read_header(path)
    lm_keys = {k for k in header.tensors if k.startswith("text_encoders.qwen3_2b.")}
    assert lm_keys and lm_keys <= set(got.skipped)
    assert got.skipped["text_encoders.qwen3_06b.logit_scale"]
    # every key of the file is loaded or skipped by name
    assert len(header.tensors) == len(got.skipped) + sum(len(m.state_dict()) for m in got.modules().values())


def test_progress_hook_counts_every_tensor(written):
    calls = []
    got = load_v15(written["official", torch.float32], dtype=torch.float32, progress=lambda d, t: calls.append((d, t)))
    total = sum(len(m.state_dict()) for m in got.modules().values())
    assert calls == [(i, total) for i in range(1, total + 1)]


def test_silence_latent_sources(written, bundles):
    official = load_v15(written["official", torch.float32], dtype=torch.float32)
    assert official.silence_source.endswith("silence_latent.pt")
    assert torch.equal(official.silence(750), pattern_silence(750))
    assert torch.equal(official.silence(1600)[:, 750:1500], pattern_silence(750))  # tiled beyond its length
    comfy = load_v15(written["aio", torch.float32], dtype=torch.float32)
    assert comfy.silence_latent is None and comfy.silence_source == "built-in pattern"
    assert torch.equal(comfy.silence(20), pattern_silence(20))


# --- recognition and paths -----------------------------------------------------------------------
def test_paths_that_lead_to_each_layout(written):
    root = written["official", torch.float32]
    for p in (root, root / "acestep-v15-turbo", root / "acestep-v15-turbo" / "model.safetensors", root / "vae",
              root / "Qwen3-Embedding-0.6B" / "model.safetensors"):
        lay = detect_v15(p)
        assert lay.layout == LAYOUT_OFFICIAL and lay.parts["dit"].folder == root / "acestep-v15-turbo"
        assert [lm.folder.name for lm in lay.lm_sources] == ["acestep-5Hz-lm-1.7B"]
    models = Path(written["split", torch.float32]).parents[1]
    for p in (models, written["split", torch.float32]):
        lay = detect_v15(p)
        assert lay.layout == LAYOUT_SPLIT and lay.parts["text_encoder"].prefix == "model."
        assert lay.parts["vae"].naming == "comfy" and lay.parts["dit"].prefix == ""
    lay = detect_v15(written["split_prefixed"])
    assert lay.parts["dit"].prefix == DIT
    lay = detect_v15(written["aio", torch.float32])
    assert lay.layout == LAYOUT_AIO
    assert {c: p.prefix for c, p in lay.parts.items()} == {
        "dit": DIT, "vae": "vae.", "text_encoder": "text_encoders.qwen3_06b.transformer.model."}


def test_split_files_side_by_side(written, tmp_path):
    models = Path(written["split", torch.float32]).parents[1]
    flat = tmp_path / "flat"
    flat.mkdir()
    for f in models.rglob("*.safetensors"):
        shutil.copy(f, flat / f.name)
    got = load_v15(flat / "acestep_v1.5_turbo.safetensors", dtype=torch.float32)
    assert got.variant.layout == LAYOUT_SPLIT


@pytest.mark.parametrize("name,kind", [
    ("acestep_v1.5_turbo.safetensors", "turbo"), ("acestep_v1.5_base.safetensors", "base"),
    ("acestep_v1.5_xl_sft_bf16.safetensors", "sft"), ("acestep-v15-turbo-shift3.safetensors", "turbo"),
    ("acestep_v1.5_xl_base_bf16.safetensors", "base"), ("my_music_model.safetensors", "unknown"),
])
def test_kind_from_the_file_name(written, tmp_path, name, kind, caplog):
    models = tmp_path / "models"
    shutil.copytree(Path(written["split_prefixed"]).parents[1], models)
    src = next((models / "diffusion_models").iterdir())
    dit = src.rename(src.with_name(name))
    lay = detect_v15(dit)
    assert lay.kind == kind and lay.kind_basis == ("file name" if kind != "unknown" else "nothing")
    if kind == "unknown":
        with caplog.at_level(logging.INFO, logger="AceForge"):
            got = load_v15(dit, dtype=torch.float32)
        assert got.variant.kind == "unknown" and got.variant.sampler_kind == "turbo"
        warn = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "AceForge"]
        assert len(warn) == 1 and name in warn[0].getMessage() and "turbo" in warn[0].getMessage()


def test_kind_from_config_json_wins_over_the_name(written, tmp_path):
    root = tmp_path / "official"
    shutil.copytree(written["official", torch.float32], root)
    cfg_path = root / "acestep-v15-turbo" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(is_turbo=False, model_version="sft")
    cfg_path.write_text(json.dumps(cfg))
    lay = detect_v15(root)
    assert (lay.kind, lay.kind_basis) == ("sft", "config.json")


def test_root_with_several_dits(written, tmp_path):
    root = tmp_path / "several"
    shutil.copytree(written["official", torch.float32], root)
    shutil.copytree(root / "acestep-v15-turbo", root / "acestep-v15-base")
    lay = detect_v15(root)
    assert lay.parts["dit"].folder.name == "acestep-v15-turbo" and lay.notes
    assert detect_v15(root / "acestep-v15-base").parts["dit"].folder.name == "acestep-v15-base"
    (root / "acestep-v15-turbo").rename(root / "acestep-v15-sft")
    with pytest.raises(CheckpointError, match="several ACE-Step 1.5 DiT folders") as err:
        detect_v15(root)
    assert "acestep-v15-base" in str(err.value) and str(root) in str(err.value)


def test_sharded_official_dit(written, bundles, tmp_path):
    root = tmp_path / "sharded"
    shutil.copytree(written["official", torch.float32], root)
    folder = root / "acestep-v15-turbo"
    tensors = _file_tensors(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    keys = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    for name, ks in shards.items():
        write_safetensors(folder / name, {k: (tensors[k].dtype, tuple(tensors[k].shape)) for k in ks},
                          lambda k: tensors[k])
    index = {"metadata": {}, "weight_map": {k: name for name, ks in shards.items() for k in ks}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    got = load_v15(root, dtype=torch.float32)
    _assert_same_weights(bundles[torch.float32], got)
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="shard model-00002-of-00002.safetensors is missing"):
        load_v15(root)


def test_override_parts(written, bundles, tmp_path):
    """vae= / text_encoder= supply a missing part or replace the all-in-one's own (skipped by name)."""
    aio = written["aio", torch.float32]
    official = written["official", torch.float32]
    got = load_v15(aio, vae=official / "vae", text_encoder=official / "Qwen3-Embedding-0.6B", dtype=torch.float32)
    _assert_same_weights(bundles[torch.float32], got)
    assert got.variant.files["vae"].endswith("diffusion_pytorch_model.safetensors")
    assert got.text_tokenizer.source.startswith(str(official / "Qwen3-Embedding-0.6B"))
    assert any("replaced by" in why for k, why in got.skipped.items() if k.startswith("vae."))
    assert any("replaced by" in why for k, why in got.skipped.items() if k.startswith("text_encoders.qwen3_06b.t"))
    dit_only = _rewrite(aio, tmp_path / "dit_only.safetensors",
                        lambda t: {k: v for k, v in t.items() if k.startswith(DIT)})
    with pytest.raises(CheckpointError, match="incomplete ACE-Step 1.5 checkpoint") as err:
        load_v15(dit_only)
    assert "VAE" in str(err.value) and "Qwen3-Embedding" in str(err.value) and str(dit_only) in str(err.value)
    models = Path(written["split", torch.float32]).parents[1]
    got = load_v15(dit_only, vae=models / "vae" / "ace_1.5_vae.safetensors", text_encoder=models / "text_encoders",
                   dtype=torch.float32)
    _assert_same_weights(bundles[torch.float32], got)


def test_the_files_of_one_model_in_any_order(written, bundles, tmp_path):
    models = Path(written["split", torch.float32]).parents[1]
    files = [models / "text_encoders" / "qwen_0.6b_ace15.safetensors", models / "vae" / "ace_1.5_vae.safetensors"]
    flat = tmp_path / "elsewhere"
    flat.mkdir()
    dit = shutil.copy(written["split", torch.float32], flat / "acestep_v1.5_turbo.safetensors")
    got = load_v15([files[0], files[1], dit], dtype=torch.float32)
    _assert_same_weights(bundles[torch.float32], got)
    assert got.variant.files["vae"] == str(models / "vae" / "ace_1.5_vae.safetensors")
    with pytest.raises(CheckpointError, match="expected one ACE-Step 1.5 DiT"):
        load_v15([files[0], files[1]])
    with pytest.raises(CheckpointError, match="not a part of ACE-Step 1.5 that loads with the DiT"):
        load_v15([dit, files[1], files[1]])


# --- every published manifest, full size, on meta ---------------------------------------------------
def _manifest(name: str) -> dict:
    path = MANIFESTS / name
    if not path.exists():
        pytest.skip(f"manifest {name} not available")
    return json.loads(path.read_text())["tensors"]


def _sparse(path: Path, tensors: dict, rename=lambda k: k) -> Path:
    """A safetensors file with the manifest's keys and full shapes whose data is a hole (no disk)."""
    header, offset = {}, 0
    for key, entry in tensors.items():
        shape = [int(s) for s in entry["shape"]]
        dtype, size = ("F32", 4) if not entry["dtype"].startswith("bf16") else ("BF16", 2)
        n = size * int(torch.Size(shape).numel())
        header[rename(key)] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        fh.truncate(8 + len(raw) + offset)
    return path


def _plan_covers_everything(path, **parts):
    layout = detect_v15(path, **parts)
    plan = plan_v15(layout, torch.bfloat16)
    for comp, module in plan.modules.items():
        assert set(plan.plans[comp]) == set(module.state_dict()), comp
    for header in layout.headers:  # every key of every file is loaded or skipped by name
        keys = set(header.tensors)
        loaded = {k for k in keys if (header.path, k) in plan.loaded}
        assert loaded | (keys & set(plan.skipped)) == keys and not loaded & set(plan.skipped)
    return layout, plan


def _published(config) -> dict:
    return {k: v for k, v in asdict(config).items() if k not in ("is_turbo", "model_version")}


def test_manifest_all_in_one(tmp_path):
    path = _sparse(tmp_path / AIO, _manifest(M_AIO))
    layout, plan = _plan_covers_everything(path)
    assert (layout.layout, layout.size, layout.kind) == (LAYOUT_AIO, "2B", "turbo")
    assert _published(plan.configs["dit"]) == _published(AceStep15Config())
    assert asdict(plan.configs["vae"]) == asdict(OobleckConfig())
    assert asdict(plan.configs["text_encoder"]) == asdict(Qwen3Config())
    assert [(lm.variant, lm.prefix) for lm in layout.lm_sources] == [("1.7B", "text_encoders.qwen3_2b.transformer.model.")]
    assert sum(k.startswith("text_encoders.qwen3_2b.") for k in plan.skipped) == 311


@pytest.mark.parametrize("dit,size", [(M_SPLIT_DIT, "2B"), (M_DIT_XL, "XL")])
@pytest.mark.parametrize("weight_norm", ["gv", "parametrizations"])
def test_manifest_split_files(tmp_path, dit, size, weight_norm):
    models = tmp_path / "models"
    name = "acestep_v1.5_turbo.safetensors" if size == "2B" else "acestep_v1.5_xl_turbo_bf16.safetensors"
    path = _sparse(models / "diffusion_models" / name, _manifest(dit))
    _sparse(models / "text_encoders" / "qwen_0.6b_ace15.safetensors", _manifest(M_SPLIT_TE))
    for lm, manifest in M_SPLIT_LM.items():
        _sparse(models / "text_encoders" / f"qwen_{lm}_ace15.safetensors", _manifest(manifest))
    rename = (lambda k: k) if weight_norm == "gv" else (
        lambda k: k.replace(".weight_g", ".parametrizations.weight.original0").replace(
            ".weight_v", ".parametrizations.weight.original1"))
    _sparse(models / "vae" / "ace_1.5_vae.safetensors", _manifest(M_SPLIT_VAE), rename)
    layout, plan = _plan_covers_everything(path)
    assert (layout.layout, layout.size, layout.kind) == (LAYOUT_SPLIT, size, "turbo")
    assert _published(plan.configs["dit"]) == _published(AceStep15Config() if size == "2B" else xl_config())
    assert asdict(plan.configs["vae"]) == asdict(OobleckConfig())
    assert sorted(lm.variant for lm in layout.lm_sources) == ["1.7B", "4B"]  # seen in text_encoders/, not loaded


def test_manifest_official_folders(tmp_path):
    root = tmp_path / "checkpoints"
    _sparse(root / "acestep-v15-turbo" / "model.safetensors", _manifest(M_DIT))
    (root / "acestep-v15-turbo" / "config.json").write_text(json.dumps({"is_turbo": True, "model_type": "acestep"}))
    _sparse(root / "vae" / "diffusion_pytorch_model.safetensors", _manifest(M_VAE))
    vae_cfg = json.loads((MANIFESTS / M_VAE).read_text())
    (root / "vae" / "config.json").write_text(json.dumps(vae_cfg["config_json_reconstructed"]))
    qwen = json.loads((MANIFESTS / M_TE).read_text())
    _sparse(root / "Qwen3-Embedding-0.6B" / "model.safetensors", qwen["tensors"])
    (root / "Qwen3-Embedding-0.6B" / "config.json").write_text(json.dumps(qwen["config"]))
    for lm, manifest in M_LM.items():
        folder = root / f"acestep-5Hz-lm-{lm}"
        _sparse(folder / "model.safetensors", _manifest(manifest))
        (folder / "config.json").write_text("{}")
    layout, plan = _plan_covers_everything(root)
    assert (layout.layout, layout.size, layout.kind, layout.kind_basis) == (LAYOUT_OFFICIAL, "2B", "turbo", "config.json")
    assert asdict(plan.configs["text_encoder"]) == asdict(Qwen3Config())
    assert sorted(lm.variant for lm in layout.lm_sources) == ["0.6B", "1.7B", "4B"]
    # an LM folder pointed at as the model
    with pytest.raises(CheckpointError, match=r"expected the ACE-Step 1.5 DiT .* here, found an ACE-Step 1.5 5 Hz LM") as err:
        detect_v15(root / "acestep-5Hz-lm-1.7B")
    assert "acestep-5Hz-lm-1.7B" in str(err.value)


def test_every_15_manifest_is_checked_here():
    names = {p.name for p in MANIFESTS.glob("*.json")} if MANIFESTS.is_dir() else set()
    if not names:
        pytest.skip("manifests not available")
    assert {n for n in names if not n.startswith("v1__") and "v1_3.5b" not in n} == V15_MANIFESTS


def test_comfy_vae_naming_round_trip():
    """Our diffusers -> ComfyUI names, inverted by the ComfyUI -> diffusers converter, equal the manifest."""
    vae = OobleckVAE(OobleckConfig(), device="meta")
    ours = {diffusers_to_comfy_vae_key(k, 5): (v.shape[1],) if k.endswith(("alpha", "beta")) else tuple(v.shape)
            for k, v in vae.state_dict().items()}
    published = {k: tuple(v["shape"]) for k, v in _manifest(M_SPLIT_VAE).items()}
    assert ours == published
    back = comfy_to_diffusers({k: torch.empty(s, device="meta") for k, s in ours.items()})
    assert {k: tuple(v.shape) for k, v in back.items()} == {k: tuple(v.shape) for k, v in vae.state_dict().items()}


# --- errors: each names the file ------------------------------------------------------------------------
def _fake(path: Path, manifest: str, limit: int = 400) -> Path:
    """A small file with the first keys of a published manifest (tiny shapes)."""
    keys = list(_manifest(manifest))[:limit]
    return write_safetensors(path, {k: (torch.float32, (2,)) for k in keys}, lambda k: torch.zeros(2))


@pytest.mark.parametrize("manifest,expect", [
    ("comfy__ace_step_v1_3.5b.safetensors.json", "ACE-Step v1"),
    ("v1__ace_step_transformer__diffusion_pytorch_model.safetensors.json", "ACE-Step v1"),
])
def test_wrong_family(tmp_path, manifest, expect):
    path = _fake(tmp_path / "other.safetensors", manifest, limit=2000)
    with pytest.raises(CheckpointError, match="not an ACE-Step 1.5 checkpoint") as err:
        load_v15(path)
    assert str(path) in str(err.value) and expect in str(err.value)


def test_parts_in_the_wrong_place(written, tmp_path):
    lm = tiny_v15_lm()
    lm_file = write_safetensors(tmp_path / "qwen_1.7b_ace15.safetensors",
                                {"model." + k: (v.dtype, tuple(v.shape)) for k, v in lm.state_dict().items()},
                                lambda k: lm.state_dict()[k[len("model."):]])
    with pytest.raises(CheckpointError, match="not the ACE-Step 1.5 DiT") as err:  # an LM given as the DiT
        load_v15(lm_file)
    assert str(lm_file) in str(err.value) and "5 Hz LM" in str(err.value)
    models = Path(written["split", torch.float32]).parents[1]
    dit, vae = written["split", torch.float32], models / "vae" / "ace_1.5_vae.safetensors"
    with pytest.raises(CheckpointError, match="expected the Qwen3-Embedding-0.6B text encoder here") as err:
        load_v15(dit, text_encoder=vae)  # a VAE given as the text encoder
    assert str(vae) in str(err.value) and "VAE" in str(err.value)
    with pytest.raises(CheckpointError, match="expected the Qwen3-Embedding-0.6B text encoder here") as err:
        load_v15(dit, text_encoder=lm_file)
    assert "5 Hz LM" in str(err.value)
    with pytest.raises(CheckpointError, match="expected the ACE-Step 1.5 VAE") as err:
        load_v15(dit, vae=written["split", torch.float32])
    with pytest.raises(CheckpointError, match="not the ACE-Step 1.5 DiT"):
        load_v15(vae)


@pytest.mark.parametrize("gone", ["vae", "text_encoders"])
def test_missing_split_part(written, tmp_path, gone):
    models = tmp_path / "models"
    shutil.copytree(Path(written["split", torch.float32]).parents[1], models)
    shutil.rmtree(models / gone)
    with pytest.raises(CheckpointError, match="incomplete ACE-Step 1.5 checkpoint") as err:
        load_v15(models / "diffusion_models" / "acestep_v1.5_turbo.safetensors")
    msg = str(err.value)
    assert ("VAE" if gone == "vae" else "Qwen3-Embedding") in msg and "acestep_v1.5_turbo.safetensors" in msg


@pytest.mark.parametrize("gone", ["vae", "Qwen3-Embedding-0.6B"])
def test_missing_official_part(written, tmp_path, gone):
    root = tmp_path / "official"
    shutil.copytree(written["official", torch.float32], root)
    shutil.rmtree(root / gone)
    with pytest.raises(CheckpointError, match="incomplete ACE-Step 1.5 checkpoint") as err:
        load_v15(root)
    assert str(root / gone) in str(err.value) and "folder missing" in str(err.value)


def test_official_part_with_bin_only(written, tmp_path):
    root = tmp_path / "official"
    shutil.copytree(written["official", torch.float32], root)
    (root / "vae" / "diffusion_pytorch_model.safetensors").rename(root / "vae" / "diffusion_pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"\.safetensors is required"):
        load_v15(root)


def test_truncated_and_corrupt_files(written, tmp_path):
    data = Path(written["aio", torch.float32]).read_bytes()
    cut = tmp_path / "cut" / AIO
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) - 1000])
    with pytest.raises(CheckpointError, match="truncated") as err:
        load_v15(cut)
    assert str(cut) in str(err.value)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x01\x02")
    with pytest.raises(CheckpointError, match="too short"):
        load_v15(junk)
    with pytest.raises(CheckpointError, match="only .safetensors"):
        (tmp_path / "model.ckpt").write_bytes(b"PK\x03\x04")
        load_v15(tmp_path / "model.ckpt")
    with pytest.raises(CheckpointError, match="no such file"):
        load_v15(tmp_path / "nope.safetensors")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="not an ACE-Step 1.5 folder"):
        load_v15(empty)


def test_missing_unexpected_and_mismatched_keys(written, tmp_path):
    aio = written["aio", torch.float32]
    gone = DIT + "decoder.layers.1.mlp.up_proj.weight"
    path = _rewrite(aio, tmp_path / "a" / AIO, lambda t: {k: v for k, v in t.items() if k != gone})
    with pytest.raises(CheckpointError, match="missing 1 keys") as err:
        load_v15(path)
    assert gone in str(err.value) and str(path) in str(err.value)
    path = _rewrite(aio, tmp_path / "b" / AIO, lambda t: {**t, DIT + "decoder.foo.weight": torch.zeros(2)})
    with pytest.raises(CheckpointError, match="unexpected 1 keys: model.diffusion_model.decoder.foo.weight"):
        load_v15(path)
    path = _rewrite(aio, tmp_path / "c" / AIO, lambda t: {**t, "cond_stage_model.x": torch.zeros(2)})
    with pytest.raises(CheckpointError, match="outside the ACE-Step 1.5 parts: cond_stage_model.x") as err:
        load_v15(path)
    assert str(path) in str(err.value)
    key = "text_encoders.qwen3_06b.transformer.model.layers.0.mlp.up_proj.weight"
    path = _rewrite(aio, tmp_path / "d" / AIO, lambda t: {**t, key: torch.zeros(31, 16)})
    with pytest.raises(CheckpointError, match="shape mismatch") as err:
        load_v15(path)
    assert key in str(err.value) and str(path) in str(err.value)
    path = _rewrite(aio, tmp_path / "e" / AIO, lambda t: {**t, "vae.decoder.layers.1.layers.9.alpha": torch.zeros(2)})
    with pytest.raises(CheckpointError, match=r"decoder.layers.1.layers.9.alpha.*under 'vae.'") as err:
        load_v15(path)
    assert str(path) in str(err.value)


def test_official_config_json_disagreeing_with_shapes(written, tmp_path):
    root = tmp_path / "official"
    shutil.copytree(written["official", torch.float32], root)
    cfg_path = root / "Qwen3-Embedding-0.6B" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["intermediate_size"] = 24
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="shape mismatch") as err:
        load_v15(root)
    assert "mlp.gate_proj" in str(err.value) and str(root / "Qwen3-Embedding-0.6B" / "model.safetensors") in str(err.value)


def test_tokenizer_larger_than_the_embedding(written, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(Path(written["split", torch.float32]).parents[1], models)
    te = models / "text_encoders" / "qwen_0.6b_ace15.safetensors"
    _rewrite(te, te, lambda t: {k: (v[:1000] if "embed_tokens" in k else v) for k, v in t.items()}, keep_metadata=False)
    with pytest.raises(CheckpointError, match="1000 embedding rows") as err:
        load_v15(models)
    assert str(te) in str(err.value)


def test_bad_dtype_argument(written):
    with pytest.raises(Exception, match="dtype"):
        load_v15(written["aio", torch.float32], dtype=torch.int8)
