"""The ACE-Step KSampler's own path (node inputs -> SamplerSettings -> pipeline.generate) reproduces
the official golden fixtures: every ``v1.sample`` fixture (the whole loop: schedule, guidance
interval, APG/CFG, euler omega) and the audio-to-audio entries of ``v1.schedule`` (denoise =
1 - ref_audio_strength gives the official number of steps). Sizes and values come from the files."""

from __future__ import annotations

import pytest
import torch

from golden_harness import Fixture, discover

CASES = discover()
SAMPLE = [(f, s) for f, s in CASES if Fixture(f, s).component == "v1.sample"]
SCHEDULE = [(f, s) for f, s in CASES if Fixture(f, s).component == "v1.schedule"]


class _Bundle:
    """Just what pipeline.generate touches: the DiT."""

    def __init__(self, dit):
        self.dit = dit


def _dit(fx):
    from ace_core.v1.dit import AceStepDiT, DiTConfig

    config = DiTConfig.from_reference(fx.config)
    model = AceStepDiT(config, dtype=torch.float32).eval()
    ignored = AceStepDiT.ignored_checkpoint_keys(config)
    model.load_state_dict({k: v for k, v in fx.state_dict.items() if k not in ignored}, strict=True)
    return model


def _settings_from_node_inputs(args: dict):
    """The KSampler node's inputs for the official keywords, turned into settings as the node does."""
    from ace_core.v1.pipeline import SamplerSettings

    return SamplerSettings(
        steps=args["infer_steps"], guidance_scale=args["guidance_scale"], sampler=args["scheduler_type"],
        shift=3.0, omega=args["omega_scale"], guidance_type=args["cfg_type"],
        guidance_interval=args["guidance_interval"], guidance_interval_decay=args["guidance_interval_decay"],
        min_guidance_scale=args["min_guidance_scale"], guidance_scale_text=args["guidance_scale_text"],
        guidance_scale_lyric=args["guidance_scale_lyric"], erg_tag=True,
        erg_lyric=args["use_erg_lyric"], erg_diffusion=args["use_erg_diffusion"],
    ).validate()


@pytest.mark.skipif(not SAMPLE, reason="no v1.sample golden fixtures")
@pytest.mark.parametrize("folder,stem", SAMPLE, ids=[s for _, s in SAMPLE])
def test_sampler_reproduces_v1_sample(folder, stem):
    from ace_core.v1 import pipeline

    fx = Fixture(folder, stem)
    inp, args = fx.inputs, fx.args
    assert not args.get("oss_steps") and not args.get("audio2audio_enable")
    cond = pipeline.TextConditioning(
        text_states=inp["encoder_text_hidden_states"], text_mask=inp["text_attention_mask"],
        lyric_ids=inp["lyric_token_ids"], lyric_mask=inp["lyric_mask"],
    )
    assert not inp["speaker_embds"].any()  # the pipeline always feeds zeros, as the nodes do
    noise = inp["noise_target"]
    frames = pipeline.frames_for_seconds(args["duration"])
    assert noise.shape[-1] == frames
    latent = {"samples": torch.zeros(noise.shape[0], 8, 16, frames), "type": "audio"}  # EmptyAceStepLatentAudio
    steps_seen = []
    out = pipeline.generate(_Bundle(_dit(fx)), cond, latent=latent["samples"], noise=noise,
                            settings=_settings_from_node_inputs(args), denoise=1.0,
                            progress=lambda done, total: steps_seen.append((done, total)))
    fx.check("latent", out)
    assert fx.checks and steps_seen[-1] == (args["infer_steps"], args["infer_steps"])


@pytest.mark.skipif(not SCHEDULE, reason="no v1.schedule golden fixture")
def test_denoise_maps_to_official_audio2audio():
    from ace_core.v1 import pipeline
    from ace_core.v1.testing import tiny_reference_configs
    from ace_core.v1.dit import AceStepDiT, DiTConfig

    dit = AceStepDiT(DiTConfig.from_reference(tiny_reference_configs()["dit"]), dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(0)
    for p in dit.parameters():
        p.data.copy_(0.02 * torch.randn(p.shape, generator=g))
    cond = pipeline.TextConditioning(
        text_states=torch.randn(1, 3, dit.config.text_embedding_dim, generator=g),
        text_mask=torch.ones(1, 3, dtype=torch.long), lyric_ids=torch.tensor([[0]]), lyric_mask=torch.tensor([[0]]),
    )
    source = torch.randn(1, 8, 16, 2, generator=g)
    checked = 0
    for folder, stem in SCHEDULE:
        for e in Fixture(folder, stem).meta["expected"].get("audio2audio", []):
            if e["scheduler"] != "euler" or e["steps"] > 30:
                continue  # one sampler is enough to check the mapping; keep it fast
            seen = []
            settings = pipeline.SamplerSettings(steps=e["steps"], guidance_scale=1.0, sampler=e["scheduler"])
            pipeline.generate(_Bundle(dit), cond, latent=source, seed=0, settings=settings,
                              denoise=1.0 - e["ref_audio_strength"],
                              progress=lambda done, total: seen.append(total))
            assert seen and seen[-1] == e["num_inference_steps"], e
            checked += 1
    assert checked
