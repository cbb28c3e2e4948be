"""Cancel lands inside a VAE window, not only between windows (both families)."""

from __future__ import annotations

import pytest
import torch

from ace_core.v15.bundle import tiny_v15_bundle


class Stop(Exception):
    pass


def _stop_inside_first_window():
    """A progress hook with ComfyUI's ``check_interrupt``, cancelled after 3 layers of window 1."""
    calls = []

    def hook(done, total):
        calls.append(done)

    def check_interrupt():
        calls.append("check")
        if calls.count("check") >= 3:
            raise Stop

    hook.check_interrupt = check_interrupt
    return hook, calls


def test_v15_decode_and_encode_stop_inside_a_window():
    vae = tiny_v15_bundle(seed=0).vae
    hook, calls = _stop_inside_first_window()
    with pytest.raises(Stop):
        vae.decode(torch.zeros(1, 64, 600), progress=hook)
    assert calls == ["check"] * 3  # stopped before window 1 ended
    hook, calls = _stop_inside_first_window()
    with pytest.raises(Stop):
        vae.encode(torch.zeros(1, 2, 48000 * 12), 48000, progress=hook)
    assert calls == ["check"] * 3  # stopped before window 1 ended
    # the hooks are gone afterwards; a plain progress hook gets one call per window, as before
    assert not any(m._forward_hooks for m in vae.modules())
    seen = []
    vae.decode(torch.zeros(1, 64, 30), progress=lambda d, t: seen.append(d))
    assert seen == [1] and not any(m._forward_hooks for m in vae.modules())


def test_v1_decode_stops_inside_a_window():
    from test_v1_audio import _tiny_vae

    vae = _tiny_vae(attention=False)
    hook, calls = _stop_inside_first_window()
    with pytest.raises(Stop):
        vae.decode(torch.zeros(1, vae.latent_channels, vae.latent_height, 20), progress=hook)
    assert calls == ["check"] * 3  # stopped before window 1 ended
