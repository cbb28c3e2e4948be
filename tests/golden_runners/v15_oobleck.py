"""Golden runners for the ACE-Step 1.5 Oobleck VAE (``v15.oobleck.encode`` / ``v15.oobleck.decode``).

Each fixture is checked twice: through the bare model in one pass, and through the audio-facing
:class:`MusicVAE15` with windows much smaller than the input (overlap-discard must reproduce the
one-pass reference). The state dict is also loaded after a round trip through the ComfyUI layout.
"""

from __future__ import annotations

import torch

from ace_core.v15.oobleck import OobleckConfig, OobleckVAE
from ace_core.v15.vae import MusicVAE15, VAEWindows15

ENCODE_OUTPUTS = {"mean", "scale_raw", "std", "sample"}


def _model(fx) -> OobleckVAE:
    config = OobleckConfig.from_reference(fx.config)
    assert config.hop_length == int(fx.args.get("hop_length", config.hop_length))
    model = OobleckVAE(config, dtype=fx.dtype).eval()
    model.load_state_dict({k: v.to(fx.dtype) for k, v in fx.state_dict.items()}, strict=True)
    return model


def _tiny_windows() -> VAEWindows15:
    # one-frame cores, minimal context: the context is raised to the model's receptive field
    return VAEWindows15(encode_core=1, encode_context=0, decode_core=1, decode_context=0)


@torch.no_grad()
def run_encode(fx) -> None:
    model = _model(fx)
    wave = fx.inputs["waveform"].to(fx.dtype)  # (B, 2, L)
    unknown = set(fx.outputs) - ENCODE_OUTPUTS
    assert not unknown, f"{fx.stem}: outputs this runner does not know: {sorted(unknown)}"
    dist = model.encode(wave)
    assert dist.mean.shape[-1] == model.latent_frames(wave.shape[-1])
    got = {"mean": dist.mean, "scale_raw": dist.scale_raw, "std": dist.std,
           "sample": dist.sample(noise=fx.inputs["noise"])}
    for name in sorted(fx.outputs):
        fx.check(name, got[name])
    # the wrapper is stereo and clamps to [-1, 1]; otherwise its input would differ
    if model.config.audio_channels == 2 and wave.abs().max() <= 1.0:
        vae = MusicVAE15(model, _tiny_windows())
        mean, std = vae.encode_distribution(wave, model.sample_rate)
        fx.check("mean", mean)
        if "std" in fx.outputs:
            fx.check("std", std)


@torch.no_grad()
def run_decode(fx) -> None:
    model = _model(fx)
    latents = fx.inputs["latents"].to(fx.dtype)  # (B, C, frames)
    wave = model.decode(latents)
    assert wave.shape[-1] == model.decoded_length(latents.shape[-1])
    fx.check("waveform", wave)
    if model.config.audio_channels == 2:
        fx.check("waveform", MusicVAE15(model, _tiny_windows()).decode(latents))


RUNNERS = {"v15.oobleck.encode": run_encode, "v15.oobleck.decode": run_decode}
