"""Constrained decoding for the 5 Hz LM: the chain-of-thought block as a token grammar.

The LM writes its plan as ``<think>\\n`` + one ``field: value`` line per field + ``</think>``,
fields in the order bpm, caption, duration, [genres], keyscale, language, timesignature
(the official ``MetadataConstrainedLogitsProcessor`` FSM). Here that block is a sequence of
segments, each telling the decoder what the next token may be:

* :class:`Literal` — fixed tokens (``<think>``, field names, user-given values): *forced*, so the
  decoder feeds them without computing any logits (several in one forward pass);
* :class:`Choice` — a value from a closed list (bpm 30–300, duration 10–max, the 70 keys, the
  language codes, time signatures 2/3/4/6), as a trie over each value's tokens (tokenized as
  the line ``field: value\\n``, so the tokens are those the model saw in training); only the
  trie's next tokens are scored;
* :class:`Line` — free text on the byte-level BPE rows: the caption (YAML may fold it: a line
  break followed by an indented line continues it; the first unindented token must be the next
  field's name) and genres (one line); no backticks, audio codes or special tokens;
* :class:`FreeText` — the lyrics after ``</think>`` in the writing modes, ended by ``<|im_end|>``.

:func:`cot_grammar` builds the block: user-given fields are literals (kept, never sampled),
switched-off fields are left out. The decoder asks :meth:`Grammar.step` for a :class:`Forced`
run or an :class:`Allowed` set and reports every chosen token to :meth:`Grammar.advance`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping, Optional, Sequence, Union

import torch

from ..prompts import BPM_RANGE, DURATION_RANGE, VALID_KEYSCALES, VALID_LANGUAGES, VALID_TIME_SIGNATURES
from ..text_tokenizer import IM_END_ID, THINK_END_ID, THINK_ID
from .model import TEXT_ROWS

__all__ = ["Forced", "Allowed", "Literal", "Choice", "Line", "FreeText", "Grammar", "TokenTables",
           "token_tables", "cot_grammar", "COT_FIELDS", "CAPTION_MAX_TOKENS", "LYRICS_MAX_TOKENS"]

COT_FIELDS = ("bpm", "caption", "duration", "genres", "keyscale", "language", "timesignature")
CAPTION_MAX_TOKENS = 512  # the official cap on the caption
LYRICS_MAX_TOKENS = 2048


@dataclass(frozen=True)
class Forced:
    """Tokens that must come next (no logits needed)."""

    tokens: tuple


class Allowed:
    """The candidates of one sampled token: every row of ``rows`` (a block), or the BPE rows where
    ``text_mask`` (151643,) is True, followed by the explicit ``ids`` (LongTensor (n,))."""

    def __init__(self, text_mask: Optional[torch.Tensor] = None, ids: Optional[torch.Tensor] = None,
                 rows: Optional[slice] = None):
        self.text_mask, self.ids = text_mask, ids
        self.block = rows if rows is not None else (TEXT_ROWS if text_mask is not None else None)
        self._masks: dict = {}

    @property
    def width(self) -> int:
        return 0 if self.block is None else self.block.stop - self.block.start

    def token(self, index: int) -> int:
        """The token id of candidate ``index``."""
        return self.block.start + index if index < self.width else int(self.ids[index - self.width])

    def mask(self, device) -> Optional[torch.Tensor]:
        """Bool (n,) over the candidates on ``device`` (None: all allowed); cached per device."""
        if self.text_mask is None:
            return None
        key = str(device)
        if key not in self._masks:
            extra = torch.ones(0 if self.ids is None else len(self.ids), dtype=torch.bool)
            self._masks[key] = torch.cat([self.text_mask, extra]).to(device)
        return self._masks[key]


Step = Union[Forced, Allowed, None]


class TokenTables:
    """What the grammar needs to know about the tokenizer, computed once per tokenizer."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.newline = tokenizer.encode("\n")[-1]
        strings = [tokenizer.id_to_token(i) or "" for i in range(TEXT_ROWS.stop)]
        # byte-level strings: Ġ = space, Ċ = newline, ĉ = tab, č = carriage return
        has_nl = torch.tensor(["Ċ" in s for s in strings])
        ends_nl = torch.tensor([s.endswith("Ċ") for s in strings])
        clean = torch.tensor(["`" not in s and "č" not in s and s.count("Ċ") <= 1 and s != "" for s in strings])
        indent = torch.tensor([s[:1] in ("Ġ", "ĉ") for s in strings])
        self.caption_ok = clean & (~has_nl | ends_nl)  # at most one line break, at the end
        self.line_start = clean & ~has_nl
        self.indent = indent & ~has_nl
        self.ends_line = ends_nl
        self.free_text = torch.tensor([s != "" for s in strings])

    def encode(self, text: str) -> list:
        return self.tokenizer.encode(text)

    def value_tokens(self, field: str, value) -> tuple:
        """Tokens of `` {value}\\n`` as they follow ``field:`` in the line ``field: value\\n``."""
        head = self.encode(f"{field}:")
        full = self.encode(f"{field}: {value}\n")
        return tuple(full[len(head):] if full[:len(head)] == head else self.encode(f" {value}\n"))


@lru_cache(maxsize=4)
def token_tables(tokenizer) -> TokenTables:
    return TokenTables(tokenizer)


class Segment:
    def step(self) -> Step:  # pragma: no cover - interface
        raise NotImplementedError

    def advance(self, token: int) -> bool:
        """Take the chosen token; False = the token is not this segment's (it has ended)."""
        raise NotImplementedError


class Literal(Segment):
    def __init__(self, tokens: Sequence[int]):
        self.tokens, self.pos = tuple(int(t) for t in tokens), 0

    def step(self) -> Step:
        return Forced(self.tokens[self.pos:]) if self.pos < len(self.tokens) else None

    def advance(self, token: int) -> bool:
        if self.pos >= len(self.tokens):
            return False
        self.pos += 1
        return True


def _trie(sequences) -> dict:
    root: dict = {}
    for seq in sequences:
        node = root
        for t in seq:
            node = node.setdefault(t, {})
    return root


class Choice(Segment):
    """One of a closed list of token sequences (a trie); a lone continuation is forced."""

    def __init__(self, trie: dict):
        self.node = trie

    def step(self) -> Step:
        if not self.node:
            return None
        if len(self.node) == 1:
            return Forced((next(iter(self.node)),))
        return Allowed(ids=torch.tensor(sorted(self.node), dtype=torch.long))

    def advance(self, token: int) -> bool:
        if not self.node:
            return False
        self.node = self.node[token]
        return True


class Line(Segment):
    """Free text up to a line break; ``multiline``: an indented next line continues it (YAML
    folding), and then ``end_token`` (the next field's first token) is the only other choice."""

    def __init__(self, tables: TokenTables, *, multiline: bool, end_token: Optional[int] = None,
                 max_tokens: int = CAPTION_MAX_TOKENS):
        self.t, self.multiline, self.max_tokens = tables, multiline, max_tokens
        self.count, self.after_break, self.done = 0, False, False
        self._first, self._more = Allowed(text_mask=tables.line_start), Allowed(text_mask=tables.caption_ok)
        self._next_line: Optional[Allowed] = None
        self.end_token = end_token

    @property
    def end_token(self) -> Optional[int]:
        return self._end_token

    @end_token.setter
    def end_token(self, token: Optional[int]) -> None:
        self._end_token = token
        if token is not None:
            self._next_line = Allowed(text_mask=self.t.indent, ids=torch.tensor([token], dtype=torch.long))

    def step(self) -> Step:
        if self.done:
            return None
        if self.after_break:  # only a multiline field gets here
            if self.count >= self.max_tokens:
                return None
            return self._next_line
        if self.count >= self.max_tokens:
            return Forced((self.t.newline,))
        return self._first if self.count == 0 else self._more

    def advance(self, token: int) -> bool:
        if self.done or (self.after_break and not (token < TEXT_ROWS.stop and bool(self.t.indent[token]))):
            self.done = True
            return False
        self.count += 1
        self.after_break = token < TEXT_ROWS.stop and bool(self.t.ends_line[token])
        if self.after_break and not self.multiline:
            self.done = True
        return True


class FreeText(Segment):
    """Any BPE text, ended by ``<|im_end|>`` (forced after ``max_tokens``)."""

    def __init__(self, tables: TokenTables, max_tokens: int = LYRICS_MAX_TOKENS):
        self.t, self.max_tokens, self.count, self.done = tables, max_tokens, 0, False
        self._allowed = Allowed(text_mask=tables.free_text, ids=torch.tensor([IM_END_ID], dtype=torch.long))

    def step(self) -> Step:
        if self.done:
            return None
        if self.count >= self.max_tokens:
            return Forced((IM_END_ID,))
        return self._allowed

    def advance(self, token: int) -> bool:
        if self.done:
            return False
        self.count += 1
        self.done = token == IM_END_ID
        return True


class Grammar:
    """Segments one after another."""

    def __init__(self, segments: Sequence[Segment]):
        self.segments, self.index = list(segments), 0

    def step(self) -> Step:
        while self.index < len(self.segments):
            got = self.segments[self.index].step()
            if got is not None:
                return got
            self.index += 1
        return None

    def advance(self, token: int) -> None:
        while self.index < len(self.segments):
            if self.segments[self.index].advance(int(token)):
                return
            self.index += 1
        raise RuntimeError(f"LM grammar: token {token} after the end")  # the decoder asks step() first


@lru_cache(maxsize=16)
def _choice_sequences(tables: TokenTables, field: str, max_duration: int) -> tuple:
    if field == "bpm":
        values = range(BPM_RANGE[0], BPM_RANGE[1] + 1)
    elif field == "duration":
        values = range(DURATION_RANGE[0], max_duration + 1)
    elif field == "keyscale":
        values = VALID_KEYSCALES
    elif field == "language":
        values = VALID_LANGUAGES
    else:
        values = VALID_TIME_SIGNATURES
    return tuple(tables.value_tokens(field, v) for v in values)


def cot_grammar(tables: TokenTables, *, given: Mapping[str, object], generate: Sequence[str],
                max_duration: int = DURATION_RANGE[1], caption_tokens: int = CAPTION_MAX_TOKENS,
                then: Optional[Segment] = None) -> Grammar:
    """The ``<think>`` block: fields of ``given`` written as given, fields of ``generate``
    sampled under their constraint, the others left out; ``then`` follows ``</think>``.
    caption_tokens: the longest caption (and genres line), in tokens."""
    segments: list = [Literal((THINK_ID, tables.newline))]
    for field in COT_FIELDS:
        if field in given:
            segments += [Literal(tables.encode(f"{field}:")), Literal(tables.value_tokens(field, given[field]))]
        elif field in generate:
            segments.append(Literal(tables.encode(f"{field}:")))
            if field == "caption":
                segments.append(Line(tables, multiline=True, max_tokens=caption_tokens))
            elif field == "genres":
                segments.append(Line(tables, multiline=False, max_tokens=caption_tokens))
            else:
                segments.append(Choice(_trie(_choice_sequences(tables, field, int(max_duration)))))
    segments.append(Literal((THINK_END_ID,)))
    for i, seg in enumerate(segments[:-1]):
        if isinstance(seg, Line) and seg.multiline:
            seg.end_token = segments[i + 1].tokens[0]  # the next field's name, or </think>
    if then is not None:
        segments.append(then)
    return Grammar(segments)
