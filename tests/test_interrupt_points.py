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


def _stop_inside_first_step(limit: int):
    """Cancelled at the ``limit``-th interrupt check; records progress calls and checks."""
    calls = []

    def hook(done, total):
        calls.append(done)

    def check_interrupt():
        calls.append("check")
        if calls.count("check") >= limit:
            raise Stop

    hook.check_interrupt = check_interrupt
    return hook, calls


def test_v1_sampling_and_edits_stop_inside_a_step():
    from editing_tools import conditioning, tiny_bundle

    from ace_core.v1 import edit_pipeline, pipeline

    bundle = tiny_bundle()
    blocks = len(bundle.dit.transformer_blocks)
    settings = pipeline.SamplerSettings(steps=3, guidance_scale=5.0)
    hook, calls = _stop_inside_first_step(blocks)  # one check per transformer block
    with pytest.raises(Stop):
        pipeline.generate(bundle, conditioning(bundle), seconds=2.0, settings=settings, progress=hook)
    assert calls == ["check"] * blocks  # stopped inside step 1: no step reported
    assert not any(b._forward_hooks for b in bundle.dit.transformer_blocks)
    latent = edit_pipeline.retake_latent(pipeline.empty_latent(2.0), original_seed=1, variance=0.5)
    hook, calls = _stop_inside_first_step(1)
    with pytest.raises(Stop):
        edit_pipeline.run_edit(bundle, latent, conditioning(bundle), settings=settings, progress=hook)
    assert calls == ["check"]
    assert not any(b._forward_hooks for b in bundle.dit.transformer_blocks)
    seen = []  # a plain hook (no check_interrupt) still gets one call per step
    pipeline.generate(bundle, conditioning(bundle), seconds=2.0, settings=settings, progress=lambda d, t: seen.append(d))
    assert seen == [1, 2, 3]


def test_v15_sampling_stops_inside_a_step():
    from ace_core.v15 import pipeline

    b = tiny_v15_bundle(seed=0)
    text = pipeline.encode_text(b.text_encoder, b.text_tokenizer, [pipeline.SongFields(caption="pop", lyrics="")])
    settings = pipeline.SamplerSettings15(steps=2)
    layers = len(b.model.decoder.layers)
    hook, calls = _stop_inside_first_step(layers)
    with pytest.raises(Stop):
        pipeline.generate(b.model, text, kind="turbo", seconds=10.0, settings=settings, progress=hook)
    assert calls == ["check"] * layers and not any(m._forward_hooks for m in b.model.decoder.layers)
