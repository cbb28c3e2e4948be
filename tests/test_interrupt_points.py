"""Cancel lands inside a VAE window, not only between windows (both families)."""

from __future__ import annotations

import pytest
import torch

from ace_core.v15.bundle import tiny_v15_bundle


class Stop(Exception):
    pass


def _stop_inside_first_window():
    calls = []

    def hook(done, total):
        calls.append(done)
        if done == 0 and len(calls) >= 3:  # still in window 1: interrupt there
            raise Stop

    return hook, calls


def test_v15_decode_and_encode_stop_inside_a_window():
    vae = tiny_v15_bundle(seed=0).vae
    hook, calls = _stop_inside_first_window()
    with pytest.raises(Stop):
        vae.decode(torch.zeros(1, 64, 600), progress=hook)
    assert calls[:3] == [0, 0, 0]
    hook, calls = _stop_inside_first_window()
    with pytest.raises(Stop):
        vae.encode(torch.zeros(1, 2, 48000 * 12), 48000, progress=hook)
    assert calls[:3] == [0, 0, 0]
    # the hooks are gone afterwards, and without a progress hook none are set
    assert not any(m._forward_hooks for m in vae.modules())
    seen = []
    vae.decode(torch.zeros(1, 64, 30), progress=lambda d, t: seen.append(d))
    assert seen[-1] == 1 and set(seen) == {0, 1}
    assert not any(m._forward_hooks for m in vae.modules())


def test_v1_decode_stops_inside_a_window():
    from test_v1_audio import _tiny_vae

    vae = _tiny_vae(attention=False)
    hook, calls = _stop_inside_first_window()
    with pytest.raises(Stop):
        vae.decode(torch.zeros(1, vae.latent_channels, vae.latent_height, 20), progress=hook)
    assert calls[:3] == [0, 0, 0]
