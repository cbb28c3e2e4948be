"""The 5 Hz LM decoding loops: a grammar-driven loop (thinking, writing) and the codes loop.

Both keep one KV cache for all rows; the prompt runs once (cond and CFG-negative prompts
left-padded into one batch) and a batch of items shares that prefill through
:meth:`~..qwen3.KVCache.select_rows`. Every later forward pass feeds only new tokens: one per
step, or a whole run of forced tokens at once. Logits are computed only over the rows a step
may pick (:meth:`~.model.FiveHzLM.logits`).

CFG (``cfg_scale`` > 1) runs the negative prompt as extra rows; each step combines the last
logits of both and appends the chosen token to both, as ``_generate_with_cfg_custom`` does.
Progress: ``progress(tokens_done, tokens_total)`` after every token; a hook that raises (ComfyUI's
interrupt) cancels the run between two tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch

from ...errors import InputError
from ...progress import ProgressHook, report
from ..qwen3 import KVCache
from ..text_tokenizer import PAD_ID
from .constraints import Allowed, Forced, Grammar
from .model import AUDIO_CODE_COUNT, AUDIO_CODE_START, CODE_ROWS, FiveHzLM
from .sampling import LMSampling, apply_cfg, draw

__all__ = ["DecodeStats", "Rows", "decode_grammar", "decode_codes"]


@dataclass
class DecodeStats:
    """Tokens produced (sampled + forced), how many were sampled, and the wall time."""

    tokens: int = 0
    sampled: int = 0
    seconds: float = 0.0
    phases: dict = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def add(self, name: str, tokens: int, sampled: int, seconds: float) -> None:
        self.tokens += tokens
        self.sampled += sampled
        self.seconds += seconds
        self.phases[name] = {"tokens": tokens, "seconds": seconds}


class Rows:
    """R token sequences decoded together: their KV cache, padding mask and last hidden state."""

    def __init__(self, lm: FiveHzLM, prompts: Sequence[Sequence[int]]):
        if any(len(p) == 0 for p in prompts):
            raise InputError("LM prompt: empty")
        self.lm = lm
        length = max(len(p) for p in prompts)
        pad = PAD_ID if PAD_ID < lm.config.vocab_size else 0  # masked out either way
        ids = torch.full((len(prompts), length), pad, dtype=torch.long)
        valid = torch.zeros((len(prompts), length), dtype=torch.bool)
        for i, p in enumerate(prompts):  # left padding: every row ends at the same position
            ids[i, length - len(p):] = torch.tensor(list(p), dtype=torch.long)
            valid[i, length - len(p):] = True
        device = lm.device
        self.valid = None if bool(valid.all()) else valid.to(device)
        self.cache = KVCache()
        self.hidden = lm(ids.to(device), self.valid, cache=self.cache)[:, -1]  # (R, H)

    @property
    def count(self) -> int:
        return int(self.hidden.shape[0])

    def select(self, rows: Sequence[int]) -> None:
        """Keep rows ``rows`` (repeats allowed): one prefill serves a whole batch."""
        index = torch.tensor(list(rows), dtype=torch.long, device=self.hidden.device)
        self.cache = self.cache.select_rows(index)
        self.hidden = self.hidden[index]
        if self.valid is not None:
            self.valid = self.valid[index]

    def feed(self, tokens: torch.Tensor) -> None:
        """Append tokens (R, k) to every row and keep the last hidden state."""
        tokens = tokens.to(self.hidden.device)
        if self.valid is not None:
            self.valid = torch.cat([self.valid, self.valid.new_ones(tokens.shape)], dim=1)
        self.hidden = self.lm(tokens, self.valid, cache=self.cache)[:, -1]


def _candidate_logits(lm: FiveHzLM, hidden: torch.Tensor, allowed: Allowed) -> torch.Tensor:
    """Raw logits (R, n) over the candidates of ``allowed`` (block rows, then the explicit ids)."""
    parts = []
    if allowed.block is not None:
        parts.append(lm.logits(hidden, allowed.block))
    if allowed.ids is not None:
        parts.append(lm.logits(hidden, allowed.ids))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


def decode_grammar(lm: FiveHzLM, grammar: Grammar, prompt: Sequence[int], *,
                   sampling: LMSampling, generator: Optional[torch.Generator],
                   negative: Optional[Sequence[int]] = None, progress: Optional[ProgressHook] = None,
                   progress_span: tuple = (0, 0), stats: Optional[DecodeStats] = None,
                   phase: str = "think") -> list:
    """Decode one sequence under ``grammar``; returns the new token ids (forced ones included).

    ``negative``: the CFG negative prompt's ids (used when ``sampling.cfg_scale`` > 1).
    progress_span: (tokens already done, total) for the progress hook.
    """
    start = time.perf_counter()
    cfg = negative is not None and sampling.uses_cfg
    rows = Rows(lm, [prompt, negative] if cfg else [prompt])
    out: list = []
    pending: list = []
    sampled = 0
    done0, total = progress_span
    while True:
        step = grammar.step()
        if step is None:
            break
        if isinstance(step, Forced):
            for token in step.tokens:
                grammar.advance(token)
                out.append(token)
                pending.append(token)
            continue
        if pending:
            rows.feed(torch.tensor([pending] * rows.count, dtype=torch.long))
            pending = []
        raw = _candidate_logits(lm, rows.hidden, step)
        logits = apply_cfg(raw[:1], raw[1:], sampling.cfg_scale) if cfg else raw
        mask = step.mask(logits.device)
        if mask is not None:
            logits = logits.masked_fill(~mask, -torch.inf)
        index = int(draw(logits, sampling, None if generator is None else [generator],
                         step=len(out), dtype=lm.dtype)[0])
        token = step.token(index)
        grammar.advance(token)
        out.append(token)
        pending.append(token)
        sampled += 1
        report(progress, done0 + len(out), max(total, done0 + len(out)))
    if stats is not None:
        stats.add(phase, len(out), sampled, time.perf_counter() - start)
    return out


def decode_codes(lm: FiveHzLM, prompt: Sequence[int], count: int, *, batch_size: int,
                 sampling: LMSampling, generators: Optional[Sequence[torch.Generator]],
                 negative: Optional[Sequence[int]] = None, progress: Optional[ProgressHook] = None,
                 progress_span: tuple = (0, 0), stats: Optional[DecodeStats] = None) -> torch.Tensor:
    """Exactly ``count`` audio codes per item: LongTensor (batch_size, count) of values 0..63999.

    Only the 64,000 code rows are scored; the end token is not needed since the count is fixed
    (upstream blocks it until ``count`` codes, then forces it). Item k samples from
    ``generators[k]``; with CFG the negative prompt gets its own rows.
    """
    if not lm.has_audio_codes:
        raise InputError(f"LM: its vocabulary has {lm.config.vocab_size} rows, no audio-code tokens "
                         f"({AUDIO_CODE_START}..{AUDIO_CODE_START + AUDIO_CODE_COUNT - 1}); not a 5 Hz LM")
    start = time.perf_counter()
    cfg = negative is not None and sampling.uses_cfg
    rows = Rows(lm, [prompt, negative] if cfg else [prompt])
    rows.select([0] * batch_size + ([1] * batch_size if cfg else []))
    codes = torch.empty(batch_size, count, dtype=torch.long, device=rows.hidden.device)
    done0, total = progress_span
    for n in range(count):
        raw = lm.logits(rows.hidden, CODE_ROWS)  # (R, 64000)
        logits = apply_cfg(raw[:batch_size], raw[batch_size:], sampling.cfg_scale) if cfg else raw
        picked = draw(logits, sampling, generators, step=n, dtype=lm.dtype)  # (B,)
        codes[:, n] = picked
        if n + 1 < count:
            tokens = (picked + AUDIO_CODE_START).repeat(2 if cfg else 1)[:, None]  # (R, 1)
            rows.feed(tokens)
        report(progress, done0 + (n + 1) * batch_size, max(total, done0 + (n + 1) * batch_size))
    if stats is not None:
        stats.add("codes", count * batch_size, count * batch_size, time.perf_counter() - start)
    return codes.cpu()
