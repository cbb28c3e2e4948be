import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

# Data files beside the project (../shared); the lyric vocab is never shipped in the pack.
SHARED = TESTS.parents[1] / "shared"
_VOCAB = SHARED / "reference" / "data" / "ace_v1_lyrics_vocab.json"
if "ACEFORGE_LYRICS_VOCAB" not in os.environ and _VOCAB.exists():
    os.environ["ACEFORGE_LYRICS_VOCAB"] = str(_VOCAB)


def pytest_ignore_collect(collection_path, config):
    """tests/comfy_real runs against a real ComfyUI server (.ci/run's second stage): collected only
    when named on the command line (``pytest tests/comfy_real``), never by the default unit run."""
    if collection_path.name != "comfy_real" or collection_path.parent != TESTS:
        return None
    named = [Path(str(a).split("::")[0]).resolve() for a in config.args]
    return not any(p == collection_path or collection_path in p.parents for p in named)


@pytest.fixture(scope="module")
def pack():
    """The pack, imported by path under its folder name as ComfyUI does."""
    from workflow_tools import load_pack

    return load_pack()


@pytest.fixture()
def quiet(monkeypatch):
    """No console progress bars from the nodes (tests that use it: ``pytestmark``)."""
    monkeypatch.setenv("ACEFORGE_QUIET", "1")
