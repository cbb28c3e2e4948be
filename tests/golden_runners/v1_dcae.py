"""Golden runners for the music DCAE (``v1.dcae.encode`` / ``v1.dcae.decode``).

The module under test is the bare autoencoder; the MusicDCAE latent shift/scale and the mel
de-normalisation are applied here exactly as COMPONENTS.md states, with every constant read from
the fixture's ``args``.
"""

from __future__ import annotations

import torch

from ace_core.v1.dcae import DCAEConfig, MusicDCAEAutoencoder


def _model(fx) -> MusicDCAEAutoencoder:
    dtype = fx.dtype
    model = MusicDCAEAutoencoder(DCAEConfig.from_reference(fx.config), dtype=dtype)
    model.load_state_dict({k: v.to(dtype) for k, v in fx.state_dict.items()}, strict=True)
    return model.eval()


@torch.no_grad()
def run_encode(fx) -> None:
    model = _model(fx)
    shift, scale = float(fx.args["shift_factor"]), float(fx.args["scale_factor"])
    z = model.encode(fx.inputs["mel"])  # (B, latent, H/f, W/f)
    fx.check("latent", ((z - shift) * scale).float())


@torch.no_grad()
def run_decode(fx) -> None:
    model = _model(fx)
    shift, scale = float(fx.args["shift_factor"]), float(fx.args["scale_factor"])
    lo = float(fx.args.get("min_mel_value", -11.0))
    hi = float(fx.args.get("max_mel_value", 3.0))
    mel = model.decode(fx.inputs["latent"] / scale + shift)  # (B, C, H*f, W*f), in [-1, 1] roughly
    fx.check("mel", ((mel * 0.5 + 0.5) * (hi - lo) + lo).float())


RUNNERS = {"v1.dcae.encode": run_encode, "v1.dcae.decode": run_decode}
