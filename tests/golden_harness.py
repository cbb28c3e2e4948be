"""Golden-fixture harness: discovery, loading (``state_dict_from`` included) and comparison.

The format is described in ``../shared/golden/FORMAT.md``. Runners live in
``tests/golden_runners/<family>.py``; each module exposes ``RUNNERS = {component_id: fn}``
where ``fn(fixture)`` calls ``fixture.check(name, actual)`` for every output it reproduces.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

REPO_ROOT = Path(__file__).resolve().parents[1]


def golden_dir() -> Path:
    env = os.environ.get("ACESTEP_GOLDEN_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "golden"


def discover() -> list[tuple[Path, str]]:
    """Every (folder, stem) listed by every ``manifest.json`` under the golden dir."""
    root = golden_dir()
    found = []
    for manifest in sorted(root.rglob("manifest.json")):
        stems = json.loads(manifest.read_text())["fixtures"]
        found.extend((manifest.parent, stem) for stem in stems)
    return found


@dataclass
class Fixture:
    folder: Path
    stem: str
    meta: dict = field(init=False)
    checks: list = field(default_factory=list, init=False)
    _tensors: dict | None = field(default=None, init=False)
    _state_dict: dict | None = field(default=None, init=False)

    def __post_init__(self):
        self.meta = json.loads((self.folder / f"{self.stem}.json").read_text())

    # --- metadata -----------------------------------------------------------------------
    @property
    def component(self) -> str:
        return self.meta["component"]

    @property
    def config(self) -> dict:
        return self.meta.get("config", {})

    @property
    def args(self) -> dict:
        return self.meta.get("args", {})

    @property
    def atol(self) -> float:
        return float(self.meta["tolerance"]["atol"])

    @property
    def rtol(self) -> float:
        return float(self.meta["tolerance"]["rtol"])

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the reference ran in (float32 unless the JSON says otherwise)."""
        return getattr(torch, self.meta.get("dtype", "float32"))

    # --- tensors ------------------------------------------------------------------------
    def _load(self, stem: str) -> dict:
        path = self.folder / f"{stem}.safetensors"
        return load_file(str(path)) if path.exists() else {}

    @property
    def tensors(self) -> dict:
        if self._tensors is None:
            self._tensors = self._load(self.stem)
        return self._tensors

    def _with_role(self, role: str) -> dict:
        n = len(role) + 1
        return {k[n:]: v for k, v in self.tensors.items() if k.startswith(role + ".")}

    @property
    def inputs(self) -> dict:
        return self._with_role("input")

    @property
    def outputs(self) -> dict:
        return self._with_role("output")

    @property
    def state_dict(self) -> dict:
        """The fixture's own ``state_dict.*`` plus every ``state_dict_from`` borrow."""
        if self._state_dict is None:
            sd = self._with_role("state_dict")
            for borrow in self.meta.get("state_dict_from", []):
                other = self._load(borrow["stem"])
                prefix = borrow.get("prefix", "")
                for k, v in other.items():
                    if k.startswith("state_dict."):
                        sd[prefix + k[len("state_dict."):]] = v
            self._state_dict = sd
        return self._state_dict

    # --- comparison ---------------------------------------------------------------------
    def check(self, name: str, actual: Any, expected: Any = None) -> None:
        """Compare ``actual`` with ``output.<name>`` (or ``expected``) within the tolerance."""
        if expected is None:
            assert name in self.outputs, f"{self.stem}: no output.{name} in the fixture"
            expected = self.outputs[name]
        expected = torch.as_tensor(expected)
        actual = torch.as_tensor(actual).detach().to("cpu")
        assert tuple(actual.shape) == tuple(expected.shape), (
            f"{self.stem}:{name}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}"
        )
        if not expected.is_floating_point():
            assert torch.equal(actual.to(expected.dtype), expected), f"{self.stem}:{name}: values differ"
        else:
            a, e = actual.double(), expected.double()
            ok = torch.allclose(a, e, atol=self.atol, rtol=self.rtol)
            diff = (a - e).abs().max().item() if a.numel() else 0.0
            assert ok, (
                f"{self.stem}:{name}: max |diff| {diff:.3e} exceeds atol {self.atol} / rtol {self.rtol}"
            )
        self.checks.append(name)
