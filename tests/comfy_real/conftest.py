"""The real-ComfyUI stage (see stage.py): one server for the session, stopped at the end."""

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from stage import start_server, stop_server  # noqa: E402


@pytest.fixture(scope="session")
def server():
    srv = start_server()
    yield srv
    stop_server(srv)
