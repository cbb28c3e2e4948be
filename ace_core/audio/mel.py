"""The ACE-Step v1 log-mel front end (no torchaudio needed).

This is the official ``LogMelSpectrogram`` (``acestep/music_dcae/music_log_mel.py``) that the
vocoder owns and ``MusicDCAE.encode`` feeds to the DCAE encoder:

1. reflect-pad the waveform by ``((win - hop) // 2, (win - hop + 1) // 2)`` (768, 768), so that
   ``L`` samples give exactly ``L // hop`` frames;
2. STFT with a periodic Hann window, ``center=False``;
3. magnitude ``sqrt(re^2 + im^2 + 1e-6)``;
4. a Slaney-style mel filterbank (Slaney mel scale, area normalisation), equal to
   ``torchaudio.functional.melscale_fbanks(..., norm="slaney", mel_scale="slaney")``;
5. ``log(clamp(x, 1e-5))``.

``normalize_mel`` / ``denormalize_mel`` are the DCAE's fixed affine maps between this log-mel and
the roughly [-1, 1] image the autoencoder works on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError

__all__ = [
    "MelConfig",
    "LogMelSpectrogram",
    "melscale_fbanks",
    "hann_window",
    "linear_spectrogram",
    "log_mel",
    "normalize_mel",
    "denormalize_mel",
    "MIN_MEL_VALUE",
    "MAX_MEL_VALUE",
]

MIN_MEL_VALUE = -11.0
MAX_MEL_VALUE = 3.0


@dataclass(frozen=True)
class MelConfig:
    """Log-mel settings (reference names of the vocoder config). Defaults = ACE-Step v1."""

    sample_rate: int = 44100
    n_fft: int = 2048
    win_length: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    f_min: float = 40.0
    f_max: float = 16000.0

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def padding(self) -> tuple[int, int]:
        """Reflect padding (left, right) applied before the ``center=False`` STFT."""
        d = self.win_length - self.hop_length
        return d // 2, (d + 1) // 2


# --- mel scale (Slaney) ---------------------------------------------------------------------
_F_SP = 200.0 / 3  # Hz per mel in the linear part
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15
_LOGSTEP = math.log(6.4) / 27.0


def _hz_to_mel(freq: float, mel_scale: str) -> float:
    if mel_scale == "htk":
        return 2595.0 * math.log10(1.0 + freq / 700.0)
    if freq < _MIN_LOG_HZ:
        return freq / _F_SP
    return _MIN_LOG_MEL + math.log(freq / _MIN_LOG_HZ) / _LOGSTEP


def _mel_to_hz(mels: torch.Tensor, mel_scale: str) -> torch.Tensor:
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    linear = mels * _F_SP
    logpart = _MIN_LOG_HZ * torch.exp(_LOGSTEP * (mels - _MIN_LOG_MEL))
    return torch.where(mels >= _MIN_LOG_MEL, logpart, linear)


@lru_cache(maxsize=8)
def _fbanks_cpu(n_freqs, f_min, f_max, n_mels, sample_rate, norm, mel_scale) -> torch.Tensor:
    # Same float32 arithmetic as torchaudio's melscale_fbanks.
    bins_hz = torch.linspace(0, sample_rate // 2, n_freqs)  # (n_freqs,) STFT bin centres
    m_pts = torch.linspace(_hz_to_mel(f_min, mel_scale), _hz_to_mel(f_max, mel_scale), n_mels + 2)
    f_pts = _mel_to_hz(m_pts, mel_scale)  # (n_mels + 2,) triangle corners in Hz
    widths = f_pts[1:] - f_pts[:-1]  # (n_mels + 1,)
    rel = f_pts[None, :] - bins_hz[:, None]  # (n_freqs, n_mels + 2)
    rising = -rel[:, :-2] / widths[:-1]  # (n_freqs, n_mels): left edge of each triangle
    falling = rel[:, 2:] / widths[1:]  # (n_freqs, n_mels): right edge
    fb = torch.clamp(torch.minimum(rising, falling), min=0.0)
    if norm == "slaney":
        fb = fb * (2.0 / (f_pts[2 : n_mels + 2] - f_pts[:n_mels]))[None, :]
    return fb


def melscale_fbanks(
    n_freqs: int,
    f_min: float,
    f_max: float,
    n_mels: int,
    sample_rate: int,
    norm: str | None = "slaney",
    mel_scale: str = "slaney",
) -> torch.Tensor:
    """Triangular mel filterbank (n_freqs, n_mels), float32 on the CPU.

    ``spectrum (..., n_freqs) @ fb`` gives the mel energies. ``norm="slaney"`` divides each
    triangle by its width in Hz / 2 (constant energy per band).
    """
    if norm not in (None, "slaney"):
        raise InputError(f"norm must be None or 'slaney', got {norm!r}")
    if mel_scale not in ("slaney", "htk"):
        raise InputError(f"mel_scale must be 'slaney' or 'htk', got {mel_scale!r}")
    if not 0 <= f_min < f_max:
        raise InputError(f"mel filterbank needs 0 <= f_min < f_max, got f_min={f_min}, f_max={f_max}")
    key = (int(n_freqs), float(f_min), float(f_max), int(n_mels), int(sample_rate), norm, mel_scale)
    return _fbanks_cpu(*key).clone()


def hann_window(win_length: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """Periodic Hann window (win_length,), as ``torch.hann_window`` by default."""
    return torch.hann_window(win_length, periodic=True, dtype=dtype, device=device)


# --- spectrogram ----------------------------------------------------------------------------
def linear_spectrogram(
    wave: torch.Tensor, config: MelConfig = MelConfig(), window: torch.Tensor | None = None
) -> torch.Tensor:
    """Magnitude STFT of ``wave`` (..., L) -> (..., n_fft // 2 + 1, L // hop), float32.

    Reflect padding as in :class:`MelConfig`, ``center=False``, magnitude with the ``+1e-6``
    floor inside the square root.
    """
    if wave.dim() == 0 or wave.shape[-1] == 0:
        raise InputError(f"wave must have shape (..., L) with L > 0, got {tuple(wave.shape)}")
    left, right = config.padding
    if wave.shape[-1] <= max(left, right):
        raise InputError(
            f"wave is too short for the log-mel front end: {wave.shape[-1]} samples, "
            f"need more than {max(left, right)}"
        )
    lead, length = wave.shape[:-1], wave.shape[-1]
    x = wave.reshape(-1, 1, length).float()  # (N, 1, L)
    x = F.pad(x, (left, right), mode="reflect")[:, 0]  # (N, L + left + right)
    if window is None:
        window = hann_window(config.win_length, device=wave.device)
    spec = torch.stft(
        x,
        config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=window.to(device=x.device, dtype=torch.float32),
        center=False,
        normalized=False,
        onesided=True,
        return_complex=True,
    )  # (N, n_freqs, frames)
    mag = torch.view_as_real(spec).square().sum(-1).add_(1e-6).sqrt_()  # (N, n_freqs, frames)
    return mag.reshape(*lead, *mag.shape[-2:])


def log_mel(
    wave: torch.Tensor,
    config: MelConfig = MelConfig(),
    fb: torch.Tensor | None = None,
    window: torch.Tensor | None = None,
) -> torch.Tensor:
    """v1 log-mel of ``wave`` (..., L) -> (..., n_mels, L // hop), float32 (natural log)."""
    if fb is None:
        fb = melscale_fbanks(config.n_freqs, config.f_min, config.f_max, config.n_mels, config.sample_rate)
    spec = linear_spectrogram(wave, config, window)  # (..., n_freqs, T)
    fb = fb.to(device=spec.device, dtype=spec.dtype)
    mel = torch.matmul(spec.transpose(-1, -2), fb).transpose(-1, -2)  # (..., n_mels, T)
    return torch.log(torch.clamp(mel, min=1e-5))


def normalize_mel(mel: torch.Tensor, min_value: float = MIN_MEL_VALUE, max_value: float = MAX_MEL_VALUE) -> torch.Tensor:
    """Log-mel -> DCAE input: ``((mel - min) / (max - min) - 0.5) / 0.5`` (same op order as the reference)."""
    x = (mel - min_value) / (max_value - min_value)
    return (x - 0.5) / 0.5


def denormalize_mel(x: torch.Tensor, min_value: float = MIN_MEL_VALUE, max_value: float = MAX_MEL_VALUE) -> torch.Tensor:
    """DCAE output -> log-mel: ``(x * 0.5 + 0.5) * (max - min) + min``."""
    return (x * 0.5 + 0.5) * (max_value - min_value) + min_value


class LogMelSpectrogram(nn.Module):
    """Module form of :func:`log_mel`; holds no tensors in its state.

    The Hann window and the mel filterbank are deterministic, so they are built on first use for
    the input's device (float32) and cached on the module, never stored or loaded. This keeps the
    module valid however its owner is built (``meta`` device, ``to_empty``, ``load_state_dict(assign=True)``).

    forward: wave (..., L) -> log-mel (..., n_mels, L // hop) float32.
    """

    def __init__(self, config: MelConfig = MelConfig(), device=None):
        super().__init__()
        self.config = config
        self._cache: dict = {}

    def tables(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(window (win_length,), fb (n_freqs, n_mels)) float32 on ``device``."""
        device = torch.device(device)
        hit = self._cache.get(device)
        if hit is None:
            c = self.config
            window = hann_window(c.win_length, device=device)
            fb = melscale_fbanks(c.n_freqs, c.f_min, c.f_max, c.n_mels, c.sample_rate).to(device)
            hit = self._cache[device] = (window, fb)
        return hit

    @property
    def window(self) -> torch.Tensor:
        """The periodic Hann window (win_length,) float32 on the CPU (the reference's ``spectrogram.window``)."""
        return self.tables("cpu")[0]

    @property
    def fb(self) -> torch.Tensor:
        """The mel filterbank (n_freqs, n_mels) float32 on the CPU (the reference's ``mel_scale.fb``)."""
        return self.tables("cpu")[1]

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        window, fb = self.tables(wave.device)
        return log_mel(wave, self.config, fb=fb, window=window)
