"""The pack inside ComfyUI: ``comfy_compat``'s ComfyUI branch, run against small stand-ins of the
ComfyUI APIs it uses (signatures as in ComfyUI's folder_paths.py, comfy/model_management.py,
comfy/model_patcher.py and comfy/utils.py). Checks the model-folder registration, that our models
go through ModelPatcher + load_models_gpu, the progress bar, and that Cancel stops sampling."""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest
import torch

from workflow_tools import REPO, lyrics_vocab

PACK = "ComfyUI-AceForge-in-comfy"
CHECKPOINT = "ace_step_v1_3.5b.safetensors"


class InterruptProcessingException(BaseException):  # ComfyUI's is a BaseException too
    pass


def make_stubs(models_dir: Path) -> dict:
    exts = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
    fp = types.ModuleType("folder_paths")
    fp.models_dir = str(models_dir)
    fp.supported_pt_extensions = exts
    fp.folder_names_and_paths = {
        "checkpoints": ([str(models_dir / "checkpoints")], exts),
        "diffusion_models": ([str(models_dir / "unet"), str(models_dir / "diffusion_models")], exts),
        # what extra_model_paths.yaml leaves for a new folder name: the path and an empty set
        "ace_step": ([str(models_dir.parent / "extra" / "ace_step")], set()),
    }

    def get_folder_paths(name):
        return fp.folder_names_and_paths[name][0][:]

    def get_filename_list(name):
        paths, allowed = fp.folder_names_and_paths[name]
        out = []
        for root in paths:
            for dirpath, _dirs, files in os.walk(root):
                for f in files:
                    if not allowed or os.path.splitext(f)[1].lower() in allowed:
                        out.append(os.path.relpath(os.path.join(dirpath, f), root))
        return sorted(out)

    fp.get_folder_paths = get_folder_paths
    fp.get_filename_list = get_filename_list

    mm = types.ModuleType("comfy.model_management")
    mm.loaded = []
    mm.interrupt = False
    mm.InterruptProcessingException = InterruptProcessingException
    mm.get_torch_device = lambda: torch.device("cpu")
    mm.unet_offload_device = lambda: torch.device("cpu")
    mm.should_use_bf16 = lambda device=None, model_params=0, prioritize_performance=True, manual_cast=False: False
    mm.soft_empty_cache = lambda force=False: None

    def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                        force_full_load=False):
        for m in models:  # what ModelPatcher.load does to the model it holds
            m.model.to(m.load_device)
            m.model.device = m.load_device
            m.model.model_loaded_weight_memory = sum(t.numel() * t.element_size() for t in m.model.state_dict().values())
            mm.loaded.append(m)

    def throw_exception_if_processing_interrupted():
        if mm.interrupt:
            mm.interrupt = False
            raise InterruptProcessingException()

    mm.load_models_gpu = load_models_gpu
    mm.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted

    mp = types.ModuleType("comfy.model_patcher")

    class ModelPatcher:
        def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
            self.model, self.load_device, self.offload_device = model, load_device, offload_device
            if getattr(model, "device", None) is None:  # as ComfyUI's ModelPatcher.__init__
                model.device = offload_device
            for name in ("model_loaded_weight_memory", "lowvram_patch_counter", "model_offload_buffer_memory"):
                if not hasattr(model, name):
                    setattr(model, name, 0)

    mp.ModelPatcher = ModelPatcher

    utils = types.ModuleType("comfy.utils")
    utils.bars = []

    class ProgressBar:
        def __init__(self, total, node_id=None):
            self.total, self.current, self.updates = total, 0, []
            utils.bars.append(self)

        def update_absolute(self, value, total=None, preview=None):
            if total is not None:
                self.total = total
            self.current = min(value, self.total)
            self.updates.append(self.current)

    utils.ProgressBar = ProgressBar

    comfy = types.ModuleType("comfy")
    comfy.model_management, comfy.model_patcher, comfy.utils = mm, mp, utils
    return {"folder_paths": fp, "comfy": comfy, "comfy.model_management": mm, "comfy.model_patcher": mp,
            "comfy.utils": utils}


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    from ace_core.v1.testing import write_tiny_checkpoint

    models = tmp_path_factory.mktemp("ComfyUI") / "models"
    write_tiny_checkpoint(models / "checkpoints" / CHECKPOINT, layout="comfy", seed=1)
    official = models / "ace_step" / "ACE-Step-v1-3.5B"
    (official / "ace_step_transformer").mkdir(parents=True)
    (official / "ace_step_transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    stubs = make_stubs(models)
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        spec = importlib.util.spec_from_file_location(PACK, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
        pack = importlib.util.module_from_spec(spec)
        sys.modules[PACK] = pack
        spec.loader.exec_module(pack)
        yield pack, stubs, models
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        for name in [n for n in sys.modules if n == PACK or n.startswith(PACK + ".")]:
            del sys.modules[name]


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    vocab = lyrics_vocab()
    if vocab is not None:
        monkeypatch.setenv("ACEFORGE_LYRICS_VOCAB", str(vocab))


def run(pack, node_id, *args, **kwargs):
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    out = getattr(cls(), cls.FUNCTION)(*args, **kwargs)
    return out["result"] if isinstance(out, dict) else out  # {"ui", "result"}: as ComfyUI unwraps it


def test_pack_folder_registered_with_extensions(comfy):
    pack, stubs, models = comfy
    fp = stubs["folder_paths"]
    assert pack.nodes.comfy_compat.IN_COMFYUI is True
    paths, exts = fp.folder_names_and_paths["ace_step"]
    assert paths == [str(models.parent / "extra" / "ace_step"), str(models / "ace_step")]
    assert exts == fp.supported_pt_extensions and exts  # an explicit set: not "every file"
    names = pack.NODE_CLASS_MAPPINGS["AceForge_CheckpointLoader"].INPUT_TYPES()["required"]["ckpt_name"][0]
    assert names == ["ACE-Step-v1-3.5B/", CHECKPOINT]


def test_models_are_managed_and_progress_and_cancel_work(comfy):
    pack, stubs, _models = comfy
    mm, utils = stubs["comfy.model_management"], stubs["comfy.utils"]
    (model,) = run(pack, "AceForge_CheckpointLoader", CHECKPOINT, "auto")
    assert model.bundle.dtype == torch.float32  # auto without bf16 support
    (cond,) = run(pack, "AceForge_TextEncodeAceStepAudio", model, "pop, piano", "", 1.0, "auto")
    assert mm.loaded[-1].model.inner is model.bundle.text_encoder
    latent = {"samples": torch.zeros(1, 8, 16, 3), "type": "audio"}
    (out,) = run(pack, "AceForge_KSampler", model, cond, latent, 0, 4, 15.0, "euler", "apg", 1.0)
    assert mm.loaded[-1].model.inner is model.bundle.dit
    assert type(mm.loaded[-1].model).__name__ == "AceForgeDit"  # what ComfyUI's log names
    assert utils.bars[-1].updates == [1, 2, 3, 4] and utils.bars[-1].total == 4
    (audio,) = run(pack, "AceForge_VAEDecode", model, out)
    assert mm.loaded[-1].model.inner is model.bundle.vae
    assert utils.bars[-1].current == utils.bars[-1].total
    assert audio["waveform"].shape == (1, 2, 3 * 4096) and audio["sample_rate"] == 44100

    # Cancel: ComfyUI sets the flag; the next progress report raises and the loop stops there
    dit = model.bundle.dit
    original_decode = dit.decode
    calls = []

    def decode_and_cancel(*args, **kwargs):
        calls.append(1)
        mm.interrupt = True  # the user pressed Cancel during the first step
        return original_decode(*args, **kwargs)

    bars_before = len(utils.bars)
    dit.decode = decode_and_cancel
    try:
        with pytest.raises(InterruptProcessingException):
            run(pack, "AceForge_KSampler", model, cond, latent, 0, 30, 15.0, "euler", "apg", 1.0)
    finally:
        dit.decode = original_decode
    assert len(calls) == 1  # step 0 (outside the guidance interval: one model call), then stopped
    assert all(not bar.updates for bar in utils.bars[bars_before:])
    assert mm.interrupt is False
