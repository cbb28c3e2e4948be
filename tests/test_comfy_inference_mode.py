"""ComfyUI runs every node under ``torch.inference_mode()``, so a model loaded by our loader node
holds inference tensors (no version counter). The vocoder's weight norm must work with them (found
running the pack in a real ComfyUI: VAE Decode failed with "Inference tensors do not track version
counter", when it kept a cache keyed on that counter). The whole workflows run that way in
tests/test_workflows.py."""

from __future__ import annotations

import torch

from ace_core.v1.vocoder import WNConv1d, WNConvTranspose1d


def test_weight_norm_with_inference_tensors():
    with torch.inference_mode():
        conv = WNConv1d(4, 6, 3, padding=1)
        up = WNConvTranspose1d(6, 4, 4, stride=2, padding=1)
        assert conv.weight_v.is_inference()
        x = torch.randn(1, 4, 8, generator=torch.Generator().manual_seed(0))
        y1 = up(conv(x))
        state = {k: v.clone() for k, v in conv.state_dict().items()}
        state["weight_g"] = state["weight_g"] * 2
        conv.load_state_dict(state)  # an in-place load (no version counter to see it)
        y2 = up(conv(x))
    assert y1.shape == y2.shape == (1, 4, 16)
    assert not torch.allclose(y1, y2)
    with torch.no_grad():  # inference-tensor weights are still usable outside inference mode
        assert torch.allclose(up(conv(x)), y2)

