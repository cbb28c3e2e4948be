"""ACE-Step v1 "MusicDCAE": waveform <-> latent, built from the DCAE and the vocoder.

Reference: ``acestep/music_dcae/music_dcae_pipeline.py`` (``MusicDCAE.encode`` / ``decode``).

encode: wave (B, C, L) at any rate ->
    stereo (:func:`to_stereo`) -> resample to 44.1 kHz -> right-pad to a multiple of
    ``hop * f`` = 4096 samples -> log-mel (B, 2, 128, L'/512) -> ``(mel + 11) / 14`` then
    ``(x - 0.5) / 0.5`` -> ``dcae.encoder`` per item -> ``(z - (-1.9091)) * 0.1786``
    -> latent (B, 8, 16, L'/4096).

decode: latent (B, 8, 16, T) ->
    per item ``z = latent / 0.1786 + (-1.9091)`` -> ``dcae.decoder`` -> ``(x * 0.5 + 0.5) * 14 - 11``
    -> the (mono) vocoder on both stereo channels as one batch of 2 -> (B, 2, T * 4096) at
    44.1 kHz -> optionally resampled.

Long latents are decoded in windows (:class:`DecodeWindows`) so that memory stays bounded by the
window, not the song, and the result equals one-shot decoding up to float rounding (no seams):
the DCAE decoder's global part (its attention stage, at latent resolution) runs on the whole
latent, its linear attention accumulated chunk by chunk; its local part (up-sampling convs) and
the vocoder run on windows with their receptive field as context, so a window recomputes only a
few frames. (The official ``MusicDCAE.decode_overlap`` cuts the whole DCAE into windows with wide
overlaps, which approximates its global attention.)

State-dict keys: ``dcae.*`` (diffusers ``AutoencoderDC``) and ``vocoder.*`` (``ADaMoSHiFiGANV1``),
the ComfyUI all-in-one ``vae.`` layout minus its prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from ..audio.channels import to_stereo
from ..audio.mel import MAX_MEL_VALUE, MIN_MEL_VALUE, denormalize_mel, normalize_mel
from ..audio.resample import check_rate, resample
from ..errors import InputError
from ..progress import ProgressHook, interrupt_points, report
from .dcae import DCAEConfig, MusicDCAEAutoencoder
from .vocoder import ADaMoSHiFiGAN, VocoderConfig

__all__ = ["MusicVAE", "DecodeWindows"]

# --------------------------------------------------------------------------------------------
# Windowed decoding
# --------------------------------------------------------------------------------------------
@dataclass
class DecodeWindows:
    """Window sizes for long-latent decoding; both parts are exact (equal to one-shot decoding up
    to float rounding), so windows leave no seams.

    DCAE decoder: its global part (conv_in and the attention stage, at latent resolution) runs on
    the whole latent, its attention ``dcae_core`` latent frames at a time (two passes: the linear
    attention's sums over all frames, then the output); its local part (the up-sampling stages)
    runs on windows of ``dcae_core`` latent frames plus ``dcae_context`` (``None``: the local
    part's reach, a few frames) on each side, concatenated. Used when the latent is longer than
    ``dcae_core + 2 * context``.

    Vocoder: windows of ``vocoder_core`` mel frames plus ``vocoder_context`` (``None``: the
    vocoder's receptive field, which makes this part exact) on each side; cross-fade of
    ``vocoder_fade`` samples. Used when the mel is longer than ``vocoder_core + 2 * context``.
    """

    dcae_core: int = 256
    dcae_context: Optional[int] = None
    vocoder_core: int = 4096
    vocoder_context: Optional[int] = None
    vocoder_fade: int = 512

    def __post_init__(self):
        for name in ("dcae_core", "vocoder_core"):
            if getattr(self, name) < 1:
                raise InputError(f"DecodeWindows.{name} must be >= 1, got {getattr(self, name)}")
        if self.vocoder_fade < 0:
            raise InputError(f"DecodeWindows.vocoder_fade must be >= 0, got {self.vocoder_fade}")
        for name in ("dcae_context", "vocoder_context"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise InputError(f"DecodeWindows.{name} must be >= 0, got {getattr(self, name)}")


def _window_plan(n: int, core: int) -> list[tuple[int, int]]:
    """Split ``[0, n)`` into cores of ``core`` frames; a last piece shorter than half a core is merged."""
    bounds = list(range(0, n, core)) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < max(1, core // 2):
        del bounds[-2]
    return list(zip(bounds[:-1], bounds[1:]))


def _overlap_run(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    ratio: int,
    core: int,
    context: int,
    fade: int,
    out_device: torch.device,
    tick: Callable[[], None],
) -> torch.Tensor:
    """Apply ``fn`` ((..., n) -> (..., n * ratio), translation-equivariant) to ``x`` (..., N) in windows.

    Each window computes its core plus ``fade // 2`` output samples on each side from an input
    slice with ``context`` extra frames per side; interior boundaries are cross-faded linearly over
    ``fade`` output samples (the two ramps sum to one). Returns (..., N * ratio) on ``out_device``.
    """
    n = x.shape[-1]
    plan = _window_plan(n, core)
    n_out = n * ratio
    fade = min(fade, (min(e - s for s, e in plan) * ratio) // 2) if len(plan) > 1 else 0
    half = fade // 2
    ramp = (torch.arange(fade, dtype=torch.float32, device=out_device) + 0.5) / max(fade, 1)  # (fade,)
    out = None
    for k, (s, e) in enumerate(plan):
        keep_s = s * ratio - (half if k > 0 else 0)  # output range this window contributes to
        keep_e = e * ratio + (fade - half if k < len(plan) - 1 else 0)
        in_s = max(0, keep_s // ratio - context)
        in_e = min(n, -(-keep_e // ratio) + context)
        y = fn(x[..., in_s:in_e])  # (..., (in_e - in_s) * ratio)
        seg = y[..., keep_s - in_s * ratio : keep_e - in_s * ratio].to(out_device, torch.float32)
        if out is None:
            out = torch.zeros(*seg.shape[:-1], n_out, dtype=torch.float32, device=out_device)
        if fade:
            seg = seg.clone()
            if k > 0:
                seg[..., :fade] *= ramp
            if k < len(plan) - 1:
                seg[..., -fade:] *= 1.0 - ramp
        out[..., keep_s:keep_e] += seg
        del y, seg
        tick()
    return out


# --------------------------------------------------------------------------------------------
# The wrapper
# --------------------------------------------------------------------------------------------
class MusicVAE(nn.Module):
    """Waveform <-> ACE-Step v1 latent. Submodules ``dcae`` and ``vocoder`` (checkpoint names).

    ``encode(wave (B, C, L), sample_rate) -> latent (B, 8, 16, ceil(L_44k / 4096))``;
    ``decode(latent (B, 8, 16, T), sample_rate=None) -> wave (B, 2, T * 4096)`` at 44.1 kHz, or
    ``ceil(T * 4096 * sample_rate / 44100)`` samples at ``sample_rate`` when given.
    Sizes shown for the published config; all are read from the two configs.
    """

    SAMPLE_RATE = 44100
    LATENT_SHIFT = -1.9091
    LATENT_SCALE = 0.1786

    def __init__(
        self,
        dcae_config: Optional[DCAEConfig] = None,
        vocoder_config: Optional[VocoderConfig] = None,
        dtype=None,
        device=None,
    ):
        super().__init__()
        self.dcae = MusicDCAEAutoencoder(dcae_config if dcae_config is not None else DCAEConfig(), dtype=dtype, device=device)
        self.vocoder = ADaMoSHiFiGAN(vocoder_config if vocoder_config is not None else VocoderConfig(), dtype=dtype, device=device)
        dc, vc = self.dcae.config, self.vocoder.config
        if dc.in_channels != 2:
            raise InputError(f"MusicVAE: the DCAE must take 2 (stereo) mel channels, config has in_channels={dc.in_channels}")
        if vc.input_channels != vc.n_mels:
            raise InputError(
                f"MusicVAE: vocoder input_channels {vc.input_channels} must equal its n_mels {vc.n_mels}"
            )
        f = dc.spatial_compression_ratio
        if vc.n_mels % f:
            raise InputError(f"MusicVAE: n_mels {vc.n_mels} is not a multiple of the DCAE compression {f}")
        self.windows = DecodeWindows()
        self.eval()

    @classmethod
    def from_reference(cls, cfg: dict, dtype=None, device=None) -> "MusicVAE":
        """From ``{"dcae": <AutoencoderDC config>, "vocoder": <ADaMoSHiFiGANV1 config>}``."""
        return cls(
            DCAEConfig.from_reference(cfg.get("dcae") or {}),
            VocoderConfig.from_reference(cfg.get("vocoder") or {}),
            dtype=dtype,
            device=device,
        )

    # --- sizes ---------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        """Native waveform rate (44100)."""
        return int(self.vocoder.config.sampling_rate)

    @property
    def hop_length(self) -> int:
        """Waveform samples per mel frame (512)."""
        return int(self.vocoder.config.hop_length)

    @property
    def time_compression(self) -> int:
        """Mel frames per latent frame (8)."""
        return int(self.dcae.config.spatial_compression_ratio)

    @property
    def samples_per_latent_frame(self) -> int:
        """Waveform samples (44.1 kHz) per latent frame (4096)."""
        return self.hop_length * self.time_compression

    @property
    def latent_channels(self) -> int:
        return int(self.dcae.config.latent_channels)

    @property
    def latent_height(self) -> int:
        """Latent rows: n_mels / compression (16)."""
        return int(self.vocoder.config.n_mels) // self.time_compression

    def latent_lengths(self, audio_lengths, sample_rate: int) -> torch.Tensor:
        """Valid latent frames for ``audio_lengths`` samples at ``sample_rate``, as the reference computes them:
        ``(lengths / sr * 44100 / 512 / 8).long()`` in float32 (int64, (B,))."""
        lengths = torch.as_tensor(audio_lengths)
        return (lengths / int(sample_rate) * self.sample_rate / self.hop_length / self.time_compression).long()

    def _param(self, module: nn.Module) -> torch.Tensor:
        return next(module.parameters())

    # --- encode --------------------------------------------------------------------------------
    def _check_wave(self, wave: torch.Tensor, sample_rate) -> int:
        if not isinstance(wave, torch.Tensor) or wave.dim() != 3:
            shape = tuple(wave.shape) if isinstance(wave, torch.Tensor) else type(wave).__name__
            raise InputError(f"audio must be a tensor of shape (batch, channels, samples), got {shape}")
        if not wave.is_floating_point():
            raise InputError(f"audio must be floating point, got {wave.dtype}")
        b, c, n = wave.shape
        if b == 0 or c == 0 or n == 0:
            raise InputError(f"audio is empty: shape {tuple(wave.shape)} (batch, channels, samples must all be > 0)")
        if not bool(torch.isfinite(wave).all()):
            raise InputError("audio contains NaN or infinite samples")
        return check_rate("sample_rate", sample_rate)

    def mel_from_wave(self, wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """wave (B, C, L) at ``sample_rate`` -> normalised mel (B, 2, n_mels, T_mel) float32, the DCAE input.

        Stereo, 44.1 kHz, right-padded with zeros to a multiple of ``samples_per_latent_frame``.
        """
        sr = self._check_wave(wave, sample_rate)
        device = self._param(self.vocoder).device
        x = to_stereo(wave.to(device=device, dtype=torch.float32))  # (B, 2, L)
        x = resample(x, sr, self.sample_rate)  # (B, 2, L_44k)
        pad = -x.shape[-1] % self.samples_per_latent_frame
        if pad:
            x = torch.nn.functional.pad(x, (0, pad))  # (B, 2, L_pad)
        mel = self.vocoder.mel_transform(x)  # (B, 2, n_mels, L_pad / hop)
        return normalize_mel(mel, MIN_MEL_VALUE, MAX_MEL_VALUE)

    @torch.no_grad()
    def encode(self, wave: torch.Tensor, sample_rate: int, progress: ProgressHook | None = None) -> torch.Tensor:
        """wave (B, C, L) at ``sample_rate`` (any channel count) -> latent (B, 8, 16, T) float32.

        ``T = ceil(ceil(L * 44100 / sample_rate) / 4096)``. The result is on ``wave``'s device.
        ``progress(done, B)`` is called after each item.
        """
        mel = self.mel_from_wave(wave, sample_rate)  # (B, 2, n_mels, T_mel)
        dtype = self._param(self.dcae).dtype
        latents = []
        with interrupt_points([self.dcae.encoder], progress):
            for i in range(mel.shape[0]):
                z = self.dcae.encoder(mel[i : i + 1].to(dtype))  # (1, 8, 16, T)
                latents.append(((z.float() - self.LATENT_SHIFT) * self.LATENT_SCALE).to(wave.device))
                report(progress, i + 1, mel.shape[0])
        return torch.cat(latents, dim=0)

    # --- decode --------------------------------------------------------------------------------
    def _check_latent(self, latent: torch.Tensor) -> None:
        want = (self.latent_channels, self.latent_height)
        if not isinstance(latent, torch.Tensor) or latent.dim() != 4 or tuple(latent.shape[1:3]) != want:
            shape = tuple(latent.shape) if isinstance(latent, torch.Tensor) else type(latent).__name__
            raise InputError(f"latent must have shape (batch, {want[0]}, {want[1]}, frames), got {shape}")
        if not latent.is_floating_point():
            raise InputError(f"latent must be floating point, got {latent.dtype}")
        if latent.shape[0] == 0 or latent.shape[-1] == 0:
            raise InputError(f"latent is empty: shape {tuple(latent.shape)}")
        if not bool(torch.isfinite(latent).all()):
            raise InputError("latent contains NaN or infinite values")

    def _plan(self, frames: int, windowed: Optional[bool]) -> tuple[bool, bool, int, int]:
        """(dcae windowed?, vocoder windowed?, dcae window count, vocoder window count) for one item."""
        w = self.windows
        vctx = self._vocoder_context()
        if windowed is None:
            dcae_w = frames > w.dcae_core + 2 * self._dcae_context()
            voc_w = frames * self.time_compression > w.vocoder_core + 2 * vctx
        else:
            dcae_w = voc_w = bool(windowed)
        n_d = len(_window_plan(frames, w.dcae_core)) if dcae_w else 1
        n_v = len(_window_plan(frames * self.time_compression, w.vocoder_core)) if voc_w else 1
        return dcae_w, voc_w, n_d, n_v

    def _dcae_context(self) -> int:
        c = self.windows.dcae_context
        return self.dcae.decoder.local_reach()[1] if c is None else int(c)

    def _vocoder_context(self) -> int:
        c = self.windows.vocoder_context
        return self.vocoder.config.receptive_field_frames() if c is None else int(c)

    @torch.no_grad()
    def decode_mel(self, latent: torch.Tensor, windowed: bool = False, tick: Callable[[], None] = lambda: None) -> torch.Tensor:
        """One latent (1, 8, 16, T) -> de-normalised log-mel (1, 2, n_mels, T * 8) float32."""
        dtype = self._param(self.dcae).dtype
        device = self._param(self.dcae).device
        z = (latent.to(device=device, dtype=torch.float32) / self.LATENT_SCALE + self.LATENT_SHIFT).to(dtype)

        decoder = self.dcae.decoder
        if not windowed:
            mel = denormalize_mel(decoder(z).float(), MIN_MEL_VALUE, MAX_MEL_VALUE)
            tick()
            return mel
        w = self.windows
        h = decoder.forward_global(z, chunk=w.dcae_core)  # (1, C, 16, T): the attention stage, whole

        def run(hh):  # (1, C, 16, t) -> (1, 2, n_mels, 8t) float32 log-mel
            return denormalize_mel(decoder.forward_local(hh).float(), MIN_MEL_VALUE, MAX_MEL_VALUE)

        scale = decoder.local_reach()[0]
        return _overlap_run(run, h, scale, w.dcae_core, self._dcae_context(), 0, device, tick)

    @torch.no_grad()
    def vocode(self, mel: torch.Tensor, windowed: bool = False, tick: Callable[[], None] = lambda: None,
               out_device=None) -> torch.Tensor:
        """Log-mel (1, 2, n_mels, T_mel) -> wave (2, T_mel * hop) float32.

        The vocoder is mono: the two channels go through it as one batch of 2 (one pass, one
        ``tick`` per window).
        """
        device = self._param(self.vocoder).device
        out_device = device if out_device is None else out_device
        stereo = mel[0]  # (2, n_mels, T_mel)
        if windowed:
            w = self.windows
            wav = _overlap_run(self.vocoder.decode, stereo, self.hop_length, w.vocoder_core, self._vocoder_context(),
                               w.vocoder_fade, out_device, tick)  # (2, 1, L)
        else:
            wav = self.vocoder.decode(stereo).to(out_device, torch.float32)  # (2, 1, L)
            tick()
        return wav[:, 0]  # (2, L)

    @torch.no_grad()
    def decode(
        self,
        latent: torch.Tensor,
        sample_rate: Optional[int] = None,
        progress: ProgressHook | None = None,
        windowed: Optional[bool] = None,
    ) -> torch.Tensor:
        """latent (B, 8, 16, T) -> wave (B, 2, T * 4096) float32 at 44.1 kHz (or ``sample_rate``).

        Each item is decoded on its own. ``windowed``: ``None`` picks windowed decoding for long
        latents (see :class:`DecodeWindows`), ``True``/``False`` force it. ``progress(done, total)``
        is called after every DCAE window and every vocoder window (both channels in one pass); a
        hook that raises stops the decode. The result is on ``latent``'s device.
        """
        self._check_latent(latent)
        if sample_rate is not None:
            sample_rate = check_rate("sample_rate", sample_rate)
        b, frames = latent.shape[0], latent.shape[-1]
        dcae_w, voc_w, n_d, n_v = self._plan(frames, windowed)
        total = b * (n_d + n_v)
        done = 0

        def tick():
            nonlocal done
            done += 1
            report(progress, done, total)

        out_device = latent.device if (dcae_w or voc_w) else None
        wavs = []
        with interrupt_points([self.dcae.decoder, self.vocoder], progress):  # cancel inside a window too
            for i in range(b):
                mel = self.decode_mel(latent[i : i + 1], windowed=dcae_w, tick=tick)  # (1, 2, n_mels, T_mel)
                wav = self.vocode(mel, windowed=voc_w, tick=tick, out_device=out_device)  # (2, L)
                del mel
                if sample_rate is not None and sample_rate != self.sample_rate:
                    wav = resample(wav, self.sample_rate, sample_rate)
                wavs.append(wav.to(latent.device))
        return torch.stack(wavs, dim=0)  # (B, 2, L)
