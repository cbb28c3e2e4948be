"""v1 audio path: resample, log-mel, vocoder layout, MusicVAE wrapper (channels, validation, windowed decode)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ace_core.audio.mel import MelConfig, linear_spectrogram, log_mel, melscale_fbanks
from ace_core.audio.resample import resample, resampled_length
from ace_core.errors import InputError
from ace_core.v1.dcae import DCAEConfig
from ace_core.audio.channels import stereo_downmix_matrix, to_stereo
from ace_core.v1.music_vae import DecodeWindows, MusicVAE
from ace_core.v1.vocoder import OPTIONAL_KEYS, ADaMoSHiFiGAN, VocoderConfig

SHARED = Path(__file__).resolve().parents[2] / "shared"
VOCODER_MANIFEST = SHARED / "reference" / "checkpoints" / "v1__music_vocoder__diffusion_pytorch_model.safetensors.json"


# --------------------------------------------------------------------------------------------
# resample
# --------------------------------------------------------------------------------------------
def _naive_resample(x: np.ndarray, orig: int, new: int, lpw: int = 6, rolloff: float = 0.99) -> np.ndarray:
    """Direct evaluation of the Hann-windowed sinc interpolation, one output sample at a time."""
    g = math.gcd(orig, new)
    o, n = orig // g, new // g
    cutoff = min(o, n) * rolloff
    out_len = -(-len(x) * n // o)
    y = np.zeros(out_len)
    i = np.arange(len(x))
    for m in range(out_len):
        u = (i - m * o / n) * cutoff / o  # distance in zero crossings of the low-pass sinc
        u = np.clip(u, -lpw, lpw)
        w = np.sinc(u) * np.cos(u * np.pi / lpw / 2) ** 2 * cutoff / o
        y[m] = np.dot(x, w)
    return y


def test_resample_identity_returns_input():
    x = torch.randn(2, 3, 100)
    assert resample(x, 44100, 44100) is x


@pytest.mark.parametrize("orig,new,length", [(48000, 44100, 48000), (44100, 48000, 12288), (44100, 22050, 1001),
                                             (16000, 44100, 777), (44100, 32000, 1)])
def test_resample_length_and_batch_shape(orig, new, length):
    x = torch.randn(2, 3, length)
    y = resample(x, orig, new)
    assert y.shape == (2, 3, math.ceil(length * new / orig)) == (2, 3, resampled_length(length, orig, new))
    # each row is resampled independently
    torch.testing.assert_close(y[1, 2], resample(x[1, 2], orig, new))


@pytest.mark.parametrize("orig,new", [(48000, 44100), (44100, 48000), (44100, 22050), (8000, 44100)])
def test_resample_matches_direct_windowed_sinc(orig, new):
    x = torch.randn(600, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    want = _naive_resample(x.numpy(), orig, new)
    # taps built in float64 throughout (functional.resample on a float64 wave): the exact formula
    assert np.abs(resample(x, orig, new, kernel_dtype=torch.float64).numpy() - want).max() < 1e-9
    # default (transforms.Resample: float32-formed phases) and float32 taps (functional on float32)
    # carry float32 rounding of the taps only
    assert np.abs(resample(x, orig, new).numpy() - want).max() < 1e-4
    assert np.abs(resample(x.float(), orig, new, kernel_dtype=torch.float32).double().numpy() - want).max() < 1e-4


@pytest.mark.parametrize("orig,new", [(48000, 44100), (44100, 48000)])
def test_resample_known_sine(orig, new):
    f = 440.0
    t_in = torch.arange(orig // 4, dtype=torch.float64) / orig
    y = resample(torch.sin(2 * math.pi * f * t_in).float(), orig, new)
    t_out = torch.arange(y.shape[-1], dtype=torch.float64) / new
    ref = torch.sin(2 * math.pi * f * t_out)
    inner = slice(200, y.shape[-1] - 200)  # away from the zero-padded edges
    err = (y.double()[inner] - ref[inner]).abs().max().item()
    assert err < 2e-3, err


def test_resample_removes_content_above_new_nyquist():
    sr = 48000
    t = torch.arange(sr // 4, dtype=torch.float64) / sr
    tone = torch.sin(2 * math.pi * 20000 * t).float()  # above the 8 kHz Nyquist of 16 kHz
    y = resample(tone, sr, 16000)
    assert y[200:-200].abs().max() < 0.01


def test_resample_rejects_bad_rates_and_dtypes():
    with pytest.raises(InputError, match="new_sr"):
        resample(torch.zeros(10), 44100, 0)
    with pytest.raises(InputError, match="orig_sr"):
        resample(torch.zeros(10), 44100.5, 48000)
    with pytest.raises(InputError, match="floating"):
        resample(torch.zeros(10, dtype=torch.int16), 44100, 48000)


def test_resample_half_precision_and_empty():
    x = torch.randn(1, 480)
    torch.testing.assert_close(resample(x.bfloat16(), 48000, 44100).float(), resample(x, 48000, 44100),
                               atol=3e-2, rtol=0)
    assert resample(torch.zeros(2, 0), 48000, 44100).shape == (2, 0)


# --------------------------------------------------------------------------------------------
# mel
# --------------------------------------------------------------------------------------------
def test_mel_filterbank_shape_and_slaney_area():
    fb = melscale_fbanks(1025, 40.0, 16000.0, 128, 44100)
    assert fb.shape == (1025, 128) and fb.dtype == torch.float32
    assert (fb >= 0).all() and (fb.max(dim=0).values > 0).all()
    # nothing outside [f_min, f_max]
    hz = torch.linspace(0, 22050, 1025)
    assert fb[hz > 16000].abs().max() == 0 and fb[hz < 40].abs().max() == 0
    # Slaney area normalisation: each triangle integrates (in Hz) to ~1 (once it spans many bins)
    area = fb.sum(0) * (22050 / 1024)
    assert ((area[60:] - 1).abs() < 0.02).all() and ((area - 1).abs() < 0.2).all()


def test_log_mel_frames_and_errors():
    cfg = MelConfig()
    x = torch.randn(2, 2, 4096)
    assert log_mel(x).shape == (2, 2, cfg.n_mels, 4096 // cfg.hop_length)
    assert linear_spectrogram(x[0, 0]).shape == (cfg.n_freqs, 8)
    # silence sits at the log floor of sqrt(1e-6) spread by the filterbank, never below log(1e-5)
    assert log_mel(torch.zeros(1, 4096)).min() >= math.log(1e-5) - 1e-6
    with pytest.raises(InputError, match="too short"):
        log_mel(torch.zeros(1, 500))


# --------------------------------------------------------------------------------------------
# vocoder
# --------------------------------------------------------------------------------------------
def _vocoder_manifest() -> dict:
    if not VOCODER_MANIFEST.exists():
        pytest.skip(f"reference manifest not found: {VOCODER_MANIFEST}")
    return json.loads(VOCODER_MANIFEST.read_text())


def test_vocoder_full_config_keys_on_meta_equal_manifest():
    ref = _vocoder_manifest()
    cfg = VocoderConfig.from_reference(ref["config_json_reconstructed"])
    assert cfg == VocoderConfig()
    model = ADaMoSHiFiGAN(cfg, device="meta")
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    optional = {k: list(v) for k, v in ADaMoSHiFiGAN.optional_checkpoint_keys(cfg).items()}
    theirs = {k: v["shape"] for k, v in ref["tensors"].items()}
    assert set(optional) == set(OPTIONAL_KEYS)
    assert {**ours, **optional} == theirs
    assert all(p.device.type == "meta" for p in model.parameters())
    assert model.state_dict()["head.ups.0.weight_g"].shape == (1024, 1, 1)  # ConvTranspose: dim 0 = in
    assert model.state_dict()["head.conv_pre.weight_g"].shape == (1024, 1, 1)


TINY_VOCODER = dict(
    input_channels=32, depths=[1, 1], dims=[8, 16], kernel_sizes=[7], upsample_rates=[4, 4, 4],
    upsample_kernel_sizes=[8, 8, 8], resblock_kernel_sizes=[3, 5], resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]],
    num_mels=16, upsample_initial_channel=16, pre_conv_kernel_size=7, post_conv_kernel_size=7,
    n_fft=256, win_length=256, hop_length=64, n_mels=32, f_min=40, f_max=16000,
)


def test_vocoder_optional_mel_buffers_load_or_not_and_weight_norm():
    cfg = VocoderConfig.from_reference(TINY_VOCODER)
    src = ADaMoSHiFiGAN(cfg)
    sd = src.state_dict()
    dst = ADaMoSHiFiGAN(cfg)
    dst.load_state_dict(sd, strict=True)  # without the mel buffers
    extra = {OPTIONAL_KEYS[0]: torch.hann_window(cfg.win_length), OPTIONAL_KEYS[1]: torch.zeros(cfg.n_fft // 2 + 1, cfg.n_mels)}
    dst.load_state_dict({**sd, **extra}, strict=True)  # with them (recognised, recomputed)
    assert set(dst.state_dict()) == set(sd)
    torch.testing.assert_close(dst.mel_transform.tables("cpu")[0], torch.hann_window(cfg.win_length))
    # effective weight = g * v / ||v|| over all dims but 0
    conv = dst.head.ups[1]
    v, g = conv.weight_v, conv.weight_g
    torch.testing.assert_close(conv.weight(), g * v / v.norm(dim=(1, 2), keepdim=True))
    mel = torch.randn(1, cfg.input_channels, 5)
    out = dst.decode(mel)
    assert out.shape == (1, 1, 5 * cfg.hop_length) and out.abs().max() <= 1
    # the fused weight follows parameter updates
    with torch.no_grad():
        conv.weight_g.mul_(2)
    assert not torch.allclose(dst.decode(mel), out)


@pytest.mark.parametrize("kernel_sizes", [[7], [3, 7]])
def test_vocoder_channels_last_path_equals_plain_path(monkeypatch, kernel_sizes):
    """On CPUs the vocoder runs its convs channels-last ((B, C, 1, T) stored as (B, T, C)) and its
    backbone in (B, T, C); the plain (B, C, T) path (other devices) computes the same."""
    import ace_core.v1.vocoder as vocoder_module

    # 128 head channels: stage 0 (64) on the channels-last kernels, the later stages on the plain ones
    cfg = VocoderConfig.from_reference({**TINY_VOCODER, "kernel_sizes": kernel_sizes, "upsample_initial_channel": 128})
    model = ADaMoSHiFiGAN(cfg)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    mel = torch.randn(2, cfg.input_channels, 9, generator=g)
    assert vocoder_module._use_channels_last(mel)
    ranks = []  # input rank of the first conv of stage 0 (64 channels) and of the last stage (16)
    hooks = [model.head.resblocks[i].convs1[0].register_forward_hook(lambda m, a, o: ranks.append(a[0].dim()))
             for i in (0, len(model.head.resblocks) - 1)]
    fast, fast_features = model.decode(mel), model.backbone(mel)
    for hook in hooks:
        hook.remove()
    assert ranks == [4, 3]  # (B, C, 1, T) channels-last, then (B, C, T)
    monkeypatch.setattr(vocoder_module, "_use_channels_last", lambda x: False)
    plain, plain_features = model.decode(mel), model.backbone(mel)
    assert fast.shape == plain.shape == (2, 1, 9 * cfg.hop_length)
    torch.testing.assert_close(fast_features, plain_features, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast, plain, atol=1e-6, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# MusicVAE
# --------------------------------------------------------------------------------------------
def _tiny_vae(attention: bool, seed: int = 0) -> MusicVAE:
    types = ["ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock" if attention else "ResBlock"]
    ms = [[], [], [], [5] if attention else []]
    dcae = DCAEConfig.from_reference(dict(
        in_channels=2, latent_channels=4, attention_head_dim=4,
        encoder_block_types=types, decoder_block_types=types,
        encoder_block_out_channels=[4, 8, 8, 8], decoder_block_out_channels=[4, 8, 8, 8],
        encoder_layers_per_block=[1, 1, 1, 1], decoder_layers_per_block=[1, 1, 1, 1],
        encoder_qkv_multiscales=ms, decoder_qkv_multiscales=ms,
    ))
    vae = MusicVAE(dcae, VocoderConfig.from_reference(TINY_VOCODER))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.endswith("weight_g"):
                continue
            fan = max(1, p[0].numel()) if p.ndim > 1 else 1
            p.copy_(torch.randn(p.shape, generator=g) / fan**0.5 + (1.0 if p.ndim == 1 and "weight" in name else 0.0))
    return vae.eval()


def _latent(vae: MusicVAE, frames: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, vae.latent_channels, vae.latent_height, frames, generator=g)


def test_vae_sizes_and_encode_channel_handling():
    vae = _tiny_vae(attention=True)
    spf = vae.samples_per_latent_frame
    assert spf == 64 * 8 and vae.latent_height == 32 // 8
    mono = torch.randn(2, 1, 3 * spf - 5) * 0.1
    lat = vae.encode(mono, vae.sample_rate)
    assert lat.shape == (2, 4, 4, 3) and lat.dtype == torch.float32
    torch.testing.assert_close(lat, vae.encode(mono.expand(-1, 2, -1), vae.sample_rate))
    six = torch.randn(1, 6, spf) * 0.1
    assert vae.encode(six, 48000).shape == (1, 4, 4, math.ceil(math.ceil(spf * 44100 / 48000) / spf))
    lat_lengths = vae.latent_lengths(torch.tensor([48000]), 48000)
    assert lat_lengths.dtype == torch.int64 and lat_lengths.item() == int(44100 / 512)


def test_stereo_downmix_rules():
    assert torch.equal(stereo_downmix_matrix(2), torch.eye(2, dtype=torch.float64))
    for c in range(3, 11):
        m = stereo_downmix_matrix(c)
        assert m.shape == (2, c) and torch.allclose(m.sum(1), torch.ones(2, dtype=torch.float64))
    m51 = stereo_downmix_matrix(6)
    assert m51[:, 3].abs().sum() == 0  # LFE dropped
    assert m51[0, 1] == 0 and m51[1, 0] == 0 and m51[0, 2] == m51[1, 2] > 0  # FL/FR sides, centre to both
    x = torch.ones(1, 6, 10)  # a signal common to all channels keeps its level
    torch.testing.assert_close(to_stereo(x), torch.ones(1, 2, 10))


@pytest.mark.parametrize("bad,match", [
    (torch.full((1, 2, 100), float("nan")), "NaN"),
    (torch.tensor([[[0.0, float("inf")]]]), "infinite"),
    (torch.zeros(1, 2, 0), "empty"),
    (torch.zeros(2, 100), "shape"),
])
def test_vae_encode_rejects_bad_audio(bad, match):
    vae = _tiny_vae(attention=False)
    with pytest.raises(InputError, match=match):
        vae.encode(bad, 44100)


def test_vae_rejects_bad_latent_and_rate():
    vae = _tiny_vae(attention=False)
    with pytest.raises(InputError, match="latent must have shape"):
        vae.decode(torch.zeros(1, 8, 16, 3))
    with pytest.raises(InputError, match="latent must have shape"):
        vae.decode(torch.zeros(4, 4, 3))
    with pytest.raises(InputError, match="empty"):
        vae.decode(torch.zeros(1, 4, 4, 0))
    with pytest.raises(InputError, match="NaN"):
        vae.decode(torch.full((1, 4, 4, 2), float("nan")))
    with pytest.raises(InputError, match="sample_rate"):
        vae.encode(torch.zeros(1, 2, 100), 0)
    with pytest.raises(InputError, match="sample_rate"):
        vae.decode(torch.zeros(1, 4, 4, 2), sample_rate=-1)


def test_vae_decode_shapes_and_resampled_output():
    vae = _tiny_vae(attention=True)
    lat = torch.cat([_latent(vae, 3, 1), _latent(vae, 3, 2)])
    wav = vae.decode(lat)
    assert wav.shape == (2, 2, 3 * vae.samples_per_latent_frame) and torch.isfinite(wav).all()
    # items are decoded independently
    torch.testing.assert_close(wav[1:], vae.decode(lat[1:]))
    wav48 = vae.decode(lat, sample_rate=48000)
    assert wav48.shape[-1] == math.ceil(wav.shape[-1] * 48000 / 44100)
    torch.testing.assert_close(wav48, resample(wav, 44100, 48000))


SMALL_WINDOWS = DecodeWindows(dcae_core=8, vocoder_core=24, vocoder_fade=32)


def test_windowed_decode_equals_one_shot_for_local_model():
    """Without global attention the window context covers the receptive field: the same audio."""
    vae = _tiny_vae(attention=False)
    vae.windows = SMALL_WINDOWS
    lat = _latent(vae, 30)
    ticks = []
    full = vae.decode(lat, windowed=False)
    win = vae.decode(lat, windowed=True, progress=lambda d, t: ticks.append((d, t)))
    assert win.shape == full.shape
    torch.testing.assert_close(win, full, atol=1e-5, rtol=1e-4)
    # progress: 4 DCAE windows (8, 8, 8, 6 frames), 10 vocoder windows (both channels in one pass), in order
    total = 4 + 10
    assert ticks == [(i, total) for i in range(1, total + 1)]


def test_windowed_decode_equals_one_shot_with_attention():
    """The DCAE's attention is global: it runs on the whole latent (its linear form accumulated chunk
    by chunk), only the local up-sampling part in windows, so windows still give the one-shot audio."""
    vae = _tiny_vae(attention=True)
    vae.windows = SMALL_WINDOWS
    lat = _latent(vae, 30)
    full = vae.decode(lat, windowed=False)
    win = vae.decode(lat, windowed=True)
    torch.testing.assert_close(win, full, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(vae.decode_mel(lat, windowed=True), vae.decode_mel(lat), atol=1e-4, rtol=1e-5)
    # the vocoder part alone is exact with receptive-field context
    mel = vae.decode_mel(lat)
    torch.testing.assert_close(vae.vocode(mel, windowed=True), vae.vocode(mel, windowed=False), atol=1e-5, rtol=1e-4)


def test_vocode_is_one_stereo_pass_equal_to_two_mono_passes():
    vae = _tiny_vae(attention=False)
    mel = vae.decode_mel(_latent(vae, 4))  # (1, 2, n_mels, T)
    calls = []
    handle = vae.vocoder.backbone.register_forward_hook(lambda m, args, out: calls.append(tuple(args[0].shape)))
    try:
        wav = vae.vocode(mel)
    finally:
        handle.remove()
    assert calls == [(2, mel.shape[2], mel.shape[3])]  # one call, the channels as a batch of 2
    mono = torch.cat([vae.vocoder.decode(mel[:, c])[:, 0] for c in range(2)])
    torch.testing.assert_close(wav, mono, atol=1e-5, rtol=1e-4)


def test_windowed_decode_is_automatic_for_long_latents_and_interruptible():
    vae = _tiny_vae(attention=False)
    vae.windows = SMALL_WINDOWS
    calls = []
    vae.decode(_latent(vae, 10), progress=lambda d, t: calls.append(t))
    assert calls[-1] == 1 + 3  # 10 frames <= 8 + 2*8: one DCAE call; 80 mel frames: 3 stereo vocoder windows
    calls.clear()
    vae.decode(_latent(vae, 30), progress=lambda d, t: calls.append(t))
    assert calls[-1] == 4 + 10

    class Stop(Exception):
        pass

    seen = []

    def hook(done, total):
        seen.append(done)
        if done == 2:
            raise Stop

    with pytest.raises(Stop):
        vae.decode(_latent(vae, 30), progress=hook)
    assert seen == [1, 2]
