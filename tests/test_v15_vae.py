"""ACE-Step 1.5 Oobleck VAE: geometry, an independent functional reference, windowed encode/decode
(seamless against one pass), sampling, input checks, progress, weight-norm caching, the ComfyUI
layout converter and the full-size layouts against the published manifests (on ``meta``)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ace_core.errors import CheckpointError, InputError
from ace_core.audio.resample import resampled_length
from ace_core.v15.oobleck import (
    OobleckConfig,
    OobleckVAE,
    WNConv1d,
    comfy_to_diffusers,
    detect_layout,
    fused_weight_norm,
    infer_config,
    to_diffusers_state_dict,
)
from ace_core.v15.vae import MusicVAE15, VAEWindows15, plan_windows

MANIFESTS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "checkpoints"
OFFICIAL = "v15__vae__diffusion_pytorch_model.safetensors.json"
COMFY = "comfy__ace_1.5_vae.safetensors.json"
FULL_PARAMS = 168_695_426

# (ratios, multiples): odd ratios (length not frames * hop), a stride of 1, two and three stages
CONFIGS = [([2, 3, 2], [1, 2, 2]), ([3, 4], [1, 2]), ([2, 4, 3], [1, 2, 4]), ([3, 1, 2], [1, 1, 2]), ([5, 2], [2, 2])]


def tiny_config(ratios=(2, 3, 2), mults=(1, 2, 2), hidden=8, latent=4, dec=8) -> OobleckConfig:
    return OobleckConfig(encoder_hidden_size=hidden, downsampling_ratios=list(ratios), channel_multiples=list(mults),
                         decoder_channels=dec, decoder_input_channels=latent, audio_channels=2)


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights as the fixtures draw them (g ~ 0.5 (1 + N(0, 0.1)), the rest ~ N(0, 1) scaled)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name.endswith("weight_g"):
                r = 0.5 * (1 + 0.1 * r)
            elif name.endswith(("alpha", "beta", "bias")):
                r = 0.3 * r
            p.copy_(r.to(p.dtype))
    return model.eval()


def tiny_model(seed=0, **kw) -> OobleckVAE:
    return randomize(OobleckVAE(tiny_config(**kw)), seed)


# --------------------------------------------------------------------------------------------
# An independent functional reference, written from the diffusers description
# --------------------------------------------------------------------------------------------
def _w(sd, name):
    return torch._weight_norm(sd[name + ".weight_v"], sd[name + ".weight_g"], 0)


def _snake(sd, name, x):
    a, b = sd[name + ".alpha"].exp(), sd[name + ".beta"].exp()
    return x + (b + 1e-9).reciprocal() * torch.sin(a * x).pow(2)


def _res(sd, name, x, dilation):
    y = F.conv1d(_snake(sd, name + ".snake1", x), _w(sd, name + ".conv1"), sd[name + ".conv1.bias"],
                 padding=3 * dilation, dilation=dilation)
    y = F.conv1d(_snake(sd, name + ".snake2", y), _w(sd, name + ".conv2"), sd[name + ".conv2.bias"])
    return x + y


def ref_encode(sd, cfg, x):
    x = F.conv1d(x, _w(sd, "encoder.conv1"), sd["encoder.conv1.bias"], padding=3)
    for i, s in enumerate(cfg.downsampling_ratios):
        for j, d in enumerate((1, 3, 9)):
            x = _res(sd, f"encoder.block.{i}.res_unit{j + 1}", x, d)
        x = _snake(sd, f"encoder.block.{i}.snake1", x)
        x = F.conv1d(x, _w(sd, f"encoder.block.{i}.conv1"), sd[f"encoder.block.{i}.conv1.bias"], stride=s,
                     padding=math.ceil(s / 2))
    x = _snake(sd, "encoder.snake1", x)
    return F.conv1d(x, _w(sd, "encoder.conv2"), sd["encoder.conv2.bias"], padding=1)


def ref_decode(sd, cfg, z):
    x = F.conv1d(z, _w(sd, "decoder.conv1"), sd["decoder.conv1.bias"], padding=3)
    for i, s in enumerate(cfg.downsampling_ratios[::-1]):
        x = _snake(sd, f"decoder.block.{i}.snake1", x)
        x = F.conv_transpose1d(x, _w(sd, f"decoder.block.{i}.conv_t1"), sd[f"decoder.block.{i}.conv_t1.bias"],
                               stride=s, padding=math.ceil(s / 2))
        for j, d in enumerate((1, 3, 9)):
            x = _res(sd, f"decoder.block.{i}.res_unit{j + 1}", x, d)
    x = _snake(sd, "decoder.snake1", x)
    return F.conv1d(x, _w(sd, "decoder.conv2"), None, padding=3)


@pytest.mark.parametrize("ratios,mults", CONFIGS)
@pytest.mark.parametrize("length", [37, 100, 241])
def test_model_matches_functional_reference(ratios, mults, length):
    model = tiny_model(seed=length, ratios=ratios, mults=mults)
    sd, cfg = model.state_dict(), model.config
    g = torch.Generator().manual_seed(length)
    wave = torch.rand(2, 2, length, generator=g) * 2 - 1
    with torch.no_grad():
        dist = model.encode(wave)
        h = ref_encode(sd, cfg, wave)
        assert dist.mean.shape == (2, 4, model.latent_frames(length))
        torch.testing.assert_close(torch.cat([dist.mean, dist.scale_raw], 1), h, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(dist.std, F.softplus(dist.scale_raw) + 1e-4)
        z = torch.randn(2, 4, 5 + length % 7, generator=g)
        y = model.decode(z)
        assert y.shape == (2, 2, model.decoded_length(z.shape[-1]))
        torch.testing.assert_close(y, ref_decode(sd, cfg, z), atol=1e-5, rtol=1e-5)


def test_lengths():
    # the published geometry: hop 1920, exact multiples
    full = OobleckVAE(OobleckConfig(), device="meta")
    assert full.hop_length == 1920 and full.latent_channels == 64 and full.sample_rate == 48000
    assert full.latent_frames(48000 * 10 + 1919) == 250 and full.decoded_length(250) == 480000
    assert full.min_samples() == 1920 and full.latent_frames(1919) == 0
    # odd ratios: the decoded length is shorter than frames * hop (fixtures: 7 -> 160, 5 -> 59)
    assert OobleckVAE(tiny_config((2, 4, 3), (1, 2, 4)), device="meta").decoded_length(7) == 160
    assert OobleckVAE(tiny_config((3, 4), (1, 2)), device="meta").decoded_length(5) == 59
    for ratios, mults in CONFIGS:
        m = OobleckVAE(tiny_config(ratios, mults), device="meta")
        need = m.min_samples()
        assert m.latent_frames(need) == 1 and m.latent_frames(need - 1) <= 0


# --------------------------------------------------------------------------------------------
# Windowed = one pass
# --------------------------------------------------------------------------------------------
def test_plan_windows_tiles_exactly():
    for frames in (1, 2, 7, 100, 157):
        for core in (1, 3, 8, 64):
            plan = plan_windows(frames, core, 5)
            keep = [(a, b) for _, _, a, b in plan]
            assert keep[0][0] == 0 and keep[-1][1] == frames
            assert all(x[1] == y[0] for x, y in zip(keep, keep[1:]))
            assert all(max(0, a - 5) == w0 and min(frames, b + 5) == w1 for w0, w1, a, b in plan)


# the published ratios (hop 1920) with 4 channels, and tiny odd geometries
WINDOW_CASES = [
    dict(ratios=(2, 4, 4, 6, 10), mults=(1, 1, 1, 1, 1), hidden=4, latent=2, dec=4),
    dict(ratios=(2, 3, 2), mults=(1, 2, 2)),
    dict(ratios=(3, 4), mults=(1, 2)),
    dict(ratios=(3, 1, 2), mults=(1, 1, 2)),
    dict(ratios=(5, 2), mults=(2, 2)),
]


@pytest.mark.parametrize("kw", WINDOW_CASES, ids=lambda kw: "x".join(map(str, kw["ratios"])))
def test_windowed_decode_equals_one_pass(kw):
    model = tiny_model(seed=3, **kw)
    frames = 3 * model.decoder_context_frames() + 53  # not a multiple of anything used below
    z = torch.randn(2, model.latent_channels, frames, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model.decode(z)
    calls = []
    vae = MusicVAE15(model, VAEWindows15(decode_core=7, decode_context=0))  # context raised to the minimum
    out = vae.decode(z, progress=lambda d, t: calls.append((d, t)))
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert len(calls) == len(plan_windows(frames, 7, model.decoder_context_frames())) > 10
    assert calls[-1] == (len(calls), len(calls))
    assert (out - ref).abs().max().item() <= 1e-5 * ref.abs().max().item()


@pytest.mark.parametrize("kw", WINDOW_CASES, ids=lambda kw: "x".join(map(str, kw["ratios"])))
def test_windowed_encode_equals_one_pass(kw):
    model = tiny_model(seed=4, **kw)
    hop = model.hop_length
    length = (3 * model.encoder_context_frames() + 29) * hop + hop // 2 + 1  # not a multiple of the hop
    wave = torch.rand(1, 2, length, generator=torch.Generator().manual_seed(2)) * 1.8 - 0.9
    with torch.no_grad():
        ref = model.encode(wave)
    calls = []
    vae = MusicVAE15(model, VAEWindows15(encode_core=5, encode_context=0))
    mean, std = vae.encode_distribution(wave, model.sample_rate, progress=lambda d, t: calls.append(d))
    assert mean.shape == ref.mean.shape and len(calls) > 10
    assert (mean - ref.mean).abs().max().item() <= 1e-5 * ref.mean.abs().max().item()
    torch.testing.assert_close(std, ref.std, atol=1e-5, rtol=1e-5)


def test_seam_test_detects_missing_context(monkeypatch):
    """Sanity check of the two tests above: with too little context the windows do not match one pass."""
    model = tiny_model(seed=3)
    z = torch.randn(1, 4, 80, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model.decode(z)
    monkeypatch.setattr(model, "decoder_context_frames", lambda: 1)
    out = MusicVAE15(model, VAEWindows15(decode_core=7, decode_context=0)).decode(z)
    assert (out - ref).abs().max().item() > 1e-3 * ref.abs().max().item()


# --------------------------------------------------------------------------------------------
# The audio-facing wrapper
# --------------------------------------------------------------------------------------------
def test_sampling_uses_the_generator_and_is_window_independent():
    model = tiny_model(seed=5)
    wave = torch.rand(2, 2, 1000, generator=torch.Generator().manual_seed(0)) - 0.5
    one = MusicVAE15(model, VAEWindows15(encode_core=10**6))
    many = MusicVAE15(model, VAEWindows15(encode_core=3))
    mean, std = one.encode_distribution(wave, 48000)
    s1 = one.encode(wave, 48000, generator=torch.Generator().manual_seed(7))
    s2 = many.encode(wave, 48000, generator=torch.Generator().manual_seed(7))
    noise = torch.randn(mean.shape, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(s1, mean + std * noise)
    torch.testing.assert_close(s2, s1, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(s1, one.encode(wave, 48000, generator=torch.Generator().manual_seed(8)))
    torch.testing.assert_close(one.encode(wave, 48000, sample=False), mean)
    torch.testing.assert_close(one.encode(wave, 48000), one.encode(wave, 48000))  # None: seeded, reproducible


def test_encode_channels_rate_and_clamp():
    model = tiny_model(seed=6)
    vae = MusicVAE15(model)
    g = torch.Generator().manual_seed(0)
    mono = torch.rand(1, 1, 900, generator=g) - 0.5
    torch.testing.assert_close(vae.encode(mono, 48000, sample=False),
                               vae.encode(mono.expand(-1, 2, -1), 48000, sample=False))
    six = torch.rand(1, 6, 900, generator=g) - 0.5  # 5.1 is downmixed, not rejected
    assert vae.encode(six, 48000, sample=False).shape == (1, 4, model.latent_frames(900))
    loud = torch.rand(1, 2, 900, generator=g) * 6 - 3
    torch.testing.assert_close(vae.encode(loud, 48000, sample=False),
                               vae.encode(loud.clamp(-1, 1), 48000, sample=False))
    lat = vae.encode(mono, 22050, sample=False)
    assert lat.shape[-1] == model.latent_frames(resampled_length(900, 22050, 48000))
    assert lat.dtype == torch.float32 and lat.device == mono.device


def test_bad_inputs_name_the_input():
    vae = MusicVAE15(tiny_model(seed=7))
    ok = torch.zeros(1, 2, 500)
    cases = [
        (lambda: vae.encode(torch.zeros(2, 500), 48000), "waveform"),  # wrong rank
        (lambda: vae.encode(torch.zeros(1, 2, 0), 48000), "waveform"),  # empty
        (lambda: vae.encode(torch.zeros(1, 0, 500), 48000), "waveform"),
        (lambda: vae.encode(torch.full((1, 2, 500), float("nan")), 48000), "waveform"),
        (lambda: vae.encode(torch.zeros(1, 2, 500, dtype=torch.int16), 48000), "waveform"),
        (lambda: vae.encode(torch.zeros(1, 2, 3), 48000), "waveform"),  # shorter than one frame
        (lambda: vae.encode(ok, 0), "sample_rate"),
        (lambda: vae.encode(ok, 44100.5), "sample_rate"),
        (lambda: vae.decode(torch.zeros(1, 5, 10)), "latents"),  # wrong channel count
        (lambda: vae.decode(torch.zeros(4, 10)), "latents"),
        (lambda: vae.decode(torch.zeros(1, 4, 0)), "latents"),
        (lambda: vae.decode(torch.tensor([[[float("inf")]] * 4])), "latents"),
        (lambda: VAEWindows15(decode_core=0), "decode_core"),
        (lambda: MusicVAE15(OobleckVAE(OobleckConfig(audio_channels=1), device="meta")), "audio_channels"),
    ]
    for call, name in cases:
        with pytest.raises(InputError, match=name):
            call()


def test_progress_hook_can_interrupt():
    vae = MusicVAE15(tiny_model(seed=8), VAEWindows15(decode_core=4))
    seen = []

    def hook(done, total):
        seen.append(done)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vae.decode(torch.zeros(1, 4, 200), progress=hook)
    assert seen == [1]
    assert all(m.fused is None for m in vae.modules() if isinstance(m, WNConv1d))  # cache released


# --------------------------------------------------------------------------------------------
# Weight norm
# --------------------------------------------------------------------------------------------
def test_fused_weight_norm_cache_is_scoped_and_exact():
    model = tiny_model(seed=9)
    z = torch.randn(1, 4, 30, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = model.decode(z)
        with fused_weight_norm(model):
            with fused_weight_norm(model.decoder):  # nested: the outer block owns the cache
                pass
            assert all(m.fused is not None for m in model.modules() if isinstance(m, WNConv1d))
            assert torch.equal(model.decode(z), plain)
        assert all(m.fused is None for m in model.modules() if isinstance(m, WNConv1d))
        model.decoder.conv2.weight_g.mul_(2.0)  # a later weight change is seen at once
        assert torch.allclose(model.decode(z), 2 * plain, atol=1e-6)
    conv = model.decoder.conv1
    w = conv.fused_weight()
    torch.testing.assert_close(w, torch._weight_norm(conv.weight_v, conv.weight_g, 0))


def test_runs_under_inference_mode_with_inference_parameters():
    with torch.inference_mode():  # ComfyUI builds and runs models like this
        model = tiny_model(seed=10)
        vae = MusicVAE15(model, VAEWindows15(decode_core=5, encode_core=5))
        z = torch.randn(1, 4, 120, generator=torch.Generator().manual_seed(0))
        a = vae.decode(z)
        model.decoder.conv2.weight_g.mul_(0.5)
        b = vae.decode(z)
        torch.testing.assert_close(b, 0.5 * a, atol=1e-6, rtol=1e-5)
        lat = vae.encode(b, 48000, generator=torch.Generator().manual_seed(0))
        assert lat.shape == (1, 4, model.latent_frames(b.shape[-1]))


def test_gradients_flow():
    model = tiny_model(seed=11)
    wave = torch.rand(1, 2, 200, generator=torch.Generator().manual_seed(0)) - 0.5
    loss = model(wave).pow(2).mean()
    loss.backward()
    assert model.encoder.conv1.weight_v.grad is not None and model.decoder.snake1.alpha.grad is not None


def test_bfloat16_model_is_close_to_float32():
    model = tiny_model(seed=12)
    sd = model.state_dict()
    vae16 = MusicVAE15.from_state_dict(sd, dtype=torch.bfloat16)
    assert vae16.model.decoder.conv1.weight_v.dtype == torch.bfloat16
    z = torch.randn(1, 4, 40, generator=torch.Generator().manual_seed(0))
    ref = MusicVAE15(model).decode(z)
    out = vae16.decode(z)
    assert out.dtype == torch.float32
    assert (out - ref).abs().max().item() < 0.1 * ref.abs().max().item()


# --------------------------------------------------------------------------------------------
# Checkpoint layouts
# --------------------------------------------------------------------------------------------
_RES = {"snake1": 0, "conv1": 1, "snake2": 2, "conv2": 3}


def to_comfy_name(key: str, n_blocks: int) -> str:
    """diffusers name -> stable-audio-tools name, written independently of the converter."""
    side, rest = key.split(".", 1)
    m = re.fullmatch(r"block\.(\d+)\.(\w+)\.(?:(\w+)\.)?(\w+)", rest)
    if m:
        i, part, sub, param = int(m.group(1)), m.group(2), m.group(3), m.group(4)
        order = (["res_unit1", "res_unit2", "res_unit3", "snake1", "conv1"] if side == "encoder"
                 else ["snake1", "conv_t1", "res_unit1", "res_unit2", "res_unit3"])
        path = f"layers.{i + 1}.layers.{order.index(part)}"
        if sub is not None:
            path += f".layers.{_RES[sub]}"
        return f"{side}.{path}.{param}"
    part, param = rest.split(".")
    index = {"conv1": 0, "snake1": n_blocks + 1, "conv2": n_blocks + 2}[part]
    return f"{side}.layers.{index}.{param}"


def comfy_state_dict(sd: dict, n_blocks: int, parametrizations: bool = False) -> dict:
    out = {}
    for k, v in sd.items():
        name = to_comfy_name(k, n_blocks)
        if name.endswith((".alpha", ".beta")):
            v = v.reshape(-1)  # (1, C, 1) -> (C,)
        if parametrizations:
            name = name.replace("weight_g", "parametrizations.weight.original0")
            name = name.replace("weight_v", "parametrizations.weight.original1")
        out[name] = v
    return out


@pytest.mark.parametrize("parametrizations", [False, True])
def test_comfy_layout_round_trip(parametrizations):
    model = tiny_model(seed=13, ratios=(2, 4, 3), mults=(1, 2, 4))
    sd = model.state_dict()
    comfy = comfy_state_dict(sd, 3, parametrizations)
    assert detect_layout(comfy) == "comfy" and detect_layout(sd) == "diffusers"
    back = comfy_to_diffusers(comfy)
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)
    loaded = OobleckVAE.from_state_dict(comfy, source="ace_1.5_vae.safetensors")
    assert loaded.config.downsampling_ratios == [2, 4, 3] and loaded.config.channel_multiples == [1, 2, 4]
    z = torch.randn(1, 4, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded.decode(z), model.decode(z))


def test_layout_errors_name_the_file_and_keys():
    model = tiny_model(seed=14)
    sd = model.state_dict()
    comfy = comfy_state_dict(sd, 3)
    with pytest.raises(CheckpointError, match=r"vae\.safetensors.*encoder\.layers\.1\.layers\.9\.bias"):
        comfy_to_diffusers({**comfy, "encoder.layers.1.layers.9.bias": torch.zeros(1)}, source="vae.safetensors")
    with pytest.raises(CheckpointError, match=r"vae\.safetensors.*extra\.weight"):
        comfy_to_diffusers({**comfy, "extra.weight": torch.zeros(1)}, source="vae.safetensors")
    missing = dict(comfy)
    del missing["decoder.layers.1.layers.2.layers.1.weight_v"]
    with pytest.raises(CheckpointError, match=r"vae\.safetensors.*missing.*decoder\.block\.0\.res_unit1\.conv1"):
        OobleckVAE.from_state_dict(missing, source="vae.safetensors")
    with pytest.raises(CheckpointError, match="vae.safetensors.*unknown keys"):
        OobleckVAE.from_state_dict({**sd, "encoder.extra": torch.zeros(1)}, source="vae.safetensors")
    with pytest.raises(CheckpointError, match="vae.safetensors"):
        to_diffusers_state_dict({"foo": torch.zeros(1)}, source="vae.safetensors")


# --------------------------------------------------------------------------------------------
# Full size against the published manifests
# --------------------------------------------------------------------------------------------
def _manifest(name: str) -> dict:
    return {k: tuple(v["shape"]) for k, v in json.loads((MANIFESTS / name).read_text())["tensors"].items()}


@pytest.fixture(scope="module")
def full_model():
    return OobleckVAE(OobleckConfig(), dtype=torch.bfloat16, device="meta")


@pytest.mark.skipif(not MANIFESTS.is_dir(), reason="reference manifests not available")
def test_full_size_matches_official_manifest(full_model):
    ours = {k: tuple(v.shape) for k, v in full_model.state_dict().items()}
    expected = _manifest(OFFICIAL)
    assert set(ours) ^ set(expected) == set()
    assert {k: (ours[k], expected[k]) for k in ours if ours[k] != expected[k]} == {}
    assert sum(p.numel() for p in full_model.parameters()) == FULL_PARAMS
    assert detect_layout(expected) == "diffusers"
    assert infer_config(expected) == OobleckConfig()


@pytest.mark.skipif(not MANIFESTS.is_dir(), reason="reference manifests not available")
@pytest.mark.parametrize("parametrizations", [False, True])
def test_full_size_matches_comfy_manifest(full_model, parametrizations):
    manifest = json.loads((MANIFESTS / COMFY).read_text())
    shapes = {k: tuple(v["shape"]) for k, v in manifest["tensors"].items()}
    if parametrizations:  # the alternative naming ComfyUI's own module writes
        for k in manifest["alternative_keys_parametrizations"]:
            old = k.replace("parametrizations.weight.original0", "weight_g").replace(
                "parametrizations.weight.original1", "weight_v")
            shapes[k] = shapes.pop(old)
    assert detect_layout(shapes) == "comfy"
    meta = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    converted = comfy_to_diffusers(meta, source=COMFY)
    ours = {k: tuple(v.shape) for k, v in full_model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in converted.items()} == ours
    assert sum(math.prod(s) for s in shapes.values()) == FULL_PARAMS
    # our naming, written back independently, is the manifest's naming
    if not parametrizations:
        assert {to_comfy_name(k, 5) for k in ours} == set(shapes)
