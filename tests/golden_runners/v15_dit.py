"""Golden runner for ``v15.dit``: the reference ``AceStepDiTModel.forward`` (``model.decoder``)."""

from __future__ import annotations

import torch

from ace_core.v15.config import AceStep15Config
from ace_core.v15.dit import AceStep15DiT


def load_dit(fx) -> AceStep15DiT:
    """The fixture's DiT in float32, loaded strictly from its ``decoder.*`` keys."""
    prefix = fx.args.get("state_dict_prefix", "decoder.")
    state = {k[len(prefix):]: v for k, v in fx.state_dict.items() if k.startswith(prefix)}
    assert len(state) == len(fx.state_dict), "the fixture holds keys outside the decoder prefix"
    model = AceStep15DiT(AceStep15Config.from_dict(fx.config), dtype=torch.float32).eval()
    model.load_state_dict(state, strict=True)
    return model


def run_dit(fx) -> None:
    model = load_dit(fx)
    inp = fx.inputs
    with torch.no_grad():
        # attention_mask / encoder_attention_mask are ignored by the reference (and not taken here)
        out = model(inp["hidden_states"], inp["timestep"], inp["timestep_r"],
                    inp["encoder_hidden_states"], inp["context_latents"])
        cached = model(inp["hidden_states"], inp["timestep"], inp["timestep_r"], None,
                       inp["context_latents"], cross_kv=model.precompute_cross_kv(inp["encoder_hidden_states"]))
    fx.check("velocity", out)
    fx.check("velocity", cached)


RUNNERS = {"v15.dit": run_dit}
