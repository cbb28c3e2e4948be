"""The ACE-Step 1.5 VAE, audio-facing: any audio -> 25 Hz latents (B, 64, frames) -> 48 kHz stereo.

:class:`MusicVAE15` wraps an :class:`~.oobleck.OobleckVAE` and adds what the pipeline needs:

* ``encode``: channel handling (mono duplicated, more than two channels downmixed), resampling to
  48 kHz (the windowed-sinc filter of ``torchaudio.transforms.Resample``), clamping to [-1, 1],
  then the encoder. Latents are ``latent_dist.sample()`` as ACE-Step uses them (the mean with
  ``sample=False``), channel-first (B, 64, frames), ComfyUI core's 1.5 latent layout.
  frames = ``OobleckVAE.latent_frames(L_48k)`` (= L_48k // 1920): a trailing part-frame is dropped,
  as in the reference.
* ``decode``: latents (B, 64, frames) -> waveform (B, 2, frames * 1920) float32 at 48 kHz.

Both run in overlapping windows (overlap-discard, as upstream), so memory depends on the window,
not on the song. A window computes ``core`` latent frames plus ``context`` frames on each side and
only its core is kept. The model is translation-equivariant, so with a context at least the
model's receptive field (:meth:`OobleckVAE.decoder_context_frames` /
:meth:`~OobleckVAE.encoder_context_frames`, which the context is never allowed to go below) the
windowed result equals the one-pass result up to float rounding: there is nothing to cross-fade.
The sampling noise is drawn once for the whole latent, so it does not depend on the windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..audio.resample import check_rate, resample
from ..errors import InputError
from ..progress import ProgressHook, interrupt_points, report
from ..audio.channels import to_stereo
from .oobleck import STD_FLOOR, OobleckConfig, OobleckVAE, fused_weight_norm

__all__ = ["MusicVAE15", "VAEWindows15", "plan_windows"]


@dataclass
class VAEWindows15:
    """Window sizes in latent frames (25 per second at 48 kHz).

    Encode: cores of 375 frames (15 s, upstream's low-memory chunk) with 25 frames (1 s) of
    context per side (upstream: 2 s overlap). Decode: cores of 256 frames (10.24 s) with 32 frames
    per side (upstream: 64-frame overlap). A context below the model's receptive field is raised
    to it; inputs no longer than one window run in one pass.
    """

    encode_core: int = 375
    encode_context: int = 25
    decode_core: int = 256
    decode_context: int = 32

    def __post_init__(self):
        for name in ("encode_core", "decode_core"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"VAEWindows15.{name} must be >= 1 latent frame, got {getattr(self, name)}")
        for name in ("encode_context", "decode_context"):
            if int(getattr(self, name)) < 0:
                raise InputError(f"VAEWindows15.{name} must be >= 0 latent frames, got {getattr(self, name)}")


def plan_windows(frames: int, core: int, context: int) -> list[tuple[int, int, int, int]]:
    """Split ``[0, frames)`` into windows ``(start, end, keep_start, keep_end)`` in latent frames.

    Cores of ``core`` frames (a last piece shorter than half a core joins its neighbour); each
    window reaches ``context`` frames beyond its core, clipped to ``[0, frames)``. The kept
    (core) ranges tile ``[0, frames)`` exactly.
    """
    bounds = list(range(0, frames, core)) + [frames]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < max(1, core // 2):
        del bounds[-2]
    return [(max(0, a - context), min(frames, b + context), a, b) for a, b in zip(bounds[:-1], bounds[1:])]


class MusicVAE15(nn.Module):
    """Audio <-> ACE-Step 1.5 latents, windowed for long audio. ``model``: the :class:`OobleckVAE`."""

    def __init__(self, model: Optional[OobleckVAE] = None, windows: Optional[VAEWindows15] = None):
        super().__init__()
        self.model = model if model is not None else OobleckVAE()
        if self.model.config.audio_channels != 2:
            raise InputError(f"MusicVAE15 needs a stereo VAE (audio_channels 2), got {self.model.config.audio_channels}")
        self.windows = windows or VAEWindows15()

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor], *, source: str = "state dict",
                        config: Optional[OobleckConfig] = None, dtype=None, device=None,
                        windows: Optional[VAEWindows15] = None) -> "MusicVAE15":
        """From the official (diffusers) or ComfyUI (stable-audio-tools) VAE state dict, strictly."""
        model = OobleckVAE.from_state_dict(state_dict, source=source, config=config, dtype=dtype, device=device)
        return cls(model, windows)

    # --- geometry ------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    @property
    def hop_length(self) -> int:
        return self.model.hop_length

    @property
    def latent_channels(self) -> int:
        return self.model.latent_channels

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    def _param(self) -> torch.Tensor:
        return self.model.decoder.conv1.weight_v

    # --- encode --------------------------------------------------------------------------------
    def _check_waveform(self, waveform, sample_rate) -> int:
        if not isinstance(waveform, torch.Tensor) or waveform.dim() != 3:
            shape = tuple(waveform.shape) if isinstance(waveform, torch.Tensor) else type(waveform).__name__
            raise InputError(f"waveform must be a tensor of shape (batch, channels, samples), got {shape}")
        if not waveform.is_floating_point():
            raise InputError(f"waveform must be floating point, got {waveform.dtype}")
        if waveform.numel() == 0:
            raise InputError(f"waveform is empty: shape {tuple(waveform.shape)} (batch, channels, samples must be > 0)")
        if not bool(torch.isfinite(waveform).all()):
            raise InputError("waveform contains NaN or infinite samples")
        return check_rate("sample_rate", sample_rate)

    @torch.no_grad()
    def prepare_audio(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """waveform (B, C, L) at ``sample_rate`` -> (B, 2, L_48k) float32 in [-1, 1] on the model's device."""
        sr = self._check_waveform(waveform, sample_rate)
        x = to_stereo(waveform.to(device=self._param().device, dtype=torch.float32))  # (B, 2, L)
        x = resample(x, sr, self.sample_rate)  # (B, 2, L_48k)
        x = x.clamp(-1.0, 1.0)
        if self.model.latent_frames(x.shape[-1]) < 1:
            need = self.model.min_samples()
            raise InputError(
                f"waveform is too short: {waveform.shape[-1]} samples at {sr} Hz; at least {need} samples at "
                f"{self.sample_rate} Hz ({need / self.sample_rate * 1000:.0f} ms) are needed for one latent frame"
            )
        return x

    @torch.no_grad()
    def encode_distribution(self, waveform: torch.Tensor, sample_rate: int,
                            progress: Optional[ProgressHook] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """waveform (B, C, L) -> (mean, std), each (B, 64, frames) float32 on the model's device, windowed."""
        x = self.prepare_audio(waveform, sample_rate)  # (B, 2, L)
        length, hop = x.shape[-1], self.hop_length
        frames = self.model.latent_frames(length)
        context = max(int(self.windows.encode_context), self.model.encoder_context_frames())
        plan = plan_windows(frames, int(self.windows.encode_core), context)
        dtype = self._param().dtype
        mean = scale = None
        with fused_weight_norm(self.model.encoder), interrupt_points([self.model.encoder], progress):
            for k, (w0, w1, a, b) in enumerate(plan):
                s1 = length if w1 >= frames else w1 * hop  # a window that reaches the end takes every sample
                dist = self.model.encode(x[..., w0 * hop : s1].to(dtype))  # (B, C, frames of the window)
                if mean is None:
                    shape = (x.shape[0], dist.mean.shape[1], frames)
                    mean = torch.empty(shape, dtype=torch.float32, device=x.device)
                    scale = torch.empty_like(mean)
                mean[..., a:b] = dist.mean[..., a - w0 : b - w0].float()
                scale[..., a:b] = dist.scale_raw[..., a - w0 : b - w0].float()
                del dist
                report(progress, k + 1, len(plan))
        return mean, F.softplus(scale) + STD_FLOOR

    @torch.no_grad()
    def encode(self, waveform: torch.Tensor, sample_rate: int, generator: Optional[torch.Generator] = None,
               sample: bool = True, progress: Optional[ProgressHook] = None) -> torch.Tensor:
        """waveform (B, C, L) at ``sample_rate`` -> latents (B, 64, frames) float32 on ``waveform``'s device.

        ``sample=True``: ``mean + std * noise`` as ACE-Step's ``latent_dist.sample()``, the noise
        (B, 64, frames) drawn in one call of ``torch.randn`` from ``generator`` (``None``: a fresh
        generator seeded with 0, so results are reproducible). ``sample=False``: the mean.
        ``progress(done, windows)`` is called after each window; a hook may raise to interrupt.
        """
        mean, std = self.encode_distribution(waveform, sample_rate, progress)
        if sample:
            gen = generator if generator is not None else torch.Generator().manual_seed(0)
            noise = torch.randn(mean.shape, generator=gen, device=gen.device, dtype=torch.float32)
            mean = mean + std * noise.to(mean.device)
        return mean.to(waveform.device)

    # --- decode --------------------------------------------------------------------------------
    def _check_latents(self, latents) -> None:
        c = self.latent_channels
        if not isinstance(latents, torch.Tensor) or latents.dim() != 3 or latents.shape[1] != c:
            shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
            raise InputError(f"latents must have shape (batch, {c}, frames), got {shape}")
        if not latents.is_floating_point():
            raise InputError(f"latents must be floating point, got {latents.dtype}")
        if latents.shape[0] == 0 or latents.shape[-1] == 0:
            raise InputError(f"latents are empty: shape {tuple(latents.shape)} (batch and frames must be > 0)")
        if not bool(torch.isfinite(latents).all()):
            raise InputError("latents contain NaN or infinite values")

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, progress: Optional[ProgressHook] = None) -> torch.Tensor:
        """latents (B, 64, frames) -> waveform (B, 2, decoded_length(frames)) float32 at 48 kHz.

        The result is on ``latents``' device; windows run on the model's device and dtype.
        ``progress(done, windows)`` is called after each window; a hook may raise to interrupt.
        """
        self._check_latents(latents)
        frames, hop = latents.shape[-1], self.hop_length
        total = self.model.decoded_length(frames)
        context = max(int(self.windows.decode_context), self.model.decoder_context_frames())
        plan = plan_windows(frames, int(self.windows.decode_core), context)
        p = self._param()
        out = None
        with fused_weight_norm(self.model.decoder), interrupt_points([self.model.decoder], progress):
            for k, (w0, w1, a, b) in enumerate(plan):
                y = self.model.decode(latents[..., w0:w1].to(device=p.device, dtype=p.dtype))  # (B, 2, ~(w1-w0)*hop)
                if out is None:
                    out = torch.empty(latents.shape[0], y.shape[1], total, dtype=torch.float32, device=latents.device)
                end = total if b >= frames else b * hop  # the last core keeps the tail exactly as returned
                out[..., a * hop : end] = y[..., (a - w0) * hop : end - w0 * hop].to(out.device, torch.float32)
                del y
                report(progress, k + 1, len(plan))
        return out
