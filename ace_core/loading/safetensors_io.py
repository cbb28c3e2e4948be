"""Safetensors files read and written with plain file I/O, one tensor at a time.

:func:`read_header` parses and validates a header without reading any tensor data (truncated and
corrupt files are caught here, the error names the file); :func:`read_tensor` reads one tensor;
:func:`write_safetensors` streams a file from a producer, so saving never holds more than one
tensor.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

import torch

from ..errors import CheckpointError

NON_SAFETENSORS = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".gguf", ".onnx", ".npz")
"""Extensions of other checkpoint formats (refused: pickles may run code when loaded)."""

_DTYPES = {
    "F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2), "I64": (torch.int64, 8), "I32": (torch.int32, 4),
    "I16": (torch.int16, 2), "I8": (torch.int8, 1), "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1),
}
_DTYPE_NAMES = {v[0]: k for k, v in _DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a safetensors file: dtype name (``BF16`` ...), shape, absolute byte range."""

    dtype: str
    shape: tuple
    start: int
    end: int

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype][0]

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


@dataclass
class SafetensorsHeader:
    """The parsed header of a safetensors file (no tensor data read)."""

    path: Path
    tensors: dict
    metadata: dict
    file_size: int

    def keys(self):
        return self.tensors.keys()

    def shape(self, key: str) -> tuple:
        return self.tensors[key].shape

    @property
    def data_bytes(self) -> int:
        return sum(t.end - t.start for t in self.tensors.values())


def read_header(path: Union[str, Path]) -> SafetensorsHeader:
    """Parse and validate a safetensors header; raise ``CheckpointError`` naming the file otherwise.

    Checks: the 8-byte length prefix, a JSON object header, known dtypes, byte ranges that match the
    shapes, lie inside the file and do not overlap. A file cut short (an interrupted download) fails
    here with the number of bytes expected and found.
    """
    path = Path(path)
    if path.suffix.lower() in NON_SAFETENSORS:
        raise CheckpointError(
            f"{path}: only .safetensors checkpoints are supported (found a {path.suffix} file, which may "
            "run code when loaded); use the .safetensors release of the model"
        )
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{path}: not a safetensors file ({size} bytes, too short for a header)")
            (n,) = struct.unpack("<Q", head)
            if n == 0 or n > _MAX_HEADER:
                raise CheckpointError(
                    f"{path}: not a safetensors file (header length field {n} is implausible; corrupt or another format)"
                )
            if 8 + n > size:
                raise CheckpointError(
                    f"{path}: truncated safetensors file: the header needs {8 + n} bytes, the file has {size}"
                )
            raw = fh.read(n)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the file: {exc}") from exc
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt safetensors header (not valid JSON: {exc})") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: corrupt safetensors header (expected a JSON object)")
    data_start = 8 + n
    metadata = meta.pop("__metadata__", None) or {}
    tensors = {}
    spans = []
    for key, entry in meta.items():
        try:
            dtype = entry["dtype"]
            shape = tuple(int(s) for s in entry["shape"])
            begin, end = (int(v) for v in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: corrupt safetensors header entry for {key!r}: {entry!r}") from exc
        if dtype not in _DTYPES:
            raise CheckpointError(f"{path}: tensor {key!r} has unsupported dtype {dtype!r}")
        info = TensorInfo(dtype, shape, data_start + begin, data_start + end)
        if any(s < 0 for s in shape) or end < begin or (end - begin) != info.numel * _DTYPES[dtype][1]:
            raise CheckpointError(
                f"{path}: corrupt safetensors header: tensor {key!r} shape {list(shape)} {dtype} does not "
                f"match its byte range [{begin}, {end})"
            )
        tensors[key] = info
        spans.append((begin, end, key))
    spans.sort()
    expected_end = 0
    for begin, end, key in spans:
        if begin < expected_end:
            raise CheckpointError(f"{path}: corrupt safetensors header: tensor {key!r} overlaps another tensor")
        expected_end = end
    if data_start + expected_end > size:
        raise CheckpointError(
            f"{path}: truncated safetensors file: the header describes {data_start + expected_end} bytes, "
            f"the file has {size} (incomplete download?)"
        )
    return SafetensorsHeader(path=path, tensors=tensors, metadata=dict(metadata), file_size=size)


def read_tensor(fh, info: TensorInfo, path: Union[str, Path] = "") -> torch.Tensor:
    """Read one tensor (CPU, the file's dtype) with plain file I/O: no mmap, one buffer."""
    nbytes = info.end - info.start
    buf = torch.empty(nbytes, dtype=torch.uint8)
    if nbytes:
        fh.seek(info.start)
        view = memoryview(buf.numpy())
        got = 0
        while got < nbytes:
            r = fh.readinto(view[got:])
            if not r:
                raise CheckpointError(f"{path}: unexpected end of file while reading a tensor (truncated?)")
            got += r
    return buf.view(info.torch_dtype).reshape(info.shape)


def _tensor_bytes_view(t: torch.Tensor) -> memoryview:
    t = t.detach().to("cpu").contiguous()
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    return memoryview(t.reshape(-1).view(torch.uint8).numpy())


def write_safetensors(
    path: Union[str, Path],
    specs: Mapping[str, tuple],
    produce: Callable[[str], torch.Tensor],
    metadata: Optional[Mapping[str, str]] = None,
) -> Path:
    """Stream a safetensors file: ``specs`` key -> (torch dtype, shape); ``produce(key)`` -> tensor.

    Tensors are requested one at a time, in ``specs`` order, and written straight to disk, so the
    writer never holds more than one tensor. ``produce`` must return exactly the declared dtype/shape.
    """
    path = Path(path)
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for key, (dtype, shape) in specs.items():
        n = 1
        for s in shape:
            n *= int(s)
        nbytes = n * _DTYPES[_DTYPE_NAMES[dtype]][1]
        header[key] = {"dtype": _DTYPE_NAMES[dtype], "shape": [int(s) for s in shape],
                       "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * ((8 - len(raw) % 8) % 8)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for key, (dtype, shape) in specs.items():
            t = produce(key)
            if t.dtype != dtype or tuple(t.shape) != tuple(int(s) for s in shape):
                raise ValueError(
                    f"write_safetensors: {key}: produced {t.dtype} {tuple(t.shape)}, declared {dtype} {tuple(shape)}"
                )
            fh.write(_tensor_bytes_view(t))
            del t
    os.replace(tmp, path)
    return path


__all__ = ["NON_SAFETENSORS", "SafetensorsHeader", "TensorInfo", "read_header", "read_tensor", "write_safetensors"]
