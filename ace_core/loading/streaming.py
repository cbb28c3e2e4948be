"""Filling modules built on ``meta`` from safetensors files, one tensor at a time.

Memory stays close to the size of the weights in the target dtype: each tensor is read with plain
file I/O, cast to the dtype of the parameter it fills and installed with
``load_state_dict(assign=True)``; non-persistent buffers are then materialised on the target
device (modules recompute them in ``reset_buffers()``).
"""

from __future__ import annotations

from typing import Mapping, Optional, Union

import torch
from torch import nn

from ..errors import CheckpointError, InputError
from .keys import listing
from .safetensors_io import read_tensor


def default_dtype(device: Union[str, torch.device] = "cpu") -> torch.dtype:
    """bfloat16 where the device supports it, else float32."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    if dev.type == "cpu":
        return torch.bfloat16
    try:
        torch.zeros(1, dtype=torch.bfloat16, device=dev)
        return torch.bfloat16
    except Exception:  # pragma: no cover - backend specific
        return torch.float32


def check_float_dtype(dtype) -> torch.dtype:
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise InputError(f"dtype: expected a floating torch dtype (bfloat16, float16, float32), got {dtype!r}")
    return dtype


def materialize_buffers(module: nn.Module, device) -> None:
    """Give buffers still on ``meta`` real storage and let their modules recompute them."""
    for sub in module.modules():
        meta = [n for n, b in sub._buffers.items() if b is not None and b.device.type == "meta"]
        if not meta:
            continue
        for n in meta:
            sub._buffers[n] = torch.empty_like(sub._buffers[n], device=device)
        reset = getattr(sub, "reset_buffers", None)
        if not callable(reset):
            raise RuntimeError(
                f"{type(sub).__name__}: buffers {meta} were built on meta and the module has no reset_buffers()"
            )
        reset()
    left = [n for n, t in list(module.named_parameters()) + list(module.named_buffers()) if t.device.type == "meta"]
    if left:
        raise CheckpointError(f"internal: tensors left unloaded after loading: {listing(left)}")


_EXPONENT_BITS = {torch.bfloat16: 0x7F80, torch.float16: 0x7C00}


def all_finite(t: torch.Tensor) -> bool:
    """True when no value of ``t`` is NaN or infinite; fast enough to run on every loaded tensor
    (half types on the CPU: an all-ones exponent test on the raw bits; else one float sum)."""
    if not t.is_floating_point() or t.numel() == 0:
        return True
    bits = _EXPONENT_BITS.get(t.dtype)
    if bits is not None and t.device.type == "cpu":
        import numpy as np

        raw = t.detach().reshape(-1).view(torch.int16).numpy()
        return int(np.bitwise_and(raw, bits).max()) != bits
    if bool(torch.isfinite(t.sum(dtype=torch.float64 if t.dtype == torch.float64 else torch.float32))):
        return True
    return bool(torch.isfinite(t).all())  # the sum overflowed, or a value is not finite


def stream_into(module: nn.Module, plan: Mapping[str, tuple], device, progress=None,
                done_total: Optional[list] = None) -> None:
    """Read each (file, key) of ``plan`` (module key -> (path, TensorInfo)) and assign it.

    ``done_total`` is a ``[done, total]`` counter shared across modules; ``progress(done, total)``
    is called after every tensor.
    """
    targets = dict(module.state_dict(keep_vars=True))
    state = {}
    handles = {}
    try:
        for name, (path, info) in plan.items():
            fh = handles.get(path)
            if fh is None:
                fh = handles[path] = open(path, "rb")
            t = read_tensor(fh, info, path)
            if not all_finite(t):  # named here: later it would look like a bad latent or input
                raise CheckpointError(f"{path}: the tensor for {name!r} holds NaN or infinite values; the file is "
                                      "damaged (download it again) or was saved from a broken model")
            # floats take the dtype the module gave the tensor (a module may keep some in float32)
            want = targets[name].dtype if t.is_floating_point() and targets[name].is_floating_point() else t.dtype
            state[name] = t.to(device=device, dtype=want)
            del t
            if done_total is not None:
                done_total[0] += 1
                if progress is not None:
                    progress(done_total[0], done_total[1])
    finally:
        for fh in handles.values():
            fh.close()
    result = module.load_state_dict(state, strict=False, assign=True)
    del state
    params = {n for n, _ in module.named_parameters()}
    bad = [k for k in result.missing_keys if k in params] + list(result.unexpected_keys)
    if bad:
        raise CheckpointError(f"internal: load_state_dict left {listing(bad)}")


__all__ = ["all_finite", "check_float_dtype", "default_dtype", "materialize_buffers", "stream_into"]
