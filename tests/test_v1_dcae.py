"""Music DCAE (``ace_core/v1/dcae.py``): layout against the published checkpoint, shapes, dtypes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ace_core.errors import InputError
from ace_core.v1.dcae import DCAEConfig, MultiscaleLinearAttention, MusicDCAEAutoencoder

SHARED = Path(__file__).resolve().parents[2] / "shared"
MANIFEST = SHARED / "reference" / "checkpoints" / "v1__music_dcae_f8c8__diffusion_pytorch_model.safetensors.json"
GOLDEN = SHARED / "golden" / "v1"

TINY = dict(
    in_channels=2, latent_channels=8, attention_head_dim=8,
    encoder_block_out_channels=[8, 16, 16, 32], decoder_block_out_channels=[8, 16, 16, 32],
    encoder_layers_per_block=[1, 1, 2, 2], decoder_layers_per_block=[2, 1, 2, 2],
)


def _randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.3 / max(1, p[0].numel()) ** 0.5 if p.ndim > 1 else 0.1)
                    + (1.0 if p.ndim == 1 else 0.0))
    return model.eval()


def _manifest() -> dict:
    if not MANIFEST.exists():
        pytest.skip(f"reference manifest not found: {MANIFEST}")
    return json.loads(MANIFEST.read_text())


def test_full_config_matches_published_keys_and_shapes():
    ref = _manifest()
    model = MusicDCAEAutoencoder(DCAEConfig(), device="meta")
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: v["shape"] for k, v in ref["tensors"].items()}
    assert sorted(set(ours) - set(theirs)) == [] and sorted(set(theirs) - set(ours)) == []
    bad = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
    assert not bad, bad
    assert len(ours) == ref["n_tensors"]
    assert sum(v.numel() for v in model.state_dict().values()) == ref["n_elements"]


def test_from_reference_reproduces_default_config():
    ref = _manifest()
    cfg = DCAEConfig.from_reference(ref["config_json_reconstructed"])  # includes _class_name: ignored
    assert cfg == DCAEConfig()
    assert DCAEConfig.from_reference(cfg.to_dict()) == cfg
    assert cfg.spatial_compression_ratio == 8


def test_full_config_shapes_on_meta():
    model = MusicDCAEAutoencoder(device="meta")
    z = model.encoder(torch.empty(2, 2, 128, 64, device="meta"))
    assert tuple(z.shape) == (2, 8, 16, 8)
    mel = model.decoder(torch.empty(2, 8, 16, 10, device="meta"))
    assert tuple(mel.shape) == (2, 2, 128, 80)


def test_bad_config_and_inputs_raise():
    with pytest.raises(InputError, match="encoder_layers_per_block"):
        DCAEConfig(encoder_layers_per_block=(1, 1, 1))
    with pytest.raises(InputError, match="decoder_norm_types"):
        DCAEConfig(decoder_norm_types="group_norm")
    model = MusicDCAEAutoencoder(DCAEConfig.from_reference(TINY))
    with pytest.raises(InputError, match="encoder input"):
        model.encoder(torch.zeros(1, 3, 128, 16))
    with pytest.raises(InputError, match="multiples of 8"):
        model.encoder(torch.zeros(1, 2, 128, 12))
    with pytest.raises(InputError, match="decoder input"):
        model.decoder(torch.zeros(1, 4, 16, 2))


def test_linear_and_quadratic_attention_agree():
    attn = _randomize(MultiscaleLinearAttention(32, 8, (5,)), seed=1).double().requires_grad_(False)
    x = torch.randn(2, 32, 3, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    lin = attn(x, force_form="linear")
    quad = attn(x, force_form="quadratic")
    assert torch.allclose(lin, quad, atol=1e-10, rtol=1e-8)
    assert torch.equal(attn(x), quad)  # N = 6 <= head_dim 8 selects the quadratic form
    assert not torch.allclose(lin, x)  # the block does something beyond the residual


def test_batch_items_are_independent():
    model = _randomize(MusicDCAEAutoencoder(DCAEConfig.from_reference(TINY)))
    x = torch.randn(2, 2, 128, 24, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        z = model.encoder(x)
        z0 = model.encoder(x[:1])
        y = model.decoder(z)
        y1 = model.decoder(z[1:])
    assert z.shape == (2, 8, 16, 3) and y.shape == (2, 2, 128, 24)
    assert torch.allclose(z[:1], z0, atol=1e-5) and torch.allclose(y[1:], y1, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_tracks_float32(dtype):
    stem = GOLDEN / "v1_dcae_decode"
    if not stem.with_suffix(".json").exists():
        pytest.skip("golden fixture v1_dcae_decode not found")
    from safetensors.torch import load_file

    meta = json.loads(stem.with_suffix(".json").read_text())
    tensors = load_file(str(stem.with_suffix(".safetensors")))
    sd = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    cfg = DCAEConfig.from_reference(meta["config"])
    ref = MusicDCAEAutoencoder(cfg).eval()
    ref.load_state_dict(sd)
    half = MusicDCAEAutoencoder(cfg, dtype=dtype).eval()
    half.load_state_dict(sd)  # cast on copy
    z = tensors["input.latent"] / meta["args"]["scale_factor"] + meta["args"]["shift_factor"]
    with torch.no_grad():
        y32 = ref.decode(z)
        yh = half.decode(z)
        mel = torch.randn(1, 2, 128, 32, generator=torch.Generator().manual_seed(4))
        e32 = ref.encode(mel)
        eh = half.encode(mel)
    assert yh.dtype == dtype and eh.dtype == dtype
    assert torch.isfinite(yh).all() and torch.isfinite(eh).all()
    for a, b in ((yh, y32), (eh, e32)):
        rel = (a.float() - b).norm() / b.norm()
        assert rel < 3e-2, rel


def test_decoder_split_windows_and_chunked_attention_equal_one_shot():
    """Long-input path: the global part with its attention chunked, the local part in windows with
    ``local_reach`` context, give the one-shot output (float64, so only the algorithm can differ)."""
    model = _randomize(MusicDCAEAutoencoder(DCAEConfig.from_reference(TINY)), seed=5).double()
    dec = model.decoder
    z = torch.randn(1, 8, 16, 23, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    with torch.no_grad():
        full = dec(z)
        h = dec.forward_global(z, chunk=5)  # 5 chunks, the attention in two passes
        torch.testing.assert_close(h, dec.forward_global(z), atol=1e-10, rtol=1e-9)
        scale, context = dec.local_reach()
        assert scale == 8 and context >= 1
        pieces = []
        for s in range(0, 23, 6):
            e = min(23, s + 6)
            a, b = max(0, s - context), min(23, e + context)
            pieces.append(dec.forward_local(h[..., a:b])[..., (s - a) * scale : (e - a) * scale])
        torch.testing.assert_close(torch.cat(pieces, dim=-1), full, atol=1e-10, rtol=1e-9)
        # too little context is visibly different: the reach is not vacuous
        a = 6 - 1
        short = dec.forward_local(h[..., a:12 + 1])[..., (6 - a) * scale : (12 - a) * scale]
        assert not torch.allclose(short, full[..., 6 * scale : 12 * scale], atol=1e-6)


@pytest.mark.parametrize("shortcut", [True, False])
def test_nearest_upsampling_block_at_input_resolution_equals_upsample_then_conv(shortcut):
    from ace_core.v1.dcae import DCUpBlock2d

    block = _randomize(DCUpBlock2d(8, 4, interpolate=True, shortcut=shortcut), seed=7).double()
    x = torch.randn(2, 8, 5, 7, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    ref = block.conv(torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
    if shortcut:
        ref = ref + torch.nn.functional.pixel_shuffle(x.repeat_interleave(block.repeats, dim=1), 2)
    with torch.no_grad():
        out = block(x)  # the phase (2x2 conv) form
    assert out.shape == (2, 4, 10, 14)
    torch.testing.assert_close(out, ref.detach(), atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(block(x), ref)  # with autograd on: the plain form
