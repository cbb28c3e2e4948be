"""Golden runner for ``v1.dit``: the official ACEStepTransformer2DModel forward."""

from __future__ import annotations

import torch

from ace_core.v1.dit import AceStepDiT, DiTConfig


def load_dit(fx) -> AceStepDiT:
    """The fixture's DiT in float32; its unused published keys must be exactly the ignored ones."""
    config = DiTConfig.from_reference(fx.config)
    model = AceStepDiT(config, dtype=torch.float32).eval()
    ignored = AceStepDiT.ignored_checkpoint_keys(config)
    state = {k: v for k, v in fx.state_dict.items() if k not in ignored}
    dropped = {k: tuple(v.shape) for k, v in fx.state_dict.items() if k in ignored}
    assert dropped == ignored, "the fixture's unused keys differ from ignored_checkpoint_keys"
    model.load_state_dict(state, strict=True)
    return model


def run_dit(fx) -> None:
    model = load_dit(fx)
    inp = fx.inputs
    with torch.no_grad():
        out = model(
            inp["hidden_states"],
            inp["attention_mask"],
            inp["encoder_text_hidden_states"],
            inp["text_attention_mask"],
            inp["speaker_embeds"],
            inp["lyric_token_idx"],
            inp["lyric_mask"],
            inp["timestep"],
        )
    fx.check("sample", out)


RUNNERS = {"v1.dit": run_dit}
