"""The headless queue client (``python -m ace_core queue``) against a tiny local stand-in server
(the real ComfyUI runs it in tests/comfy_real/test_queue_client.py)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ace_core import cli
from ace_core.comfy_client import PromptRejected, apply_sets, load_workflow

PROMPT = {
    "1": {"class_type": "LoadAudio", "inputs": {"audio": "example.wav"}},
    "5": {"class_type": "AceForge_KSampler", "inputs": {"seed": 0, "steps": 8}},
    "9": {"class_type": "SaveAudio", "inputs": {"audio": ["5", 0]}},
}


class FakeComfy(BaseHTTPRequestHandler):
    """/object_info, /prompt (400 for steps < 1), /history, /upload/image, /view; no websocket."""

    state: dict = {}

    def log_message(self, *args):
        pass

    def _send(self, code: int, body, kind="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/object_info":
            return self._send(200, {k: {} for k in ("LoadAudio", "AceForge_KSampler", "SaveAudio")})
        if self.path.startswith("/history/"):
            pid = self.path.rsplit("/", 1)[1]
            entry = {"status": {"status_str": "success", "completed": True, "messages": []},
                     "outputs": {"9": {"audio": [{"filename": "song_00001.flac", "subfolder": "audio",
                                                  "type": "output"}]}}}
            return self._send(200, {pid: entry} if pid in self.state.get("queued", []) else {})
        if self.path.startswith("/view?"):
            return self._send(200, b"fLaC-bytes", "audio/flac")
        return self._send(404, {"error": "not found"})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/upload/image":
            self.state["uploaded"] = body
            return self._send(200, {"name": "song.wav", "subfolder": "", "type": "input"})
        if self.path == "/prompt":
            prompt = json.loads(body)["prompt"]
            self.state["prompt"] = prompt
            if prompt["5"]["inputs"]["steps"] < 1:
                return self._send(400, {"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"},
                                        "node_errors": {"5": {"class_type": "AceForge_KSampler", "errors": [
                                            {"type": "value_smaller_than_min", "message": "Value smaller than min",
                                             "details": "steps: -1 is smaller than min of 1",
                                             "extra_info": {"input_name": "steps"}}]}}})
            self.state.setdefault("queued", []).append("p1")
            return self._send(200, {"prompt_id": "p1", "number": 0, "node_errors": {}})
        return self._send(404, {})


@pytest.fixture()
def server():
    FakeComfy.state = {}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeComfy)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", FakeComfy.state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def workflow(tmp_path):
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(PROMPT))
    return path


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_queue_uploads_sets_waits_and_downloads(server, workflow, tmp_path, capsys):
    url, state = server
    song = tmp_path / "song.wav"
    song.write_bytes(b"RIFF....WAVE")
    code, out, err = run(["queue", workflow, "--server", url, "--set", "5.seed=42", "--set", "5.note=a, b",
                          "--input", song, "--out", tmp_path / "res", "--quiet", "--timeout", "20"], capsys)
    assert code == 0, err
    sent = state["prompt"]
    assert sent["5"]["inputs"]["seed"] == 42 and sent["5"]["inputs"]["note"] == "a, b"
    assert sent["1"]["inputs"]["audio"] == "song.wav" and b"RIFF....WAVE" in state["uploaded"]
    assert (tmp_path / "res" / "song_00001.flac").read_bytes() == b"fLaC-bytes"
    assert "wrote" in out and not list((tmp_path / "res").glob(".*"))


def test_queue_without_wait_prints_the_id(server, workflow, capsys):
    code, out, _ = run(["queue", workflow, "--server", server[0]], capsys)
    assert code == 0 and out.strip() == "queued p1"


def test_validation_errors_are_listed_per_node_and_input(server, workflow, capsys):
    code, _, err = run(["queue", workflow, "--server", server[0], "--set", "5.steps=-1", "--wait"], capsys)
    assert code == 2
    assert "node 5 (AceForge_KSampler) steps: steps: -1 is smaller than min of 1" in err


@pytest.mark.parametrize("argv,message", [
    (["--set", "7.seed=1"], r"--set '7.seed=1': the workflow has no node '7'"),
    (["--set", "seed=1"], r"--set: expected NODE.INPUT=VALUE"),
    (["--set", "5.seed"], r"--set: expected NODE.INPUT=VALUE"),
    (["--input", "{tmp}/nope.wav"], r"--input .*not a file"),
    (["--input", "{tmp}"], r"--input .*a folder"),
    (["--timeout", "0"], r"--timeout: must be above 0"),
    (["--server", "ftp://x"], r"--server: expected an http:// address"),
    (["--out", "{workflow}"], r"--out: .* is a file"),
])
def test_bad_queue_arguments_are_one_line(server, workflow, tmp_path, capsys, argv, message):
    import re

    argv = [a.replace("{tmp}", str(tmp_path)).replace("{workflow}", str(workflow)) for a in argv]
    code, _, err = run(["queue", workflow, "--server", server[0], *argv], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and re.search(message, err), err
    assert "prompt" not in server[1], "something was queued"


def test_missing_nodes_and_a_down_server_are_one_line(server, tmp_path, capsys):
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(dict(PROMPT, **{"8": {"class_type": "Nope", "inputs": {}}})))
    code, _, err = run(["queue", path, "--server", server[0]], capsys)
    assert code == 2 and "the server has no node(s) Nope" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["queue", path, "--server", "http://127.0.0.1:9"], capsys)
    assert code == 2 and "no ComfyUI answers at http://127.0.0.1:9" in err and len(err.strip().splitlines()) == 1


def test_ui_workflows_and_non_workflows_are_refused(tmp_path):
    from ace_core.errors import InputError

    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps({"nodes": [], "links": []}))
    with pytest.raises(InputError, match="is a UI workflow; save it with Workflow > Export \\(API\\)"):
        load_workflow(ui)
    junk = tmp_path / "junk.json"
    junk.write_text("[1, 2]")
    with pytest.raises(InputError, match="not an API workflow"):
        load_workflow(junk)


def test_set_reads_json_values_and_keeps_text():
    prompt = json.loads(json.dumps(PROMPT))
    apply_sets(prompt, ["5.seed=7", "5.cfg=1.5", "5.flag=true", "5.tags=pop, 80 bpm", "8x.y=1"][:4])
    assert prompt["5"]["inputs"] == {"seed": 7, "steps": 8, "cfg": 1.5, "flag": True, "tags": "pop, 80 bpm"}


def test_rejection_lines_fall_back_to_the_error_message():
    exc = PromptRejected("refused", {}, {"message": "Prompt has no outputs", "details": ""})
    assert exc.lines() == ["Prompt has no outputs"]
