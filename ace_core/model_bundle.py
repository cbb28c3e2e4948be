"""What every family's loaded model bundle shares: moving, casting and sizing its modules."""

from __future__ import annotations

from typing import Optional

import torch

__all__ = ["ModuleBundle"]


class ModuleBundle:
    """Mixin for a bundle with ``modules() -> {role: nn.Module}`` and a ``dtype`` attribute."""

    def modules(self) -> dict:  # pragma: no cover - every bundle defines it
        raise NotImplementedError

    def to(self, device=None, dtype: Optional[torch.dtype] = None):
        """Move (and optionally cast) every module in place; returns self."""
        for m in self.modules().values():
            m.to(device=device, dtype=dtype) if dtype is not None else m.to(device=device)
        if dtype is not None:
            self.dtype = dtype
        return self

    def parameter_bytes(self) -> int:
        """Bytes held by parameters and buffers of all modules."""
        return sum(t.numel() * t.element_size() for m in self.modules().values()
                   for t in (*m.parameters(), *m.buffers()))
