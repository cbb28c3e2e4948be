"""Helpers of the real-ComfyUI stage: a ComfyUI 0.27 server (../shared/harness/comfyui) with this pack mounted.

Run it explicitly (the unit run never collects this folder), with the harness venv's Python::

    ~/.cache/aceforge-comfyui-venv/bin/python -m pytest tests/comfy_real

The session starts one server (``start PACK_DIR PORT WORK_DIR``) and stops it at the end; with
``ACEFORGE_COMFY_URL`` and ``ACEFORGE_COMFY_DIR`` set it uses a running one instead. Where the
harness cannot start, every test skips with the reason.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from checkpoints import LAYOUTS, write_layout  # noqa: E402,F401

HARNESS = Path(os.environ.get("ACEFORGE_COMFY_HARNESS") or REPO.parent / "shared" / "harness" / "comfyui")
RUN_TIMEOUT = 180.0  # seconds for one tiny workflow run (they take a few)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running ComfyUI: its address, folders, log and an HTTP client."""

    def __init__(self, url: str, work: Path, pid: int | None):
        from ace_core.comfy_client import ComfyClient

        self.url, self.work, self.pid = url, Path(work), pid
        self.comfy = self.work / "ComfyUI"
        self.models = self.comfy / "models"
        self.input = self.comfy / "input"
        self.output = self.comfy / "output"
        self.temp = self.comfy / "temp"
        self.log = self.work / "comfyui.log"
        self.client = ComfyClient(url)
        self._layouts: dict = {}

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.is_file() else ""

    def alive(self) -> bool:
        try:
            self.client.get_json("/system_stats")
            return True
        except Exception:
            return False

    def layout(self, family: str, layout: str, kind: str = "turbo") -> dict:
        """{model input: name} of a tiny model of ``family`` in ``layout`` (written on first use)."""
        key = (family, layout, kind)
        if key not in self._layouts:
            self._layouts[key] = write_layout(self.models, family, layout, kind)
        return self._layouts[key]

    def run(self, prompt: dict, timeout: float = RUN_TIMEOUT, on_event=None) -> dict:
        """Queue ``prompt`` and wait for its history entry."""
        prompt_id = self.client.post_prompt(prompt)
        return self.client.wait(prompt_id, timeout, on_event)

    def files(self) -> set:
        """Every file under output/ and temp/ (to see what a run wrote)."""
        return {p for root in (self.output, self.temp) if root.is_dir() for p in root.rglob("*") if p.is_file()}


def start_server() -> Server:
    url, work = os.environ.get("ACEFORGE_COMFY_URL"), os.environ.get("ACEFORGE_COMFY_DIR")
    if url and work:
        return Server(url, Path(work), None)
    start = HARNESS / "start"
    if not start.is_file():
        pytest.skip(f"real-ComfyUI stage skipped: no harness at {HARNESS} (set ACEFORGE_COMFY_HARNESS)")
    work_dir = Path(os.environ.get("ACEFORGE_COMFY_WORK") or f"/tmp/aceforge-comfy-stage-{os.getpid()}")
    try:
        done = subprocess.run([str(start), str(REPO), str(_free_port()), str(work_dir)], capture_output=True,
                              text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"real-ComfyUI stage skipped: the harness did not start ({exc})")
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    if done.returncode != 0 or "url" not in lines:
        pytest.skip(f"real-ComfyUI stage skipped: the harness did not start:\n{done.stderr[-2000:]}")
    return Server(lines["url"], Path(lines["dir"]), int(lines["pid"]))





def stop_server(srv: Server) -> None:
    if srv.pid is None:
        return
    try:
        os.kill(srv.pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(srv.pid, 0)
            time.sleep(0.1)
        os.kill(srv.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ------------------------------------------------------------------------------------------------
# workflows


def api_workflows() -> list[Path]:
    return sorted((REPO / "workflows" / "api").glob("*.json"))


def ui_workflows() -> list[Path]:
    return sorted((REPO / "workflows").glob("*.json"))


# the shipped values are the real ones (60 s, 60 steps ...); the runs use small ones
FAST = {
    "ace_v1": {"seconds": 1.0, "steps": 3, "start_time": 0.4, "end_time": 1.0, "extend_before_duration": 0.5,
               "extend_after_duration": 1.0},
    "ace_v15": {"seconds": 10.0, "duration": 10.0, "max_duration": 30, "steps": 2, "start_time": 1.0, "end_time": 2.0,
                "extend_before_duration": 0.5, "extend_after_duration": 1.0},
}
SOURCE = {"ace_v1": (48000, 1.5), "ace_v15": (48000, 3.0)}
"""(rate, seconds) of the mono tone given to LoadAudio, per family."""
OUTPUT_RATE = {"ace_v1": 44100, "ace_v15": 48000}


def write_source(path: Path, rate: int, seconds: float) -> Path:
    import torch

    from ace_core.audio.io import save_audio

    t = torch.arange(int(round(seconds * rate))) / rate
    noise = 0.05 * torch.randn(t.shape, generator=torch.Generator().manual_seed(1))
    return save_audio(path, (0.3 * torch.sin(2 * math.pi * 220 * t) + noise)[None], rate)


def load_api(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def prepare(server: Server, prompt: dict, family: str, layout: str) -> dict:
    """The prompt with the tiny model of ``layout``, the fast values and the family's uploaded source."""
    from checkpoints import workflow_kind

    names = server.layout(family, layout, workflow_kind(prompt))
    rate, seconds = SOURCE[family]
    source = server.input / f"aceforge_source_{family}.wav"
    if not source.is_file():
        write_source(source, rate, seconds)
    for node in prompt.values():
        inputs = node["inputs"]
        for key, name in names.items():
            if isinstance(inputs.get(key), str):
                inputs[key] = name
        for key, value in FAST[family].items():
            if key in inputs and not isinstance(inputs[key], list):
                inputs[key] = value
        if node["class_type"] == "LoadAudio":
            inputs["audio"] = source.name
    return prompt


def saved_audio(server: Server, entry: dict) -> list[Path]:
    """The audio files a run's history lists (outputs and previews)."""
    files = []
    for node_output in (entry.get("outputs") or {}).values():
        for item in node_output.get("audio", []):
            root = server.output if item.get("type") == "output" else server.temp
            files.append(root / item.get("subfolder", "") / item["filename"])
    return files


__all__ = ["FAST", "start_server", "stop_server", "LAYOUTS", "OUTPUT_RATE", "SOURCE", "Server", "api_workflows", "load_api", "prepare",
           "saved_audio", "ui_workflows", "write_source"]
