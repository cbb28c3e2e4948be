"""Published ACE-Step v1 checkpoint layouts: prefix tables and layout detection.

Two layouts hold the same four models (DiT, music DCAE, vocoder, UMT5 encoder) under the same bare
key names, so one prefix table per layout is all the mapping there is:

* ComfyUI's all-in-one ``ace_step_v1_3.5b.safetensors`` (see :data:`COMFY_PREFIXES`): the DiT under
  ``model.diffusion_model.``, the VAE under ``vae.`` (``vae.dcae.*``, ``vae.vocoder.*``), UMT5 under
  ``text_encoders.umt5base.transformer.``, the SentencePiece model bytes as the uint8 tensor
  ``text_encoders.spiece_model``, plus an unused ``text_encoders.umt5base.logit_scale``;
* the official four-folder layout ``ACE-Step-v1-3.5B/`` (see :data:`OFFICIAL_FILES`), bare keys, a
  ``config.json`` per folder and the tokenizer files in ``umt5-base/``.

Recognition reads safetensors headers only (never the weights) and goes through the one table of
:mod:`ace_core.loading.recognise`: :func:`identify` is its v1 view (v1 components by prefix, other
families by name), :func:`detect_v1` resolves a path to a :class:`V1Layout` or raises
:class:`~ace_core.errors.CheckpointError` naming the file and what was found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Union

from ..errors import CheckpointError
from ..loading.json_files import read_json_object
from ..loading.keys import bare_keys, listing, summarize_keys
from ..loading.recognise import ACE_V1, TABLE, missing_markers, recognise
from ..loading.safetensors_io import NON_SAFETENSORS, SafetensorsHeader, read_header

__all__ = [
    "COMPONENTS",
    "COMFY_PREFIXES",
    "COMFY_SPIECE_KEY",
    "COMFY_IGNORED_KEYS",
    "OFFICIAL_FILES",
    "OFFICIAL_TOKENIZER_DIR",
    "FileIdentity",
    "identify",
    "ComponentSource",
    "V1Layout",
    "detect_v1",
]

# --- prefix tables ---------------------------------------------------------------------------
COMPONENTS = ("dit", "dcae", "vocoder", "umt5")

COMPONENT_TITLES = {row.component: row.title for row in TABLE if row.family == ACE_V1}

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


# --- recognition -----------------------------------------------------------------------------
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


def identify(header: Union[SafetensorsHeader, Mapping[str, tuple]]) -> FileIdentity:
    """The v1 view of :func:`~ace_core.loading.recognise.recognise` on a header or key -> shape mapping."""
    if isinstance(header, SafetensorsHeader):
        shapes = {k: v.shape for k, v in header.tensors.items()}
    else:
        shapes = {k: tuple(v) for k, v in header.items()}
    found = recognise(shapes)
    foreign = list(dict.fromkeys(p.title for p in found.parts if p.family != ACE_V1))
    spiece = any(k.endswith("spiece_model") for k in shapes)
    desc = " and ".join(foreign) if foreign else found.description
    return FileIdentity(components=found.components(ACE_V1), foreign=foreign, description=desc,
                        has_spiece=spiece)


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
        return bare_keys(self.header.tensors, self.prefix)


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
                alt = [p for p in present if p.endswith(NON_SAFETENSORS)]
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
            comp, file, ident.components[comp], header, read_json_object(file.parent / "config.json")
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
    missing = []
    for c in COMPONENTS:
        if c not in found:  # a component lacking only some of its keys is reported by those keys
            keys = missing_markers(header.tensors, ACE_V1, c)
            missing.append(COMPONENT_TITLES[c] + (f" (missing {len(keys)} keys: {listing(keys)})" if keys else ""))
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
