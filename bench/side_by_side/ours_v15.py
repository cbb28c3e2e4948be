"""Our side, ACE-Step 1.5: each phase run the way the pack runs it (``ace_core.v15``).

Groups are loaded from the one all-in-one file, one part at a time (``load_v15``'s own plan and
streaming, restricted to one part; the 5 Hz LM through ``load_lm``). Phases:

* ``text_encode``: ``pipeline.encode_text`` (caption prompt through Qwen3-0.6B, lyric prompt
  embedded), as the text node runs it without the LM;
* ``dit_forward``: one turbo DiT call, batch 1 (no CFG): the condition encoder, the
  cross-attention K/V and the decoder (what core's ``forward`` computes on every call);
* ``generate``: ``pipeline.generate`` (turbo, ``steps`` Euler/ODE steps, shift 3, DCW off to
  match core's plain Euler) with the start noise of the inputs (drawn from the same seed);
* ``vae_encode`` / ``vae_decode``: ``MusicVAE15.encode`` / ``decode`` (48 kHz, windowed);
* ``lm``: ``decode_codes`` (audio codes, KV cache, logits over the code rows only), greedy,
  CFG as in core's text node.

The timbre input is the silence latent over the T frames of the song, as core feeds it (the pack
and upstream use its first 750 frames), so both sides compute the same thing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from .worker_base import PhaseWorker

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

_PART = {"text": "text_encoder", "dit": "dit", "vae": "vae"}


def load_v15_part(path, part: str, dtype: torch.dtype, device="cpu"):
    """(module of ``part`` — "dit", "text_encoder" or "vae" —, the resolved layout) from a 1.5
    checkpoint, streaming only that part's tensors (``load_v15``'s own steps)."""
    from ace_core.loading.streaming import materialize_buffers, stream_into
    from ace_core.v15.layouts import detect_v15
    from ace_core.v15.loader import plan_v15

    layout = detect_v15(path)
    plan = plan_v15(layout, dtype)
    module = plan.modules[part]
    stream_into(module, plan.plans[part], torch.device(device), None, [0, len(plan.plans[part])])
    materialize_buffers(module, torch.device(device))
    module.requires_grad_(False).eval()
    return module, layout


class OursV15(PhaseWorker):
    side = "ours"
    family = "v15"

    def __init__(self, args):
        super().__init__(args)
        self.module = self.tokenizer = self.vae = self.lm = None

    def load_group(self, group: str, dtype) -> None:
        from ace_core.loading.streaming import default_dtype

        dtype = default_dtype(self.device) if dtype is None else dtype
        if group == "lm":
            from ace_core.v15.lm.loader import load_lm

            self.lm = load_lm(self.args.checkpoint, dtype=dtype, device=self.device)
            return
        if group not in _PART:
            raise ValueError(f"unknown group {group!r}")
        module, layout = load_v15_part(self.args.checkpoint, _PART[group], dtype, self.device)
        if group == "text":
            from ace_core.v15.text_tokenizer import load_tokenizer

            self.tokenizer = load_tokenizer(layout.tokenizer_dir)
        if group == "vae":
            from ace_core.v15.vae import MusicVAE15

            module = MusicVAE15(module).eval()
        self.module = module

    def release(self) -> None:
        self.module = self.tokenizer = self.vae = self.lm = None

    # -- phases --------------------------------------------------------------------------------------
    def phase_text_encode(self, dtype, tags: str = "", lyrics: str = "", duration: float = 30.0, **song):
        from ace_core.v15.pipeline import SongFields, encode_text

        fields = SongFields(caption=tags, lyrics=lyrics, duration=duration, **song)

        def run():
            cond = encode_text(self.module, self.tokenizer, [fields])
            return {"outputs": {"text_hidden": cond.text_hidden, "lyric_hidden": cond.lyric_hidden},
                    "text_tokens": int(cond.text_hidden.shape[1]), "lyric_tokens": int(cond.lyric_hidden.shape[1])}

        return run

    def _text(self):
        from ace_core.v15.pipeline import TextConditioning15

        text, lyric = self.inputs["text_hidden"], self.inputs["lyric_hidden"]
        ones = lambda t: torch.ones(t.shape[:2], dtype=torch.long)  # noqa: E731
        return TextConditioning15(text, ones(text), lyric, ones(lyric), text, ones(text))

    def _silence_refer(self, frames: int):
        """The timbre input core feeds: the silence latent over the song's T frames, item 0."""
        from ace_core.v15.silence import silence_latent

        silence = silence_latent(max(frames, self.module.config.timbre_fix_frame))
        return silence, (silence[:, :frames], torch.zeros(1, dtype=torch.long))

    def phase_dit_forward(self, dtype):
        from ace_core.v15.pipeline import build_condition
        from ace_core.v15.sampling import DiTVelocity

        model = self.module
        x = self.inputs["x"].transpose(1, 2).to(self.device, model.dtype)  # (1, T, 64)
        t = float(self.inputs["timestep"][0])
        frames = x.shape[1]
        text = self._text()
        silence, refer = self._silence_refer(frames)
        src = silence[:, :frames]

        def run():
            cond = build_condition(model, text, src, torch.ones(1, frames), silence, refer=refer)
            v = DiTVelocity(model.decoder)(x, t, cond)  # K/V of the condition, then the decoder
            return {"outputs": {"v": v.transpose(1, 2)}}

        return run

    def phase_generate(self, dtype, steps: int = 8, seed: int = 0, shift: float = 3.0, **_):
        from ace_core.v15.pipeline import SamplerSettings15, generate
        from ace_core.v15.sampling import initial_noise, seed_generators

        noise = self.inputs["noise"]
        frames = noise.shape[-1]
        drawn = initial_noise(seed_generators(seed, 1), 1, frames).transpose(1, 2)
        if not torch.equal(drawn, noise):
            raise RuntimeError("the inputs' start noise is not what our pipeline draws for this seed")
        text = self._text()
        _, refer = self._silence_refer(frames)
        settings = SamplerSettings15(steps=steps, shift=shift, dcw=False, method="ode")

        def run():
            stamps, tick = self.step_clock()
            out = generate(self.module, text, kind="turbo", frames=frames, seed=seed, settings=settings,
                           refer=refer, progress=tick)
            return {"outputs": {"latent": out}, "step_stamps": stamps}

        return run

    def phase_vae_encode(self, dtype):
        wave = self.inputs["waveform"]

        def run():
            latent = self.module.encode(wave, 48000)
            return {"outputs": {"latent": latent}, "audio_seconds": wave.shape[-1] / 48000}

        return run

    def phase_vae_decode(self, dtype):
        latent = self.inputs["latent"]

        def run():
            wave = self.module.decode(latent)
            return {"outputs": {"waveform": wave}, "audio_seconds": wave.shape[-1] / 48000}

        return run

    def phase_lm(self, dtype, tokens: int = 32, cfg: float = 2.0, seed: int = 0):
        from ace_core.v15.lm.decode import decode_codes
        from ace_core.v15.lm.sampling import LMSampling

        prompt, negative = self.inputs["lm_prompt"].tolist(), self.inputs["lm_negative"].tolist()
        sampling = LMSampling(temperature=0.0, top_p=1.0, cfg_scale=cfg)

        def run():
            codes = decode_codes(self.lm, prompt, tokens, batch_size=1, sampling=sampling, generators=None,
                                 negative=negative if cfg > 1.0 else None)
            return {"outputs": {"codes": codes.float()}, "tokens": tokens, "prompt_tokens": len(prompt)}

        return run


WORKER = OursV15
