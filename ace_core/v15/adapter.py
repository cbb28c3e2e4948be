"""ACE-Step 1.5 behind the family adapter (:class:`~ace_core.family.FamilyAdapter`).

Each method wraps the 1.5 core: :func:`.loader.load_v15`, :mod:`.pipeline` (prompts, text
encoder, condition, sampler) and :class:`.vae.MusicVAE15`. LATENTs are ComfyUI core's 1.5
layout, (B, 64, frames) at 25 Hz, tagged ``aceforge_family = "ace_v15"``.
"""

from __future__ import annotations

from typing import Mapping, Optional

import torch

from ..errors import InputError
from ..family import call_prepare
from ..latent_spec import LatentSpec, keep_source_length, trim_to_source_length, with_source_length
from ..loading.recognise import ACE_V15
from ..progress import ProgressHook
from . import pipeline, tasks
from .loader import load_v15

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


class AceStep15Adapter:
    """ACE-Step 1.5 (2B / XL; turbo, base, sft): ``model`` is an :class:`~.bundle.AceStep15Bundle`."""

    family = ACE_V15
    title = "ACE-Step 1.5"
    latent = LATENT
    capabilities = frozenset({"text2music", "audio2audio", "repaint", "extend", "retake", "cover", "extract", "lego",
                              "complete", "reference_timbre"})
    editor = tasks
    text_options = TEXT_OPTIONS
    """The module the edit nodes call (repaint_latent, outpaint_latent, retake_latent, cover_latent, stem_latent)."""

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

    def settings_from_options(self, options: Mapping) -> tuple[pipeline.SamplerSettings15, list]:
        """The shared sampler node's options -> (settings, names of the options 1.5 does not use).

        ``steps`` / ``guidance_scale`` 0 mean the variant's official default; ``sampler`` euler is
        the ODE sampler and pingpong the SDE one (fresh noise each step); heun and cfg_star do not
        exist for 1.5 (InputError)."""
        opts = dict(options)
        sampler = opts.pop("sampler", "euler")
        methods = {"euler": "ode", "pingpong": "sde", "ode": "ode", "sde": "sde"}
        if sampler not in methods:
            raise InputError(f"sampler: {sampler!r} is not available for ACE-Step 1.5; use euler (ODE) or pingpong (SDE)")
        if opts.get("guidance_type", "apg") not in pipeline.GUIDANCE_TYPES:
            raise InputError(f"guidance_type: {opts['guidance_type']!r} is not available for ACE-Step 1.5; "
                             f"use {' or '.join(pipeline.GUIDANCE_TYPES)}")
        dcw = opts.pop("dcw", "auto")
        known = set(pipeline.SamplerSettings15.__dataclass_fields__)
        ignored = sorted(k for k in opts if k not in known)
        kw = {k: v for k, v in opts.items() if k in known}
        if kw.get("steps") == 0:
            kw["steps"] = None
        if kw.get("guidance_scale") == 0:
            kw["guidance_scale"] = None
        kw["method"] = methods[sampler]
        kw["dcw"] = None if dcw == "auto" else dcw in ("on", True)
        return pipeline.SamplerSettings15(**kw), ignored

    def notes(self, model, settings) -> list:
        """Settings that have no effect on the loaded variant (shown on the sampler)."""
        return self.sampler_settings(settings).notes(model.variant.sampler_kind)

    def check_text(self, tags: str, lyrics: str, **options) -> None:
        """Validate the text fields before anything is loaded (InputError naming the field)."""
        self._fields(tags, lyrics, options).prompts()

    def _fields(self, tags: str, lyrics: str, options: Mapping) -> pipeline.SongFields:
        unknown = set(options) - set(TEXT_OPTIONS)
        if unknown:
            raise InputError(f"text options: unknown option(s) {', '.join(sorted(unknown))} for ACE-Step 1.5; "
                             f"known: {', '.join(TEXT_OPTIONS)}")
        return pipeline.SongFields(caption=tags or "", lyrics=lyrics or "", **options)

    def encode_text(self, model, tags: str, lyrics: str, progress: Optional[ProgressHook] = None,
                    **options) -> pipeline.TextConditioning15:
        """Tags/caption and lyrics plus the 1.5 metadata (bpm, keyscale, timesignature, language,
        duration, task, track_name, complete_track_classes, instruction), each optional. ``progress``
        runs after every text-encoder layer (a hook may raise to interrupt)."""
        fields = self._fields(tags, lyrics, options)
        return pipeline.encode_text(model.text_encoder, model.text_tokenizer, [fields], progress=progress)

    def empty_latent(self, seconds: float, batch: int = 1, name: str = "seconds") -> dict:
        seconds = pipeline.check_seconds(seconds, name)
        if not 1 <= int(batch) <= 8:
            raise InputError(f"batch_size: must be in 1–8, got {batch}")
        return latent_dict(torch.zeros(int(batch), LATENT.channels, pipeline.frames_for_seconds(seconds)))

    def sample(self, model, positive, negative=None, *, latent: dict, seed: int = 0, settings=None,
               denoise: float = 1.0, progress: Optional[ProgressHook] = None, prepare=None) -> dict:
        """Text to music over ``latent``'s batch and length, or the edit an edit LATENT describes.
        ``negative`` is not used by 1.5: its unconditional branch is the model's null condition.
        ``denoise`` < 1 starts from the latent re-noised to that level (audio to audio); an edit
        LATENT carries its own strength and refuses denoise < 1."""
        settings = self.sampler_settings(settings)
        if not 0.0 < float(denoise) <= 1.0:
            raise InputError(f"denoise: must be in (0, 1], got {denoise}")
        if tasks.is_edit_latent(latent):
            if denoise < 1.0:
                raise InputError(f"denoise: {denoise:g} is not used for a {latent[tasks.EDIT_KEY].get('task')} edit, "
                                 "which sets its own strength on the edit node; set denoise to 1.0")
            text = self.task_text(model, positive, latent[tasks.EDIT_KEY], prepare)
            return tasks.run_edit(model, latent, text, seed=seed, settings=settings,
                                  refer_latents=positive.reference_latents, progress=progress, prepare=prepare)
        samples = latent_samples(latent)
        batch, frames = samples.shape[0], samples.shape[2]
        call_prepare(prepare, "model")
        source = samples.transpose(1, 2) if denoise < 1.0 else None  # [B, T, 64]
        out = pipeline.generate(model.model, positive, kind=model.variant.sampler_kind, seconds=None,
                                frames=frames, batch_size=batch, seed=seed, settings=settings,
                                silence_source=model.silence_latent, source=source, denoise=float(denoise),
                                refer=tasks._refer(model.model, positive.reference_latents, batch), progress=progress,
                                hints=self._hints(model, positive, batch, frames))
        return keep_source_length(latent, latent_dict(out.float().cpu()))

    @staticmethod
    def _hints(model, text: pipeline.TextConditioning15, batch: int, frames: int):
        """The 25 Hz cover hints of the conditioning's LM audio codes (None without codes)."""
        codes = text.audio_codes
        if codes is None:
            return None
        if codes.shape[0] not in (1, batch):
            raise InputError(f"audio codes: {codes.shape[0]} items for a batch of {batch}")
        from .lm.codes import codes_to_hints
        from .silence import silence_latent

        silence = silence_latent(max(frames, model.model.config.timbre_fix_frame), source=model.silence_latent)
        return codes_to_hints(model.model, codes, frames, silence)

    def task_text(self, model, text: pipeline.TextConditioning15, edit: dict, prepare=None):
        """The conditioning re-encoded with the edit task's instruction (when its fields are known)."""
        if not text.fields:
            return text
        fields = [tasks.task_fields(f, edit) for f in text.fields]
        if fields == list(text.fields):
            return text
        call_prepare(prepare, "text_encoder")
        out = pipeline.encode_text(model.text_encoder, model.text_tokenizer, fields)
        out.reference_latents = text.reference_latents
        return out

    def decode_audio(self, model, latent: dict, progress: Optional[ProgressHook] = None, prepare=None) -> dict:
        if tasks.is_edit_latent(latent):  # a sampled edit: spliced into its source where the task keeps it
            return tasks.decode_edit(model, latent, progress=progress, prepare=prepare)
        samples = latent_samples(latent)
        call_prepare(prepare, "vae")
        waveform = model.vae.decode(samples, progress=progress)  # whole frames: cut to the source's length
        return {"waveform": trim_to_source_length(waveform, LATENT.sample_rate, latent), "sample_rate": LATENT.sample_rate}

    def encode_audio(self, model, audio: dict, progress: Optional[ProgressHook] = None, prepare=None,
                     seed: int = 0) -> dict:
        """AUDIO (any rate and channel count) -> a sampled VAE latent (seeded) carrying its source
        audio for the edit nodes; sources over 600 s (up to 60 min) are encoded only around an edit."""
        call_prepare(prepare, "vae")
        out = tasks.encode_source(model, audio, seed=seed, progress=progress)
        return with_source_length(out, audio["waveform"].shape[-1], audio["sample_rate"])


ADAPTER = AceStep15Adapter()

__all__ = ["ADAPTER", "AceStep15Adapter", "LATENT", "latent_dict", "latent_samples"]
