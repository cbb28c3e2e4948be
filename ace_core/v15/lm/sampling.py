"""Token sampling for the 5 Hz LM: CFG, top-k / top-p / min-p, temperature, seeded draws.

The order follows the official decoding loop (``llm_inference._generate_with_cfg_custom``):
CFG on float32 logits (``uncond + s·(cond − uncond)``), the constraint (only allowed tokens
reach this module), top-k, top-p, then temperature and a multinomial draw; temperature 0 is
argmax. min-p (not in upstream, off by default) drops tokens whose probability is below
``min_p`` times the best one, on the same untempered distribution as top-p.

Non-finite logits never crash a run: NaN becomes "not allowed" and +inf is clamped, so the
draw picks among the finite candidates; only when a row has no finite allowed logit at all the
run stops with :class:`LMNumericsError` naming the step and the dtype.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Optional, Sequence

import torch

from ...errors import AceStepError, InputError
from ..prompts import NO_USER_INPUT

__all__ = ["LMSampling", "LMNumericsError", "apply_cfg", "filter_logits", "draw", "make_generators"]

logger = logging.getLogger("AceForge")
_CLAMP = 1.0e4  # far above any real logit; +inf becomes this


class LMNumericsError(AceStepError):
    """The LM produced no finite logit for any allowed token (NaN/inf everywhere)."""


@dataclass(frozen=True)
class LMSampling:
    """Decoding settings (official defaults: temperature 0.85, top-p 0.9, CFG 2.0 on the codes).

    temperature: 0 = greedy; top_k: 0 = off; top_p: 1.0 = off; min_p: 0 = off; cfg_scale: 1 = no
    CFG (the codes phase); negative_prompt: the CFG negative (``NO USER INPUT`` = none).
    """

    temperature: float = 0.85
    top_p: float = 0.9
    top_k: int = 0
    min_p: float = 0.0
    cfg_scale: float = 2.0
    negative_prompt: str = NO_USER_INPUT

    def checked(self) -> "LMSampling":
        """The settings validated (InputError naming the field and its range)."""
        checks = (("temperature", self.temperature, 0.0, 5.0), ("top_p", self.top_p, 0.0, 1.0),
                  ("min_p", self.min_p, 0.0, 1.0), ("cfg_scale", self.cfg_scale, 1.0, 20.0))
        for name, value, low, high in checks:
            try:
                ok = math.isfinite(float(value)) and low <= float(value) <= high
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise InputError(f"LM {name}: must be a number in {low}–{high}, got {value!r}")
        if not isinstance(self.top_k, int) or isinstance(self.top_k, bool) or self.top_k < 0:
            raise InputError(f"LM top_k: must be a whole number ≥ 0 (0 = off), got {self.top_k!r}")
        if self.top_p <= 0.0:
            raise InputError("LM top_p: must be > 0 (1.0 = off)")
        return replace(self, negative_prompt=self.negative_prompt or NO_USER_INPUT)

    @property
    def uses_cfg(self) -> bool:
        return self.cfg_scale > 1.0


def apply_cfg(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """``uncond + scale·(cond − uncond)`` in float32."""
    cond, uncond = cond.float(), uncond.float()
    return uncond + scale * (cond - uncond)


def _sanitize(logits: torch.Tensor, step: int, dtype) -> torch.Tensor:
    """NaN -> -inf (not drawable), +inf -> a large finite value; raise when a row has nothing left."""
    best = logits.amax(dim=-1)  # NaN propagates: one pass tells whether anything is wrong
    if bool(torch.isfinite(best).all()):
        return logits
    bad = torch.isnan(logits) | (logits == math.inf)
    if bool(bad.any()):
        logger.warning("AceForge: the 5 Hz LM gave %d NaN/inf logits at step %d (%s); they are left out of "
                       "the draw", int(bad.sum()), step, str(dtype).replace("torch.", ""))
        logits = torch.where(torch.isnan(logits), -math.inf, logits).clamp(max=_CLAMP)
    if not bool(torch.isfinite(logits.amax(dim=-1)).all()):
        raise LMNumericsError(
            f"5 Hz LM: no finite logit for any allowed token at step {step} (model dtype "
            f"{str(dtype).replace('torch.', '')}); the weights or activations overflowed. Load the LM in "
            "bfloat16 or float32 instead of float16.")
    return logits


_TOP_P_FIRST = 1024  # sort only the best ones when they already hold top_p of the mass


def _top_p_cutoff(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """(R, 1): the worst logit nucleus sampling keeps (the token crossing ``top_p`` included).

    Exact: the best ``_TOP_P_FIRST`` are sorted first and the full sort runs only for a row
    whose nucleus is wider than that (rare for a trained LM)."""
    vocab = logits.shape[-1]
    probs = torch.softmax(logits, dim=-1)
    for width in dict.fromkeys((min(_TOP_P_FIRST, vocab), vocab)):
        best, order = torch.topk(probs, width, dim=-1)  # sorted, descending
        before = torch.cumsum(best, dim=-1) - best  # mass of the better tokens
        keep = (before <= top_p).sum(dim=-1, keepdim=True)  # (R, 1)
        if width == vocab or bool((keep < width).all()):
            return logits.gather(-1, order.gather(-1, keep - 1))
    raise AssertionError("unreachable")


def filter_logits(logits: torch.Tensor, s: LMSampling) -> torch.Tensor:
    """top-k, top-p and min-p on (R, V) float32 logits (removed entries -> -inf)."""
    vocab = logits.shape[-1]
    if 0 < s.top_k < vocab:
        kth = torch.topk(logits, s.top_k, dim=-1).values[..., -1:]  # (R, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    if s.top_p < 1.0:
        logits = logits.masked_fill(logits < _top_p_cutoff(logits, s.top_p), -math.inf)
    if s.min_p > 0.0:
        probs = torch.softmax(logits, dim=-1)
        logits = logits.masked_fill(probs < s.min_p * probs.amax(dim=-1, keepdim=True), -math.inf)
    return logits


def draw(logits: torch.Tensor, s: LMSampling, generators: Optional[Sequence[torch.Generator]], *,
         step: int = 0, dtype=torch.float32) -> torch.Tensor:
    """One index per row of (R, V) logits: argmax at temperature 0, else a seeded draw
    (row r from ``generators[r]``, by inverse CDF: one uniform number per row and token).
    Returns a LongTensor (R,) on the logits' device."""
    logits = _sanitize(logits, step, dtype)
    if s.temperature <= 0.0:
        return logits.argmax(dim=-1)
    if generators is None:
        raise InputError("LM sampling: temperature > 0 needs seeded generators")
    probs = torch.softmax(filter_logits(logits, s) / s.temperature, dim=-1)
    cdf = torch.cumsum(probs, dim=-1)  # (R, V)
    u = torch.cat([torch.rand(1, generator=g, device=cdf.device) for g in generators[:cdf.shape[0]]])
    u = (u * cdf[:, -1])[:, None]  # (R, 1), scaled to the row's total
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp(max=cdf.shape[-1] - 1)


def make_generators(seed, count: int, device) -> list:
    """``count`` generators on ``device``: item k draws from ``seed + k`` (or from ``seed[k]``)."""
    seeds = list(seed) if isinstance(seed, (list, tuple)) else [int(seed) + k for k in range(count)]
    if len(seeds) != count:
        raise InputError(f"seed: expected {count} seeds (one per item), got {len(seeds)}")
    device = torch.device(device)
    return [torch.Generator(device=device).manual_seed(int(s) % (2 ** 63)) for s in seeds]
