"""Waveform peaks of an audio file, for drawing it at screen resolution.

Family-neutral: it reads any file libsndfile can open (wav, flac, ogg, mp3) and knows nothing of
models. The header is read first (length, rate, channels) so a file that is not audio, or longer
than :data:`MAX_SECONDS`, is refused before any sample is read. Samples are read in blocks of at
most :data:`BLOCK_FRAMES`, so memory stays bounded whatever the file's length.

A whole file is summarised once into a :class:`PeakIndex` (min / max of every ``bucket`` frames,
at most :data:`MAX_BUCKETS` buckets: about 2 MB for 60 minutes); any view coarser than a bucket is
cut from the index (column edges then fall on bucket edges), a finer one (zoomed in) reads just
that range of the file. Indexes are kept in a
small LRU cache keyed by path, size and modification time.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..errors import InputError

__all__ = ["AudioHeader", "Peaks", "PeakIndex", "read_header", "file_peaks", "range_peaks", "clear_cache",
           "MAX_SECONDS", "MAX_WIDTH"]

MAX_SECONDS = 4 * 3600.0
"""Longest file summarised (the editing nodes take songs up to 60 minutes)."""
MAX_WIDTH = 8192
"""Most peak columns one request returns (a wide screen at 2x)."""
BLOCK_FRAMES = 1 << 16
"""Frames read per block (per channel): 256 KB of float32 for a mono file."""
MAX_BUCKETS = 1 << 18
"""Most buckets in a whole-file index."""
MIN_BUCKET = 256
"""Fewest frames summarised by one index bucket."""
CACHE_SIZE = 16
"""Whole-file indexes kept in memory."""
UNSUPPORTED_CONTAINERS = {".m4a": "AAC / ALAC in MP4", ".mp4": "MP4", ".aac": "raw AAC", ".wma": "WMA",
                          ".webm": "WebM"}
"""Common audio files libsndfile does not read, named in the error (the waveform needs wav, flac, ogg, mp3)."""

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class AudioHeader:
    """What a file's header says: ``frames`` per channel at ``sample_rate``."""

    sample_rate: int
    frames: int
    channels: int
    format: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class Peaks:
    """``mins[i]`` / ``maxs[i]``: the lowest and highest sample (over all channels) of column ``i``;
    the columns split frames ``[start_frame, end_frame)`` evenly."""

    header: AudioHeader
    start_frame: int
    end_frame: int
    mins: np.ndarray
    maxs: np.ndarray

    def to_json(self) -> dict:
        rate = self.header.sample_rate
        return {
            "sample_rate": rate, "frames": self.header.frames, "channels": self.header.channels,
            "duration": self.header.duration, "start": self.start_frame / rate, "end": self.end_frame / rate,
            "width": int(len(self.mins)),
            "min": [round(float(v), 4) for v in self.mins], "max": [round(float(v), 4) for v in self.maxs],
        }


def _soundfile():
    import soundfile as sf

    return sf


def read_header(path: PathLike, name: str = "audio") -> AudioHeader:
    """The file's header, or InputError naming the file when it is not audio libsndfile can read."""
    sf = _soundfile()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{name}: {path.name!r} is not a file")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile's error for anything it cannot parse
        why = (str(exc).splitlines() or [type(exc).__name__])[-1].replace(str(path), path.name).strip(" :")
        hint = ""
        if path.suffix.lower() in UNSUPPORTED_CONTAINERS:
            hint = f"; {path.suffix.lower()} ({UNSUPPORTED_CONTAINERS[path.suffix.lower()]}) is not read here, convert it to wav or flac"
        raise InputError(f"{name}: {path.name!r} is not an audio file this server can read (wav, flac, ogg, mp3)"
                         f"{hint}: {why or type(exc).__name__}") from None
    if info.samplerate <= 0 or info.channels <= 0:
        raise InputError(f"{name}: {path.name!r} has no audio (rate {info.samplerate}, {info.channels} channels)")
    header = AudioHeader(int(info.samplerate), max(0, int(info.frames)), int(info.channels), str(info.format))
    if header.duration > MAX_SECONDS:
        raise InputError(f"{name}: {path.name!r} is {header.duration / 60:.0f} minutes long; waveforms are drawn "
                         f"for files up to {MAX_SECONDS / 60:.0f} minutes")
    return header


def _scan(path: Path, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of the frames between consecutive ``edges`` (frame indexes, increasing), read in
    blocks. A column the file turns out not to reach stays 0."""
    columns = len(edges) - 1
    mins = np.full(columns, np.inf, dtype=np.float32)
    maxs = np.full(columns, -np.inf, dtype=np.float32)
    start, end = int(edges[0]), int(edges[-1])
    with _soundfile().SoundFile(str(path)) as f:
        if start:
            f.seek(start)
        position = start
        while position < end:
            block = f.read(min(BLOCK_FRAMES, end - position), dtype="float32", always_2d=True)
            if len(block) == 0:
                break
            low, high = block.min(axis=1), block.max(axis=1)  # over channels: (frames,)
            first = max(0, int(np.searchsorted(edges, position, side="right")) - 1)
            last = min(columns, int(np.searchsorted(edges, position + len(block), side="left")))
            cuts = np.maximum(edges[first:last], position) - position  # column starts inside the block
            np.minimum.at(mins, np.arange(first, last), np.minimum.reduceat(low, cuts))
            np.maximum.at(maxs, np.arange(first, last), np.maximum.reduceat(high, cuts))
            position += len(block)
    empty = ~np.isfinite(mins)
    mins[empty], maxs[empty] = 0.0, 0.0
    return np.nan_to_num(mins), np.nan_to_num(maxs)


def _edges(start: int, end: int, columns: int) -> np.ndarray:
    return np.round(np.linspace(start, end, columns + 1)).astype(np.int64)


class PeakIndex:
    """Min / max of every ``bucket`` frames of a whole file."""

    def __init__(self, path: PathLike, header: Optional[AudioHeader] = None):
        self.path = Path(path)
        self.header = header or read_header(self.path)
        frames = self.header.frames
        self.bucket = max(MIN_BUCKET, math.ceil(frames / MAX_BUCKETS))
        edges = np.minimum(np.arange(0, frames + self.bucket, self.bucket, dtype=np.int64), frames)
        edges = np.unique(edges) if frames else np.array([0, 0], dtype=np.int64)
        self.mins, self.maxs = _scan(self.path, edges) if frames else (np.zeros(1, np.float32),) * 2

    def peaks(self, start_frame: int, end_frame: int, width: int) -> Peaks:
        """``width`` columns over ``[start_frame, end_frame)``; a view finer than a bucket reads the file."""
        width = max(1, min(width, end_frame - start_frame))
        if (end_frame - start_frame) / width < self.bucket:
            return range_peaks(self.path, start_frame, end_frame, width, self.header)
        cuts = _edges(start_frame, end_frame, width)[:-1] // self.bucket  # strictly increasing here
        last = min(len(self.mins), -(-end_frame // self.bucket))
        mins = np.minimum.reduceat(self.mins[:last], cuts)
        maxs = np.maximum.reduceat(self.maxs[:last], cuts)
        return Peaks(self.header, start_frame, end_frame, mins, maxs)


def range_peaks(path: PathLike, start_frame: int, end_frame: int, width: int,
                header: Optional[AudioHeader] = None) -> Peaks:
    """``width`` columns over ``[start_frame, end_frame)`` read straight from the file."""
    header = header or read_header(path)
    width = max(1, min(width, end_frame - start_frame))
    mins, maxs = _scan(Path(path), _edges(start_frame, end_frame, width))
    return Peaks(header, start_frame, end_frame, mins, maxs)


_cache: "OrderedDict[tuple, PeakIndex]" = OrderedDict()
_lock = threading.Lock()


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def _index(path: Path, header: AudioHeader) -> PeakIndex:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    index = PeakIndex(path, header)  # outside the lock: other files are served meanwhile
    with _lock:
        _cache[key] = index
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return index


def file_peaks(path: PathLike, width: int, start: Optional[float] = None, end: Optional[float] = None,
               name: str = "audio") -> Peaks:
    """Peaks of ``path`` between ``start`` and ``end`` seconds (default: the whole file) in ``width``
    columns (1..MAX_WIDTH). InputError naming ``name`` for a file that is not audio or a bad range.

    A view of at most ``width`` index buckets that is not cached yet is read directly (a zoomed-in
    look at a long file reads only that stretch); anything wider builds the file's index once."""
    if not isinstance(width, int) or not 1 <= width <= MAX_WIDTH:
        raise InputError(f"width: {width!r} is outside the allowed range [1, {MAX_WIDTH}]")
    path = Path(path)
    header = read_header(path, name)
    for label, value in (("start", start), ("end", end)):
        if value is not None and not math.isfinite(value):
            raise InputError(f"{label}: {value!r} is not a number of seconds")
    first = 0 if start is None else int(round(max(0.0, start) * header.sample_rate))
    last = header.frames if end is None else int(round(min(header.duration, end) * header.sample_rate))
    first = min(first, header.frames)
    if last <= first:
        if header.frames == 0:
            return Peaks(header, 0, 0, np.zeros(0, np.float32), np.zeros(0, np.float32))
        raise InputError(f"start, end: the range {start!r}..{end!r} s holds no audio (the file is "
                         f"{header.duration:.2f} s long)")
    bucket = max(MIN_BUCKET, math.ceil(header.frames / MAX_BUCKETS))
    if last - first <= width * bucket:
        return range_peaks(path, first, last, width, header)
    return _index(path, header).peaks(first, last, width)
