"""Published ACE-Step 1.5 checkpoint layouts: where each part lives, found from headers only.

A 1.5 model needs three parts: the DiT family file (``decoder``/``encoder``/``tokenizer``/
``detokenizer``/``null_condition_emb``, :class:`~.model.AceStep15Model`), the Oobleck VAE and the
Qwen3-Embedding text encoder. They are published in three layouts:

* ``comfy_aio``: ComfyUI's all-in-one ``checkpoints/ace_step_1.5_turbo_aio.safetensors``, the DiT
  under ``model.diffusion_model.``, the VAE under ``vae.`` (ComfyUI / stable-audio-tools naming),
  the text encoder under ``text_encoders.qwen3_06b.transformer.model.``, the 5 Hz LM under
  ``text_encoders.qwen3_2b.transformer.model.`` (accounted for, not loaded: see
  :attr:`V15Layout.lm_sources`) and unused ``text_encoders.*.logit_scale`` scalars;
* ``comfy_split``: ``diffusion_models/acestep_v1.5_*.safetensors`` (bare or
  ``model.diffusion_model.`` keys), ``text_encoders/qwen_0.6b_ace15.safetensors`` (``model.``) and
  ``vae/ace_1.5_vae.safetensors`` (ComfyUI naming, weight norm as ``weight_g``/``weight_v`` or
  ``parametrizations.weight.original0/1``);
* ``official``: ``acestep-v15-*/`` (``model.safetensors`` or shards + ``config.json`` +
  ``silence_latent.pt``), ``vae/`` (diffusers naming + ``config.json``) and
  ``Qwen3-Embedding-0.6B/`` (``model.safetensors`` + tokenizer files) side by side in one root.

:func:`detect_v15` takes a file or folder (the all-in-one file, a split DiT file, an official
DiT folder or the root holding it, a ComfyUI ``models`` folder) plus optional ``vae`` /
``text_encoder`` paths, reads the safetensors headers only and returns a :class:`V15Layout`, or
raises one :class:`~ace_core.errors.CheckpointError` naming the file and what is wrong (another
family, a part given in the wrong place, a part missing, a truncated or corrupt file).

Size (``2B`` / ``XL``) comes from the shapes. The kind (``turbo`` / ``base`` / ``sft``) holds the
same keys, so it comes from ``config.json`` (``is_turbo``, ``model_version``), the config we embed
in files we write, or the file / folder name (``acestep_v1.5_turbo``, ``acestep-v15-xl-base``,
``acestep-v15-turbo-shift3``...). When nothing tells, the kind is ``unknown`` and the pipeline uses
turbo behaviour (:data:`UNKNOWN_KIND_BEHAVES_AS`), with a warning: turbo is the default published
model and the all-in-one, and turbo settings on a base model fail fast and visibly (few steps)
where base settings on a turbo model would silently cost 50 steps with CFG.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

from ..errors import CheckpointError
from ..loading.json_files import embedded_config as read_embedded, read_json_object
from ..loading.keys import bare_keys, listing, summarize_keys
from ..loading.recognise import ACE_V1, ACE_V15, Recognition, flavour_hint, recognise
from ..loading.safetensors_io import NON_SAFETENSORS, SafetensorsHeader, TensorInfo, read_header

__all__ = [
    "COMPONENTS", "TITLES", "LAYOUT_AIO", "LAYOUT_SPLIT", "LAYOUT_OFFICIAL",
    "AIO_PREFIXES", "AIO_LM_PREFIX", "SPLIT_FOLDERS", "SPLIT_FILES", "SPLIT_PREFIXES",
    "OFFICIAL_DIT_DIR", "OFFICIAL_DIRS", "OFFICIAL_FILES", "SILENCE_FILE", "SHARD_INDEX",
    "CONFIG_METADATA_KEY", "UNKNOWN_KIND_BEHAVES_AS", "PartSource", "V15Layout", "detect_v15",
    "diffusers_to_comfy_vae_key", "embedded_config", "tensor_info_as",
]

PathLike = Union[str, Path]

COMPONENTS = ("dit", "vae", "text_encoder")
TITLES = {
    "dit": "ACE-Step 1.5 DiT (acestep-v15 model.safetensors)",
    "vae": "ACE-Step 1.5 VAE (Oobleck)",
    "text_encoder": "Qwen3-Embedding-0.6B text encoder",
    "lm": "ACE-Step 1.5 5 Hz LM",
}
LAYOUT_AIO, LAYOUT_SPLIT, LAYOUT_OFFICIAL = "comfy_aio", "comfy_split", "official"
UNKNOWN_KIND_BEHAVES_AS = "turbo"

# --- ComfyUI all-in-one ------------------------------------------------------------------------
AIO_PREFIXES = {
    "dit": "model.diffusion_model.",
    "vae": "vae.",
    "text_encoder": "text_encoders.qwen3_06b.transformer.model.",
}
AIO_LM_PREFIX = "text_encoders.qwen3_2b.transformer.model."
_LOGIT_SCALE = re.compile(r"text_encoders\.[A-Za-z0-9_]+\.logit_scale$")
_LOGIT_SCALE_WHY = "ComfyUI's CLIP-style logit_scale, unused by Qwen3"

# --- ComfyUI split files (folders under ComfyUI/models) ------------------------------------------
SPLIT_FOLDERS = {"dit": "diffusion_models", "vae": "vae", "text_encoder": "text_encoders"}
_SPLIT_SEARCH = {"dit": ("diffusion_models", "unet", "checkpoints"), "vae": ("vae",),
                 "text_encoder": ("text_encoders", "clip")}
SPLIT_FILES = {"dit": "acestep_v1.5_turbo.safetensors", "vae": "ace_1.5_vae.safetensors",
               "text_encoder": "qwen_0.6b_ace15.safetensors"}
SPLIT_PREFIXES = {"dit": "", "vae": "", "text_encoder": "model."}

# --- official folders ---------------------------------------------------------------------------
OFFICIAL_DIT_DIR = "acestep-v15-turbo"  # the main repository's DiT, chosen when a root holds several
OFFICIAL_DIRS = {"vae": "vae", "text_encoder": "Qwen3-Embedding-0.6B"}
OFFICIAL_FILES = {"dit": "model.safetensors", "vae": "diffusion_pytorch_model.safetensors",
                  "text_encoder": "model.safetensors"}
SHARD_INDEX = ".index.json"  # model.safetensors.index.json beside model-0000N-of-0000M.safetensors
SILENCE_FILE = "silence_latent.pt"
_TOKENIZER_FILES = ("tokenizer.json", "vocab.json")
_LM_DIR_PATTERN = "acestep-5Hz-lm-*"

#: safetensors metadata key under which files we write carry their model configs (JSON).
CONFIG_METADATA_KEY = "aceforge.v15.config"


# --------------------------------------------------------------------------------------------
# what one part is and where it lives


@dataclass
class PartSource:
    """One part's tensors: the file(s) holding them (several for shards), key prefix and naming.

    component: ``dit`` / ``vae`` / ``text_encoder`` / ``lm``; naming: ``official`` (DiT),
    ``diffusers`` / ``comfy`` (VAE), ``hf`` (Qwen3); variant: ``2B`` / ``XL`` / ``0.6B`` ...
    config_json: the ``config.json`` beside the file (official folders); folder: that folder.
    """

    component: str
    headers: tuple
    prefix: str
    naming: str
    variant: str = ""
    config_json: Optional[dict] = None
    folder: Optional[Path] = None
    index_file: Optional[Path] = None

    @property
    def file(self) -> Path:
        """The file to name in messages: the only file, else the shard index."""
        return self.index_file or self.headers[0].path

    @property
    def files(self) -> tuple:
        return tuple(h.path for h in self.headers)

    def tensors(self) -> dict:
        """Full key -> (file, TensorInfo) over every file of the part."""
        return {k: (h.path, info) for h in self.headers for k, info in h.tensors.items()}

    def bare_keys(self) -> dict:
        """Keys under the prefix, prefix stripped -> full key."""
        return bare_keys(self.tensors(), self.prefix)

    def shapes(self) -> dict:
        return {k: info.shape for k, (_, info) in self.tensors().items()}


@dataclass
class V15Layout:
    """A resolved ACE-Step 1.5 checkpoint.

    layout: :data:`LAYOUT_AIO` / :data:`LAYOUT_SPLIT` / :data:`LAYOUT_OFFICIAL`; source: what was
    pointed at; parts: component -> :class:`PartSource` for dit, vae, text_encoder; lm_sources:
    5 Hz LMs found alongside (not loaded here; the LM loader takes them); ignored: full key ->
    reason for keys of the read files that are not loaded on purpose; kind: ``turbo`` / ``base``
    / ``sft`` / ``unknown`` and kind_basis (``config.json``, ``embedded config``, ``file name``
    or ``nothing``); tokenizer_dir: an official tokenizer folder (None: the bundled copy);
    silence_file: ``silence_latent.pt`` (None: the built-in pattern); embedded: configs found in
    our files' metadata, component -> dict.
    """

    layout: str
    source: Path
    parts: dict
    lm_sources: tuple = ()
    ignored: dict = field(default_factory=dict)
    kind: str = "unknown"
    kind_basis: str = "nothing"
    tokenizer_dir: Optional[Path] = None
    silence_file: Optional[Path] = None
    embedded: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)  # lines for the load log (a choice made for the user)

    @property
    def size(self) -> str:
        return self.parts["dit"].variant

    @property
    def headers(self) -> list:
        """Every header whose keys must all be loaded or ignored (shared files counted once)."""
        seen = {}
        for part in list(self.parts.values()):
            for h in part.headers:
                seen.setdefault(h.path, h)
        return list(seen.values())

    def files(self) -> dict:
        """component -> file path (str) of each part."""
        return {c: str(p.file) for c, p in self.parts.items()}


# --------------------------------------------------------------------------------------------
# headers, recognition, messages


def _recognise_headers(headers: Sequence[SafetensorsHeader], source: PathLike) -> Recognition:
    shapes = {k: info.shape for h in headers for k, info in h.tensors.items()}
    return recognise(shapes, str(source))


def _describe(found: Recognition, headers: Sequence[SafetensorsHeader]) -> str:
    keys = [k for h in headers for k in h.tensors]
    return f"{found.description} ({summarize_keys(keys)})" if found.parts else found.description


def _foreign(found: Recognition) -> list:
    return [p for p in found.parts if p.family != ACE_V15]


def _family_error(path: PathLike, found: Recognition, headers) -> CheckpointError:
    hint = ""
    if any(p.family == ACE_V1 for p in found.parts):
        hint = "; this is ACE-Step v1: load it with the v1 loader"
    if not found.parts:
        return CheckpointError(f"{path}: not a model AceForge knows: found {_describe(found, headers)}")
    return CheckpointError(f"{path}: not an ACE-Step 1.5 checkpoint: found {_describe(found, headers)}{hint}")


def _expect_part(path: PathLike, headers, component: str, role: str = "") -> PartSource:
    """The one ``component`` held by these headers, else CheckpointError saying what is there."""
    found = _recognise_headers(headers, path)
    if [(p.family, p.component) for p in found.parts] == [(ACE_V15, component)]:
        p = found.parts[0]
        return PartSource(component, tuple(headers), p.prefix, p.naming, p.variant)
    where = f" ({role})" if role else ""
    raise CheckpointError(f"{path}{where}: expected the {TITLES[component]} here, found "
                          f"{_describe(found, headers)}")


def embedded_config(headers: Sequence[SafetensorsHeader]) -> dict:
    """The configs (component -> dict) our writers put in the metadata, else {}."""
    return read_embedded(headers, CONFIG_METADATA_KEY)


# --------------------------------------------------------------------------------------------
# folders: model files (single or sharded), searching a folder for one part


def _model_headers(folder: Path, name: str) -> Optional[tuple]:
    """(headers, index file or None) of ``folder/name`` or of its shards (``name.index.json``)."""
    single = folder / name
    if single.is_file():
        return (read_header(single),), None
    index = folder / (name + SHARD_INDEX)
    if not index.is_file():
        return None
    data = read_json_object(index) or {}
    weight_map = data.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index}: no 'weight_map' in the shard index")
    headers = []
    for shard in sorted(set(weight_map.values())):
        file = folder / str(shard)
        if not file.is_file():
            raise CheckpointError(f"{index}: shard {shard} is missing from {folder}")
        headers.append(read_header(file))
    held = {}
    for h in headers:
        for k in h.tensors:
            if k in held:
                raise CheckpointError(f"{h.path}: key {k!r} is also in {held[k].name}")
            held[k] = h.path
    wrong = [k for k, f in weight_map.items() if held.get(k) is None or held[k].name != str(f)]
    extra = sorted(set(held) - set(weight_map))
    if wrong or extra:
        raise CheckpointError(f"{index}: the shards do not match the index: "
                              + "; ".join(filter(None, [
                                  f"not in the named shard: {listing(wrong)}" if wrong else "",
                                  f"not in the index: {listing(extra)}" if extra else ""])))
    return tuple(headers), index


def _folder_listing(folder: Path, limit: int = 12) -> str:
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError:
        return "unreadable"
    return str(names[:limit]) + (f" ... ({len(names) - limit} more)" if len(names) > limit else "")


def _missing_file_note(folder: Path, name: str) -> str:
    if not folder.is_dir():
        return f"{folder} (folder missing)"
    alt = sorted(p.name for p in folder.iterdir() if p.name.endswith(NON_SAFETENSORS))
    if alt:
        return f"{folder / name} (only {alt}; .safetensors is required)"
    return f"{folder / name} (found {_folder_listing(folder)})"


def _official_part(folder: Path, component: str) -> Optional[PartSource]:
    got = _model_headers(folder, OFFICIAL_FILES[component])
    if got is None:
        return None
    headers, index = got
    part = _expect_part(index or headers[0].path, headers, component)
    part.index_file = index
    part.folder = folder
    part.config_json = read_json_object(folder / "config.json")
    return part


def _safetensors_in(folder: Path) -> list:
    try:
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == ".safetensors")
    except OSError:
        return []


def _search_folder(folder: Path, component: str, preferred: Sequence[str], lms: list) -> Optional[PartSource]:
    """The file of ``folder`` holding ``component`` alone: a ``preferred`` name, else the only one.

    Headers only; unreadable files and other models are passed over, 5 Hz LMs seen on the way
    are added to ``lms``. Several candidates, none preferred -> CheckpointError listing them.
    """
    found = []
    for file in _safetensors_in(folder):
        try:
            header = read_header(file)
        except CheckpointError:
            if file.name in preferred:
                raise
            continue
        rec = _recognise_headers((header,), file)
        kinds = [(p.family, p.component) for p in rec.parts]
        if kinds in ([(ACE_V15, component)], [(ACE_V15, "lm")]):
            p = rec.parts[0]
            part = PartSource(p.component, (header,), p.prefix, p.naming, p.variant, folder=folder)
            (lms if p.component == "lm" and component != "lm" else found).append(part)
        elif file.name in preferred:  # the usual name holding something else: say so
            _expect_part(file, (header,), component)
    for name in preferred:
        for part in found:
            if part.file.name == name:
                return part
    if len(found) > 1:
        raise CheckpointError(f"{folder}: several {TITLES[component]} files: "
                              f"{[p.file.name for p in found]}; name the one to use")
    return found[0] if found else None


# --------------------------------------------------------------------------------------------
# layouts


def _is_model_folder(folder: Path) -> bool:
    """config.json beside model.safetensors (or its shards): an official DiT, Qwen3 or LM folder."""
    name = OFFICIAL_FILES["dit"]
    return (folder / "config.json").is_file() and (
        (folder / name).is_file() or (folder / (name + SHARD_INDEX)).is_file())


def _dit_folders(root: Path) -> list:
    """Sub-folders of ``root`` holding an official 1.5 DiT (config.json + model.safetensors)."""
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and _is_model_folder(p)):
        headers, _ = _model_headers(d, OFFICIAL_FILES["dit"])
        rec = _recognise_headers(headers, d)
        if [(p.family, p.component) for p in rec.parts] == [(ACE_V15, "dit")]:
            out.append(d)
    return out


def _official(dit_dir: Path, source: Path) -> tuple:
    """The official layout around ``dit_dir`` -> (layout, missing component -> note)."""
    parts, missing, lms = {"dit": _official_part(dit_dir, "dit")}, {}, []
    root = dit_dir.parent
    for comp in ("vae", "text_encoder"):
        folder = root / OFFICIAL_DIRS[comp]
        part = _official_part(folder, comp) if folder.is_dir() else None
        if part is None:
            missing[comp] = _missing_file_note(folder, OFFICIAL_FILES[comp])
        else:
            parts[comp] = part
    for lm_dir in sorted(d for d in root.glob(_LM_DIR_PATTERN) if d.is_dir()):
        got = _model_headers(lm_dir, "model.safetensors")
        if got:
            for p in _recognise_headers(got[0], lm_dir).parts:
                if (p.family, p.component) == (ACE_V15, "lm"):
                    lms.append(PartSource("lm", got[0], p.prefix, p.naming, p.variant, folder=lm_dir,
                                          index_file=got[1]))
    te_dir = root / OFFICIAL_DIRS["text_encoder"]
    tokenizer = te_dir if any((te_dir / f).is_file() for f in _TOKENIZER_FILES) else None
    silence = dit_dir / SILENCE_FILE
    layout = V15Layout(LAYOUT_OFFICIAL, source, parts, tuple(lms), tokenizer_dir=tokenizer,
                       silence_file=silence if silence.is_file() else None)
    return layout, missing


def _dit_file(path: Path, source: Path) -> tuple:
    """A file holding the DiT (all-in-one or split) -> (layout, missing component -> note)."""
    header = read_header(path)
    found = _recognise_headers((header,), path)
    if not found.parts or _foreign(found):
        raise _family_error(path, found, (header,))
    dits = [p for p in found.parts if p.component == "dit"]
    if not dits:
        raise CheckpointError(
            f"{path}: holds {found.description}, not the ACE-Step 1.5 DiT; load the DiT file, ComfyUI's "
            "all-in-one checkpoint or the official folder (and give a VAE / text encoder file as vae= / "
            "text_encoder=)"
        )
    parts, lms, ignored = {}, [], {}
    for p in found.parts:
        if p.component == "lm":
            lms.append(PartSource("lm", (header,), p.prefix, p.naming, p.variant))
            root = _lm_root(p.prefix)  # the whole text_encoders.<name>. subtree (model.*, an lm_head)
            why = f"5 Hz LM weights under '{root}' (for the LM loader; not loaded with the DiT)"
            ignored.update({k: why for k in header.tensors if k.startswith(root)})
        elif p.component in parts:
            raise CheckpointError(f"{path}: holds two {TITLES[p.component]}s (under "
                                  f"'{parts[p.component].prefix}' and '{p.prefix}')")
        else:
            parts[p.component] = PartSource(p.component, (header,), p.prefix, p.naming, p.variant)
    ignored.update({k: _LOGIT_SCALE_WHY for k in header.tensors if _LOGIT_SCALE.match(k)})
    if len(parts) > 1:  # an all-in-one: what it lacks must be given explicitly
        layout = V15Layout(LAYOUT_AIO, source, parts, tuple(lms), ignored=ignored)
        return layout, {c: f"not in {path}" for c in COMPONENTS if c not in parts}
    missing = {}
    models = path.parent.parent  # ComfyUI/models/diffusion_models/x.safetensors -> ComfyUI/models
    for comp in ("vae", "text_encoder"):
        folders = [models / name for name in _SPLIT_SEARCH[comp]] + [path.parent]
        looked = [f for f in dict.fromkeys(folders) if f.is_dir()]
        for folder in looked:
            part = _search_folder(folder, comp, (SPLIT_FILES[comp],), lms)
            if part is not None:
                parts[comp] = part
                break
        else:
            where = ", ".join(str(f) for f in looked) or f"{models / SPLIT_FOLDERS[comp]} (missing)"
            missing[comp] = f"no {SPLIT_FILES[comp]} or other file holding it in {where}"
    return V15Layout(LAYOUT_SPLIT, source, parts, tuple(lms), ignored=ignored), missing


def _lm_root(prefix: str) -> str:
    """``text_encoders.qwen3_2b.transformer.model.`` -> ``text_encoders.qwen3_2b.``."""
    m = re.match(r"(text_encoders\.[^.]+\.)", prefix)
    return m.group(1) if m else prefix


def _folder(folder: Path) -> tuple:
    """A folder -> (layout, missing); see :func:`detect_v15` for what a folder may be."""
    if folder.name in OFFICIAL_DIRS.values() and _dit_folders(folder.parent):
        return _folder(folder.parent)  # vae/ or Qwen3-Embedding-0.6B/ of an official root
    if _is_model_folder(folder):
        return _official(folder, folder)
    dit_dirs = _dit_folders(folder)
    if len(dit_dirs) > 1:
        chosen = [d for d in dit_dirs if d.name == OFFICIAL_DIT_DIR]
        if not chosen:
            raise CheckpointError(f"{folder}: holds several ACE-Step 1.5 DiT folders "
                                  f"{[d.name for d in dit_dirs]}; point at the one to load")
        layout, missing = _official(chosen[0], folder)
        layout.notes.append(f"{folder} holds the DiT folders {[d.name for d in dit_dirs]}: "
                            f"loaded {OFFICIAL_DIT_DIR}")
        return layout, missing
    if dit_dirs:
        return _official(dit_dirs[0], folder)
    for sub in _SPLIT_SEARCH["dit"]:  # a ComfyUI models folder
        candidates = []
        for file in _safetensors_in(folder / sub):
            try:
                rec = _recognise_headers((read_header(file),), file)
            except CheckpointError:
                continue
            if rec.part("dit", ACE_V15) is not None and not _foreign(rec):
                candidates.append(file)
        if len(candidates) > 1:
            raise CheckpointError(f"{folder / sub}: several ACE-Step 1.5 DiT files "
                                  f"{[f.name for f in candidates]}; point at the one to load")
        if candidates:
            layout, missing = _dit_file(candidates[0], folder)
            return layout, missing
    raise CheckpointError(
        f"{folder}: not an ACE-Step 1.5 folder (expected an acestep-v15-* folder with model.safetensors "
        f"and config.json, a root holding one beside vae/ and {OFFICIAL_DIRS['text_encoder']}/, or a "
        f"ComfyUI models folder with diffusion_models/); found {_folder_listing(folder)}"
    )


_CONFIG_MARKERS = {"vae": "downsampling_ratios", "text_encoder": "num_hidden_layers"}


def _override(path: PathLike, component: str, lms: list) -> tuple:
    """A part given as ``vae=`` / ``text_encoder=`` (a file, or a folder holding it) -> (part, tokenizer dir)."""
    role = f"given as {component}="
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"{path} ({role}): no such file or folder")
    if path.is_dir():
        part = _official_part(path, component) or _search_folder(path, component, (SPLIT_FILES[component],), lms)
        if part is None:
            raise CheckpointError(f"{path} ({role}): no file holding the {TITLES[component]} "
                                  f"(found {_folder_listing(path)})")
        folder = path
    else:
        part = _expect_part(path, (read_header(path),), component, role=role)
        folder = part.folder = path.parent
    cfg = read_json_object(folder / "config.json")
    part.config_json = cfg if cfg and _CONFIG_MARKERS[component] in cfg else None
    has_tokenizer = component == "text_encoder" and any((folder / f).is_file() for f in _TOKENIZER_FILES)
    return part, folder if has_tokenizer else None


def _kind(layout: V15Layout) -> tuple:
    """(kind, basis): config.json, then our embedded config, then the file / folder name."""
    dit = layout.parts["dit"]
    for cfg, basis in ((dit.config_json, "config.json"), (layout.embedded.get("dit"), "embedded config")):
        kind = flavour_hint(Path("model"), config=cfg) if cfg else None
        if kind:
            return kind, basis
    named = flavour_hint(dit.file, config={})
    return (named, "file name") if named else ("unknown", "nothing")


def _sort_paths(paths: Sequence[PathLike], vae, text_encoder) -> tuple:
    """The files of one model in any order -> (main path, vae, text_encoder), by their keys."""
    main, given = [], {"vae": vae, "text_encoder": text_encoder}
    for p in (Path(p).expanduser() for p in paths):
        if p.is_dir() or not p.exists():
            main.append(p)
            continue
        header = read_header(p)
        found = _recognise_headers((header,), p)
        comps = {c for fam, c in ((q.family, q.component) for q in found.parts) if fam == ACE_V15}
        if "dit" in comps or not found.parts or _foreign(found):
            main.append(p)  # the DiT or all-in-one; anything else fails there with its own message
        elif comps in ({"vae"}, {"text_encoder"}) and given[next(iter(comps))] is None:
            given[next(iter(comps))] = p
        else:
            raise CheckpointError(f"{p}: not a part of ACE-Step 1.5 that loads with the DiT: found "
                                  f"{_describe(found, (header,))}")
    if len(main) != 1:
        raise CheckpointError(f"{[str(p) for p in paths]}: expected one ACE-Step 1.5 DiT (file or folder) among "
                              f"the paths, found {len(main)}: {[str(p) for p in main]}")
    return main[0], given["vae"], given["text_encoder"]


def detect_v15(path: Union[PathLike, Sequence[PathLike]], *, vae: Optional[PathLike] = None,
               text_encoder: Optional[PathLike] = None) -> V15Layout:
    """Resolve ``path`` (+ optional part overrides) to a :class:`V15Layout`, from headers only.

    path: ComfyUI's all-in-one file; a split DiT file (its VAE and text encoder are looked for in
    ``vae/`` and ``text_encoders/`` (or ``clip/``) of the ComfyUI models folder above it, then
    beside it); an official DiT folder, its ``model.safetensors``, or the root holding it (a root
    with several DiT folders loads ``acestep-v15-turbo``); a ComfyUI ``models`` folder.
    vae / text_encoder: a file or a folder holding that part; it replaces the one found (the
    all-in-one's own copy is then skipped by name). ``path`` may also list the files of one model
    in any order (the DiT or all-in-one, a VAE, a text encoder): each is placed by its keys.
    Raises CheckpointError naming the file.
    """
    if isinstance(path, (list, tuple)):
        path, vae, text_encoder = _sort_paths(path, vae, text_encoder)
    source = Path(path).expanduser()
    if not source.exists():
        raise CheckpointError(f"{source}: no such file or folder")
    if source.is_dir():
        layout, missing = _folder(source)
    elif source.parent.name in OFFICIAL_DIRS.values() and _dit_folders(source.parent.parent):
        layout, missing = _folder(source.parent.parent)  # a part file inside an official root
    elif _is_model_folder(source.parent) and source.suffix == ".safetensors":
        layout, missing = _official(source.parent, source)
    else:
        layout, missing = _dit_file(source, source)
    lms = list(layout.lm_sources)
    for comp, given in (("vae", vae), ("text_encoder", text_encoder)):
        if given is None:
            continue
        part, tokenizer = _override(given, comp, lms)
        old = layout.parts.get(comp)
        layout.parts[comp] = part
        missing.pop(comp, None)
        if comp == "text_encoder":
            layout.tokenizer_dir = tokenizer
        still_read = {h.path for p in layout.parts.values() for h in p.headers}
        if old is not None and (old.files, old.prefix) != (part.files, part.prefix):
            why = f"the file's own {comp}, replaced by {part.file} (given as {comp}=)"
            for h in old.headers:
                if h.path in still_read:  # an all-in-one: its copy is skipped by name
                    layout.ignored.update({k: why for k in bare_keys(h.tensors, old.prefix).values()})
    layout.lm_sources = tuple(lms)
    if missing:
        found = ", ".join(f"the {TITLES[c]} in {p.file}" for c, p in layout.parts.items())
        need = "; ".join(f"the {TITLES[c]} ({why})" for c, why in missing.items())
        raise CheckpointError(
            f"{source}: incomplete ACE-Step 1.5 checkpoint: found {found}; missing {need}. Give the "
            "missing part as vae= / text_encoder=, or load ComfyUI's all-in-one file or the official folder"
        )
    for part in layout.parts.values():
        for comp, cfg in embedded_config(part.headers).items():
            layout.embedded.setdefault(comp, cfg)
    layout.kind, layout.kind_basis = _kind(layout)
    return layout


# --------------------------------------------------------------------------------------------
# VAE naming: diffusers -> ComfyUI (stable-audio-tools), for writing ComfyUI-layout files

_ENC_PART_INDEX = {"res_unit1": 0, "res_unit2": 1, "res_unit3": 2, "snake1": 3, "conv1": 4}
_DEC_PART_INDEX = {"snake1": 0, "conv_t1": 1, "res_unit1": 2, "res_unit2": 3, "res_unit3": 4}
_RES_PART_INDEX = {"snake1": 0, "conv1": 1, "snake2": 2, "conv2": 3}


def diffusers_to_comfy_vae_key(key: str, blocks: int) -> str:
    """A diffusers ``AutoencoderOobleck`` key -> the ComfyUI name (``blocks``: blocks per side).

    The inverse of :func:`~.oobleck.comfy_to_diffusers` (names only; Snake ``alpha``/``beta`` are
    also reshaped (1, C, 1) -> (C,) in ComfyUI files).
    """
    side, rest = key.split(".", 1)
    m = re.fullmatch(r"conv1\.(\w+)", rest)
    if m:
        return f"{side}.layers.0.{m.group(1)}"
    m = re.fullmatch(r"snake1\.(alpha|beta)", rest)
    if m:
        return f"{side}.layers.{blocks + 1}.{m.group(1)}"
    m = re.fullmatch(r"conv2\.(\w+)", rest)
    if m:
        return f"{side}.layers.{blocks + 2}.{m.group(1)}"
    m = re.fullmatch(r"block\.(\d+)\.(\w+)\.(?:(\w+)\.)?(\w+)", rest)
    if not m:
        raise ValueError(f"not an Oobleck VAE key: {key}")
    block, part, sub, param = int(m.group(1)), m.group(2), m.group(3), m.group(4)
    index = (_ENC_PART_INDEX if side == "encoder" else _DEC_PART_INDEX)[part]
    inner = f".layers.{_RES_PART_INDEX[sub]}" if sub else ""
    return f"{side}.layers.{block + 1}.layers.{index}{inner}.{param}"


def tensor_info_as(info: TensorInfo, shape: tuple) -> TensorInfo:
    """The same bytes read as another shape of the same size (ComfyUI Snake (C,) -> (1, C, 1))."""
    return TensorInfo(info.dtype, tuple(shape), info.start, info.end)
