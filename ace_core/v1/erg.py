"""ERG ("entropy rectifying guidance") of ACE-Step v1: temperature hooks on query projections.

Forward hooks multiply the output of chosen query projections by τ = 0.01 while a weakened
prediction/embedding is computed; the context managers always remove their hooks, also when the
body raises. ``rows`` limits the scaling to some batch items (a guided step that runs cond and
uncond as one batch weakens only the uncond rows; those get exactly the values of a separate pass).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator, List, Optional, Sequence

from torch import nn

ERG_TAU = 0.01
ERG_TEXT_BLOCKS = (8, 10)
"""UMT5 blocks [first, last) whose queries ERG-tag softens (official ``get_text_embeddings_null``)."""


Rows = Optional[Sequence[slice]]
"""Batch rows (slices of dim 0) a hook scales; None = all."""


@contextmanager
def temperature_hooks(modules: Iterable[nn.Module], tau: float = ERG_TAU, rows: Rows = None) -> Iterator[int]:
    """Scale the output of every module in ``modules`` by ``tau`` while the block runs.

    ``rows``: only these batch rows (the others pass unchanged). Yields the number of hooks
    installed. Hooks are removed on exit, also on error.
    """
    handles = []

    def hook(_module, _inputs, output):
        if rows is None:
            return output * tau
        out = output.clone()
        for part in rows:
            out[part] = output[part] * tau  # the same operation as the whole-batch case
        return out

    try:
        for m in modules:
            handles.append(m.register_forward_hook(hook))
        yield len(handles)
    finally:
        for h in handles:
            h.remove()


def _indexed(container, lo: int, hi: int) -> List[int]:
    if container is None:
        return []
    n = len(container)
    return [i for i in range(lo, hi) if 0 <= i < n]


def erg_diffusion_modules(dit: nn.Module, l_min: int = 15, l_max: int = 20) -> List[nn.Module]:
    """``transformer_blocks[l_min..l_max-1].attn.to_q`` and ``.cross_attn.to_q`` (existing blocks)."""
    blocks = getattr(dit, "transformer_blocks", None)
    out = []
    for i in _indexed(blocks, l_min, l_max):
        out.append(blocks[i].attn.to_q)
        out.append(blocks[i].cross_attn.to_q)
    return out


def erg_lyric_modules(dit: nn.Module, l_min: int = 4, l_max: int = 6) -> List[nn.Module]:
    """``lyric_encoder.encoders[l_min..l_max-1].self_attn.linear_q`` (existing layers)."""
    enc = getattr(getattr(dit, "lyric_encoder", None), "encoders", None)
    return [enc[i].self_attn.linear_q for i in _indexed(enc, l_min, l_max)]


def erg_text_modules(text_encoder: nn.Module, l_min: int = ERG_TEXT_BLOCKS[0],
                     l_max: int = ERG_TEXT_BLOCKS[1]) -> List[nn.Module]:
    """UMT5 ``encoder.block[l_min..l_max-1].layer[0].SelfAttention.q`` (existing blocks)."""
    blocks = getattr(getattr(text_encoder, "encoder", None), "block", None)
    return [blocks[i].layer[0].SelfAttention.q for i in _indexed(blocks, l_min, l_max)]


@contextmanager
def erg_diffusion(dit: nn.Module, tau: float = ERG_TAU, l_min: int = 15, l_max: int = 20, rows: Rows = None):
    """Weaken the DiT's self/cross-attention queries of blocks 15–19 (the ERG unconditional pass);
    ``rows``: only those batch rows."""
    with temperature_hooks(erg_diffusion_modules(dit, l_min, l_max), tau, rows) as n:
        yield n


@contextmanager
def erg_lyric(dit: nn.Module, tau: float = ERG_TAU, l_min: int = 4, l_max: int = 6):
    """Weaken the lyric Conformer's queries of layers 4–5 (the ERG null encoder states)."""
    with temperature_hooks(erg_lyric_modules(dit, l_min, l_max), tau) as n:
        yield n


@contextmanager
def erg_text(text_encoder: nn.Module, tau: float = ERG_TAU, l_min: int = ERG_TEXT_BLOCKS[0],
             l_max: int = ERG_TEXT_BLOCKS[1], rows: Rows = None):
    """Weaken UMT5 self-attention queries of blocks 8–9 (the ERG "tag" null text embedding);
    ``rows``: only those batch rows (see ``UMT5Encoder.forward(fork_at=...)``)."""
    with temperature_hooks(erg_text_modules(text_encoder, l_min, l_max), tau, rows) as n:
        yield n


__all__ = [
    "ERG_TAU", "erg_diffusion", "erg_diffusion_modules", "erg_lyric", "erg_lyric_modules",
    "erg_text", "erg_text_modules", "temperature_hooks",
]
