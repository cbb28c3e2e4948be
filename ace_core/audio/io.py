"""Audio files in and out (``soundfile`` / libsndfile): wav, flac, mp3 and ogg, chosen by extension.

Waveforms are float32 tensors ``(C, L)`` in [-1, 1]. Saving writes to a temporary file next to the
target and renames it at the end, so a failed save leaves nothing behind. mp3 needs a libsndfile
built with MPEG support (1.1.0 and later); without it the error says so.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional, Union

import torch

from ..errors import InputError

__all__ = ["FORMATS", "load_audio", "save_audio", "check_waveform", "format_for"]

PathLike = Union[str, os.PathLike]

# extension -> (libsndfile format, subtype)
FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".ogg": ("OGG", "VORBIS"),
}


def format_for(path: PathLike, name: str = "out") -> tuple[str, str]:
    """The (format, subtype) for a file name, or an InputError naming the input and the choices."""
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        allowed = ", ".join(FORMATS)
        raise InputError(f"{name}: unsupported audio file extension {ext or '(none)'!r} in {str(path)!r}; use one of {allowed}")
    fmt, subtype = FORMATS[ext]
    import soundfile as sf

    if fmt not in sf.available_formats():
        raise InputError(
            f"{name}: this libsndfile ({sf.__libsndfile_version__}) cannot write {ext} files; "
            f"use .wav or .flac, or install a libsndfile with {fmt} support (1.1.0 or later for mp3)"
        )
    return fmt, subtype


def check_waveform(waveform: torch.Tensor, name: str = "audio") -> None:
    """Reject waveforms the models cannot use: no samples, no channels, NaN or inf values."""
    if not isinstance(waveform, torch.Tensor) or waveform.dim() not in (2, 3):
        shape = tuple(waveform.shape) if isinstance(waveform, torch.Tensor) else type(waveform).__name__
        raise InputError(f"{name}: expected a waveform of shape (channels, samples) or (batch, channels, samples), got {shape}")
    if waveform.shape[-1] == 0:
        raise InputError(f"{name}: the audio is empty (0 samples); give at least one sample")
    if waveform.shape[-2] == 0:
        raise InputError(f"{name}: the audio has 0 channels; give 1 or more")
    if not bool(torch.isfinite(waveform).all()):
        bad = int((~torch.isfinite(waveform)).sum())
        raise InputError(f"{name}: the audio holds {bad} NaN or infinite sample(s); all samples must be finite")


def load_audio(path: PathLike, name: str = "input", max_seconds: Optional[float] = None) -> tuple[torch.Tensor, int]:
    """Read an audio file -> (waveform (C, L) float32, sample_rate).

    ``max_seconds``: refuse a longer file from its header, before reading any samples.
    """
    import soundfile as sf

    path = Path(path)
    if path.is_dir():
        raise InputError(f"{name}: {str(path)!r} is a folder, not an audio file; give a wav, flac, mp3 or ogg file")
    if not path.is_file():
        raise InputError(f"{name}: audio file {str(path)!r} does not exist")
    try:
        if max_seconds is not None:
            info = sf.info(str(path))
            if info.samplerate > 0 and info.frames / info.samplerate > max_seconds + 1e-6:
                raise InputError(f"{name}: {info.frames / info.samplerate:.1f} s is longer than the allowed "
                                 f"{max_seconds:g} s; trim the audio first")
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (L, C)
    except InputError:
        raise
    except Exception as exc:  # soundfile.LibsndfileError / RuntimeError on unreadable files
        raise InputError(f"{name}: cannot read {str(path)!r} as audio ({exc}); use wav, flac, mp3 or ogg") from exc
    waveform = torch.from_numpy(data.T.copy())  # (C, L)
    check_waveform(waveform, name)
    return waveform, int(rate)


def save_audio(path: PathLike, waveform: torch.Tensor, sample_rate: int, name: str = "out") -> Path:
    """Write ``waveform`` (C, L) (or (1, C, L)) to ``path``; the format follows the extension.

    Samples are clipped to [-1, 1]. The file appears only when writing succeeded.
    """
    import soundfile as sf

    path = Path(path)
    fmt, subtype = format_for(path, name)
    if waveform.dim() == 3:
        if waveform.shape[0] != 1:
            raise InputError(f"{name}: save one item at a time; got a batch of {waveform.shape[0]}")
        waveform = waveform[0]
    check_waveform(waveform, name)
    if sample_rate <= 0:
        raise InputError(f"{name}: sample rate must be positive, got {sample_rate}")
    if not path.parent.is_dir():
        raise InputError(f"{name}: the folder {str(path.parent)!r} does not exist")
    data = waveform.detach().to(torch.float32).clamp(-1.0, 1.0).cpu().numpy().T  # (L, C)
    fd, tmp = tempfile.mkstemp(prefix=".aceforge-", suffix=path.suffix, dir=str(path.parent))
    os.close(fd)
    try:
        sf.write(tmp, data, int(sample_rate), format=fmt, subtype=subtype)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
