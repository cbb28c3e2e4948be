"""ComfyUI core's side, ACE-Step v1: each phase run the way ComfyUI runs it (its own ``comfy``
package from the harness, in the harness's Python environment; the pack never imports ComfyUI).

* load: ``comfy.sd.load_checkpoint_guess_config`` for the model and the text encoder (only the
  group asked for), ``comfy.sd.VAE`` on the file's ``vae.`` tensors (what that function does);
  a forced dtype goes in as ``model_options`` / ``te_model_options`` / ``VAE(dtype=)``; "default"
  passes none (on a CPU: fp32 DiT and VAE, fp16-stored text encoder computing in fp32);
* ``text_encode``: ``clip.tokenize(tags, lyrics=...)`` + ``clip.encode_from_tokens_scheduled``
  (the TextEncodeAceStepAudio node);
* ``dit_forward``: ``diffusion_model(x, t, context=..., lyric_token_idx=..., speaker_embeds=...)``
  on the batch-2 CFG inputs (its sampler calls cond and uncond as one batch), in the model's
  inference dtype;
* ``generate``: ``comfy.sample.sample`` (the KSampler node: euler, "simple" schedule, CFG) with
  the given noise; the time of every step is recorded from its callback;
* ``vae_encode`` / ``vae_decode``: ``vae.encode`` / ``vae.decode`` (the VAE Encode/Decode Audio
  nodes without their loudness normalisation).

Runs on the CPU unless ``--device cuda`` (then ComfyUI picks the GPU as usual).
"""

from __future__ import annotations

import sys

import torch

from .core_base import CoreWorker

ACE_BLOCKS = 24


def setup_comfy(comfy_dir: str, device: str = "cpu", dit_blocks: int = 0):
    """Import ComfyUI's ``comfy`` from ``comfy_dir`` with the CPU forced (``--cpu``) unless a GPU is
    asked for. ``dit_blocks`` < 24: core's ACE detector hard-codes 24 DiT blocks; a smaller bench
    file (``--quick``) gets its real block count instead (counted as core counts other models')."""
    if comfy_dir not in sys.path:
        sys.path.insert(0, comfy_dir)
    import comfy.options  # noqa: F401  (argument parsing stays off: defaults)
    from comfy.cli_args import args

    args.cpu = device == "cpu"
    import comfy.model_detection as detection
    import comfy.model_management  # noqa: F401
    import comfy.sample  # noqa: F401
    import comfy.samplers  # noqa: F401
    import comfy.sd  # noqa: F401
    import comfy.utils  # noqa: F401

    if dit_blocks and dit_blocks != ACE_BLOCKS and not getattr(detection, "_aceforge_bench_blocks", False):
        original = detection.detect_unet_config

        def detect_with_block_count(state_dict, key_prefix, metadata=None):
            config = original(state_dict, key_prefix, metadata=metadata)
            if config is not None and config.get("audio_model") == "ace":
                config["num_layers"] = detection.count_blocks(
                    list(state_dict.keys()), key_prefix + "transformer_blocks.{}.")
            return config

        detection.detect_unet_config = detect_with_block_count
        detection._aceforge_bench_blocks = True


def forced(dtype):
    """Core's option dict for a forced dtype ({} = its own default)."""
    return {} if dtype is None else {"dtype": dtype}


def load_vae(path: str, dtype=None):
    import comfy.sd
    import comfy.utils

    sd = comfy.utils.load_torch_file(path)
    vae_sd = comfy.utils.state_dict_prefix_replace(sd, {"vae.": ""}, filter_keys=True)
    return comfy.sd.VAE(sd=vae_sd, dtype=dtype)


class CoreV1(CoreWorker):
    family = "v1"
    sample_rate = 44100

    def __init__(self, args):
        super().__init__(args)
        setup_comfy(args.comfy, args.device, args.dit_blocks)
        self.model = self.clip = self.vae = None

    def load_group(self, group: str, dtype) -> None:
        import comfy.model_management as mm
        import comfy.sd

        path = self.args.checkpoint
        if group == "text":
            _, self.clip, _, _ = comfy.sd.load_checkpoint_guess_config(
                path, output_vae=False, output_clip=True, output_model=False, te_model_options=forced(dtype))
        elif group == "dit":
            self.model, _, _, _ = comfy.sd.load_checkpoint_guess_config(
                path, output_vae=False, output_clip=False, model_options=forced(dtype))
            mm.load_models_gpu([self.model])
        elif group == "vae":
            self.vae = load_vae(path, dtype)
        else:
            raise ValueError(f"unknown group {group!r}")

    # -- phases --------------------------------------------------------------------------------------
    def phase_text_encode(self, dtype, tags: str = "", lyrics: str = ""):
        def run():
            tokens = self.clip.tokenize(tags, lyrics=lyrics)
            cond = self.clip.encode_from_tokens_scheduled(tokens)
            states, extra = cond[0][0], cond[0][1]
            ids = extra["conditioning_lyrics"]
            return {"outputs": {"text_states": states, "lyric_ids": ids.float()},
                    "text_tokens": int(states.shape[1]), "lyric_tokens": int(ids.shape[-1])}

        return run

    def phase_dit_forward(self, dtype):
        dm = self.model.model.diffusion_model
        dt = self._inference_dtype()
        x = self.tensor("x", dt)
        t = self.tensor("timestep", torch.float32).expand(x.shape[0])
        text = self.tensor("text_states", dt)
        ids = self.tensor("lyric_ids")
        context = torch.cat([text, torch.zeros_like(text)])
        lyric_ids = torch.cat([ids, torch.zeros_like(ids)])
        speaker = torch.zeros(x.shape[0], 512, device=self.device, dtype=dt)

        def run():
            out = dm(x, t, context=context, lyric_token_idx=lyric_ids, speaker_embeds=speaker,
                     lyrics_strength=1.0, transformer_options={})
            return {"outputs": {"v": out}}

        return run

    def phase_generate(self, dtype, steps: int = 8, cfg: float = 5.0, seed: int = 0):
        text = self.inputs["text_states"]
        ids = self.inputs["lyric_ids"]
        positive = [[text, {"pooled_output": None, "conditioning_lyrics": ids, "lyrics_strength": 1.0}]]
        negative = [[torch.zeros_like(text), {"pooled_output": None, "conditioning_lyrics": torch.zeros_like(ids),
                                              "lyrics_strength": 1.0}]]
        return self._ksampler_run(positive, negative, steps, cfg, seed)


WORKER = CoreV1
