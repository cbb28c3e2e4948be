"""The editing path of the nodes (edit LATENT -> run_edit, the sampler's dispatch) reproduces the
official repaint / extend / retake golden fixtures when given the fixtures' noise draws. Every size
and value is read from the fixtures."""

from types import SimpleNamespace

import pytest
import torch

from ace_core.editing import regions as er
from ace_core.editing.long_source import plan_extend
from ace_core.v1 import edit_pipeline as ep
from ace_core.v1 import editing
from ace_core.v1.latent import LATENT
from ace_core.v1.pipeline import SamplerSettings, TextConditioning
from golden_harness import Fixture, discover
from golden_runners.v1_dit import load_dit

COMPONENTS = ("v1.repaint", "v1.extend", "v1.retake")
FIXTURES = [(folder, stem) for folder, stem in discover()
            if Fixture(folder, stem).component in COMPONENTS]


def _settings(args) -> SamplerSettings:
    return SamplerSettings(
        steps=args["infer_steps"], guidance_scale=args["guidance_scale"], sampler=args["scheduler_type"],
        omega=args["omega_scale"], guidance_type=args["cfg_type"], guidance_interval=args["guidance_interval"],
        guidance_interval_decay=args["guidance_interval_decay"], min_guidance_scale=args["min_guidance_scale"],
        guidance_scale_text=args["guidance_scale_text"], guidance_scale_lyric=args["guidance_scale_lyric"],
        erg_tag=False, erg_lyric=args["use_erg_lyric"], erg_diffusion=args["use_erg_diffusion"]).validate()


@pytest.mark.skipif(not FIXTURES, reason="no golden fixtures found")
@pytest.mark.parametrize("folder, stem", FIXTURES, ids=[s for _, s in FIXTURES])
def test_edit_path_reproduces_golden(folder, stem):
    fx = Fixture(folder, stem)
    args, inp = fx.args, fx.inputs
    assert not args.get("oss_steps") and not args.get("audio2audio_enable")
    cond = TextConditioning(text_states=inp["encoder_text_hidden_states"], text_mask=inp["text_attention_mask"],
                            lyric_ids=inp["lyric_token_ids"], lyric_mask=inp["lyric_mask"])
    bundle = SimpleNamespace(dit=load_dit(fx), vae=None)
    noise, retake = inp["noise_target"], inp.get("noise_retake")
    if fx.component == "v1.retake":
        frames = LATENT.frames(args["duration"])
        latent = ep.retake_latent({"samples": torch.zeros(noise.shape[0], 8, 16, frames)}, 0,
                                  args["retake_variance"])
    else:
        src = inp["src_latents"]
        source = {"samples": src}
        t0 = src.shape[-1]
        if fx.component == "v1.repaint":
            end = min(args["repaint_end"], LATENT.seconds(t0))
            latent = ep.repaint_latent(source, args["repaint_start"], "start", end, "start",
                                       strength=args["retake_variance"], feather_frames=0, crossfade_ms=0)
        else:  # the official frame counts (this snapshot's rules) as an explicit plan
            off = editing.plan_extend_seconds(t0, args["repaint_start"], args["repaint_end"])
            assert off.left_trim == off.right_trim == 0
            ext = er.Extension(LATENT.seconds(off.left_pad), LATENT.seconds(off.right_pad),
                               off.left_pad, off.right_pad, t0, LATENT.seconds(t0), t0)
            latent = ep.plan_to_latent(plan_extend(LATENT, ext, 0), source, variance=args["retake_variance"])
    with torch.no_grad():
        out = ep.run_edit(bundle, latent, cond, seed=0, settings=_settings(args), noise=noise,
                          retake_noise=retake)
    fx.check("latent", out["samples"])
    assert out[ep.EDIT_KEY]["stage"] == "sampled"
