"""Linear layers whose float32 CPU matmuls run on oneDNN instead of PyTorch's default BLAS.

PyTorch computes a float32 ``F.linear`` on x86 CPUs with MKL's sgemm. oneDNN (shipped inside
PyTorch as ``mkldnn``) has its own JIT kernels that are much faster at the shapes of these models
on some CPUs (about 1.5-2.5x on AMD EPYC Zen 4, the same or better elsewhere), for the same float32
products with float32 accumulation: the results differ only by summation order, as between any
two BLAS libraries.

The oneDNN path is taken only for float32 CPU tensors on x86 when no gradient is needed (it has
no backward); everything else, or a PyTorch build without the operator, runs ``F.linear``. The
operator is looked up and checked against ``F.linear`` once, at the first call (no work at import).
"""

from __future__ import annotations

import platform

import torch
import torch.nn.functional as F
from torch import nn

_UNCHECKED = object()
_onednn = _UNCHECKED  # the operator, None when unavailable, or _UNCHECKED
_enabled = True


def _lookup_onednn():
    """``torch.ops.mkldnn._linear_pointwise`` if present and equal to ``F.linear`` on a probe."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not torch.backends.mkldnn.is_available():
        return None
    try:
        op = torch.ops.mkldnn._linear_pointwise
        with torch.no_grad():
            x = torch.linspace(-1.0, 1.0, 24).reshape(2, 3, 4)
            w = torch.linspace(0.5, -0.5, 20).reshape(5, 4)
            b = torch.linspace(-0.2, 0.2, 5)
            ok = torch.allclose(op(x, w, b, "none", [], ""), F.linear(x, w, b), atol=1e-6)
        return op if ok else None
    except Exception:  # an older or different build: keep F.linear
        return None


def onednn_available() -> bool:
    """Whether float32 CPU linears can use oneDNN here (looked up on the first call)."""
    global _onednn
    if _onednn is _UNCHECKED:
        _onednn = _lookup_onednn()
    return _onednn is not None


def set_onednn_enabled(enabled: bool) -> bool:
    """Turn the oneDNN path on or off (e.g. to compare with ``F.linear``); returns the old setting."""
    global _enabled
    old, _enabled = _enabled, bool(enabled)
    return old


def _wants_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``; float32 CPU inference runs on oneDNN where available."""
    if (
        _enabled
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and x.device.type == "cpu"
        and weight.device.type == "cpu"
        and (bias is None or bias.dtype == torch.float32)
        and not _wants_grad(x, weight, bias)
        and onednn_available()
    ):
        return _onednn(x, weight, bias, "none", [], "")
    return F.linear(x, weight, bias)


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, same checkpoint keys, hooks as usual) computed with :func:`linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


__all__ = ["Linear", "linear", "onednn_available", "set_onednn_enabled"]
