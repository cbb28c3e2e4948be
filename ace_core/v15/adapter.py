"""ACE-Step 1.5 behind the family adapter (:class:`~ace_core.family.FamilyAdapter`).

Each method wraps the 1.5 core: :func:`.loader.load_v15`, :mod:`.pipeline` (prompts, text
encoder, condition, sampler) and :class:`.vae.MusicVAE15`. LATENTs are ComfyUI core's 1.5
layout, (B, 64, frames) at 25 Hz, tagged ``aceforge_family = "ace_v15"``.
"""

from __future__ import annotations

from typing import Mapping, Optional

import torch

from ..errors import InputError
from ..latent_spec import LatentSpec
from ..loading.recognise import ACE_V15
from ..progress import ProgressHook
from . import pipeline
from .loader import load_v15
from .sampling import seed_generators

LATENT = LatentSpec(family=ACE_V15, frame_shape=(pipeline.LATENT_CHANNELS,), sample_rate=pipeline.SAMPLE_RATE,
                    samples_per_frame=1920, max_seconds=float(pipeline.MAX_SECONDS))
TEXT_OPTIONS = ("bpm", "keyscale", "timesignature", "language", "duration", "task", "track_name",
                "complete_track_classes", "instruction")


def latent_dict(samples: torch.Tensor) -> dict:
    return {"samples": samples, "type": "audio", "aceforge_family": ACE_V15}


def latent_samples(latent, name: str = "latent") -> torch.Tensor:
    """The (B, 64, frames) samples of a 1.5 LATENT (ours or ComfyUI core's untagged one)."""
    if not isinstance(latent, dict) or "samples" not in latent:
        raise InputError(f"{name}: expected a LATENT (a dict with 'samples'), got {type(latent).__name__}")
    family = latent.get("aceforge_family")
    samples = latent["samples"]
    if family is not None and family != ACE_V15:
        raise InputError(f"{name}: this latent belongs to the model family {family!r}; an ACE-Step 1.5 "
                         f"model needs an ACE-Step 1.5 latent, shape {LATENT.layout}")
    if not isinstance(samples, torch.Tensor) or samples.dim() != 3 or samples.shape[1] != LATENT.channels:
        shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise InputError(f"{name}: expected an ACE-Step 1.5 latent of shape {LATENT.layout}, got {shape}")
    return samples


def _call(prepare, part: str) -> None:
    if prepare is not None:
        prepare(part)


class AceStep15Adapter:
    """ACE-Step 1.5 (2B / XL; turbo, base, sft): ``model`` is an :class:`~.bundle.AceStep15Bundle`."""

    family = ACE_V15
    title = "ACE-Step 1.5"
    latent = LATENT
    capabilities = frozenset({"text2music", "audio2audio"})

    def load(self, paths, dtype=None, device="cpu", progress: Optional[ProgressHook] = None):
        """The all-in-one file, a split DiT file (VAE and text encoder found beside it), an official
        folder, or a list of one model's files."""
        if isinstance(paths, (list, tuple)) and len(paths) == 1:
            paths = paths[0]
        return load_v15(paths, dtype=dtype, device=device, progress=progress)

    def sampler_settings(self, options: Optional[Mapping] = None) -> pipeline.SamplerSettings15:
        if isinstance(options, pipeline.SamplerSettings15):
            return options
        known = set(pipeline.SamplerSettings15.__dataclass_fields__)
        unknown = set(options or {}) - known
        if unknown:
            raise InputError(f"sampler settings: unknown option(s) {', '.join(sorted(unknown))} for ACE-Step 1.5; "
                             f"known: {', '.join(sorted(known))}")
        return pipeline.SamplerSettings15(**dict(options or {}))

    def check_text(self, tags: str, lyrics: str, **options) -> None:
        """Validate the text fields before anything is loaded (InputError naming the field)."""
        self._fields(tags, lyrics, options).prompts()

    def _fields(self, tags: str, lyrics: str, options: Mapping) -> pipeline.SongFields:
        unknown = set(options) - set(TEXT_OPTIONS)
        if unknown:
            raise InputError(f"text options: unknown option(s) {', '.join(sorted(unknown))} for ACE-Step 1.5; "
                             f"known: {', '.join(TEXT_OPTIONS)}")
        return pipeline.SongFields(caption=tags or "", lyrics=lyrics or "", **options)

    def encode_text(self, model, tags: str, lyrics: str, **options) -> pipeline.TextConditioning15:
        """Tags/caption and lyrics plus the 1.5 metadata (bpm, keyscale, timesignature, language,
        duration, task, track_name, complete_track_classes, instruction), each optional."""
        fields = self._fields(tags, lyrics, options)
        return pipeline.encode_text(model.text_encoder, model.text_tokenizer, [fields])

    def empty_latent(self, seconds: float, batch: int = 1, name: str = "seconds") -> dict:
        seconds = pipeline.check_seconds(seconds, name)
        if not 1 <= int(batch) <= 8:
            raise InputError(f"batch_size: must be in 1–8, got {batch}")
        return latent_dict(torch.zeros(int(batch), LATENT.channels, pipeline.frames_for_seconds(seconds)))

    def sample(self, model, positive, negative=None, *, latent: dict, seed: int = 0, settings=None,
               denoise: float = 1.0, progress: Optional[ProgressHook] = None, prepare=None) -> dict:
        """Text to music over ``latent``'s batch and length. ``negative`` is not used by 1.5: its
        unconditional branch is the model's null condition. ``denoise`` < 1 starts from the
        latent re-noised to that level (audio to audio)."""
        samples = latent_samples(latent)
        batch, frames = samples.shape[0], samples.shape[2]
        if not 0.0 < float(denoise) <= 1.0:
            raise InputError(f"denoise: must be in (0, 1], got {denoise}")
        _call(prepare, "dit")
        seconds = frames * LATENT.samples_per_frame / LATENT.sample_rate
        source = samples.transpose(1, 2) if denoise < 1.0 else None  # [B, T, 64]
        out = pipeline.generate(model.model, positive, kind=model.variant.sampler_kind, seconds=seconds,
                                frames=frames, batch_size=batch, seed=seed, settings=self.sampler_settings(settings),
                                silence_source=model.silence_latent, source=source, denoise=float(denoise),
                                progress=progress)
        return latent_dict(out.float().cpu())

    def decode_audio(self, model, latent: dict, progress: Optional[ProgressHook] = None, prepare=None) -> dict:
        samples = latent_samples(latent)
        _call(prepare, "vae")
        return {"waveform": model.vae.decode(samples, progress=progress), "sample_rate": LATENT.sample_rate}

    def encode_audio(self, model, audio: dict, progress: Optional[ProgressHook] = None, prepare=None,
                     seed: int = 0) -> dict:
        """AUDIO (any rate and channel count, up to 600 s) -> a sampled VAE latent (seeded)."""
        if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
            raise InputError("audio: expected an AUDIO dict with 'waveform' and 'sample_rate'")
        waveform, rate = audio["waveform"], audio["sample_rate"]
        if isinstance(waveform, torch.Tensor) and waveform.shape[-1] > rate * pipeline.MAX_SECONDS:
            raise InputError(f"audio: {waveform.shape[-1] / rate:.1f} s is longer than the "
                             f"{pipeline.MAX_SECONDS} s ACE-Step 1.5 generates in one pass")
        _call(prepare, "vae")
        generator = seed_generators(seed, 1)[0]
        return latent_dict(model.vae.encode(waveform, rate, generator=generator, progress=progress).float().cpu())


ADAPTER = AceStep15Adapter()

__all__ = ["ADAPTER", "AceStep15Adapter", "LATENT", "latent_dict", "latent_samples"]
