"""ComfyUI runs every node under ``torch.inference_mode()``, so a model loaded by our loader node
holds inference tensors (no version counter). The vocoder's weight-norm cache must work with them
(found running the pack in a real ComfyUI: VAE Decode failed with "Inference tensors do not track
version counter"). The whole workflows run that way in tests/test_workflows.py."""

from __future__ import annotations

import torch

from ace_core.v1.vocoder import WNConv1d, WNConvTranspose1d


def test_weight_norm_cache_with_inference_tensors():
    with torch.inference_mode():
        conv = WNConv1d(4, 6, 3, padding=1)
        up = WNConvTranspose1d(6, 4, 4, stride=2, padding=1)
        assert conv.weight_v.is_inference()
        x = torch.randn(1, 4, 8, generator=torch.Generator().manual_seed(0))
        y1 = up(conv(x))
        assert conv.weight() is conv.weight()  # cached while the weights are unchanged
        state = {k: v.clone() for k, v in conv.state_dict().items()}
        state["weight_g"] = state["weight_g"] * 2
        conv.load_state_dict(state)  # an in-place load (no version counter to see it) clears the cache
        y2 = up(conv(x))
    assert y1.shape == y2.shape == (1, 4, 16)
    assert not torch.allclose(y1, y2)
    with torch.no_grad():  # the cache (an inference tensor) is still usable outside inference mode
        assert torch.allclose(up(conv(x)), y2)


def test_dcae_upsampling_phase_weight_cache_with_inference_tensors():
    from ace_core.v1.dcae import DCUpBlock2d

    with torch.inference_mode():
        block = DCUpBlock2d(4, 2, interpolate=True, shortcut=True)
        torch.nn.init.normal_(block.conv.weight, generator=torch.Generator().manual_seed(1))
        x = torch.randn(1, 4, 3, 5, generator=torch.Generator().manual_seed(2))
        y1 = block(x)
        assert block._phase_weight() is block._phase_weight()  # cached while the weight is unchanged
        state = {k: v.clone() for k, v in block.state_dict().items()}
        state["conv.weight"] = state["conv.weight"] * 2
        block.load_state_dict(state)  # in place, no version counter: the load clears the cache
        y2 = block(x)
        ref = block.conv(torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
        ref = ref + torch.nn.functional.pixel_shuffle(x.repeat_interleave(block.repeats, dim=1), 2)
    assert not torch.allclose(y1, y2)
    torch.testing.assert_close(y2, ref, atol=1e-5, rtol=1e-5)
