"""Long sources: only a window around the edit is encoded, sampled and decoded; the result is spliced
into the full-length waveform (a several-minute source with a tiny random model; the window is
shrunk to a few seconds so the test stays fast, the 240 s default is checked by the planner tests)."""

import math

import pytest
import torch

from ace_core.audio.resample import resample
from ace_core.editing import long_source as ls
from ace_core.v1 import edit_pipeline as ep
from ace_core.v1.pipeline import SamplerSettings
from editing_tools import conditioning, tiny_bundle

FAST = SamplerSettings(steps=2, guidance_scale=5.0)
WINDOW = 48  # frames (~4.5 s) instead of 2583 (240 s)
WINDOW_S = WINDOW * 4096 / 44100


def long_tone(seconds: float, sample_rate: int) -> torch.Tensor:
    """(1, 2, L): one second of a smooth chord tiled (cheap for minutes of audio)."""
    t = torch.arange(sample_rate, dtype=torch.float64) / sample_rate
    one = (0.05 * torch.sin(2 * math.pi * 110 * t) + 0.02 * torch.sin(2 * math.pi * 220 * t)).float()
    n = int(round(seconds * sample_rate))
    wave = one.repeat(math.ceil(n / sample_rate))[:n]
    return torch.stack([wave, 0.8 * wave])[None]


class Spy:
    """Wraps a VAE method and records the size of every call."""

    def __init__(self, fn, size):
        self.fn, self.size, self.calls = fn, size, []

    def __call__(self, x, *args, **kwargs):
        self.calls.append(self.size(x))
        return self.fn(x, *args, **kwargs)


@pytest.fixture(scope="module")
def bundle():
    return tiny_bundle()


@pytest.fixture()
def spies(bundle, monkeypatch):
    enc = Spy(bundle.vae.encode, lambda w: w.shape[-1])
    dec = Spy(bundle.vae.decode, lambda z: z.shape[-1])
    monkeypatch.setattr(bundle.vae, "encode", enc)
    monkeypatch.setattr(bundle.vae, "decode", dec)
    return enc, dec


def test_long_source_is_not_encoded_up_front(bundle, spies):
    enc, _ = spies
    wave = long_tone(300.0, 44100)
    latent = ep.encode_source(bundle.vae, {"waveform": wave, "sample_rate": 44100})
    assert enc.calls == []
    assert latent[ep.SOURCE_KEY]["encoded"] is False
    assert latent["samples"].shape[-1] == math.ceil(300 * 44100 / 4096)
    assert latent["samples"].untyped_storage().nbytes() <= 4  # a zero-stride placeholder


@pytest.mark.parametrize("sample_rate", [44100, 48000])
def test_repaint_in_a_window_of_a_several_minute_source(bundle, spies, sample_rate):
    enc, dec = spies
    sr = sample_rate
    wave = long_tone(200.0, sr)
    source = ep.encode_source(bundle.vae, {"waveform": wave, "sample_rate": sr}, max_encode_seconds=WINDOW_S)
    edit = ep.repaint_latent(source, 100.0, "start", 101.5, "start", feather_frames=2, crossfade_ms=40,
                             max_window_frames=WINDOW)
    assert edit["samples"].shape == (1, 8, 16, WINDOW)
    result = ep.run_edit(bundle, edit, conditioning(bundle), seed=5, settings=FAST)
    assert len(enc.calls) == 1 and enc.calls[0] <= WINDOW * 4096  # the VAE saw the window only (44.1 kHz)
    assert result["samples"].shape == (1, 8, 16, WINDOW)
    audio = ep.decode_and_splice(bundle, result, margin_frames=2)
    assert dec.calls and max(dec.calls) <= WINDOW
    out = audio["waveform"]
    assert audio["sample_rate"] == sr and out.shape == wave.shape  # full length, source rate
    a, b, xf = round(100.0 * sr), round(101.5 * sr), round(0.040 * sr)
    assert torch.equal(out[..., :a - xf], wave[..., :a - xf])
    assert torch.equal(out[..., b + xf:], wave[..., b + xf:])
    assert not torch.equal(out[..., a:b], wave[..., a:b])


def test_outpaint_at_the_end_of_a_long_source(bundle, spies):
    enc, dec = spies
    sr = 44100
    wave = long_tone(180.0, sr)
    source = ep.encode_source(bundle.vae, {"waveform": wave, "sample_rate": sr}, max_encode_seconds=WINDOW_S)
    edit = ep.outpaint_latent(source, 0.0, 2.0, feather_frames=0, crossfade_ms=20, max_window_frames=WINDOW)
    result = ep.run_edit(bundle, edit, conditioning(bundle), seed=6, settings=FAST)
    assert len(enc.calls) == 1 and enc.calls[0] <= WINDOW * 4096
    audio = ep.decode_and_splice(bundle, result, margin_frames=2)
    assert max(dec.calls) <= WINDOW
    out = audio["waveform"]
    n, xf = wave.shape[-1], round(0.020 * sr)
    assert out.shape[-1] == n + 2 * sr
    assert torch.equal(out[..., :n - xf], wave[..., :n - xf])
    assert out[..., n:].abs().max() > 0


def test_window_resampling_matches_the_whole_resample():
    g = torch.Generator().manual_seed(0)
    wave = torch.randn(1, 2, 48000 * 3, generator=g)
    whole = resample(wave, 48000, 44100)
    part = ls.slice_resampled(wave, 48000, 4096 * 10, 4096 * 20, 44100)
    assert torch.allclose(part, whole[..., 4096 * 10:4096 * 20], atol=1e-5)
