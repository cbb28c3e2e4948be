"""Golden runner for ``v1.umt5``: our UMT5 encoder vs transformers ``UMT5EncoderModel``."""

from __future__ import annotations

import torch

from ace_core.v1.umt5 import UMT5Config, UMT5Encoder


def run_umt5(fx) -> None:
    config = UMT5Config.from_reference(fx.config)
    model = UMT5Encoder(config, dtype=torch.float32)
    sd = dict(fx.state_dict)
    if "shared.weight" not in sd and "encoder.embed_tokens.weight" in sd:
        sd["shared.weight"] = sd["encoder.embed_tokens.weight"]
    sd.pop("encoder.embed_tokens.weight", None)
    model.load_state_dict(sd, strict=True)
    model.eval()
    with torch.no_grad():
        out = model(fx.inputs["input_ids"], fx.inputs["attention_mask"])
    fx.check("last_hidden_state", out)


RUNNERS = {"v1.umt5": run_umt5}
