"""The adapter each model family implements, and the registry the pipeline, nodes and CLI use.

A caller recognises a checkpoint (:func:`adapter_for_path`, through the one table of
:mod:`ace_core.loading.recognise`), gets the family's :class:`FamilyAdapter` and talks only to
it: load the model, encode text, make / sample / decode / encode latents, ask what it supports.
LATENT dicts carry their family (``aceforge_family``), so a wrong pairing is refused in one place
(:func:`adapter_for_latent`). Adding a family is one line in :data:`ADAPTERS`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable, Mapping, Optional, Protocol, Sequence, Union, runtime_checkable

from .errors import CheckpointError, InputError
from .latent_spec import LatentSpec
from .loading.recognise import ACE_V1, ACE_V15, recognise_file
from .progress import ProgressHook

TASKS = ("text2music", "audio2audio", "repaint", "extend", "retake", "flowedit")
"""Task names adapters list in ``capabilities`` (a family may add its own)."""

Paths = Union[str, Path, Sequence[Union[str, Path]]]
Prepare = Optional[Callable[[str], None]]

ADAPTERS = {
    ACE_V1: ".v1.adapter",
    ACE_V15: ".v15.adapter",
}
"""family -> module (relative to ``ace_core``) whose ``ADAPTER`` implements :class:`FamilyAdapter`."""


@runtime_checkable
class FamilyAdapter(Protocol):
    """One model family, as the pipeline, nodes and CLI see it.

    ``model`` below is what :meth:`load` returned. ``latent`` dicts are ComfyUI-style LATENT
    dicts ``{"samples": (B, *latent.frame_shape, T), "type": "audio", "aceforge_family": family}``;
    ``audio`` dicts are AUDIO dicts ``{"waveform": (B, C, L), "sample_rate": int}``.
    ``prepare(part)`` (optional) is called before a component runs (ComfyUI: load it onto the GPU).
    """

    family: str
    title: str
    latent: LatentSpec
    capabilities: frozenset
    editor: object
    """The module that builds the family's edit LATENTs (``repaint_latent``, ``outpaint_latent``, ...)."""

    def load(self, paths: Paths, dtype=None, device="cpu", progress: Optional[ProgressHook] = None):
        """The loaded model from a file, a folder, or the files of one model."""

    def sampler_settings(self, options: Optional[Mapping] = None):
        """The family's sampler settings from keyword options (validated; InputError naming the option)."""

    def check_text(self, tags: str, lyrics: str, **options) -> None:
        """Validate the text fields without a model (InputError naming the field)."""

    def encode_text(self, model, tags: str, lyrics: str, **options):
        """Tags and lyrics -> the family's conditioning."""

    def empty_latent(self, seconds: float, batch: int = 1, name: str = "seconds") -> dict:
        """An all-zero LATENT of ``seconds`` (validated against ``latent.max_seconds``)."""

    def sample(self, model, positive, negative=None, *, latent: dict, seed: int = 0, settings=None,
               denoise: float = 1.0, progress: Optional[ProgressHook] = None, prepare: Prepare = None) -> dict:
        """Sample into ``latent`` (its length and batch; an edit LATENT runs its edit) -> LATENT."""

    def decode_audio(self, model, latent: dict, progress: Optional[ProgressHook] = None,
                     prepare: Prepare = None) -> dict:
        """LATENT -> AUDIO at ``latent.sample_rate`` (or the source's rate for a spliced edit)."""

    def encode_audio(self, model, audio: dict, progress: Optional[ProgressHook] = None,
                     prepare: Prepare = None) -> dict:
        """AUDIO (any rate and channel count) -> the source LATENT."""


def call_prepare(prepare: Prepare, part: str) -> None:
    """Tell the caller (ComfyUI: load it onto the GPU) that ``part`` is about to run."""
    if prepare is not None:
        prepare(part)


def adapter_for(family: str) -> FamilyAdapter:
    """The registered adapter of ``family``; InputError naming the known families otherwise."""
    module = ADAPTERS.get(family)
    if module is None:
        raise InputError(f"family: no AceForge support for the model family {family!r}; "
                         f"supported: {', '.join(sorted(ADAPTERS))}")
    return importlib.import_module(module, __package__).ADAPTER


def _model_files(folder: Path, depth: int = 2) -> list:
    files = sorted(p for p in folder.glob("*.safetensors") if p.is_file())
    if depth > 1:
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            files += _model_files(sub, depth - 1)
    return files


def family_of_path(path: Union[str, Path]) -> str:
    """The family of a checkpoint file or folder, from safetensors headers only.

    A folder is recognised from the ``.safetensors`` files in it and one level below (the
    official layouts). CheckpointError naming the path when nothing known, a mix of families, or
    a family without an adapter is found.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or folder")
    if path.is_file():
        found = [recognise_file(path)]
    else:
        found = [r for r in map(_recognised_or_none, _model_files(path)) if r is not None]
        if not found:
            raise CheckpointError(f"{path}: no model AceForge knows was found in this folder "
                                  f"(.safetensors files in it and one level below)")
    families = {f for r in found for f in r.families}
    if len(families) == 1 and families <= set(ADAPTERS):
        return families.pop()
    what = "; ".join(dict.fromkeys(r.description for r in found))
    raise CheckpointError(f"{path}: not a checkpoint AceForge can load: found {what} "
                          f"(supported families: {', '.join(sorted(ADAPTERS))})")


def _recognised_or_none(file: Path):
    try:
        return recognise_file(file)
    except CheckpointError:
        return None


def adapter_for_path(path: Union[str, Path]) -> FamilyAdapter:
    """The adapter that loads the checkpoint at ``path`` (see :func:`family_of_path`)."""
    return adapter_for(family_of_path(path))


def adapter_for_latent(latent, name: str = "latent") -> FamilyAdapter:
    """The adapter of a LATENT's family tag (an untagged latent is taken for ACE-Step v1, as
    ComfyUI's own ACE latents are)."""
    if not isinstance(latent, dict) or "samples" not in latent:
        raise InputError(f"{name}: expected a LATENT (a dict with 'samples'), got {type(latent).__name__}")
    return adapter_for(latent.get("aceforge_family") or ACE_V1)


def require(adapter: FamilyAdapter, task: str) -> None:
    """InputError when the family cannot run ``task``."""
    if task not in adapter.capabilities:
        raise InputError(f"{adapter.title} does not support {task!r}; it supports "
                         f"{', '.join(t for t in TASKS if t in adapter.capabilities)}")


__all__ = [
    "ADAPTERS", "FamilyAdapter", "TASKS", "adapter_for", "call_prepare", "adapter_for_latent", "adapter_for_path",
    "family_of_path", "require",
]
