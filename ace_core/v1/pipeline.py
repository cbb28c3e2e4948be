"""High-level ACE-Step v1 pipeline: the glue the ComfyUI nodes and the CLI share.

* :func:`encode_conditioning`: tags + lyrics -> :class:`TextConditioning` (UMT5 states, lyric ids,
  the ERG "null" text states);
* :func:`generate`: conditioning + seconds or a latent (+ denoise for audio-to-audio) -> latent;
* :func:`decode` / :func:`encode_audio`: latent <-> 44.1 kHz stereo waveform;
* validation of every user input, raising :class:`~ace_core.errors.InputError` with the input's
  name and its allowed range.

Defaults are those of the official v1 pipeline as its Gradio UI runs it (acestep_v1.md §3.2).
Latents are ``(B, 8, 16, T)`` at 44100 / 4096 frames per second (``latent.py``).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Optional

import torch

from ..errors import CheckpointError, InputError
from ..progress import ProgressHook, block_interrupts, layer_progress
from ..validation import validate_audio, validate_choice, validate_range, validate_text
from .latent import LATENT, MAX_SECONDS, frames_for_duration, latent_dict, latent_samples, seconds_for_frames

__all__ = [
    "SAMPLERS", "GUIDANCE_TYPES", "LANGUAGES", "SamplerSettings", "TextConditioning", "frames_for_seconds",
    "validate_seconds", "empty_latent", "text_embedding_dim", "find_lyrics_vocab", "tokenize_lyrics", "romanize",
    "encode_conditioning", "seed_generators", "generate", "decode", "encode_audio",
]

SAMPLERS = ("euler", "heun", "pingpong")
GUIDANCE_TYPES = ("apg", "cfg", "cfg_star")
MAX_LYRIC_TOKENS = 4096
"""The most lyric tokens v1 takes (the official training data's cap)."""
LANGUAGES = ("auto", "en", "zh", "ja", "ko", "ru", "es", "fr", "de", "it", "pt", "pl", "tr", "cs", "nl",
             "ar", "hu", "hi")
"""Lyric languages of the v1 tokenizer; ``auto`` detects the language of every line."""


# ---------------------------------------------------------------------------------------------
# validation


frames_for_seconds = frames_for_duration
"""Latent frames for a duration, as the official pipeline and ComfyUI compute it."""


def validate_seconds(seconds, name: str = "seconds") -> float:
    """A duration in (0, 240] s that gives at least one latent frame."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a number of seconds in (0, {MAX_SECONDS:g}], got {seconds!r}") from None
    if not math.isfinite(value) or value <= 0 or value > MAX_SECONDS:
        raise InputError(
            f"{name}: {seconds!r} s is outside the allowed range (0, {MAX_SECONDS:g}] s "
            f"(ACE-Step v1 generates at most {MAX_SECONDS:g} s per run)"
        )
    if frames_for_seconds(value) < 1:
        raise InputError(
            f"{name}: {value:g} s is shorter than one latent frame; use at least {seconds_for_frames(1):.3f} s"
        )
    return value


# ---------------------------------------------------------------------------------------------
# latents (ComfyUI LATENT dicts)


def empty_latent(seconds: float, batch_size: int = 1, name: str = "seconds") -> dict:
    """Zeros ``(B, 8, 16, int(seconds * 44100 / 4096))`` as a LATENT dict."""
    seconds = validate_seconds(seconds, name)
    batch_size = validate_range(batch_size, 1, 4096, "batch_size", integer=True)
    return latent_dict(LATENT.zeros(batch_size, frames_for_seconds(seconds)))


# ---------------------------------------------------------------------------------------------
# sampler settings


@dataclass
class SamplerSettings:
    """Sampling options; defaults = the official v1 pipeline as the Gradio UI runs it."""

    steps: int = 60
    guidance_scale: float = 15.0
    sampler: str = "euler"
    shift: float = 3.0
    omega: float = 10.0
    guidance_type: str = "apg"
    guidance_interval: float = 0.5
    guidance_interval_decay: float = 0.0
    min_guidance_scale: float = 3.0
    guidance_scale_text: float = 0.0
    guidance_scale_lyric: float = 0.0
    erg_tag: bool = True
    erg_lyric: bool = False
    erg_diffusion: bool = True

    def validate(self) -> "SamplerSettings":
        """Check every field; raise InputError naming the field and its range."""
        self.steps = validate_range(self.steps, 1, 1000, "steps", integer=True)
        self.guidance_scale = validate_range(self.guidance_scale, 0.0, 200.0, "guidance_scale")
        self.sampler = validate_choice(self.sampler, SAMPLERS, "sampler")
        self.shift = validate_range(self.shift, 0.01, 100.0, "shift")
        self.omega = validate_range(self.omega, -100.0, 100.0, "omega")
        self.guidance_type = validate_choice(self.guidance_type, GUIDANCE_TYPES, "guidance_type")
        self.guidance_interval = validate_range(self.guidance_interval, 0.0, 1.0, "guidance_interval")
        self.guidance_interval_decay = validate_range(self.guidance_interval_decay, 0.0, 1.0, "guidance_interval_decay")
        self.min_guidance_scale = validate_range(self.min_guidance_scale, 0.0, 200.0, "min_guidance_scale")
        self.guidance_scale_text = validate_range(self.guidance_scale_text, 0.0, 200.0, "guidance_scale_text")
        self.guidance_scale_lyric = validate_range(self.guidance_scale_lyric, 0.0, 200.0, "guidance_scale_lyric")
        self.erg_tag = bool(self.erg_tag)
        self.erg_lyric = bool(self.erg_lyric)
        self.erg_diffusion = bool(self.erg_diffusion)
        return self

    def guidance_kwargs(self) -> dict:
        """The guidance options under the sampling core's keyword names (``sample``, ``repaint``...)."""
        return dict(
            guidance_scale=self.guidance_scale, cfg_type=self.guidance_type,
            guidance_interval=self.guidance_interval, guidance_interval_decay=self.guidance_interval_decay,
            min_guidance_scale=self.min_guidance_scale, guidance_scale_text=self.guidance_scale_text,
            guidance_scale_lyric=self.guidance_scale_lyric, use_erg_lyric=self.erg_lyric,
            use_erg_diffusion=self.erg_diffusion)

    @classmethod
    def from_kwargs(cls, **kwargs) -> "SamplerSettings":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise InputError(f"unknown sampler option(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return cls(**kwargs).validate()

    def as_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# conditioning


@dataclass
class TextConditioning:
    """Encoded tags and lyrics for one prompt (batch 1, repeated to the latent's batch when sampling).

    ``text_states`` (B, S_txt, D_txt) UMT5 ``last_hidden_state``; ``text_mask`` (B, S_txt);
    ``lyric_ids`` / ``lyric_mask`` (B, S_lyr) int64; ``erg_text_states``: the ERG-tag null text states
    (UMT5 with softened attention), None when unknown (then ERG-tag falls back to zero text).
    """

    text_states: torch.Tensor
    text_mask: torch.Tensor
    lyric_ids: torch.Tensor
    lyric_mask: torch.Tensor
    lyrics_strength: float = 1.0
    erg_text_states: Optional[torch.Tensor] = None


def text_embedding_dim(bundle) -> int:
    """Width of the UMT5 states the bundle's DiT expects (768 for the published model)."""
    return int(bundle.dit.config.text_embedding_dim)


def _param(module: torch.nn.Module) -> torch.Tensor:
    for p in module.parameters():
        return p
    raise CheckpointError(f"{type(module).__name__}: the module has no weights")


_LYRIC_TOKENIZERS: dict = {}


PACK_LYRICS_VOCAB = "ace_lyrics_vocab.json"
"""File name looked for in the pack's ``models/ace_step/`` folder (and the nodes' ace_step folders)."""


def find_lyrics_vocab(explicit=None, extra_dirs=()):
    """The v1 lyric vocabulary: ``explicit``, else ``$ACEFORGE_LYRICS_VOCAB``, else ComfyUI's copy
    (``comfy/text_encoders/ace_lyrics_tokenizer/vocab.json``), else ``ace_lyrics_vocab.json`` in
    ``extra_dirs`` or in the pack's ``models/ace_step/``. None when none is found."""
    from pathlib import Path

    from .lyrics import default_vocab_path

    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise InputError(f"lyrics vocabulary: {str(path)!r} is not a file")
        return path
    found = default_vocab_path()
    if found is not None:
        return found
    pack_models = Path(__file__).resolve().parents[2] / "models" / "ace_step"
    for folder in [*extra_dirs, pack_models]:
        candidate = Path(folder) / PACK_LYRICS_VOCAB
        if candidate.is_file():
            return candidate
    return None


def lyric_tokenizer(vocab_path=None, extra_dirs=()):
    """The v1 lyric tokenizer (cached per vocabulary file), found as :func:`find_lyrics_vocab` says."""
    from .lyrics import LyricTokenizer

    path = find_lyrics_vocab(vocab_path, extra_dirs)
    if path is None:
        raise InputError(
            "lyrics: the ACE-Step v1 lyric vocabulary was not found; set ACEFORGE_LYRICS_VOCAB to its vocab.json "
            "(ComfyUI ships it as comfy/text_encoders/ace_lyrics_tokenizer/vocab.json) or put it in "
            f"models/ace_step/{PACK_LYRICS_VOCAB}"
        )
    key = str(path)
    if key not in _LYRIC_TOKENIZERS:
        _LYRIC_TOKENIZERS[key] = LyricTokenizer(path)
    return _LYRIC_TOKENIZERS[key]


def _prepared_line_re():
    from .lyrics import LANGUAGE_TOKEN_IDS

    codes = "|".join(sorted(LANGUAGE_TOKEN_IDS, key=len, reverse=True))
    return re.compile(r"^\[(zh-cn|" + codes + r")\](.*)$", re.IGNORECASE | re.DOTALL)


_CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
"""Han, kana and Hangul: text that still needs romanising."""


def _bpe_ids(tok, text: str, lang: str) -> list:
    """BPE ids of one already cleaned and romanised line (no detection, no cleaning)."""
    from .lyrics.tokenizer import bpe_text

    encode_prepared = getattr(tok, "encode_prepared", None)
    if encode_prepared is not None:
        return list(encode_prepared(text, lang))
    return list(tok._bpe.encode(bpe_text(text, lang)).ids)


def tokenize_lyrics(lyrics: str, language: str = "auto", vocab_path=None, extra_dirs=()) -> tuple[list, list]:
    """Official lyric ids and mask: ``[261, ...]`` / all ones, or ``[0]`` / ``[0]`` without lyrics.

    Lines that start with a language tag (``[zh]wo3 ai4 ni3``: what the Lyric Romanizer writes, and
    ComfyUI's convention) are read as that language: text that is already romanised goes to the BPE
    as it is (lower-cased), so the romanizer's output gives the same ids as the original lyrics;
    Han, kana or Hangul text after a tag is cleaned and romanised first. (The official tokenizer
    would take such a line for a ``[structure]`` tag and encode it as English.) Other lines follow
    the official path.
    """
    from .lyrics import LINE_BREAK_ID, START_ID

    language = validate_choice(language, LANGUAGES, "language")
    if not lyrics:
        return [0], [0]
    tok = lyric_tokenizer(vocab_path, extra_dirs)
    prepared = _prepared_line_re()
    lines = lyrics.split("\n")
    if not any(prepared.match(line.strip()) for line in lines):
        ids = list(tok.encode(lyrics, language))
    else:
        ids = [START_ID]
        for line in lines:
            match = prepared.match(line.strip())
            if match is None:
                ids += list(tok.encode(line, language))[1:]  # without its [START]
                continue
            lang = match.group(1).lower()
            lang = "zh" if lang == "zh-cn" else lang
            text = match.group(2).strip()
            if _CJK_RE.search(text):  # hand-written ComfyUI style ("[zh]你好"): clean and romanise it
                from .lyrics import preprocess_line

                text = preprocess_line(text, lang)
            ids += _bpe_ids(tok, text.lower(), lang) + [LINE_BREAK_ID]
    return ids, [1] * len(ids)


def romanize(lyrics: str, language: str = "auto") -> tuple[str, str]:
    """(romanised lyrics, a per-line report ``"line | lang | text"``) for the Lyric Romanizer node.

    The lyrics come back one ``[xx]``-tagged line per input line (structure and empty lines as they
    are; a line the official tokenizer would drop is left out and marked in the report).
    """
    from .lyrics import romanize_lyrics

    language = validate_choice(language, LANGUAGES, "language")
    lyrics = lyrics or ""
    text, languages = romanize_lyrics(lyrics, language)
    out_lines = iter(text.split("\n"))
    report = []
    for i, raw in enumerate(lyrics.split("\n")):
        lang = languages[i] if i < len(languages) else ""
        if not raw.strip():
            next(out_lines, "")
            shown, lang = "", "-"
        elif not lang:
            shown, lang = f"(dropped: cannot be tokenized) {raw.strip()}", "-"
        else:
            shown = next(out_lines, "")
        report.append(f"{i + 1:>3} | {lang:<2} | {shown}".rstrip())
    return text, "\n".join(report)


@torch.no_grad()
def encode_conditioning(bundle, tags: str, lyrics: str, lyrics_strength: float = 1.0,
                        language: str = "auto", lyrics_vocab=None, vocab_dirs=(),
                        progress: Optional[ProgressHook] = None) -> TextConditioning:
    """Tags -> UMT5 states (and the ERG-tag null states), lyrics -> v1 lyric ids; batch 1, on the CPU.
    ``progress(done, total)`` after every UMT5 block (a hook may raise to interrupt).

    The ERG null text states are the same UMT5 pass with the attention queries of blocks 8-9 softened
    (official ``get_text_embeddings_null``); the sampler uses them when ERG on tags is on. Both come
    from one pass that forks at block 8 (the first 8 blocks are shared).
    """
    from .erg import ERG_TEXT_BLOCKS, erg_text

    tags = tags or ""
    lyrics = lyrics or ""
    validate_text(tags, lyrics)
    lyrics_strength = validate_range(lyrics_strength, 0.0, 10.0, "lyrics_strength")
    ids, mask = tokenize_lyrics(lyrics, language, lyrics_vocab, vocab_dirs)
    if len(ids) > MAX_LYRIC_TOKENS:  # the lyric encoder's attention grows with the square of the length
        raise InputError(f"lyrics: {len(ids)} lyric tokens is more than the {MAX_LYRIC_TOKENS} ACE-Step v1 reads "
                         "(its training limit); shorten the lyrics")
    vocab = int(getattr(bundle.dit.config, "lyric_encoder_vocab_size", 0) or 0)
    if vocab and max(ids) >= vocab:
        raise CheckpointError(
            f"lyrics: token id {max(ids)} is outside this model's lyric vocabulary ({vocab} entries); "
            "the checkpoint does not match the v1 lyric tokenizer"
        )
    text_ids, text_mask = bundle.text_tokenizer([tags], max_length=256)  # (1, S_txt) each
    device = _param(bundle.text_encoder).device
    text_ids, text_mask = text_ids.to(device), text_mask.to(device)
    fork = min(ERG_TEXT_BLOCKS[0], len(bundle.text_encoder.encoder.block))  # no blocks 8-9: ERG = plain
    # one pass: the blocks before the softened ones run once, then row 0 plain and row 1 ERG
    with layer_progress(bundle.text_encoder.encoder.block, progress), \
            erg_text(bundle.text_encoder, rows=[slice(1, 2)]):
        both = bundle.text_encoder(text_ids, text_mask, fork_at=fork).float().cpu()  # (2, S_txt, D_txt)
    states, erg_states = both[:1], both[1:]
    return TextConditioning(
        text_states=states,
        text_mask=text_mask.cpu().long(),
        lyric_ids=torch.tensor([ids], dtype=torch.long),
        lyric_mask=torch.tensor([mask], dtype=torch.long),
        lyrics_strength=float(lyrics_strength),
        erg_text_states=erg_states,
    )


def _sampling_conditioning(cond: TextConditioning, name: str, with_erg: bool):
    from .sampling import Conditioning

    if not isinstance(cond, TextConditioning):
        raise InputError(f"{name}: expected an ACE-Step conditioning, got {type(cond).__name__}")
    return Conditioning(
        text_states=cond.text_states.float(),
        text_mask=cond.text_mask,
        speaker_embeds=None,
        lyric_ids=cond.lyric_ids.long(),
        lyric_mask=cond.lyric_mask,
        lyrics_strength=float(cond.lyrics_strength),
        text_states_null=cond.erg_text_states.float() if (with_erg and cond.erg_text_states is not None) else None,
    ).validate(name)


def seed_generators(seed, batch: int) -> list:
    """One CPU generator per batch item, item k seeded with ``seed + k`` (mod 2**64)."""
    seed = validate_range(seed, 0, 2**64 - 1, "seed", integer=True)
    return [torch.Generator("cpu").manual_seed((seed + k) % 2**64) for k in range(batch)]


def generate(bundle, cond: TextConditioning, negative: Optional[TextConditioning] = None, *,
             seconds: Optional[float] = None, batch_size: int = 1, latent: Optional[torch.Tensor] = None,
             seed: int = 0, settings: Optional[SamplerSettings] = None, denoise: float = 1.0,
             noise: Optional[torch.Tensor] = None, progress: Optional[ProgressHook] = None) -> torch.Tensor:
    """Sample a latent (B, 8, 16, T) float32.

    Length and batch: ``latent``'s (B, T), else ``seconds`` and ``batch_size``. ``denoise`` 1.0
    generates from noise (the latent's values are not used); below 1.0 ``latent`` is the source of
    the official audio-to-audio with ``ref_audio_strength = 1 - denoise`` (``int(denoise * steps)``
    steps); 0.0 returns the latent unchanged. ``negative`` replaces the official null condition.
    Noise: ``noise`` if given, else item k is drawn from a generator seeded ``seed + k``.
    """
    from .sampling import sample

    settings = (settings if settings is not None else SamplerSettings()).validate()
    denoise = validate_range(denoise, 0.0, 1.0, "denoise")
    if latent is not None:
        samples = latent_samples({"samples": latent}, "latent") if not isinstance(latent, dict) else latent_samples(latent, "latent")
        batch, frames = int(samples.shape[0]), int(samples.shape[-1])
    else:
        if seconds is None:
            raise InputError("seconds: give the length to generate (or a latent)")
        frames = frames_for_seconds(validate_seconds(seconds))
        batch = validate_range(batch_size, 1, 4096, "batch_size", integer=True)
        samples = None
    if denoise < 1.0 and samples is None:
        raise InputError(f"denoise: {denoise:g} needs a source latent (audio-to-audio); use 1.0 to generate from noise")
    if denoise == 0.0:
        return samples.float().clone()
    strength = 1.0 - denoise  # the official ref_audio_strength
    if denoise < 1.0 and int((1.0 - strength) * settings.steps) < 1:  # the official step count
        raise InputError(
            f"denoise: {denoise:g} x {settings.steps} steps leaves no step to run; raise denoise or steps "
            f"(at least {1.0 / settings.steps:.3f} for {settings.steps} steps)"
        )
    if denoise < 1.0 and bool((samples == 0).all()):
        import logging

        logging.getLogger("AceForge").warning(
            "denoise %.2f on an all-zero latent: audio-to-audio needs the encoded source audio", denoise)
    positive = _sampling_conditioning(cond, "positive", with_erg=settings.erg_tag)
    null = _sampling_conditioning(negative, "negative", with_erg=False) if negative is not None else None
    generators = seed_generators(seed, batch)
    with block_interrupts(bundle.dit.transformer_blocks, progress):  # Cancel inside a long step too
        return sample(
            bundle.dit, positive, null, noise,
            frames=frames, batch_size=batch, steps=settings.steps, scheduler=settings.sampler,
            shift=settings.shift, omega_scale=settings.omega, **settings.guidance_kwargs(),
            ref_latents=samples.float() if denoise < 1.0 else None,
            ref_audio_strength=strength,
            generator=generators if batch > 1 else generators[0],
            progress=progress,
        )


def decode(bundle, latent: torch.Tensor, progress: Optional[ProgressHook] = None) -> torch.Tensor:
    """Latent (B, 8, 16, T) -> stereo waveform (B, 2, T * 4096) float32 at 44.1 kHz (on the VAE's device)."""
    samples = latent_samples(latent if isinstance(latent, dict) else {"samples": latent}, "latent")
    device = _param(bundle.vae).device
    with torch.no_grad():
        return bundle.vae.decode(samples.to(device), progress=progress).float()


def encode_audio(bundle, waveform: torch.Tensor, sample_rate: int,
                 progress: Optional[ProgressHook] = None) -> torch.Tensor:
    """Waveform (B, C, L) or (C, L) at any rate -> latent (B, 8, 16, ceil(L_44k / 4096)) float32."""
    waveform = validate_audio(waveform, sample_rate, LATENT, "audio")
    device = _param(bundle.vae).device
    with torch.no_grad():
        return bundle.vae.encode(waveform.to(device, torch.float32), int(sample_rate), progress=progress).float()
