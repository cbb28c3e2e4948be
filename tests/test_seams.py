"""Seams of the time-range edits: the latent feather, the waveform splice, and (with a tiny random
model) the issue's two measurements: samples outside region + crossfade equal the source exactly,
and the boundary jump (RMS of the first difference over 10 ms around each edge) is no larger than
inside the region, i.e. not above the largest 10 ms jump of the regenerated audio itself; where
the source resumes (the outer end of each crossfade) it is below the region's average."""

import math

import pytest
import torch

from ace_core.editing.seams import crossfade_ramps, diff_rms, edge_jump_rms, edit_mask, jump_profile, splice
from ace_core.errors import InputError
from ace_core.v1 import edit_pipeline as ep
from ace_core.v1.pipeline import SamplerSettings
from editing_tools import conditioning, tiny_bundle, tone

FAST = SamplerSettings(steps=3, guidance_scale=5.0)


# ------------------------------------------------------------------------------ latent feather

def test_hard_mask_is_the_official_mask():
    m = edit_mask(30, [(10, 20)], 0)
    assert torch.equal(m, ((torch.arange(30) >= 10) & (torch.arange(30) < 20)).float())


def test_inward_feather_stays_inside_the_region():
    m = edit_mask(40, [(10, 30)], 4)
    assert m[:10].abs().sum() == 0 and m[30:].abs().sum() == 0
    assert torch.all(m[10:14] > 0) and torch.all(m[10:14] < 1)
    assert torch.all(torch.diff(m[10:15]) > 0) and torch.all(torch.diff(m[25:30]) < 0)
    assert torch.equal(m[14:26], torch.ones(12))
    assert torch.allclose(m[10:14], m[26:30].flip(0))


def test_feather_only_where_kept_frames_touch():
    m = edit_mask(40, [(0, 20)], 4)  # region starts at the first frame: no ramp there
    assert m[0] == 1 and m[19] < 1
    ext = edit_mask(40, [(30, 40)], 3, inward=False)  # an extension: ramp on the source side
    assert torch.equal(ext[30:], torch.ones(10)) and ext[:27].abs().sum() == 0
    assert torch.all(torch.diff(ext[26:31]) > 0)


def test_crossfade_curves():
    out, inn = crossfade_ramps(64, "equal_power")
    assert torch.allclose(out ** 2 + inn ** 2, torch.ones(64), atol=1e-6)
    out, inn = crossfade_ramps(64, "linear")
    assert torch.allclose(out + inn, torch.ones(64), atol=1e-6)
    assert torch.all(torch.diff(inn) > 0)
    with pytest.raises(InputError, match="crossfade_curve"):
        crossfade_ramps(4, "cubic")


# ------------------------------------------------------------------------------ waveform splice

def test_splice_is_bit_identical_outside_region_and_crossfade():
    g = torch.Generator().manual_seed(0)
    src = torch.randn(1, 2, 1000, generator=g)
    gen = torch.randn(1, 2, 600, generator=g)  # covers output samples 200..800
    out = splice(src, gen, edits=[(400, 600)], generated_start=200, crossfade=50)
    assert torch.equal(out[..., :350], src[..., :350]) and torch.equal(out[..., 650:], src[..., 650:])
    assert torch.equal(out[..., 400:600], gen[..., 200:400])
    fo, fi = crossfade_ramps(50)
    assert torch.allclose(out[..., 350:400], src[..., 350:400] * fo + gen[..., 150:200] * fi)
    assert torch.allclose(out[..., 600:650], gen[..., 400:450] * fo + src[..., 600:650] * fi)


def test_splice_extension_and_clipped_crossfades():
    src = torch.ones(1, 2, 100)
    gen = torch.full((1, 2, 180), 2.0)  # output 0..180: 30 new + source + 50 new
    out = splice(src, gen, edits=[(0, 30), (130, 180)], generated_start=0, source_start=30,
                 out_length=180, crossfade=200, curve="linear")  # longer than the source: split in two
    assert out.shape == (1, 2, 180)
    assert torch.equal(out[..., :30], gen[..., :30]) and torch.equal(out[..., 130:], gen[..., 130:])
    assert torch.all(out[..., 30:130] >= 1) and torch.all(out[..., 30:130] <= 2)
    with pytest.raises(InputError, match="neither source nor edited"):
        splice(src, gen, edits=[(0, 20)], generated_start=0, source_start=30, out_length=180)
    with pytest.raises(InputError, match="not covered"):
        splice(src, gen[..., :50], edits=[(60, 90)], generated_start=0)


def test_jump_metric_sees_a_click():
    t = torch.arange(4410) / 44100
    smooth = (0.3 * torch.sin(2 * math.pi * 220 * t)).expand(1, 2, -1).clone()
    clicked = smooth.clone()
    clicked[..., 2205:] += 0.3
    assert edge_jump_rms(clicked, 2205, 44100) > 2 * edge_jump_rms(smooth, 2205, 44100)


# ------------------------------------------------------------------------------ with a tiny model

@pytest.fixture(scope="module")
def bundle():
    return tiny_bundle()


@pytest.mark.parametrize("sample_rate, channels", [(44100, 2), (48000, 1)])
def test_repaint_seams(bundle, sample_rate, channels):
    sr = sample_rate
    wave = tone(3.0, sr, channels)
    source = ep.encode_source(bundle.vae, {"waveform": wave, "sample_rate": sr})
    edit = ep.repaint_latent(source, 1.2, "start", 1.0, "end", strength=1.0, feather_frames=2, crossfade_ms=40)
    result = ep.run_edit(bundle, edit, conditioning(bundle), seed=1, settings=FAST)
    audio = ep.decode_and_splice(bundle, result, margin_frames=2)
    out = audio["waveform"]
    stereo = wave.expand(1, 2, -1)
    assert audio["sample_rate"] == sr and out.shape == stereo.shape  # the source's rate and length
    lo, hi = edit["aceforge_edit"]["plan"]["edit_seconds"][0]  # 1.2 s .. 1.0 s before the end
    assert (lo, hi) == pytest.approx((1.2, 2.0))
    a, b, xf = round(lo * sr), round(hi * sr), round(0.040 * sr)
    assert torch.equal(out[..., : a - xf], stereo[..., : a - xf])
    assert torch.equal(out[..., b + xf:], stereo[..., b + xf:])
    assert not torch.equal(out[..., a:b], stereo[..., a:b])  # the region was regenerated
    inside = jump_profile(out, a, b, sr)
    for edge in (a, b):
        assert edge_jump_rms(out, edge, sr) <= inside.max()
    for join in (a - xf, b + xf):  # where the source resumes
        assert edge_jump_rms(out, join, sr) <= diff_rms(out, a, b)


def test_outpaint_seams(bundle):
    sr = 44100
    wave = tone(2.0, sr)
    source = ep.encode_source(bundle.vae, {"waveform": wave, "sample_rate": sr})
    edit = ep.outpaint_latent(source, 0.5, 1.0, feather_frames=2, crossfade_ms=30)
    result = ep.run_edit(bundle, edit, conditioning(bundle), seed=2, settings=FAST)
    audio = ep.decode_and_splice(bundle, result, margin_frames=2)
    out = audio["waveform"]
    left, length, xf = round(0.5 * sr), wave.shape[-1], round(0.030 * sr)
    assert out.shape[-1] == left + length + round(1.0 * sr)
    assert torch.equal(out[..., left + xf:left + length - xf], wave[..., xf:length - xf])
    assert out[..., :left].abs().max() > 0 and out[..., left + length:].abs().max() > 0
    inside = torch.cat([jump_profile(out, 0, left, sr), jump_profile(out, left + length, out.shape[-1], sr)])
    for edge in (left, left + length):
        assert edge_jump_rms(out, edge, sr) <= inside.max()
    for join in (left + xf, left + length - xf):  # where the source resumes
        assert edge_jump_rms(out, join, sr) <= min(diff_rms(out, 0, left), diff_rms(out, left + length, out.shape[-1]))
