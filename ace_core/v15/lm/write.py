"""Writing with the 5 Hz LM: "simple mode" (a description -> caption, lyrics, metadata) and
"format" (tidy a user's caption and lyrics), as the official ``create_sample_from_query`` and
``format_sample_from_input``.

Both prompt the LM with their own system instruction, let it write the ``<think>`` block under the
same constrained grammar as thinking (genres included, as upstream), then free lyrics after
``</think>`` until ``<|im_end|>``. No CFG (upstream uses none here). Given fields are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Optional

import torch

from ...errors import InputError
from ...progress import ProgressHook
from .. import prompts as P
from .constraints import CAPTION_MAX_TOKENS, COT_FIELDS, LYRICS_MAX_TOKENS, FreeText, cot_grammar, token_tables
from .decode import DecodeStats, decode_grammar
from .model import FiveHzLM
from .sampling import LMSampling, make_generators
from .think import user_metadata

__all__ = ["WrittenSong", "write_song", "format_song", "INSPIRED_INSTRUCTION", "REWRITE_INSTRUCTION",
           "simple_mode_prompt", "format_prompt"]

INSPIRED_INSTRUCTION = "Expand the user's input into a more detailed and specific musical description:"
REWRITE_INSTRUCTION = "Format the user's input into a more detailed and specific musical description:"
INSTRUMENTAL_LYRICS = "[Instrumental]"


@dataclass
class WrittenSong:
    """What the LM wrote: caption, lyrics and the metadata (None where it wrote none)."""

    caption: str
    lyrics: str
    bpm: Optional[int] = None
    duration: Optional[int] = None
    keyscale: Optional[str] = None
    language: Optional[str] = None
    timesignature: Optional[str] = None
    genres: Optional[str] = None
    text: str = ""
    stats: Optional[DecodeStats] = None


def _chat(instruction: str, user: str) -> str:
    return P.render_chat([{"role": "system", "content": f"# Instruction\n{instruction}\n\n"},
                          {"role": "user", "content": user}], add_generation_prompt=True)


def simple_mode_prompt(description: str, instrumental: bool = False) -> str:
    """The inspiration prompt: the description, then ``instrumental: true|false``."""
    query = description if description and description.strip() else P.NO_USER_INPUT
    return _chat(INSPIRED_INSTRUCTION, f"{query}\n\ninstrumental: {'true' if instrumental else 'false'}")


def format_prompt(caption: str, lyrics: str) -> str:
    """The format prompt: the user's caption and lyrics (no trailing newline, as upstream)."""
    return _chat(REWRITE_INSTRUCTION, f"# Caption\n{caption}\n\n# Lyric\n{lyrics}")


def _lyrics_after_think(text: str) -> str:
    """The lyrics the LM wrote after ``</think>`` (a leading ``# Lyric`` header and the end token dropped)."""
    if "</think>" not in text:
        return ""
    after = text.split("</think>", 1)[1].strip()
    after = re.sub(r"^#\s*Lyrics?\s*\n", "", after, flags=re.IGNORECASE)
    return re.sub(r"<\|im_end\|>\s*$", "", after).strip()


def _write(lm, tokenizer, prompt: str, given: dict, sampling: LMSampling, seed, progress,
           max_lyrics_tokens: int, caption_tokens: int) -> tuple:
    tables = token_tables(tokenizer)
    generate = [f for f in COT_FIELDS if f not in given]
    grammar = cot_grammar(tables, given=given, generate=generate, caption_tokens=caption_tokens,
                          then=FreeText(tables, max_lyrics_tokens))
    (generator,) = make_generators(seed, 1, lm.device)
    stats = DecodeStats()
    tokens = decode_grammar(lm, grammar, tokenizer.encode(prompt), sampling=replace(sampling.checked(), cfg_scale=1.0),
                            generator=generator, progress=progress, stats=stats, phase="write",
                            progress_span=(0, 200 + max_lyrics_tokens // 4))
    text = tokenizer.decode(tokens)
    metadata, _ = P.parse_lm_output(text)
    return {**metadata, **given}, text, stats


def _song(metadata: dict, lyrics: str, text: str, stats, caption_default: str = "") -> WrittenSong:
    def _int(v):
        return v if isinstance(v, int) else None

    return WrittenSong(caption=metadata.get("caption") or caption_default, lyrics=lyrics,
                       bpm=_int(metadata.get("bpm")), duration=_int(metadata.get("duration")),
                       keyscale=metadata.get("keyscale"), language=metadata.get("language"),
                       timesignature=metadata.get("timesignature"), genres=metadata.get("genres"),
                       text=text, stats=stats)


@torch.no_grad()
def write_song(lm: FiveHzLM, tokenizer, description: str, *, instrumental: bool = False,
               language: Optional[str] = None, sampling: LMSampling = LMSampling(), seed=0,
               max_lyrics_tokens: int = LYRICS_MAX_TOKENS,
               caption_tokens: int = CAPTION_MAX_TOKENS, progress: Optional[ProgressHook] = None) -> WrittenSong:
    """Simple mode: a short description -> caption, lyrics and metadata. ``language`` (a code
    other than ``unknown``) is kept as given; ``instrumental`` asks for no vocals."""
    if not isinstance(description, str):
        raise InputError("description: expected a string")
    given = {k: v for k, v in user_metadata(language=language).items() if k == "language"}
    metadata, text, stats = _write(lm, tokenizer, simple_mode_prompt(description, instrumental), given, sampling,
                                   seed, progress, max_lyrics_tokens, caption_tokens)
    lyrics = _lyrics_after_think(text) or (INSTRUMENTAL_LYRICS if instrumental else "")
    return _song(metadata, lyrics, text, stats)


@torch.no_grad()
def format_song(lm: FiveHzLM, tokenizer, caption: str, lyrics: str, *, bpm=None, keyscale=None,
                timesignature=None, duration=None, language=None, sampling: LMSampling = LMSampling(), seed=0,
                max_lyrics_tokens: int = LYRICS_MAX_TOKENS,
               caption_tokens: int = CAPTION_MAX_TOKENS, progress: Optional[ProgressHook] = None) -> WrittenSong:
    """Format: the user's caption and lyrics -> a detailed caption, tidied lyrics and metadata.
    Given metadata fields are kept; lyrics the LM leaves empty stay the user's."""
    if not isinstance(caption, str) or not isinstance(lyrics, str):
        raise InputError("caption and lyrics: expected strings")
    caption = caption if caption.strip() else P.NO_USER_INPUT
    lyrics = lyrics if lyrics.strip() else INSTRUMENTAL_LYRICS
    given = user_metadata(bpm=bpm, keyscale=keyscale, timesignature=timesignature, duration=duration,
                          language=language)
    given.pop("duration_seconds", None)
    metadata, text, stats = _write(lm, tokenizer, format_prompt(caption, lyrics), given, sampling, seed, progress,
                                   max_lyrics_tokens, caption_tokens)
    return _song(metadata, _lyrics_after_think(text) or lyrics, text, stats, caption_default=caption)
