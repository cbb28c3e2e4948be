"""ACE-Step v1 behind the family adapter (:class:`~ace_core.family.FamilyAdapter`).

Every method wraps the existing v1 pipeline: ``loader.load_v1``, ``pipeline`` (text, generate,
decode) and ``edit_pipeline`` (edit LATENTs, long sources, the splice). Nothing here computes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

from ..errors import InputError
from ..family import call_prepare
from ..latent_spec import keep_source_length, trim_to_source_length, with_source_length
from ..progress import ProgressHook
from ..validation import validate_choice, validate_range, validate_text
from . import edit_pipeline, loader, pipeline
from .latent import LATENT, LATENT_FAMILY, SAMPLE_RATE, latent_dict, latent_samples


class AceStepV1Adapter:
    """ACE-Step v1 (3.5B): ``model`` is an :class:`~ace_core.v1.bundle.AceStepV1`."""

    family = LATENT_FAMILY
    title = "ACE-Step v1 (3.5B)"
    latent = LATENT
    capabilities = frozenset({"text2music", "audio2audio", "repaint", "extend", "retake", "flowedit"})
    editor = edit_pipeline
    """Builds the edit LATENTs (repaint_latent, outpaint_latent, retake_latent, flowedit_latent)."""

    def load(self, paths, dtype=None, device="cpu", progress: Optional[ProgressHook] = None):
        """One all-in-one file or the official folder (or a file/folder inside it)."""
        if isinstance(paths, (list, tuple)):
            if len(paths) != 1:
                raise InputError(f"paths: ACE-Step v1 loads from one file or folder, got {len(paths)} paths")
            paths = paths[0]
        return loader.load_v1(Path(paths), dtype=dtype, device=device, progress=progress)

    def sampler_settings(self, options: Optional[Mapping] = None) -> pipeline.SamplerSettings:
        if isinstance(options, pipeline.SamplerSettings):
            return options.validate()
        return pipeline.SamplerSettings.from_kwargs(**dict(options or {}))

    def check_text(self, tags: str, lyrics: str, **options) -> None:
        """Validate the text fields before anything is loaded (InputError naming the field)."""
        validate_text(tags or "", lyrics or "")
        validate_choice(options.get("language", "auto"), pipeline.LANGUAGES, "language")
        validate_range(options.get("lyrics_strength", 1.0), 0.0, 10.0, "lyrics_strength")

    def encode_text(self, model, tags: str, lyrics: str, progress: Optional[ProgressHook] = None,
                    **options) -> pipeline.TextConditioning:
        """Options: ``lyrics_strength``, ``language``, ``lyrics_vocab``, ``vocab_dirs``. ``progress``
        runs after every text-encoder layer (a hook may raise to interrupt)."""
        return pipeline.encode_conditioning(model, tags, lyrics, progress=progress, **options)

    def empty_latent(self, seconds: float, batch: int = 1, name: str = "seconds") -> dict:
        return pipeline.empty_latent(seconds, batch, name)

    def sample(self, model, positive, negative=None, *, latent: dict, seed: int = 0, settings=None,
               denoise: float = 1.0, progress: Optional[ProgressHook] = None, prepare=None) -> dict:
        settings = self.sampler_settings(settings)
        if edit_pipeline.is_edit_latent(latent):  # from RepaintMask / Outpaint / Retake / FlowEdit
            return edit_pipeline.run_edit(model, latent, positive, negative, seed=seed, settings=settings,
                                          progress=progress, prepare=prepare)
        samples = latent_samples(latent, "latent")
        call_prepare(prepare, "dit")
        out = pipeline.generate(model, positive, negative, latent=samples, seed=seed, settings=settings,
                                denoise=denoise, progress=progress)
        return keep_source_length(latent, latent_dict(out.float().cpu()))

    def decode_audio(self, model, latent: dict, progress: Optional[ProgressHook] = None, prepare=None) -> dict:
        if edit_pipeline.is_edit_latent(latent):  # a sampled repaint/outpaint: spliced into its source
            return edit_pipeline.decode_and_splice(model, latent, progress=progress, prepare=prepare)
        samples = latent_samples(latent, "latent")
        call_prepare(prepare, "vae")
        waveform = pipeline.decode(model, samples, progress=progress)  # whole frames: cut to the source's length
        return {"waveform": trim_to_source_length(waveform, SAMPLE_RATE, latent), "sample_rate": SAMPLE_RATE}

    def encode_audio(self, model, audio: dict, progress: Optional[ProgressHook] = None, prepare=None) -> dict:
        """Sources up to 240 s are encoded; longer ones (for the edit nodes, up to 60 min) become a
        lazy placeholder that only the edit's window is encoded from."""
        call_prepare(prepare, "vae")
        out = edit_pipeline.encode_source(model.vae, audio, progress=progress)
        return with_source_length(out, audio["waveform"].shape[-1], audio["sample_rate"])


ADAPTER = AceStepV1Adapter()

__all__ = ["ADAPTER", "AceStepV1Adapter"]
