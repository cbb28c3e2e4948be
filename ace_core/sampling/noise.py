"""Seeded noise for the samplers: draws only from passed ``torch.Generator`` objects.

* :func:`randn`: a standard-normal draw from one generator or one generator per batch item.
* :func:`latent_noise`: a given noise tensor (shape-checked) or a fresh draw.
* :func:`mix_retake_noise`: ``cos(a)·noise + sin(a)·retake_noise`` with ``a = variance·π/2``
  (unit variance kept), the retake / repaint variation of a seed.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch

from ..errors import InputError

GeneratorLike = Union[torch.Generator, Sequence[torch.Generator], None]


def randn(shape: Sequence[int], generator: GeneratorLike, device=None,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A standard-normal draw from ``generator`` only (never the global RNG).

    ``generator`` is one ``torch.Generator`` (one draw of the whole shape) or a list with one
    generator per batch item (each draws its own ``(1, *shape[1:])`` slice, as diffusers'
    ``randn_tensor`` does). The draw happens on the generator's device and is then moved.
    """
    if generator is None:
        raise InputError("generator: a torch.Generator is required for random draws (got None)")
    shape = tuple(int(s) for s in shape)
    if isinstance(generator, (list, tuple)):
        if len(generator) == 1:
            generator = generator[0]
        else:
            if len(generator) != shape[0]:
                raise InputError(
                    f"generator: got {len(generator)} generators for a batch of {shape[0]}; "
                    "pass one generator or one per batch item")
            parts = [torch.randn((1,) + shape[1:], generator=g, device=g.device, dtype=dtype)
                     for g in generator]
            out = torch.cat(parts, dim=0)
            return out.to(device) if device is not None else out
    out = torch.randn(shape, generator=generator, device=generator.device, dtype=dtype)
    return out.to(device) if device is not None else out


def first_generator(generator: GeneratorLike) -> Optional[torch.Generator]:
    """The generator used for in-loop noise (the first of a list), as the official samplers do."""
    if isinstance(generator, (list, tuple)):
        return generator[0] if generator else None
    return generator


def latent_noise(noise: Optional[torch.Tensor], shape: tuple, generator: GeneratorLike,
                 device, name: str) -> torch.Tensor:
    """``noise`` checked against ``shape`` (float32 on ``device``), else a draw from ``generator``."""
    if noise is not None:
        if tuple(noise.shape) != tuple(shape):
            raise InputError(f"{name}: expected shape {tuple(shape)}, got {tuple(noise.shape)}")
        return noise.to(device=device, dtype=torch.float32)
    if generator is None:
        raise InputError(f"{name}: pass the noise tensor or a torch.Generator to draw it from")
    return randn(shape, generator, device=device, dtype=torch.float32)


def retake_angle(retake_variance: float) -> torch.Tensor:
    """a = variance·π/2 as a float32 0-d tensor (the official computation)."""
    return torch.tensor(retake_variance * math.pi / 2).to(torch.float32)


def mix_retake_noise(noise: torch.Tensor, retake_noise: torch.Tensor,
                     retake_variance: float) -> torch.Tensor:
    """``cos(a)·noise + sin(a)·retake_noise`` with ``a = variance·π/2`` (unit variance kept)."""
    a = retake_angle(retake_variance).to(noise.device)
    return torch.cos(a) * noise + torch.sin(a) * retake_noise


def check_variance(value: float) -> float:
    """A retake / repaint variance in [0, 1]."""
    if not (0.0 <= float(value) <= 1.0):
        raise InputError(f"retake_variance: must be in [0, 1], got {value!r}")
    return float(value)


__all__ = [
    "GeneratorLike", "check_variance", "first_generator", "latent_noise", "mix_retake_noise",
    "randn", "retake_angle",
]
