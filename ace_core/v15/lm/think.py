"""Thinking with the 5 Hz LM: phase 1 (metadata and caption) and phase 2 (audio codes).

As the official ``LLMHandler.generate_with_stop_condition``:

1. **Phase 1** (``lm_cot_prompt``): the LM writes ``<think>`` with bpm, caption, duration,
   keyscale, language and time signature under :func:`~.constraints.cot_grammar`. Fields the user
   gave are written as given; the switches choose what is generated (``metadata``: bpm, key,
   time signature, duration; ``caption``: the rewrite; ``language``). Phase 1 is skipped when
   nothing is left to generate. It runs without CFG (upstream forces scale 1 there).
2. **Phase 2** (``lm_codes_prompt``, the open-turn layout of current upstream by default, the
   closed-turn legacy one as an option): the metadata, re-written as the YAML block
   (:func:`~..prompts.format_cot`), then exactly ``int(duration × 5)`` audio codes per item, with
   CFG against the negative prompt. Item k samples from seed + k.

Differences from upstream, on purpose: upstream skips phase 1 whenever bpm, key, time signature
and duration are all given (so no caption rewrite or language either), and it takes the number
of codes from the user's duration only (the LM's own duration does not stop it). Here phase 1
runs while any switched-on field is missing, and the code count always follows the duration
in the plan (the user's, else the LM's, else 30 s).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

import torch

from ...errors import InputError
from ...progress import ProgressHook
from .. import prompts as P
from ..pipeline import SongFields
from .codes import CODES_PER_SECOND, codes_text
from .constraints import CAPTION_MAX_TOKENS, cot_grammar, token_tables
from .decode import DecodeStats, decode_codes, decode_grammar
from .model import FiveHzLM
from .sampling import LMSampling, make_generators

__all__ = ["ThinkOptions", "ThinkResult", "think", "user_metadata", "DEFAULT_DURATION"]

DEFAULT_DURATION = 30
METADATA_FIELDS = ("bpm", "duration", "keyscale", "timesignature")
_COT_BUDGET = {"caption": 120, "language": 4}  # rough token counts for the progress total


@dataclass(frozen=True)
class ThinkOptions:
    """What the LM decides. metadata / caption / language: generate those fields when the user
    left them empty; codes: run phase 2; style: phase-2 prompt layout (``open_turn`` |
    ``closed_turn``); max_duration: the longest duration phase 1 may choose (seconds);
    caption_tokens: the longest caption rewrite, in tokens (upstream: 512)."""

    metadata: bool = True
    caption: bool = True
    language: bool = True
    codes: bool = True
    style: str = "open_turn"
    max_duration: int = P.DURATION_RANGE[1]
    caption_tokens: int = CAPTION_MAX_TOKENS


@dataclass
class ThinkResult:
    """metadata: the plan (bpm, caption, duration, keyscale, language, timesignature; what is
    known); given: the fields the user gave; generated: the fields the LM wrote; cot: the
    ``<think>`` block phase 2 saw; codes: (B, N) LongTensor of code values or None; stats."""

    metadata: dict
    given: dict
    generated: tuple
    cot: str
    codes: Optional[torch.Tensor]
    stats: DecodeStats = field(default_factory=DecodeStats)
    text: str = ""

    @property
    def duration(self) -> float:
        return float(self.given.get("duration_seconds", self.metadata.get("duration", DEFAULT_DURATION)))

    def codes_text(self, item: int = 0) -> str:
        """Item ``item``'s codes as ``<|audio_code_N|>`` tokens (empty without codes)."""
        return "" if self.codes is None else codes_text(self.codes[item])

    def song_fields(self, base: SongFields) -> SongFields:
        """``base`` (the user's fields) completed with the plan, for the DiT. The caption is the
        LM's rewrite when it wrote one; with codes the task becomes ``cover`` (upstream's LM path:
        the codes become the DiT's source hints, with the cover instruction)."""
        m = self.metadata
        lang = base.language if base.language not in (None, "", "unknown") else m.get("language", "unknown")
        return replace(
            base,
            caption=m["caption"] if "caption" in self.generated and m.get("caption") else base.caption,
            bpm=base.bpm if base.bpm else m.get("bpm"),
            keyscale=base.keyscale or m.get("keyscale"),
            timesignature=base.timesignature or m.get("timesignature"),
            language=lang if lang in P.VALID_LANGUAGES else "unknown",
            duration=self.duration,
            task="cover" if self.codes is not None else base.task,
        )


def user_metadata(*, bpm=None, keyscale=None, timesignature=None, duration=None, language=None) -> dict:
    """The user's fields, validated, as the CoT writes them (absent = not given).

    Duration is written as whole seconds (upstream's ``int(duration)``); the exact value stays
    under ``duration_seconds`` for the code count.
    """
    given: dict = {}
    if P.validate_bpm(bpm) is not None:
        given["bpm"] = P.validate_bpm(bpm)
    if P.validate_keyscale(keyscale) is not None:
        given["keyscale"] = P.validate_keyscale(keyscale)
    if P.validate_time_signature(timesignature) is not None:
        given["timesignature"] = P.validate_time_signature(timesignature)
    seconds = P.validate_duration(duration) if duration not in (None, 0, "") else None
    if seconds is not None:
        given["duration"] = int(seconds)
        given["duration_seconds"] = float(seconds)
    lang = P.validate_language(language)
    if lang != "unknown":
        given["language"] = lang
    return given


def _to_generate(options: ThinkOptions, given: dict) -> tuple:
    wanted = (METADATA_FIELDS if options.metadata else ()) + (("caption",) if options.caption else ()) \
        + (("language",) if options.language else ())
    return tuple(f for f in wanted if f not in given)


@torch.no_grad()
def think(lm: FiveHzLM, tokenizer, caption: str, lyrics: str, *, bpm=None, keyscale=None, timesignature=None,
          duration=None, language=None, options: ThinkOptions = ThinkOptions(),
          sampling: LMSampling = LMSampling(), seed=0, batch_size: int = 1,
          progress: Optional[ProgressHook] = None) -> ThinkResult:
    """Phase 1 then (``options.codes``) phase 2. ``progress(tokens, total)`` counts tokens of
    both phases (phase 2: codes × items); a hook that raises cancels between two tokens."""
    if not isinstance(caption, str) or not isinstance(lyrics, str):
        raise InputError("caption and lyrics: expected strings")
    if options.style not in P.LM_CODES_STYLES:
        raise InputError(f"LM prompt style: {options.style!r}; allowed: {', '.join(P.LM_CODES_STYLES)}")
    if not P.DURATION_RANGE[0] <= int(options.max_duration) <= P.DURATION_RANGE[1]:
        raise InputError(f"max_duration: must be in {P.DURATION_RANGE[0]}–{P.DURATION_RANGE[1]} s, "
                         f"got {options.max_duration}")
    if not 1 <= int(batch_size) <= 16:
        raise InputError(f"batch_size: must be in 1–16 for the LM, got {batch_size}")
    sampling = sampling.checked()
    given = user_metadata(bpm=bpm, keyscale=keyscale, timesignature=timesignature, duration=duration,
                          language=language)
    generate = _to_generate(options, given)
    stats = DecodeStats()
    seconds_known = given.get("duration_seconds")
    codes_total = 0 if not options.codes else int(float(seconds_known or DEFAULT_DURATION) * CODES_PER_SECOND) * batch_size
    cot_budget = 8 * len(generate) + sum(_COT_BUDGET.get(f, 0) for f in generate) if generate else 0

    metadata = {k: v for k, v in given.items() if k != "duration_seconds"}
    text = ""
    if generate:
        cot_fields = {k: v for k, v in metadata.items()}
        grammar = cot_grammar(token_tables(tokenizer), given=cot_fields, generate=generate,
                              max_duration=int(options.max_duration), caption_tokens=int(options.caption_tokens))
        prompt = tokenizer.encode(P.lm_cot_prompt(caption, lyrics))
        (generator,) = make_generators(seed, 1, lm.device)
        tokens = decode_grammar(lm, grammar, prompt, sampling=replace(sampling, cfg_scale=1.0), generator=generator,
                                progress=progress, progress_span=(0, cot_budget + codes_total), stats=stats)
        text = tokenizer.decode(tokens)
        parsed, _ = P.parse_lm_output(text)
        metadata = {**parsed, **metadata}
    metadata.setdefault("duration", DEFAULT_DURATION)
    cot = P.format_cot(metadata)

    codes = None
    if options.codes:
        seconds = seconds_known if seconds_known is not None else float(metadata["duration"])
        count = int(seconds * CODES_PER_SECOND)
        done = stats.tokens
        cond = tokenizer.encode(P.lm_codes_prompt(caption, lyrics, cot, style=options.style))
        negative = tokenizer.encode(P.lm_codes_prompt(caption, lyrics, cot, unconditional=True,
                                                      negative_prompt=sampling.negative_prompt,
                                                      style=options.style))
        generators = make_generators(seed, batch_size, lm.device) if sampling.temperature > 0 else None
        codes = decode_codes(lm, cond, count, batch_size=batch_size, sampling=sampling, generators=generators,
                             negative=negative, progress=progress,
                             progress_span=(done, done + count * batch_size), stats=stats)
    return ThinkResult(metadata=metadata, given=given, generated=generate, cot=cot, codes=codes, stats=stats,
                       text=text)
