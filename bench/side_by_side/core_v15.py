"""ComfyUI core's side, ACE-Step 1.5: each phase run the way ComfyUI runs it (its own ``comfy``
from the harness, in the harness's Python environment; the pack never imports ComfyUI).

* load: ``comfy.sd.load_checkpoint_guess_config`` for the model or the text encoder (its CLIP
  from the all-in-one file always holds Qwen3-0.6B *and* the 5 Hz LM, so the ``text`` and ``lm``
  groups load the same thing), ``comfy.sd.VAE`` on the file's ``vae.`` tensors; a forced dtype
  goes in as ``model_options`` / ``te_model_options`` / ``VAE(dtype=)``;
* ``text_encode``: ``clip.tokenize(tags, lyrics=..., bpm=..., generate_audio_codes=False)`` +
  ``clip.encode_from_tokens_scheduled`` (the TextEncodeAceStepAudio1.5 node with the LM off);
* ``dit_forward``: ``diffusion_model(x, t, context=..., lyric_embed=..., refer_audio=silence,
  is_covers=False)`` batch 1, what ``extra_conds`` gives a text-to-music call without codes;
* ``generate``: ``comfy.sample.sample`` (KSampler: euler, "simple", cfg 1: turbo, no uncond
  batch) with the given noise; the time of every step is recorded from its callback;
* ``vae_encode`` / ``vae_decode``: ``vae.encode`` / ``vae.decode``;
* ``lm``: ``ace15.generate_audio_codes`` (the loop the text node runs for audio codes) on the
  prompt ids of the inputs, greedy (temperature 0), ``cfg`` as given.

A checkpoint whose LM has fewer than 28 layers (``--quick``) gets its real layer count (core's
LM config hard-codes 28).
"""

from __future__ import annotations

import json
import re
import struct

import torch

from .core_v1 import forced, load_vae
from .core_v1 import setup_comfy as setup_comfy_base
from .core_base import CoreWorker

LM_LAYERS = 28
LM_LAYER_KEY = re.compile(r"^text_encoders\.qwen3_2b\.transformer\.model\.layers\.(\d+)\.")


def header_keys(path: str) -> list:
    """Tensor names of a safetensors file (its JSON header only; stdlib)."""
    with open(path, "rb") as fh:
        size = struct.unpack("<Q", fh.read(8))[0]
        return [k for k in json.loads(fh.read(size)) if k != "__metadata__"]


def lm_layer_count(path: str) -> int:
    """Layers of the 1.7B LM (``qwen3_2b``) in an all-in-one file; 0 when it has none."""
    found = {int(m.group(1)) for k in header_keys(path) if (m := LM_LAYER_KEY.match(k))}
    return max(found) + 1 if found else 0


def setup_comfy(comfy_dir: str, device: str = "cpu", checkpoint: str | None = None):
    """Import ComfyUI's ``comfy`` with the CPU forced unless a GPU is asked for; a truncated LM
    in ``checkpoint`` gets its layer count (the DiT's layers core counts itself)."""
    setup_comfy_base(comfy_dir, device, 0)
    import comfy.text_encoders.ace15  # noqa: F401
    import comfy.text_encoders.llama as llama

    layers = lm_layer_count(checkpoint) if checkpoint else 0
    if layers and layers != LM_LAYERS and not getattr(llama, "_aceforge_bench_lm_layers", 0):
        original = llama.Qwen3_2B_ACE15_lm_Config

        def config_with_layers(**kw):
            kw.setdefault("num_hidden_layers", layers)
            return original(**kw)

        llama.Qwen3_2B_ACE15_lm_Config = config_with_layers
        llama._aceforge_bench_lm_layers = layers


class CoreV15(CoreWorker):
    family = "v15"
    sample_rate = 48000

    def __init__(self, args):
        super().__init__(args)
        setup_comfy(args.comfy, args.device, args.checkpoint)
        self.model = self.clip = self.vae = None

    def load_group(self, group: str, dtype) -> None:
        import comfy.model_management as mm
        import comfy.sd

        path = self.args.checkpoint
        if group in ("text", "lm"):
            _, self.clip, _, _ = comfy.sd.load_checkpoint_guess_config(
                path, output_vae=False, output_clip=True, output_model=False, te_model_options=forced(dtype))
            self.clip.load_model()
        elif group == "dit":
            self.model, _, _, _ = comfy.sd.load_checkpoint_guess_config(
                path, output_vae=False, output_clip=False, model_options=forced(dtype))
            mm.load_models_gpu([self.model])
        elif group == "vae":
            self.vae = load_vae(path, dtype)
        else:
            raise ValueError(f"unknown group {group!r}")

    # -- phases --------------------------------------------------------------------------------------
    def phase_text_encode(self, dtype, tags: str = "", lyrics: str = "", duration: float = 30.0, bpm: int = 120,
                          keyscale: str = "C major", timesignature: str = "4", language: str = "en"):
        def run():
            tokens = self.clip.tokenize(tags, lyrics=lyrics, bpm=bpm, duration=duration,
                                        timesignature=int(timesignature), language=language, keyscale=keyscale,
                                        seed=0, generate_audio_codes=False)
            cond = self.clip.encode_from_tokens_scheduled(tokens)
            states, lyric = cond[0][0], cond[0][1]["conditioning_lyrics"]
            return {"outputs": {"text_hidden": states, "lyric_hidden": lyric},
                    "text_tokens": int(states.shape[1]), "lyric_tokens": int(lyric.shape[1])}

        return run

    def _silence(self, frames: int):
        from comfy.ldm.ace.ace_step15 import get_silence_latent

        return get_silence_latent(frames, self.device)

    def phase_dit_forward(self, dtype):
        dm = self.model.model.diffusion_model
        dt = self._inference_dtype()
        x = self.tensor("x", dt)
        t = self.tensor("timestep", torch.float32)
        text, lyric = self.tensor("text_hidden", dt), self.tensor("lyric_hidden", dt)
        refer = self._silence(x.shape[-1]).to(dt)

        def run():
            out = dm(x, t, context=text, lyric_embed=lyric, refer_audio=refer, is_covers=False,
                     transformer_options={})
            return {"outputs": {"v": out}}

        return run

    def phase_generate(self, dtype, steps: int = 8, seed: int = 0, **_):
        text, lyric = self.inputs["text_hidden"], self.inputs["lyric_hidden"]
        positive = [[text, {"pooled_output": None, "conditioning_lyrics": lyric}]]
        negative = [[torch.zeros_like(text), {"pooled_output": None, "conditioning_lyrics": torch.zeros_like(lyric)}]]
        return self._ksampler_run(positive, negative, steps, 1.0, seed)  # cfg 1: turbo

    def phase_lm(self, dtype, tokens: int = 32, cfg: float = 2.0, seed: int = 0):
        from comfy.text_encoders.ace15 import generate_audio_codes

        te = self.clip.cond_stage_model
        lm = getattr(te, te.lm_model)
        pairs = lambda ids: [[(int(i), 1.0) for i in ids.tolist()]]  # noqa: E731
        positive, negative = pairs(self.inputs["lm_prompt"]), pairs(self.inputs["lm_negative"])

        def run():
            te.reset_clip_options()
            te.set_clip_options({"execution_device": self.clip.patcher.load_device})
            codes = generate_audio_codes(lm, positive, negative, min_tokens=tokens, max_tokens=tokens, seed=seed,
                                         cfg_scale=cfg, temperature=0.0, top_p=1.0, top_k=0, min_p=0.0)
            return {"outputs": {"codes": torch.tensor([codes], dtype=torch.float32)}, "tokens": len(codes),
                    "prompt_tokens": len(positive[0])}

        return run


WORKER = CoreV15
