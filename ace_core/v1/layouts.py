"""Published ACE-Step v1 checkpoint layouts: prefix tables, safetensors headers, recognition.

Two layouts hold the same four models (DiT, music DCAE, vocoder, UMT5 encoder) under the same bare
key names, so one prefix table per layout is all the mapping there is:

* ComfyUI's all-in-one ``ace_step_v1_3.5b.safetensors`` (see :data:`COMFY_PREFIXES`): the DiT under
  ``model.diffusion_model.``, the VAE under ``vae.`` (``vae.dcae.*``, ``vae.vocoder.*``), UMT5 under
  ``text_encoders.umt5base.transformer.``, the SentencePiece model bytes as the uint8 tensor
  ``text_encoders.spiece_model``, plus an unused ``text_encoders.umt5base.logit_scale``;
* the official four-folder layout ``ACE-Step-v1-3.5B/`` (see :data:`OFFICIAL_FILES`), bare keys, a
  ``config.json`` per folder and the tokenizer files in ``umt5-base/``.

Recognition reads safetensors headers only (never the weights): :func:`read_header` parses and
validates the header (truncated and corrupt files are caught here), :func:`identify` names what a
key set is (a v1 component under some prefix, or another model family), :func:`detect_v1` resolves a
path to a :class:`V1Layout` or raises :class:`~ace_core.errors.CheckpointError` naming the file and
what was found.

The streaming reader/writer (:func:`read_tensor`, :func:`write_safetensors`) move one tensor at a
time with plain file I/O, so loading and saving never hold more than the tensors being kept.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Union

import torch

from ..errors import CheckpointError

__all__ = [
    "COMPONENTS",
    "COMFY_PREFIXES",
    "COMFY_SPIECE_KEY",
    "COMFY_IGNORED_KEYS",
    "OFFICIAL_FILES",
    "OFFICIAL_TOKENIZER_DIR",
    "TensorInfo",
    "SafetensorsHeader",
    "read_header",
    "read_tensor",
    "write_safetensors",
    "FileIdentity",
    "identify",
    "ComponentSource",
    "V1Layout",
    "detect_v1",
    "summarize_keys",
]

# --- prefix tables ---------------------------------------------------------------------------
COMPONENTS = ("dit", "dcae", "vocoder", "umt5")

COMPONENT_TITLES = {
    "dit": "ACE-Step v1 DiT (ace_step_transformer)",
    "dcae": "music DCAE (music_dcae_f8c8)",
    "vocoder": "HiFi-GAN vocoder (music_vocoder)",
    "umt5": "UMT5-base text encoder (umt5-base)",
}

#: ComfyUI all-in-one: component -> key prefix.
COMFY_PREFIXES = {
    "dit": "model.diffusion_model.",
    "dcae": "vae.dcae.",
    "vocoder": "vae.vocoder.",
    "umt5": "text_encoders.umt5base.transformer.",
}
#: ComfyUI all-in-one: the embedded UMT5 SentencePiece model (uint8 bytes).
COMFY_SPIECE_KEY = "text_encoders.spiece_model"
#: ComfyUI all-in-one: keys present on purpose that nothing uses.
COMFY_IGNORED_KEYS = {
    "text_encoders.umt5base.logit_scale": "ComfyUI's CLIP-style logit_scale, unused by a T5 encoder",
}

#: Official folder layout: component -> file relative to the root folder.
OFFICIAL_FILES = {
    "dit": "ace_step_transformer/diffusion_pytorch_model.safetensors",
    "dcae": "music_dcae_f8c8/diffusion_pytorch_model.safetensors",
    "vocoder": "music_vocoder/diffusion_pytorch_model.safetensors",
    "umt5": "umt5-base/model.safetensors",
}
OFFICIAL_TOKENIZER_DIR = "umt5-base"
_NON_SAFETENSORS = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".gguf", ".onnx", ".npz")

# --- safetensors headers ---------------------------------------------------------------------
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
    if path.suffix.lower() in _NON_SAFETENSORS:
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


# --- recognition -----------------------------------------------------------------------------
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


# marker key suffixes of each v1 component (all must be present under one prefix)
_V1_MARKERS = {
    "dit": ("genre_embedder.weight", "lyric_embs.weight", "transformer_blocks.0.attn.to_q.weight"),
    "dcae": ("encoder.conv_in.weight", "decoder.conv_in.weight", "decoder.conv_out.weight"),
    "vocoder": ("backbone.channel_layers.0.0.bias",),
    "umt5": ("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", "encoder.final_layer_norm.weight"),
}

# other model families, recognised by a key suffix (any prefix): (suffix, description)
_FOREIGN_MARKERS = (
    ("text_encoders.qwen3_06b.", "an ACE-Step 1.5 ComfyUI all-in-one checkpoint (Qwen3 text encoders)"),
    ("encoder.lyric_encoder.layers.0.input_layernorm.weight", "an ACE-Step 1.5 DiT (acestep-v15)"),
    ("detokenizer.layers.0.", "an ACE-Step 1.5 DiT (acestep-v15)"),
    ("decoder.layers.0.cross_attn_norm.weight", "an ACE-Step 1.5 DiT (acestep-v15)"),
    ("decoder.time_embed_r.", "an ACE-Step 1.5 DiT (acestep-v15)"),
    ("null_condition_emb", "an ACE-Step 1.5 DiT (acestep-v15)"),
    ("decoder.layers.1.layers.0.beta", "an ACE-Step 1.5 VAE (Oobleck, ComfyUI naming)"),
    ("res_unit1.snake1.alpha", "an ACE-Step 1.5 VAE (diffusers AutoencoderOobleck)"),
    ("layers.0.post_attention_layernorm.weight", "a Qwen3 model (ACE-Step 1.5 text encoder / 5 Hz LM)"),
    ("input_blocks.0.0.weight", "a Stable Diffusion UNet"),
    ("double_blocks.0.img_attn.qkv.weight", "a Flux transformer"),
    ("joint_blocks.0.x_block.attn.qkv.weight", "an SD3 MMDiT"),
    ("text_model.encoder.layers.0.self_attn.q_proj.weight", "a CLIP text encoder"),
)


@dataclass
class FileIdentity:
    """What a safetensors key set holds: v1 components found (component -> prefix) and a description."""

    components: dict
    foreign: list
    description: str
    has_spiece: bool = False

    @property
    def is_v1(self) -> bool:
        return bool(self.components) and not self.foreign


def _find_prefix(keys: set, markers: tuple) -> Optional[str]:
    first = markers[0]
    for k in sorted(keys):
        if k.endswith(first):
            prefix = k[: len(k) - len(first)]
            if all(prefix + m in keys for m in markers[1:]):
                return prefix
    return None


def identify(header: Union[SafetensorsHeader, Mapping[str, tuple]]) -> FileIdentity:
    """Name the contents of a key set (header or key -> shape mapping) from keys and shapes only."""
    if isinstance(header, SafetensorsHeader):
        shapes = {k: v.shape for k, v in header.tensors.items()}
    else:
        shapes = {k: tuple(v) for k, v in header.items()}
    keys = set(shapes)
    found = {}
    for comp, markers in _V1_MARKERS.items():
        prefix = _find_prefix(keys, markers)
        if prefix is not None:
            found[comp] = prefix
    foreign = []
    for marker, desc in _FOREIGN_MARKERS:
        if any(marker in k for k in keys) and desc not in foreign:
            foreign.append(desc)
    # T5 (not UMT5) has a relative_attention_bias in block 0 only
    if "umt5" in found:
        p = found["umt5"]
        n_blocks = len({m.group(1) for k in keys if (m := re.match(re.escape(p) + r"encoder\.block\.(\d+)\.", k))})
        with_bias = sum(
            1 for i in range(n_blocks)
            if f"{p}encoder.block.{i}.layer.0.SelfAttention.relative_attention_bias.weight" in keys
        )
        if n_blocks > 1 and with_bias == 1:
            del found["umt5"]
            foreign.append("a T5 encoder (relative_attention_bias in block 0 only; ACE-Step v1 needs UMT5)")
    spiece = any(k.endswith("spiece_model") for k in keys)
    if foreign:
        desc = " and ".join(foreign)
    elif found:
        desc = ", ".join(
            f"{COMPONENT_TITLES[c]}" + (f" under '{p}'" if p else "") for c, p in found.items()
        )
    else:
        desc = f"no known model ({summarize_keys(keys)})"
    return FileIdentity(components=found, foreign=foreign, description=desc, has_spiece=spiece)


# --- layout detection ------------------------------------------------------------------------
@dataclass
class ComponentSource:
    """Where one v1 component's tensors are: file, key prefix, its header, its config.json if any."""

    component: str
    file: Path
    prefix: str
    header: SafetensorsHeader
    config_json: Optional[dict] = None

    def bare_keys(self) -> dict:
        """The component's keys with the prefix stripped -> the full key in the file."""
        n = len(self.prefix)
        return {k[n:]: k for k in self.header.tensors if k.startswith(self.prefix)}


@dataclass
class V1Layout:
    """A resolved ACE-Step v1 checkpoint: ``kind`` is ``"comfy"`` or ``"official"``."""

    kind: str
    root: Path
    components: dict
    spiece: Optional[tuple] = None  # (header, key) of the embedded SentencePiece bytes
    tokenizer_dir: Optional[Path] = None
    ignored: dict = field(default_factory=dict)  # full file key -> reason (layout-level ignores)
    headers: list = field(default_factory=list)

    @property
    def source(self) -> str:
        return str(self.root)


def _foreign_error(path: Path, ident: FileIdentity, header: SafetensorsHeader) -> CheckpointError:
    return CheckpointError(
        f"{path}: not an ACE-Step v1 checkpoint: found {ident.description} "
        f"({summarize_keys(header.tensors)})"
    )


def _read_json(path: Path) -> Optional[dict]:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable config.json: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: config.json is not a JSON object")
    return data


def _official_root(path: Path) -> Optional[Path]:
    """The official root for a root folder, a component folder or a component file; else None."""
    folders = {Path(f).parts[0] for f in OFFICIAL_FILES.values()}
    if path.is_file():
        # a component file inside its folder: .../music_vocoder/diffusion_pytorch_model.safetensors
        return path.parent.parent if path.parent.name in folders else None
    if any((path / d).is_dir() for d in folders):
        return path
    if path.name in folders:
        return path.parent
    return None


def _detect_official(root: Path) -> V1Layout:
    components = {}
    missing = []
    headers = []
    for comp, rel in OFFICIAL_FILES.items():
        file = root / rel
        if not file.is_file():
            folder = file.parent
            if folder.is_dir():
                present = sorted(p.name for p in folder.iterdir())
                alt = [p for p in present if p.endswith(_NON_SAFETENSORS)]
                what = (f"only {alt} (.safetensors is required)" if alt else f"found {present[:8]}")
            else:
                what = "folder missing"
            missing.append(f"{rel} ({what})")
            continue
        header = read_header(file)
        headers.append(header)
        ident = identify(header)
        if ident.foreign or comp not in ident.components:
            raise CheckpointError(
                f"{file}: expected the {COMPONENT_TITLES[comp]} here, found {ident.description} "
                f"({summarize_keys(header.tensors)})"
            )
        components[comp] = ComponentSource(
            comp, file, ident.components[comp], header, _read_json(file.parent / "config.json")
        )
    if missing:
        raise CheckpointError(
            f"{root}: incomplete ACE-Step v1 folder: missing {'; '.join(missing)}; found "
            f"{sorted(p.name for p in root.iterdir())}"
        )
    return V1Layout(kind="official", root=root, components=components,
                    tokenizer_dir=root / OFFICIAL_TOKENIZER_DIR, headers=headers)


def _detect_file(path: Path) -> V1Layout:
    header = read_header(path)
    ident = identify(header)
    if ident.foreign:
        raise _foreign_error(path, ident, header)
    if not ident.components:
        raise CheckpointError(f"{path}: not an ACE-Step v1 checkpoint: found {ident.description}")
    found = ident.components
    if all(found.get(c) == COMFY_PREFIXES[c] for c in COMPONENTS) and COMFY_SPIECE_KEY in header.tensors:
        comps = {c: ComponentSource(c, path, COMFY_PREFIXES[c], header) for c in COMPONENTS}
        ignored = {k: r for k, r in COMFY_IGNORED_KEYS.items() if k in header.tensors}
        return V1Layout(kind="comfy", root=path, components=comps, spiece=(header, COMFY_SPIECE_KEY),
                        ignored=ignored, headers=[header])
    missing = [COMPONENT_TITLES[c] for c in COMPONENTS if c not in found]
    if COMFY_SPIECE_KEY not in header.tensors and set(found) == set(COMPONENTS):
        missing.append(f"the UMT5 tokenizer ('{COMFY_SPIECE_KEY}')")
    raise CheckpointError(
        f"{path}: holds only part of ACE-Step v1: found {ident.description}; missing {', '.join(missing)}. "
        "Load ComfyUI's all-in-one ace_step_v1_3.5b.safetensors or the official ACE-Step-v1-3.5B folder"
    )


def detect_v1(path: Union[str, Path]) -> V1Layout:
    """Resolve ``path`` (all-in-one file, official root folder, or a file/folder inside it)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or folder")
    root = _official_root(path)
    if root is not None:
        return _detect_official(root)
    if path.is_dir():
        st = sorted(p.name for p in path.iterdir())
        raise CheckpointError(
            f"{path}: not an ACE-Step v1 folder (expected {', '.join(sorted({Path(f).parts[0] for f in OFFICIAL_FILES.values()}))}); "
            f"found {st[:12]}"
        )
    return _detect_file(path)
