"""Waveform peaks (ace_core/audio/peaks.py): exact min/max per column, header-first refusal,
bounded memory on long files, the whole-file index and its cache."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from ace_core.audio import peaks
from ace_core.errors import InputError


def write(path, data, rate=8000, subtype="FLOAT"):
    sf.write(str(path), data, rate, subtype=subtype)
    return path


def brute(data, start, end, width, bucket=1):
    """Reference: min/max over channels of every column of ``data[start:end]`` (column starts
    rounded down to a multiple of ``bucket``: the index's resolution)."""
    data = data if data.ndim == 2 else data[:, None]
    edges = np.round(np.linspace(start, end, width + 1)).astype(int)
    edges[:-1] = edges[:-1] // bucket * bucket
    cols = [data[a:b] for a, b in zip(edges[:-1], edges[1:])]
    return np.array([c.min() for c in cols]), np.array([c.max() for c in cols])


@pytest.fixture(autouse=True)
def fresh_cache():
    peaks.clear_cache()
    yield
    peaks.clear_cache()


def test_header_is_read_first(tmp_path):
    path = write(tmp_path / "a.wav", np.zeros((4000, 2), np.float32))
    header = peaks.read_header(path)
    assert (header.sample_rate, header.frames, header.channels) == (8000, 4000, 2)
    assert header.duration == pytest.approx(0.5)


@pytest.mark.parametrize("channels", [1, 2])
def test_range_peaks_match_brute_force(tmp_path, channels):
    rng = np.random.default_rng(0)
    data = rng.uniform(-1, 1, (10_001, channels)).astype(np.float32)
    path = write(tmp_path / "a.wav", data)
    found = peaks.file_peaks(path, 97)
    want_min, want_max = brute(data, 0, len(data), 97)
    np.testing.assert_allclose(found.mins, want_min)
    np.testing.assert_allclose(found.maxs, want_max)
    body = found.to_json()
    assert body["width"] == 97 and len(body["min"]) == 97 and body["duration"] == pytest.approx(10_001 / 8000)


def test_blocks_smaller_than_columns_and_a_window(tmp_path, monkeypatch):
    monkeypatch.setattr(peaks, "BLOCK_FRAMES", 333)  # columns straddle many block edges
    data = np.sin(np.arange(20_000) / 50.0).astype(np.float32) * np.linspace(0, 1, 20_000, dtype=np.float32)
    path = write(tmp_path / "a.wav", data)
    found = peaks.file_peaks(path, 60, start=0.5, end=2.0)  # frames 4000..16000, read directly
    want_min, want_max = brute(data, 4000, 16000, 60)
    np.testing.assert_allclose(found.mins, want_min)
    np.testing.assert_allclose(found.maxs, want_max)
    assert found.to_json()["start"] == pytest.approx(0.5) and found.to_json()["end"] == pytest.approx(2.0)


def test_index_serves_coarse_views_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(peaks, "MAX_BUCKETS", 64)  # a small file already needs an index
    monkeypatch.setattr(peaks, "MIN_BUCKET", 16)
    rng = np.random.default_rng(1)
    data = rng.uniform(-1, 1, 64_000).astype(np.float32)
    path = write(tmp_path / "a.wav", data)
    found = peaks.file_peaks(path, 20)  # 3200 frames a column, bucket 1000: from the index
    assert len(peaks._cache) == 1
    index = next(iter(peaks._cache.values()))
    assert index.bucket == 1000
    want_min, want_max = brute(data, 0, 64_000, 20, bucket=1000)
    np.testing.assert_allclose(found.mins, want_min)
    np.testing.assert_allclose(found.maxs, want_max)
    reads = []
    monkeypatch.setattr(peaks, "_scan", lambda *a: reads.append(a) or (_ for _ in ()).throw(AssertionError))
    again = peaks.file_peaks(path, 10, start=1.0, end=7.0)  # still coarse: no file read
    assert not reads
    want_min, want_max = brute(data, 8000, 56_000, 10, bucket=1000)
    np.testing.assert_allclose(again.mins, want_min)
    np.testing.assert_allclose(again.maxs, want_max)


def test_zoomed_in_view_reads_only_its_range(tmp_path, monkeypatch):
    data = np.linspace(-1, 1, 80_000, dtype=np.float32)
    path = write(tmp_path / "a.wav", data)
    seen = []
    real = peaks._scan
    monkeypatch.setattr(peaks, "_scan", lambda p, edges: seen.append((int(edges[0]), int(edges[-1]))) or real(p, edges))
    found = peaks.file_peaks(path, 100, start=5.0, end=5.1)
    assert seen == [(40_000, 40_800)]
    assert found.mins[0] == pytest.approx(data[40_000]) and found.maxs[-1] == pytest.approx(data[40_799])


def test_more_columns_than_frames_gives_one_per_frame(tmp_path):
    path = write(tmp_path / "a.wav", np.array([0.1, -0.2, 0.3], np.float32))
    found = peaks.file_peaks(path, 500)
    assert list(found.maxs) == pytest.approx([0.1, -0.2, 0.3])


def test_long_file_in_bounded_memory(tmp_path):
    # 20 minutes of 8 kHz mono 16-bit: 19 MB on disk, 38 MB as float32 if it were read whole
    frames = 20 * 60 * 8000
    path = tmp_path / "long.wav"
    with sf.SoundFile(str(path), "w", 8000, 1, subtype="PCM_16") as f:
        chunk = (0.5 * np.sin(np.arange(480_000) / 10.0)).astype(np.float32)
        for _ in range(frames // len(chunk)):
            f.write(chunk)
    tracemalloc.start()
    try:
        found = peaks.file_peaks(path, 2000)
        zoom = peaks.file_peaks(path, 800, start=600.0, end=601.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"peak memory {peak / 2**20:.1f} MB"
    assert found.to_json()["duration"] == pytest.approx(1200.0)
    assert found.maxs.max() == pytest.approx(0.5, abs=1e-3) and found.mins.min() == pytest.approx(-0.5, abs=1e-3)
    assert zoom.to_json()["start"] == pytest.approx(600.0) and len(zoom.mins) == 800


def test_too_long_is_refused_from_the_header(tmp_path, monkeypatch):
    path = write(tmp_path / "a.wav", np.zeros(16_000, np.float32))
    monkeypatch.setattr(peaks, "MAX_SECONDS", 1.0)
    monkeypatch.setattr(peaks, "_scan", lambda *a: pytest.fail("samples were read"))
    with pytest.raises(InputError, match="2 minutes|minutes long"):
        peaks.file_peaks(path, 100)


@pytest.mark.parametrize("content", [b"", b"not audio at all\n" * 100, b"RIFF\x00\x00\x00\x00WAVEjunk"])
def test_non_audio_is_a_clear_error(tmp_path, content):
    path = tmp_path / "notes.wav"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"'notes.wav' is not an audio file"):
        peaks.file_peaks(path, 100)


@pytest.mark.parametrize("kwargs, message", [
    ({"width": 0}, "width"), ({"width": peaks.MAX_WIDTH + 1}, "width"),
    ({"width": 10, "start": float("nan")}, "start"), ({"width": 10, "start": 3.0, "end": 2.0}, "holds no audio"),
])
def test_bad_requests(tmp_path, kwargs, message):
    path = write(tmp_path / "a.wav", np.zeros(8000, np.float32))
    with pytest.raises(InputError, match=message):
        peaks.file_peaks(path, **kwargs)
