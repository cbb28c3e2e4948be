"""ACE-Step 1.5 generation from user fields: prompts → text encoder → condition → sampler → latent.

The steps follow the reference handler:

1. :func:`.prompts.build_dit_prompts` turns caption, lyrics and metadata into the caption and
   lyric prompts of the task;
2. :func:`encode_text`: the caption prompt through the Qwen3 text encoder (no attention mask,
   as the handler calls it), the lyric prompt through the raw token-embedding lookup;
3. :func:`build_condition`: the condition encoder packs [lyrics | timbre | caption]; the context
   latents are the silence latent (text2music) or the source (editing tasks) with the chunk mask;
   no reference audio means the silence latent's first ``timbre_fix_frame`` frames per item;
4. :func:`generate`: seeded noise (item k from ``seed + k``), the variant's schedule, the sampler.

Latents leave this module channel-first, [B, 64, frames] at 25 Hz: ComfyUI core's 1.5 layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import torch

from ..errors import InputError
from ..progress import ProgressHook, layer_progress
from ..validation import validate_text
from .dcw import DCW_OFF, default_dcw
from .prompts import DURATION_RANGE, DitPrompts, build_dit_prompts
from .sampling import (MAX_BATCH, DiTCondition, DiTVelocity, GuidanceSettings, initial_noise, sample,
                       seed_generators)
from .conditioning import prepare_condition
from .schedules import make_schedule
from .silence import silence_latent
from .text_tokenizer import CAPTION_MAX_TOKENS, LYRIC_MAX_TOKENS

SAMPLE_RATE = 48000
FRAMES_PER_SECOND = 25  # 48000 / 1920
LATENT_CHANNELS = 64
MIN_SECONDS, MAX_SECONDS = DURATION_RANGE
KINDS = ("turbo", "base", "sft")
METHODS = ("ode", "sde")
GUIDANCE_TYPES = ("apg", "cfg")
# Official defaults per variant: turbo 8 steps (CFG-distilled, DCW on); base 32 / sft 50 steps, CFG 7.
DEFAULT_STEPS = {"turbo": 8, "base": 32, "sft": 50}
DEFAULT_SHIFT = 3.0
DEFAULT_GUIDANCE = 7.0
MAX_STEPS = 200


def frames_for_seconds(seconds: float) -> int:
    """Latent frames (25 Hz) for ``seconds`` of 48 kHz audio: samples // 1920."""
    return int(round(float(seconds) * SAMPLE_RATE)) // 1920


def check_seconds(seconds, name: str = "seconds") -> float:
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a number of seconds in {MIN_SECONDS}–{MAX_SECONDS}, got {seconds!r}")
    if not MIN_SECONDS <= value <= MAX_SECONDS:
        raise InputError(f"{name}: must be in {MIN_SECONDS}–{MAX_SECONDS} s for ACE-Step 1.5, got {value:g}")
    return value


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InputError(f"model variant: expected one of {', '.join(KINDS)}, got {kind!r}")
    return kind


# ------------------------------------------------------------------------------------------------
# text
# ------------------------------------------------------------------------------------------------
@dataclass
class SongFields:
    """What the user says about the song (every field optional, as in the official API)."""

    caption: str = ""
    lyrics: str = ""
    bpm: Optional[int] = None
    keyscale: Optional[str] = None
    timesignature: Optional[str] = None
    language: str = "unknown"
    duration: Optional[float] = None  # seconds, written into the metadata
    task: str = "text2music"
    track_name: Optional[str] = None
    complete_track_classes: Optional[Sequence[str]] = None
    instruction: Optional[str] = None

    def prompts(self) -> DitPrompts:
        validate_text(self.caption, self.lyrics, "caption")  # stated lengths; not both empty
        return build_dit_prompts(self.task, self.caption, self.lyrics, bpm=self.bpm, keyscale=self.keyscale,
                                 timesignature=self.timesignature, duration=self.duration,
                                 language=self.language, track_name=self.track_name,
                                 complete_track_classes=self.complete_track_classes,
                                 instruction=self.instruction)


@dataclass
class TextConditioning15:
    """Encoded text of a batch (B items).

    text_hidden [B, Lt, D] / text_mask [B, Lt]: the caption prompt's last hidden states;
    lyric_hidden [B, Ll, D] / lyric_mask [B, Ll]: raw token embeddings of the lyric prompt;
    plain_text_*: the caption prompt with the text2music instruction (a cover's second phase).
    """

    text_hidden: torch.Tensor
    text_mask: torch.Tensor
    lyric_hidden: torch.Tensor
    lyric_mask: torch.Tensor
    plain_text_hidden: torch.Tensor
    plain_text_mask: torch.Tensor
    prompts: list = field(default_factory=list)
    fields: Optional[list] = None  # the SongFields encoded (re-encoded for another task's instruction)
    reference_latents: tuple = ()  # timbre reference latents, each [1, 64, T] (core's key)
    audio_codes: Optional[torch.Tensor] = None  # 5 Hz LM codes [1 or B, N] (core's key): the DiT's cover hints

    @property
    def batch(self) -> int:
        return int(self.text_hidden.shape[0])

    @property
    def is_cover(self) -> bool:
        return any(p.is_cover for p in self.prompts)

    def repeat(self, batch: int) -> "TextConditioning15":
        """Repeat a single item to ``batch`` items (one prompt for the whole batch)."""
        if self.batch == batch:
            return self
        if self.batch != 1:
            raise InputError(f"conditioning: holds {self.batch} items, cannot serve a batch of {batch}")

        def rep(t: torch.Tensor) -> torch.Tensor:
            return t.expand(batch, *t.shape[1:])  # [B, L, ...]

        return TextConditioning15(rep(self.text_hidden), rep(self.text_mask), rep(self.lyric_hidden),
                                  rep(self.lyric_mask), rep(self.plain_text_hidden), rep(self.plain_text_mask),
                                  self.prompts * batch, self.fields, self.reference_latents, self.audio_codes)


def _run_text_encoder(text_encoder, ids: torch.Tensor) -> torch.Tensor:
    param = next(text_encoder.parameters())
    return text_encoder(ids.to(param.device))  # no mask: as the reference handler


@torch.no_grad()
def encode_text(text_encoder, tokenizer, fields: Sequence[SongFields],
                progress: Optional[ProgressHook] = None) -> TextConditioning15:
    """Prompts of each item → Qwen3 states. Caption ≤ 256 tokens, lyrics ≤ 2048 (cut as upstream).
    ``progress(done, total)`` after every Qwen3 layer (a hook may raise to interrupt)."""
    if not fields:
        raise InputError("song fields: the batch is empty")
    prompts = [f.prompts() for f in fields]
    caption_ids, caption_mask = tokenizer.batch([p.caption_prompt for p in prompts], CAPTION_MAX_TOKENS)
    lyric_ids, lyric_mask = tokenizer.batch([p.lyric_prompt for p in prompts], LYRIC_MAX_TOKENS)
    plain_ids, plain_mask = tokenizer.batch([p.text2music_caption_prompt for p in prompts], CAPTION_MAX_TOKENS)
    param = next(text_encoder.parameters())
    same = plain_ids.shape == caption_ids.shape and torch.equal(plain_ids, caption_ids)
    with layer_progress(text_encoder.layers, progress, passes=1 if same else 2):
        text_hidden = _run_text_encoder(text_encoder, caption_ids)
        plain_hidden = text_hidden if same else _run_text_encoder(text_encoder, plain_ids)
    lyric_hidden = text_encoder.embed(lyric_ids.to(param.device))
    dev = param.device
    return TextConditioning15(text_hidden, caption_mask.to(dev), lyric_hidden, lyric_mask.to(dev),
                              plain_hidden, plain_mask.to(dev), prompts, list(fields))


# ------------------------------------------------------------------------------------------------
# condition and sampling
# ------------------------------------------------------------------------------------------------
@dataclass
class SamplerSettings15:
    """Sampler settings; ``None`` means the loaded variant's official default."""

    steps: Optional[int] = None
    shift: float = DEFAULT_SHIFT
    guidance_scale: Optional[float] = None  # base/sft only (turbo is CFG-distilled)
    guidance_type: str = "apg"
    cfg_interval_start: float = 0.0
    cfg_interval_end: float = 1.0
    method: str = "ode"
    dcw: Optional[bool] = None  # None: on for turbo, off for base/sft
    timesteps: Optional[Sequence[float]] = None

    def resolved(self, kind: str) -> "SamplerSettings15":
        """The settings with every default filled in for ``kind`` (turbo/base/sft), validated."""
        kind = check_kind(kind)
        steps = DEFAULT_STEPS[kind] if self.steps is None else self.steps
        if not isinstance(steps, int) or isinstance(steps, bool):
            raise InputError(f"steps: expected a whole number, got {steps!r}")
        high = 20 if kind == "turbo" else MAX_STEPS
        if not 1 <= steps <= high:
            raise InputError(f"steps: must be in 1–{high} for a {kind} model, got {steps}")
        scale = (1.0 if kind == "turbo" else DEFAULT_GUIDANCE) if self.guidance_scale is None else self.guidance_scale
        if not 1.0 <= float(scale) <= 30.0:
            raise InputError(f"guidance_scale: must be in 1–30, got {scale}")
        if self.guidance_type not in GUIDANCE_TYPES:
            raise InputError(f"guidance_type: expected one of {', '.join(GUIDANCE_TYPES)}, got {self.guidance_type!r}")
        if not 0.0 <= self.cfg_interval_start <= self.cfg_interval_end <= 1.0:
            raise InputError("cfg_interval_start/cfg_interval_end: need 0 ≤ start ≤ end ≤ 1, got "
                             f"{self.cfg_interval_start}/{self.cfg_interval_end}")
        if self.method not in METHODS:
            raise InputError(f"method: expected one of {', '.join(METHODS)}, got {self.method!r}")
        dcw = (kind == "turbo") if self.dcw is None else bool(self.dcw)
        return replace(self, steps=steps, guidance_scale=float(scale), dcw=dcw)

    def notes(self, kind: str) -> list[str]:
        """Settings that have no effect on the loaded variant (shown to the user)."""
        out = []
        if kind == "turbo" and self.guidance_scale not in (None, 1.0):
            out.append("guidance_scale has no effect on a turbo model (it is CFG-distilled)")
        return out


def no_reference(silence: torch.Tensor, batch: int, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The timbre input without reference audio: the silence latent's first ``frames`` per item.

    Returns refer_packed [B, frames, 64] and refer_order [B] (item k's clip is row k).
    """
    clip = silence[:, :frames]  # [1, frames, 64]
    return clip.expand(batch, *clip.shape[1:]), torch.arange(batch, device=silence.device)


@torch.no_grad()
def build_condition(model, text: TextConditioning15, src_latents: torch.Tensor, chunk_masks: torch.Tensor,
                    silence: torch.Tensor, *, is_covers: Optional[torch.Tensor] = None,
                    refer: Optional[tuple] = None, plain: bool = False,
                    precomputed_hints: Optional[torch.Tensor] = None) -> DiTCondition:
    """The DiT condition. src_latents [B, T, 64]; chunk_masks [B, T]; silence [1, ≥T, 64].

    ``refer``: (refer_packed [N, Tr, 64], refer_order [N]); default: no reference audio.
    ``plain``: use the text2music caption (the non-cover condition of a cover's second phase).
    """
    dtype, device = model.dtype, model.device
    batch = src_latents.shape[0]
    if refer is None:
        refer = no_reference(silence.to(device, dtype), batch, model.config.timbre_fix_frame)
    th = text.plain_text_hidden if plain else text.text_hidden
    tm = text.plain_text_mask if plain else text.text_mask
    return prepare_condition(
        model, text_hidden_states=th.to(device, dtype), text_attention_mask=tm.to(device),
        lyric_hidden_states=text.lyric_hidden.to(device, dtype), lyric_attention_mask=text.lyric_mask.to(device),
        refer_packed=refer[0].to(device, dtype), refer_order=refer[1].to(device),
        src_latents=src_latents.to(device, dtype), chunk_masks=chunk_masks.to(device),
        is_covers=is_covers, silence_latent=silence.to(device, dtype), precomputed_hints=precomputed_hints)


def _guidance(settings: SamplerSettings15) -> GuidanceSettings:
    return GuidanceSettings(scale=settings.guidance_scale, kind=settings.guidance_type,
                            interval_start=settings.cfg_interval_start, interval_end=settings.cfg_interval_end)


@torch.no_grad()
def generate(model, text: TextConditioning15, *, kind: str, seconds: Optional[float] = 30.0,
             frames: Optional[int] = None, batch_size: int = 1, seed=0,
             settings: Optional[SamplerSettings15] = None, silence_source: Optional[torch.Tensor] = None,
             refer: Optional[tuple] = None, source: Optional[torch.Tensor] = None, denoise: float = 1.0,
             progress: Optional[ProgressHook] = None, hints: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Text to music. Returns latents [B, 64, frames] (float32, channel-first, 25 Hz).

    model: :class:`~.model.AceStep15Model`; text: :func:`encode_text` (1 or ``batch_size`` items);
    kind: turbo/base/sft (picks the schedule and defaults); seconds, or ``frames`` (25 Hz) when
    given; seed: int (item k uses seed + k) or a list of ``batch_size`` seeds; silence_source:
    the checkpoint's silence latent [1, S, 64] if any; source [B, T, 64] with ``denoise`` < 1:
    start from the source re-noised to the schedule time nearest ``denoise`` (audio to audio);
    hints [1 or B, ≥frames, 64]: 25 Hz LM hints (from audio codes) as every item's cover source.
    """
    if frames is None:
        frames = frames_for_seconds(check_seconds(seconds))
    else:
        check_seconds(int(frames) / FRAMES_PER_SECOND, "latent length")
        frames = int(frames)
    batch_size = int(batch_size)
    if not 1 <= batch_size <= MAX_BATCH:
        raise InputError(f"batch_size: must be in 1–{MAX_BATCH}, got {batch_size}")
    if not 0.0 < float(denoise) <= 1.0:
        raise InputError(f"denoise: must be in (0, 1], got {denoise}")
    if denoise < 1.0 and (source is None or tuple(source.shape) != (batch_size, frames, LATENT_CHANNELS)):
        raise InputError(f"denoise: < 1 needs a source latent of shape {(batch_size, frames, LATENT_CHANNELS)}")
    s = (settings or SamplerSettings15()).resolved(kind)
    text = text.repeat(batch_size)
    silence = silence_latent(max(frames, model.config.timbre_fix_frame), source=silence_source)
    src = silence[:, :frames].expand(batch_size, frames, LATENT_CHANNELS)  # [B, T, 64]
    chunk = torch.ones(batch_size, frames)
    covers = None if hints is None else torch.ones(batch_size)
    if hints is not None:
        hints = hints.expand(batch_size, *hints.shape[1:]) if hints.shape[0] == 1 else hints
    cond = build_condition(model, text, src, chunk, silence, refer=refer, is_covers=covers, precomputed_hints=hints)
    generators = seed_generators(seed, batch_size)
    noise = initial_noise(generators, batch_size, frames, device=model.device, dtype=torch.float32)
    schedule = make_schedule(kind, s.steps, s.shift, s.timesteps)
    dcw = default_dcw("turbo") if s.dcw else DCW_OFF
    x0 = sample(DiTVelocity(model.decoder, progress), cond, noise, schedule, method=s.method, generator=generators,
                dcw=dcw, guidance=None if kind == "turbo" else _guidance(s),
                null_condition_emb=model.null_condition_emb, progress=progress,
                cover_src=None if denoise >= 1.0 else source.to(model.device, torch.float32),
                cover_noise_strength=0.0 if denoise >= 1.0 else 1.0 - float(denoise))
    return x0.transpose(1, 2).contiguous()  # [B, T, 64] -> [B, 64, T]


__all__ = [
    "DEFAULT_STEPS", "FRAMES_PER_SECOND", "KINDS", "LATENT_CHANNELS", "MAX_SECONDS", "MIN_SECONDS",
    "SAMPLE_RATE", "SamplerSettings15", "SongFields", "TextConditioning15", "build_condition",
    "check_seconds", "encode_text", "frames_for_seconds", "generate", "no_reference",
]
