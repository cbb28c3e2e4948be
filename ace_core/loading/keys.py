"""Key bookkeeping for checkpoints: prefixes, listings, and the strict key/shape check.

:func:`match_state_keys` compares a file's keys and shapes with a module's state dict: every file
key must fill a tensor of the same shape, be on the explicit ignore list (with its expected shape)
or be skipped for a stated reason; anything missing, unexpected or of another shape raises one
:class:`~ace_core.errors.CheckpointError` naming the file and listing the keys.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Mapping, Optional

from ..errors import CheckpointError

MAX_LISTED = 8


def listing(keys, limit: int = MAX_LISTED) -> str:
    """'a, b, c, ... (n more)' of the sorted keys, for error messages."""
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def summarize_keys(keys: Iterable[str], limit: int = 6) -> str:
    """'N tensors; top-level prefixes a.* (n), b.* (m), ...' for error messages."""
    keys = list(keys)
    counts: dict = {}
    for k in keys:
        parts = k.split(".")
        top = ".".join(parts[:2]) if len(parts) > 2 else parts[0]
        counts[top] = counts.get(top, 0) + 1
    tops = sorted(counts.items(), key=lambda kv: -kv[1])
    shown = ", ".join(f"{p}.* ({n})" for p, n in tops[:limit])
    more = f", ... {len(tops) - limit} more" if len(tops) > limit else ""
    return f"{len(keys)} tensors; prefixes {shown}{more}" if keys else "no tensors"


def count_indices(keys, pattern: str) -> int:
    """Number of distinct indices N in keys matching ``pattern`` (with one ``(\\d+)`` group)."""
    rx = re.compile(pattern)
    return len({m.group(1) for k in keys if (m := rx.match(k))})


def find_prefixes(keys: Iterable[str], markers: tuple) -> list:
    """Every prefix ``p`` under which all ``markers`` (key suffixes) exist, sorted."""
    keys = set(keys)
    first = markers[0]
    found = set()
    for k in keys:
        if k.endswith(first):
            prefix = k[: len(k) - len(first)]
            if prefix and not prefix.endswith("."):
                continue  # the marker must start at a key-name boundary
            if all(prefix + m in keys for m in markers[1:]):
                found.add(prefix)
    return sorted(found)


def bare_keys(keys: Iterable[str], prefix: str) -> dict:
    """Keys under ``prefix`` with the prefix stripped -> the full key."""
    n = len(prefix)
    return {k[n:]: k for k in keys if k.startswith(prefix)}


def rename_weight_norm(file_keys: dict) -> dict:
    """Map torch ``parametrizations.weight.original0/1`` names to ``weight_g`` / ``weight_v`` (in place)."""
    for k in list(file_keys):
        m = re.match(r"(.*)\.parametrizations\.weight\.original([01])$", k)
        if m:
            file_keys[f"{m.group(1)}.weight_{'g' if m.group(2) == '0' else 'v'}"] = file_keys.pop(k)
    return file_keys


def match_state_keys(file, what: str, own_shapes: Mapping[str, tuple], param_names: set,
                     file_keys: Mapping[str, str], file_shapes: Mapping[str, tuple], *,
                     ignorable: Optional[Mapping[str, tuple]] = None,
                     skip: Optional[Callable[[str], Optional[str]]] = None,
                     prefix: str = "") -> tuple:
    """Match a file's keys to a module: -> (load map bare key -> full file key, skipped full key -> why).

    own_shapes: the module's bare key -> shape; param_names: which of them are parameters (buffers
    may be absent from the file). file_keys: bare key -> full file key; file_shapes: full key ->
    shape. ignorable: bare key -> (expected shape or None, reason) skipped on purpose. skip(key):
    a reason to skip another key, else None. prefix: put before missing keys in the message.
    Raises CheckpointError ``"{file}: does not match the {what}: ..."`` listing the bad keys.
    """
    ignorable = ignorable or {}
    load, skipped, unexpected, mismatched = {}, {}, [], []
    for k, full in file_keys.items():
        shape = tuple(file_shapes[full])
        if k in own_shapes:
            if tuple(own_shapes[k]) != shape:
                mismatched.append(f"{full}: file {list(shape)} vs model {list(own_shapes[k])}")
            else:
                load[k] = full
        elif k in ignorable:
            want, why = ignorable[k]
            if want is not None and tuple(want) != shape:
                mismatched.append(f"{full}: file {list(shape)} vs expected {list(want)}")
            else:
                skipped[full] = why
        elif skip is not None and skip(k):
            skipped[full] = skip(k)
        else:
            unexpected.append(full)
    missing = [prefix + k for k in own_shapes if k in param_names and k not in file_keys]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys: {listing(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys: {listing(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatch for {len(mismatched)} keys: {listing(mismatched)}")
        raise CheckpointError(f"{file}: does not match the {what}: " + "; ".join(parts))
    return load, skipped


__all__ = [
    "bare_keys", "count_indices", "find_prefixes", "listing", "match_state_keys", "rename_weight_norm",
    "summarize_keys",
]
