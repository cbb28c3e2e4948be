"""Qwen3 byte-level BPE tokenizer for ACE-Step 1.5 caption and lyric prompts (``tokenizers`` only).

The pack ships the Qwen3 tokenizer data (``qwen3_tokenizer/``: ``vocab.json``, ``merges.txt``,
``tokenizer_config.json``; Qwen, Apache-2.0, byte-identical to ComfyUI's ``qwen25_tokenizer``), so
nothing has to be found at run time. An official checkpoint folder (``Qwen3-Embedding-0.6B/``
with ``tokenizer.json``, or ``vocab.json`` + ``merges.txt``) can be read instead.

Semantics follow the reference handler, which calls the HF tokenizer once per prompt with
``truncation=True`` and no special tokens added, then right-pads the batch:

* caption prompts: at most :data:`CAPTION_MAX_TOKENS` (256) ids;
* lyric prompts: at most :data:`LYRIC_MAX_TOKENS` (2048) ids;
* ``<|endoftext|>`` written in the text becomes the single id :data:`PAD_ID` (151643);
* batches are right-padded with :data:`PAD_ID`; the mask is True on real tokens.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from ..errors import CheckpointError, InputError

__all__ = [
    "PAD_ID", "IM_START_ID", "IM_END_ID", "THINK_ID", "THINK_END_ID", "BASE_VOCAB_SIZE",
    "CAPTION_MAX_TOKENS", "LYRIC_MAX_TOKENS", "BUNDLED_DIR", "Qwen3Tokenizer", "load_tokenizer",
    "pad_batch", "tokenize_captions", "tokenize_lyrics",
]

PAD_ID = 151643
"""``<|endoftext|>``: the pad id, and what the literal text ``<|endoftext|>`` tokenizes to."""
IM_START_ID = 151644
IM_END_ID = 151645
"""``<|im_end|>``: end of a chat turn (the LM's EOS)."""
THINK_ID = 151667
THINK_END_ID = 151668
BASE_VOCAB_SIZE = 151669
"""151,643 BPE entries + 26 added tokens (the text encoder's embedding rows)."""
CAPTION_MAX_TOKENS = 256
LYRIC_MAX_TOKENS = 2048
BUNDLED_DIR = Path(__file__).resolve().parent / "qwen3_tokenizer"

# Qwen2/Qwen3 pre-tokenization split (contractions, letters, single digits, punctuation, newlines, spaces).
_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

PathLike = Union[str, Path]


def _from_vocab_merges(folder: Path):
    """A ``tokenizers.Tokenizer`` equal to HF's Qwen2 fast tokenizer built from vocab + merges."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    vocab, merges, config = (folder / n for n in ("vocab.json", "merges.txt", "tokenizer_config.json"))
    for path in (vocab, merges, config):
        if not path.is_file():
            raise CheckpointError(f"Qwen3 tokenizer: {str(path)!r} is missing")
    try:
        bpe = models.BPE.from_file(str(vocab), str(merges), unk_token=None, fuse_unk=False,
                                   byte_fallback=False)
        added = json.loads(config.read_text(encoding="utf-8"))["added_tokens_decoder"]
    except Exception as exc:  # tokenizers raises plain Exception on malformed files
        raise CheckpointError(f"Qwen3 tokenizer in {str(folder)!r}: unreadable ({exc})") from exc
    tok = Tokenizer(bpe)
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    for token_id, spec in sorted(added.items(), key=lambda kv: int(kv[0])):
        tok.add_tokens([AddedToken(spec["content"], special=spec.get("special", False),
                                   normalized=spec.get("normalized", False),
                                   lstrip=spec.get("lstrip", False), rstrip=spec.get("rstrip", False),
                                   single_word=spec.get("single_word", False))])
        if tok.token_to_id(spec["content"]) != int(token_id):
            raise CheckpointError(
                f"Qwen3 tokenizer in {str(folder)!r}: added token {spec['content']!r} got id "
                f"{tok.token_to_id(spec['content'])}, the config says {token_id}")
    return tok


class Qwen3Tokenizer:
    """Text -> Qwen3 token ids (no special tokens added). Build with :func:`load_tokenizer`."""

    def __init__(self, tokenizer, source: str = ""):
        self._tok = tokenizer
        self.source = source
        self.pad_id = PAD_ID
        if tokenizer.token_to_id("<|endoftext|>") != PAD_ID:
            raise CheckpointError(f"{source}: '<|endoftext|>' is not id {PAD_ID}; not a Qwen3 tokenizer")

    @classmethod
    def from_folder(cls, folder: PathLike) -> "Qwen3Tokenizer":
        """From ``tokenizer.json`` (an official HF folder) or ``vocab.json`` + ``merges.txt``
        + ``tokenizer_config.json`` (the bundled copy)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise CheckpointError(f"Qwen3 tokenizer: {str(folder)!r} is not a folder")
        single = folder / "tokenizer.json"
        if single.is_file():
            from tokenizers import Tokenizer

            try:
                return cls(Tokenizer.from_file(str(single)), source=str(single))
            except Exception as exc:
                raise CheckpointError(f"Qwen3 tokenizer {str(single)!r}: unreadable ({exc})") from exc
        return cls(_from_vocab_merges(folder), source=str(folder))

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included (151,669 for the base Qwen3 tokenizer)."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, max_length: Optional[int] = None) -> list[int]:
        """Ids of ``text``, cut to the first ``max_length`` when given (HF ``truncation=True``)."""
        if not isinstance(text, str):
            raise InputError(f"text to tokenize: expected a string, got {type(text).__name__}")
        ids = self._tok.encode(text, add_special_tokens=False).ids
        return ids if max_length is None else ids[:max_length]

    def tokens(self, text: str) -> list[str]:
        """The byte-level token strings of ``text`` (``Ġ`` = space), for inspection."""
        return self._tok.encode(text, add_special_tokens=False).tokens

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> Optional[int]:
        return self._tok.token_to_id(token)

    def id_to_token(self, token_id: int) -> Optional[str]:
        """The byte-level string of one id (``Ġ`` = space, ``Ċ`` = newline), None when unknown."""
        return self._tok.id_to_token(int(token_id))

    def batch(self, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each text encoded and cut to ``max_length``, right-padded with :data:`PAD_ID`.

        Returns ``ids`` (B, L) int64 and ``mask`` (B, L) bool (True = real token), L = longest row.
        """
        return pad_batch([self.encode(t, max_length) for t in texts], self.pad_id)


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int = PAD_ID) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists to the longest: ``ids`` (B, L) int64 and ``mask`` (B, L) bool."""
    if not rows:
        raise InputError("prompts to tokenize: the batch is empty (need at least one text)")
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(list(row), dtype=torch.long)
        mask[i, :len(row)] = True
    return ids, mask


@lru_cache(maxsize=4)
def _load_cached(folder: str) -> Qwen3Tokenizer:
    return Qwen3Tokenizer.from_folder(folder)


def load_tokenizer(folder: Optional[PathLike] = None) -> Qwen3Tokenizer:
    """The Qwen3 tokenizer of ``folder`` (default: the copy bundled with the pack); cached."""
    return _load_cached(str(Path(folder).resolve() if folder is not None else BUNDLED_DIR))


def tokenize_captions(prompts: Sequence[str], tokenizer: Optional[Qwen3Tokenizer] = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Caption prompts (see ``prompts.caption_prompt``) -> ids, mask (B, L<=256)."""
    return (tokenizer or load_tokenizer()).batch(prompts, CAPTION_MAX_TOKENS)


def tokenize_lyrics(prompts: Sequence[str], tokenizer: Optional[Qwen3Tokenizer] = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Lyric prompts (see ``prompts.lyric_prompt``) -> ids, mask (B, L<=2048)."""
    return (tokenizer or load_tokenizer()).batch(prompts, LYRIC_MAX_TOKENS)
