"""Our side, ACE-Step v1: each phase run the way the pack runs it (``ace_core.v1``).

Groups are loaded from the one all-in-one file, only the modules of the group (the loader's own
key plan and streaming, restricted to one module), so the two sides never need the whole model
resident twice. Phases:

* ``text_encode``: ``pipeline.encode_conditioning`` (lyric tokens, UMT5 and its ERG pass), as the
  text node runs it;
* ``dit_forward``: one DiT call, batch 2 (cond + null: CFG as one batch): ``encode`` + ``decode``,
  the same computation as core's ``forward``;
* ``generate``: ``pipeline.generate`` (encode the conditions once, cross-attention K/V cache,
  ``steps`` guided Euler steps) with the given noise; the time of every step is recorded;
* ``vae_encode`` / ``vae_decode``: ``pipeline.encode_audio`` / ``pipeline.decode``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import torch

from .worker_base import PhaseWorker

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

_ROLE = {"text": "text_encoder", "dit": "dit", "vae": "vae"}


def load_v1_part(path, role: str, dtype: torch.dtype, device="cpu"):
    """(module for ``role`` — "dit", "text_encoder" or "vae" —, typed configs, text tokenizer or
    None) from a v1 checkpoint, streaming only that module's tensors (``load_v1``'s own steps)."""
    from ace_core.loading.safetensors_io import read_tensor
    from ace_core.loading.streaming import materialize_buffers, stream_into
    from ace_core.v1 import loader
    from ace_core.v1.layouts import detect_v1
    from ace_core.v1.text_tokenizer import UMT5Tokenizer

    layout = detect_v1(path)
    configs = loader._typed_configs(loader.infer_configs(layout), where=layout.source)
    module = loader.build_models(configs, dtype=dtype, device="meta")[role]
    plan = {}
    for comp, src in layout.components.items():
        if loader._ROUTE[comp][0] != role:
            continue
        load, _ = loader._plan_component(src, comp, configs[comp], module)
        plan.update({name: (src.file, src.header.tensors[full]) for name, full in load.items()})
    stream_into(module, plan, torch.device(device), None, [0, len(plan)])
    materialize_buffers(module, torch.device(device))
    module.requires_grad_(False).eval()
    tokenizer = None
    if role == "text_encoder" and layout.spiece is not None:
        header, key = layout.spiece
        with open(header.path, "rb") as fh:
            raw = read_tensor(fh, header.tensors[key], header.path)
        tokenizer = UMT5Tokenizer.from_spiece_bytes(raw, source=f"{header.path}:{key}")
    return module, configs, tokenizer


class OursV1(PhaseWorker):
    side = "ours"
    family = "v1"

    def __init__(self, args):
        super().__init__(args)
        self.bundle = None

    def load_group(self, group: str, dtype: torch.dtype) -> None:
        from ace_core.loading.streaming import default_dtype
        from ace_core.v1.bundle import AceStepV1

        dtype = default_dtype(self.device) if dtype is None else dtype
        module, configs, tokenizer = load_v1_part(self.args.checkpoint, _ROLE[group], dtype, self.device)
        parts = {"dit": None, "text_encoder": None, "text_tokenizer": tokenizer, "vae": None}
        parts[_ROLE[group]] = module
        if group == "text":  # encode_conditioning checks lyric ids against the DiT's vocabulary
            parts["dit"] = SimpleNamespace(config=configs["dit"])
        self.bundle = AceStepV1(**parts, source=str(self.args.checkpoint), dtype=dtype, layout="comfy")

    def release(self) -> None:
        self.bundle = None

    # -- phases --------------------------------------------------------------------------------------
    def phase_text_encode(self, dtype, tags: str = "", lyrics: str = ""):
        from ace_core.v1 import pipeline

        def run():
            cond = pipeline.encode_conditioning(self.bundle, tags, lyrics)
            return {"outputs": {"text_states": cond.text_states, "lyric_ids": cond.lyric_ids.float()},
                    "text_tokens": int(cond.text_states.shape[1]), "lyric_tokens": int(cond.lyric_ids.shape[1])}

        return run

    def _cfg_batch(self, dtype):
        """The batch-2 DiT inputs: row 0 conditional, row 1 the official null (zero text, zero ids)."""
        text = self.tensor("text_states", dtype)
        ids = self.tensor("lyric_ids")
        text2 = torch.cat([text, torch.zeros_like(text)])
        ids2 = torch.cat([ids, torch.zeros_like(ids)])
        ones = lambda n: torch.ones(2, n, device=self.device, dtype=torch.long)  # noqa: E731
        return text2, ones(text.shape[1]), ids2, ones(ids.shape[1])

    def phase_dit_forward(self, dtype):
        dit, dtype = self.bundle.dit, self.bundle.dtype
        x = self.tensor("x", dtype)
        t = self.tensor("timestep", dtype).expand(x.shape[0])
        text, text_mask, ids, ids_mask = self._cfg_batch(dtype)
        speaker = torch.zeros(x.shape[0], dit.config.speaker_embedding_dim, device=self.device, dtype=dtype)
        mask = torch.ones(x.shape[0], x.shape[-1], device=self.device, dtype=dtype)

        def run():
            enc, enc_mask = dit.encode(text, text_mask, speaker, ids, ids_mask, 1.0)
            out = dit.decode(x, mask, enc, enc_mask, t, x.shape[-1])
            return {"outputs": {"v": out}}

        return run

    def phase_generate(self, dtype, steps: int = 8, cfg: float = 5.0, seed: int = 0):
        from ace_core.v1 import pipeline

        text = self.tensor("text_states", torch.float32).cpu()
        ids = self.inputs["lyric_ids"]
        cond = pipeline.TextConditioning(
            text_states=text, text_mask=torch.ones(1, text.shape[1], dtype=torch.long),
            lyric_ids=ids, lyric_mask=torch.ones_like(ids), lyrics_strength=1.0)
        settings = comparable_settings(steps, cfg)
        noise = self.inputs["noise"]

        def run():
            stamps, tick = self.step_clock()
            out = pipeline.generate(self.bundle, cond, None, latent=torch.zeros_like(noise), seed=seed,
                                    settings=settings, noise=noise, progress=tick)
            return {"outputs": {"latent": out}, "step_stamps": stamps}

        return run

    def phase_vae_encode(self, dtype):
        from ace_core.v1 import pipeline

        wave = self.inputs["waveform"]

        def run():
            return {"outputs": {"latent": pipeline.encode_audio(self.bundle, wave, 44100)},
                    "audio_seconds": wave.shape[-1] / 44100}

        return run

    def phase_vae_decode(self, dtype):
        from ace_core.v1 import pipeline

        latent = self.inputs["latent"]

        def run():
            wave = pipeline.decode(self.bundle, latent)
            return {"outputs": {"waveform": wave}, "audio_seconds": wave.shape[-1] / 44100}

        return run


def comparable_settings(steps: int, cfg: float):
    """Our sampler made comparable with core's KSampler (euler, plain CFG on every step): plain
    CFG instead of APG, guidance on all steps, no ERG (core has none)."""
    from ace_core.v1.pipeline import SamplerSettings

    return SamplerSettings(steps=steps, guidance_scale=cfg, sampler="euler", shift=3.0, guidance_type="cfg",
                           guidance_interval=1.0, erg_tag=False, erg_lyric=False, erg_diffusion=False).validate()


WORKER = OursV1
