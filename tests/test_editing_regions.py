"""RunComfy-style time ranges -> seconds / latent frames, windows, and their validation errors."""

import math

import pytest
import torch

from ace_core.editing import long_source as ls
from ace_core.editing import regions as er
from ace_core.errors import InputError
from ace_core.v1.latent import LATENT, check_v1_latent

FPS = 44100 / 4096


def test_constants_match_the_official_pipeline():
    assert LATENT.max_frames == 2583 == int(240 * 44100 / 512 / 8)
    assert LATENT.frames(1.5325170068027212) == int(1.5325170068027212 * 44100 / 512 / 8)
    assert LATENT.frames(-0.5108390022675737) == int(-0.5108390022675737 * 44100 / 512 / 8)


def test_start_anchored_region_defaults():
    r = er.resolve_repaint_region(LATENT, 0.0, "start", 30.0, "start", 120.0)
    assert (r.start_seconds, r.end_seconds) == (0.0, 30.0)
    assert r.start_frame == 0 and r.end_frame == int(30 * FPS)
    assert r.source_frames == math.ceil(120 * FPS)


def test_end_anchored_region_rewrites_the_last_seconds():
    # RunComfy's example: start_time 15 relative to end, end_time 0 relative to end
    src = 100.3
    frames = math.ceil(src * FPS)
    r = er.resolve_repaint_region(LATENT, 15, "end", 0, "end", src, frames)
    assert r.start_seconds == pytest.approx(src - 15)
    assert r.end_seconds == pytest.approx(src)
    assert r.start_frame == int((src - 15) * FPS)
    assert r.end_frame == frames  # "to the end" includes the last partial frame


def test_region_frames_are_the_official_ones():
    # the v1_repaint fixture's seconds -> frames int(s * 44100 / 512 / 8)
    start, end = 0.5108390022675737, 1.5325170068027212
    r = er.resolve_repaint_region(LATENT, start, "start", end, "start", 2.2755555555555556)
    assert (r.start_frame, r.end_frame) == (int(start * 44100 / 512 / 8), int(end * 44100 / 512 / 8))
    assert (r.start_seconds, r.end_seconds) == (start, end)  # the splice cuts at the exact times


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(start_time=40, end_time=20), "start_time, end_time"),
    (dict(start_time=10, start_time_relative_to="end", end_time=80), "start_time must come before"),
    (dict(start_time=150, start_time_relative_to="end", end_time=10), "before the start of the source"),
    (dict(start_time=5, end_time=130), "past the end of the source"),
    (dict(start_time=100, end_time=110), "at or past the end"),
    (dict(start_time=-1, end_time=10), "start_time"),
    (dict(start_time=0, end_time=4000), "end_time"),
    (dict(start_time=0, start_time_relative_to="middle", end_time=10), "start_time_relative_to"),
    (dict(start_time=3.0, end_time=3.01), "shorter than"),
])
def test_bad_regions_name_the_input(kwargs, fragment):
    args = dict(start_time=0, start_time_relative_to="start", end_time=30, end_time_relative_to="start")
    args.update(kwargs)
    with pytest.raises(InputError, match=fragment.replace("(", r"\(")):
        er.resolve_repaint_region(LATENT, args["start_time"], args["start_time_relative_to"], args["end_time"],
                                  args["end_time_relative_to"], 100.0)


def test_window_over_240_seconds_is_rejected():
    with pytest.raises(InputError, match=r"at most 240 s"):
        er.resolve_repaint_region(LATENT, 100, "start", 400, "start", 1200.0)


def test_source_limits():
    with pytest.raises(InputError, match="60 min"):
        er.resolve_repaint_region(LATENT, 0, "start", 10, "start", 3700.0)
    with pytest.raises(InputError, match="empty"):
        er.resolve_repaint_region(LATENT, 0, "start", 10, "start", 0.0)


def test_extension_frames_and_errors():
    e = er.resolve_extension(LATENT, 0, 30, 10.0)  # RunComfy defaults
    assert e.left_frames == 0 and e.keep_frames == math.floor(10 * FPS)
    assert (e.keep_frames + e.right_frames) / FPS >= 10 + 30  # new audio covers the request
    e2 = er.resolve_extension(LATENT, 5, 0, 10.0)
    assert e2.left_frames == math.ceil(5 * FPS) and e2.right_frames == 0 and e2.keep_frames == e2.source_frames
    with pytest.raises(InputError, match="extend_before_duration.*negative"):
        er.resolve_extension(LATENT, -1, 10, 10.0)
    with pytest.raises(InputError, match="extend_after_duration.*negative"):
        er.resolve_extension(LATENT, 0, -3, 10.0)
    with pytest.raises(InputError, match="both are 0"):
        er.resolve_extension(LATENT, 0, 0, 10.0)
    with pytest.raises(InputError, match=r"extend_after_duration: 241 s is outside"):
        er.resolve_extension(LATENT, 0, 241, 10.0)


def test_long_source_window_is_bounded_and_centred():
    src = 3600.0
    r = er.resolve_repaint_region(LATENT, 1800, "start", 1830, "start", src)
    plan = ls.plan_repaint(LATENT, r, feather_frames=2)
    ws, we = plan.window
    assert we - ws == LATENT.max_frames
    assert ws <= r.start_frame and r.end_frame <= we
    assert abs((r.start_frame - ws) - (we - r.end_frame)) <= 1
    mask = plan.mask()
    assert mask.shape == (we - ws,)
    assert mask.max() == 1 and mask[: r.start_frame - ws].abs().sum() == 0
    # near the end the window is clipped to the timeline
    r2 = er.resolve_repaint_region(LATENT, 20, "end", 0, "end", src)
    p2 = ls.plan_repaint(LATENT, r2)
    assert p2.window[1] == r2.source_frames and p2.window_frames == LATENT.max_frames


def test_short_source_uses_the_whole_timeline():
    r = er.resolve_repaint_region(LATENT, 10, "start", 20, "start", 60.0)
    plan = ls.plan_repaint(LATENT, r)
    assert plan.window == (0, r.source_frames) and not plan.is_windowed
    m = plan.mask()
    assert torch.equal(m, (torch.arange(r.source_frames) >= r.start_frame).float()
                       * (torch.arange(r.source_frames) < r.end_frame).float())  # feather 0: official hard mask


def test_outpaint_windows():
    long = er.resolve_extension(LATENT, 0, 30, 600.0)
    plan = ls.plan_extend(LATENT, long)
    assert plan.window[1] == plan.timeline_frames and plan.window_frames == LATENT.max_frames
    assert plan.pads_in_window() == (0, long.right_frames)
    with pytest.raises(InputError, match="extend one side at a time"):
        ls.plan_extend(LATENT, er.resolve_extension(LATENT, 30, 30, 600.0))
    short = ls.plan_extend(LATENT, er.resolve_extension(LATENT, 10, 20, 60.0))
    assert not short.is_windowed and short.pads_in_window() == (short.source_offset, short.timeline_frames
                                                                 - short.source_offset - short.keep_frames)


def test_latent_family_checks():
    check_v1_latent({"samples": torch.zeros(1, 8, 16, 5)})
    with pytest.raises(InputError, match="another model family"):
        check_v1_latent({"samples": torch.zeros(1, 64, 50)})
    with pytest.raises(InputError, match="another model family"):
        check_v1_latent({"samples": torch.zeros(1, 8, 16, 5), "aceforge_family": "ace_1.5"})
