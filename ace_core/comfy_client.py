"""A headless client for a running ComfyUI server: standard library only (HTTP and a small websocket).

:class:`ComfyClient` talks to ComfyUI's HTTP API (``/object_info``, ``/prompt``, ``/history``,
``/upload/image``, ``/view``, ``/interrupt``) and follows a run over ``/ws``. :func:`queue_main`
is the ``python -m ace_core queue`` command built on it::

    python -m ace_core queue workflows/api/audio_to_audio.json --server http://127.0.0.1:8188 \\
        --set 4.tags="lo-fi, piano" --set 5.seed=42 --input song.wav --wait --out results/

Every network call has a timeout; waiting for a run is bounded by ``--timeout``.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Callable, Optional

from .errors import AceStepError, InputError

HTTP_TIMEOUT = 30.0
"""Seconds for one HTTP request (uploads and downloads included)."""

EXIT_FAILED = 1  # the server ran the prompt and it failed (or was interrupted / timed out)
EXIT_INPUT = 2  # bad command line, workflow, or the server refused the prompt / is down


class ServerError(AceStepError):
    """The server is unreachable or answered something unexpected (one line for the user)."""


class PromptRejected(AceStepError):
    """``/prompt`` refused the workflow: ``node_errors`` maps node id -> ComfyUI's error dict."""

    def __init__(self, message: str, node_errors: dict, error: Optional[dict] = None):
        super().__init__(message)
        self.node_errors = node_errors or {}
        self.error = error or {}

    def lines(self, prompt: Optional[dict] = None) -> list[str]:
        """One line per node and input: ``node 5 (AceForge_KSampler) steps: <message>``."""
        out = []
        for node_id, info in sorted(self.node_errors.items(), key=lambda kv: str(kv[0])):
            cls = info.get("class_type") or ((prompt or {}).get(node_id) or {}).get("class_type", "?")
            for err in info.get("errors", []):
                name = (err.get("extra_info") or {}).get("input_name")
                detail = err.get("details") or err.get("message", "")
                out.append(f"node {node_id} ({cls}){' ' + name if name else ''}: {detail}")
        if not out:
            err = self.error
            out.append(f"{err.get('message', str(self))}: {err.get('details', '')}".rstrip(": "))
        return out


# ---------------------------------------------------------------------------------------------
# websocket (RFC 6455, client side: text frames in, nothing but pong/close out)


class WebSocket:
    """A minimal websocket client over a plain socket (``ws://`` only; ComfyUI on a local port)."""

    def __init__(self, url: str, timeout: float = HTTP_TIMEOUT):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "ws":
            raise ServerError(f"websocket: only ws:// is supported, got {url!r}")
        host, port = parts.hostname, parts.port or 80
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ServerError(f"websocket: {url} closed during the handshake")
            head += chunk
        head, self._buffer = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ServerError(f"websocket: {url} refused the upgrade ({head.splitlines()[0].decode(errors='replace')})")

    def _read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("websocket closed by the server")
            self._buffer += chunk
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def _send(self, opcode: int, payload: bytes = b"") -> None:
        mask = os.urandom(4)
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def receive(self, timeout: float) -> Optional[str]:
        """The next text message, or None when ``timeout`` passes first (binary frames are skipped)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                first, second = self._read(2)
                opcode, n = first & 0x0F, second & 0x7F
                if n == 126:
                    n = struct.unpack(">H", self._read(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", self._read(8))[0]
                mask = self._read(4) if second & 0x80 else None
                payload = self._read(n)
                if mask:
                    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                if opcode == 0x9:  # ping
                    self._send(0xA, payload)
                elif opcode == 0x8:
                    raise ConnectionError("websocket closed by the server")
                elif opcode == 0x1:  # text (ComfyUI sends whole messages, unfragmented)
                    return payload.decode("utf-8", errors="replace")
        except socket.timeout:
            return None

    def close(self) -> None:
        try:
            self._send(0x8)
        except OSError:
            pass
        self.sock.close()


# ---------------------------------------------------------------------------------------------
# HTTP


class ComfyClient:
    """ComfyUI's HTTP API at ``server`` (``http://host:port``)."""

    def __init__(self, server: str, timeout: float = HTTP_TIMEOUT):
        self.server = server.rstrip("/")
        if not self.server.startswith(("http://", "https://")):
            raise InputError(f"--server: expected an http:// address such as http://127.0.0.1:8188, got {server!r}")
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex

    def _request(self, method: str, path: str, body: Optional[bytes] = None, headers: Optional[dict] = None):
        request = urllib.request.Request(self.server + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerError(f"server: no ComfyUI answers at {self.server} ({reason}); is it running?") from None

    def get_json(self, path: str):
        status, data = self._request("GET", path)
        if status != 200:
            raise ServerError(f"server: GET {path} answered HTTP {status}: {data[:200].decode(errors='replace')}")
        return json.loads(data)

    def object_info(self) -> dict:
        return self.get_json("/object_info")

    def post_prompt(self, prompt: dict) -> str:
        """Queue an API prompt; its ``prompt_id``. :class:`PromptRejected` on HTTP 400."""
        body = json.dumps({"prompt": prompt, "client_id": self.client_id}).encode()
        status, data = self._request("POST", "/prompt", body, {"Content-Type": "application/json"})
        try:
            answer = json.loads(data)
        except ValueError:
            answer = {}
        if status == 200 and "prompt_id" in answer:
            return answer["prompt_id"]
        if status == 400:
            error = answer.get("error") if isinstance(answer.get("error"), dict) else {"message": str(answer.get("error"))}
            raise PromptRejected(f"the server refused the workflow: {error.get('message', '')}",
                                 answer.get("node_errors") or {}, error)
        raise ServerError(f"server: POST /prompt answered HTTP {status}: {data[:200].decode(errors='replace')}")

    def history(self, prompt_id: str) -> Optional[dict]:
        """The finished run's history entry (``outputs``, ``status``), None while it is not finished."""
        return self.get_json(f"/history/{urllib.parse.quote(prompt_id)}").get(prompt_id)

    def interrupt(self) -> None:
        self._request("POST", "/interrupt", b"{}", {"Content-Type": "application/json"})

    def upload(self, path, overwrite: bool = True) -> str:
        """Upload a file into the server's ``input`` folder; the name to give a LoadAudio node."""
        path = Path(path)
        boundary = uuid.uuid4().hex
        parts = [(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{path.name}"\r\n'
                  "Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + b"\r\n"]
        for name, value in (("type", "input"), ("overwrite", "true" if overwrite else "false")):
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        status, data = self._request("POST", "/upload/image", body,
                                     {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        if status != 200:
            raise ServerError(f"server: uploading {path.name} answered HTTP {status}: {data[:200].decode(errors='replace')}")
        answer = json.loads(data)
        return "/".join(p for p in (answer.get("subfolder"), answer["name"]) if p)

    def download(self, item: dict, folder) -> Path:
        """Fetch one output file (``{"filename", "subfolder", "type"}`` from the history) into ``folder``."""
        query = urllib.parse.urlencode({k: item.get(k, "") for k in ("filename", "subfolder", "type")})
        status, data = self._request("GET", f"/view?{query}")
        if status != 200:
            raise ServerError(f"server: downloading {item.get('filename')} answered HTTP {status}")
        target = Path(folder) / Path(item["filename"]).name
        tmp = target.with_name(f".{target.name}.part")
        tmp.write_bytes(data)
        os.replace(tmp, target)  # a file appears whole or not at all
        return target

    def websocket(self) -> WebSocket:
        base = "ws" + self.server[len("http"):]
        return WebSocket(f"{base}/ws?clientId={self.client_id}", timeout=self.timeout)

    def wait(self, prompt_id: str, timeout: float, on_event: Optional[Callable[[dict], None]] = None,
             ws: Optional[WebSocket] = None) -> dict:
        """Follow a queued prompt until it ends (or ``timeout`` seconds pass): its history entry.

        Websocket messages of this prompt go to ``on_event``; the history is polled as well, so a
        missed message cannot hang the wait. ``TimeoutError`` when the deadline passes.
        """
        deadline = time.monotonic() + timeout
        own = ws is None
        try:
            if ws is None:
                try:
                    ws = self.websocket()
                except (OSError, ServerError):
                    ws = None  # progress is optional: fall back to polling
            next_poll = 0.0
            while time.monotonic() < deadline:
                if ws is not None:
                    try:
                        text = ws.receive(timeout=0.5)
                    except (OSError, ConnectionError):
                        ws, text = None, None
                    if text:
                        event = json.loads(text)
                        data = event.get("data") or {}
                        if on_event is not None and data.get("prompt_id") in (None, prompt_id):
                            on_event(event)
                        if data.get("prompt_id") == prompt_id and event.get("type") in (
                                "execution_success", "execution_error", "execution_interrupted"):
                            next_poll = 0.0
                else:
                    time.sleep(0.25)
                if time.monotonic() >= next_poll:
                    entry = self.history(prompt_id)
                    if entry is not None and (entry.get("status") or {}).get("completed") is not None:
                        return entry
                    next_poll = time.monotonic() + 1.0
            raise TimeoutError(f"the run {prompt_id} did not finish within {timeout:g} s")
        finally:
            if own and ws is not None:
                ws.close()


def run_failure(entry: dict) -> Optional[str]:
    """None for a successful history entry, else one line saying what went wrong."""
    status = entry.get("status") or {}
    if status.get("status_str") == "success":
        return None
    for kind, data in status.get("messages", []):
        if kind == "execution_error":
            return (f"node {data.get('node_id')} ({data.get('node_type')}): "
                    f"{data.get('exception_type', 'error')}: {str(data.get('exception_message', '')).strip()}")
        if kind == "execution_interrupted":
            return f"interrupted at node {data.get('node_id')} ({data.get('node_type')})"
    return f"the run ended with status {status.get('status_str')!r}"


def output_files(entry: dict) -> list[dict]:
    """The saved files of a history entry (audio, images, ...): those of type ``output`` (what Save
    nodes wrote), else the previews."""
    items = []
    for node_output in (entry.get("outputs") or {}).values():
        for value in node_output.values():
            if isinstance(value, list):
                items += [v for v in value if isinstance(v, dict) and "filename" in v]
    return [v for v in items if v.get("type") == "output"] or items


# ---------------------------------------------------------------------------------------------
# the `queue` command


def add_queue_parser(sub) -> None:
    """The ``queue`` subcommand on the CLI's subparsers."""
    q = sub.add_parser("queue", help="run an API workflow on a running ComfyUI server (headless)",
                       description="Queue a ComfyUI API workflow (Export (API) in ComfyUI, or workflows/api/*.json) "
                                   "on a running server, optionally wait for it and download its outputs.")
    q.add_argument("workflow", help="the API workflow JSON file")
    q.add_argument("--server", default="http://127.0.0.1:8188", help="the ComfyUI address (default http://127.0.0.1:8188)")
    q.add_argument("--set", dest="sets", action="append", default=[], metavar="NODE.INPUT=VALUE",
                   help="change one input, e.g. 4.tags='lo-fi, piano' or 5.seed=42 (the value is read as JSON "
                        "when it parses, else as text); repeatable")
    q.add_argument("--input", dest="inputs", action="append", default=[], metavar="[NODE=]FILE",
                   help="upload an audio file and give it to the LoadAudio node (NODE= picks one when there are several)")
    q.add_argument("--wait", action="store_true", help="follow the run (a progress bar per node) until it ends")
    q.add_argument("--out", metavar="DIR", help="download the outputs into DIR (implies --wait)")
    q.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the run (default 3600)")
    q.add_argument("--quiet", action="store_true", help="no progress display")


def _parse_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def load_workflow(path) -> dict:
    """An API workflow from a file; a UI workflow (``nodes``/``links``) is refused with the fix."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"workflow: {str(path)!r} is {'a folder' if path.is_dir() else 'not a file'}; "
                         "give an API workflow .json")
    try:
        prompt = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"workflow: {str(path)!r} is not JSON ({exc})") from None
    if isinstance(prompt, dict) and "nodes" in prompt and "links" in prompt:
        raise InputError(f"workflow: {str(path)!r} is a UI workflow; save it with Workflow > Export (API) "
                         "(or use the file of the same name in workflows/api/)")
    if not isinstance(prompt, dict) or not prompt or not all(
            isinstance(v, dict) and "class_type" in v and isinstance(v.get("inputs"), dict) for v in prompt.values()):
        raise InputError(f"workflow: {str(path)!r} is not an API workflow (node id -> {{class_type, inputs}})")
    return prompt


def apply_sets(prompt: dict, sets) -> dict:
    """Apply ``NODE.INPUT=VALUE`` changes (InputError naming the --set for an unknown node)."""
    for item in sets:
        target, sep, value = item.partition("=")
        node_id, dot, name = target.partition(".")
        if not sep or not dot or not name:
            raise InputError(f"--set: expected NODE.INPUT=VALUE (e.g. 5.seed=42), got {item!r}")
        if node_id not in prompt:
            raise InputError(f"--set {item!r}: the workflow has no node {node_id!r} (nodes: {', '.join(sorted(prompt))})")
        prompt[node_id]["inputs"][name] = _parse_value(value)
    return prompt


def apply_inputs(prompt: dict, inputs, client: ComfyClient) -> dict:
    """Upload each ``[NODE=]FILE`` and set it as that LoadAudio node's ``audio``."""
    loaders = sorted(k for k, v in prompt.items() if v["class_type"] == "LoadAudio")
    plan = []
    for item in inputs:
        node_id, sep, file = item.partition("=")
        if not sep or node_id not in prompt:
            node_id, file = None, item
        if node_id is None:
            if len(loaders) != 1:
                raise InputError(f"--input {item!r}: the workflow has {len(loaders)} LoadAudio nodes "
                                 f"({', '.join(loaders) or 'none'}); write --input NODE=FILE")
            node_id = loaders[0]
        path = Path(file)
        if not path.is_file():
            raise InputError(f"--input {item!r}: {str(path)!r} is {'a folder' if path.is_dir() else 'not a file'}")
        plan.append((node_id, path))
    for node_id, path in plan:
        prompt[node_id]["inputs"]["audio"] = client.upload(path)
    return prompt


def check_nodes(prompt: dict, info: dict) -> None:
    """One clear error when the workflow uses node types the server does not have."""
    missing = sorted({v["class_type"] for v in prompt.values()} - set(info))
    if missing:
        raise InputError(f"workflow: the server has no node(s) {', '.join(missing)}; install the custom nodes "
                         "that provide them (for AceForge_*: this pack) and restart ComfyUI")


class _NodeProgress:
    """A progress line per node from the websocket events (stderr)."""

    def __init__(self, prompt: dict, quiet: bool):
        from .progress import ConsoleProgress

        self.prompt, self.quiet, self.bars = prompt, quiet, {}
        self._bar = ConsoleProgress

    def __call__(self, event: dict) -> None:
        if self.quiet:
            return
        data = event.get("data") or {}
        node = data.get("node")
        if event.get("type") == "progress" and node is not None:
            if node not in self.bars:
                cls = (self.prompt.get(str(node)) or {}).get("class_type", "?")
                self.bars[node] = self._bar(f"node {node} ({cls})")
            self.bars[node](int(data.get("value", 0)), int(data.get("max", 1)))
        elif event.get("type") == "executing" and node is not None:
            cls = (self.prompt.get(str(node)) or {}).get("class_type", "?")
            print(f"running node {node} ({cls})", file=sys.stderr)


def queue_main(args) -> int:
    """``python -m ace_core queue``: returns the exit status."""
    prompt = None
    try:
        if args.timeout is None or not args.timeout > 0:
            raise InputError(f"--timeout: must be above 0 seconds, got {args.timeout}")
        prompt = load_workflow(args.workflow)
        apply_sets(prompt, args.sets)
        out = Path(args.out) if args.out else None
        if out is not None and out.exists() and not out.is_dir():
            raise InputError(f"--out: {str(out)!r} is a file; give a folder for the outputs")
        client = ComfyClient(args.server)
        check_nodes(prompt, client.object_info())
        apply_inputs(prompt, args.inputs, client)
        ws = None
        if args.wait or out:
            try:  # opened before queueing, so no event is missed; without it the history is polled
                ws = client.websocket()
            except (OSError, ServerError):
                print("note: no progress (the server's websocket did not open); waiting for the result",
                      file=sys.stderr)
        try:
            prompt_id = client.post_prompt(prompt)
            print(f"queued {prompt_id}", file=sys.stderr if (args.wait or out) else sys.stdout)
            if not (args.wait or out):
                return 0
            entry = client.wait(prompt_id, args.timeout, _NodeProgress(prompt, args.quiet), ws=ws)
        finally:
            if ws is not None:
                ws.close()
    except PromptRejected as exc:
        print(f"error: {exc}", file=sys.stderr)
        for line in exc.lines(prompt):
            print(f"  {line}", file=sys.stderr)
        return EXIT_INPUT
    except AceStepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except TimeoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    failure = run_failure(entry)
    if failure is not None:
        print(f"error: the run failed: {failure}", file=sys.stderr)
        return EXIT_FAILED
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        try:
            for item in output_files(entry):
                print(f"wrote {client.download(item, out)}")
        except ServerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
    return 0


__all__ = ["ComfyClient", "PromptRejected", "ServerError", "WebSocket", "add_queue_parser", "apply_inputs",
           "apply_sets", "check_nodes", "load_workflow", "output_files", "queue_main", "run_failure"]
