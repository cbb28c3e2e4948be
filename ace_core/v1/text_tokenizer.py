"""UMT5 text tokenizer (the tags / caption side of ACE-Step v1).

Two sources, same output:

* the SentencePiece model bytes, as ComfyUI's all-in-one file stores them in the uint8 tensor
  ``text_encoders.spiece_model`` -> :meth:`UMT5Tokenizer.from_spiece_bytes` (``sentencepiece``);
* the official ``umt5-base/`` folder -> :meth:`UMT5Tokenizer.from_folder`: ``tokenizer.json`` through
  the ``tokenizers`` library (what the official pipeline's fast tokenizer reads), or ``spiece.model``
  when that is what the folder has.

Calling the tokenizer follows the HF T5 semantics the pipeline uses
(``tokenizer(texts, padding=True, truncation=True, max_length=256)``): each text is encoded, cut to
``max_length - 1`` pieces, ``</s>`` (id 1) is appended, and the batch is right-padded with the pad id
(0) to its longest row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence, Union

import torch

from ..errors import CheckpointError, InputError

__all__ = ["UMT5Tokenizer"]

BytesLike = Union[bytes, bytearray, memoryview, "torch.Tensor"]


def _to_bytes(data) -> bytes:
    if isinstance(data, torch.Tensor):
        if data.dtype != torch.uint8:
            raise CheckpointError(
                f"SentencePiece model tensor: expected dtype uint8, found {data.dtype} shape {tuple(data.shape)}"
            )
        return data.detach().cpu().contiguous().numpy().tobytes()
    if hasattr(data, "tobytes") and not isinstance(data, (bytes, bytearray)):
        return data.tobytes()
    return bytes(data)


class UMT5Tokenizer:
    """Text -> (ids, mask) for the UMT5 encoder. Build with ``from_spiece_bytes`` or ``from_folder``."""

    def __init__(self, encode: Callable[[str], list], eos_id: int = 1, pad_id: int = 0,
                 vocab_size: int | None = None, source: str = ""):
        self._encode = encode
        self.eos_id = int(eos_id)
        self.pad_id = int(pad_id)
        self.vocab_size = vocab_size
        self.source = source
        self._spiece_bytes: bytes | None = None

    # --- construction ------------------------------------------------------------------
    @classmethod
    def from_spiece_bytes(cls, data: BytesLike, source: str = "spiece model bytes") -> "UMT5Tokenizer":
        """From a serialized SentencePiece model (bytes, or ComfyUI's uint8 tensor)."""
        import sentencepiece as spm

        raw = _to_bytes(data)
        if not raw:
            raise CheckpointError(f"{source}: the SentencePiece model is empty (0 bytes)")
        sp = spm.SentencePieceProcessor()
        try:
            sp.LoadFromSerializedProto(raw)
        except Exception as exc:  # sentencepiece raises RuntimeError / OSError on a bad proto
            raise CheckpointError(
                f"{source}: not a valid SentencePiece model ({len(raw)} bytes): {exc}"
            ) from exc
        eos = sp.eos_id() if sp.eos_id() >= 0 else sp.piece_to_id("</s>")
        pad = sp.pad_id() if sp.pad_id() >= 0 else 0

        def encode(text: str) -> list:
            return list(sp.encode(text, out_type=int))

        tok = cls(encode, eos_id=eos, pad_id=pad, vocab_size=sp.get_piece_size(), source=source)
        tok._spiece_bytes = raw
        return tok

    @classmethod
    def from_tokenizer_json(cls, path: Union[str, Path]) -> "UMT5Tokenizer":
        """From a HF ``tokenizer.json`` (``tokenizers`` library); special tokens are added here, not by it."""
        from tokenizers import Tokenizer

        path = Path(path)
        try:
            tk = Tokenizer.from_file(str(path))
        except Exception as exc:
            raise CheckpointError(f"{path}: not a readable tokenizer.json: {exc}") from exc
        tk.no_truncation()
        tk.no_padding()
        eos = tk.token_to_id("</s>")
        pad = tk.token_to_id("<pad>")
        if eos is None:
            raise CheckpointError(f"{path}: the tokenizer has no '</s>' token; not a T5/UMT5 tokenizer")

        def encode(text: str) -> list:
            return list(tk.encode(text, add_special_tokens=False).ids)

        return cls(encode, eos_id=eos, pad_id=0 if pad is None else pad,
                   vocab_size=tk.get_vocab_size(with_added_tokens=True), source=str(path))

    @classmethod
    def from_folder(cls, path: Union[str, Path]) -> "UMT5Tokenizer":
        """From the official ``umt5-base/`` folder: ``tokenizer.json``, else ``spiece.model``."""
        folder = Path(path)
        if (folder / "tokenizer.json").is_file():
            return cls.from_tokenizer_json(folder / "tokenizer.json")
        if (folder / "spiece.model").is_file():
            return cls.from_spiece_bytes((folder / "spiece.model").read_bytes(), source=str(folder / "spiece.model"))
        found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise CheckpointError(
            f"{folder}: no UMT5 tokenizer (expected tokenizer.json or spiece.model); found {found[:12]}"
        )

    @property
    def spiece_bytes(self) -> bytes | None:
        """The SentencePiece model bytes when built from them (to re-embed on save), else None."""
        return self._spiece_bytes

    # --- use ---------------------------------------------------------------------------
    def encode(self, text: str, max_length: int | None = None) -> list:
        """One text -> ids ending with ``</s>``, at most ``max_length`` long."""
        if not isinstance(text, str):
            raise InputError(f"text: expected a string, got {type(text).__name__}")
        ids = self._encode(text)
        if max_length is not None:
            if max_length < 1:
                raise InputError(f"max_length: must be >= 1, got {max_length}")
            ids = ids[: max_length - 1]
        return ids + [self.eos_id]

    def __call__(self, texts: Union[str, Sequence[str]], max_length: int = 256):
        """texts (B strings) -> (ids (B, S) int64, mask (B, S) int64), S = longest row (<= max_length)."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            raise InputError("texts: expected at least one string, got an empty list")
        rows = [self.encode(t, max_length) for t in texts]
        longest = max(len(r) for r in rows)
        ids = torch.full((len(rows), longest), self.pad_id, dtype=torch.int64)
        mask = torch.zeros((len(rows), longest), dtype=torch.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.int64)
            mask[i, : len(row)] = 1
        return ids, mask

    def __repr__(self) -> str:
        return f"UMT5Tokenizer(source={self.source!r}, vocab_size={self.vocab_size}, eos={self.eos_id}, pad={self.pad_id})"
