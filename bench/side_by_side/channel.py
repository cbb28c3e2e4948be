"""The driver's end of a worker: one persistent process and its JSON-lines channel (see ``protocol``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]


class WorkerError(RuntimeError):
    """A worker refused a request or died; the message holds its error or the end of its log."""


class Worker:
    """One persistent worker process and its JSON-lines channel."""

    def __init__(self, name: str, argv: list, env: dict, log: Path):
        self.name, self.log, self.argv, self.env = name, log, argv, env
        self._log_fh = open(log, "a")
        self._start()

    def _start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log_fh,
                                     text=True, env=self.env, cwd=str(BENCH), bufsize=1)

    def restart(self) -> None:
        """A fresh process (memory a worker freed is not always given back to the system)."""
        self.close()
        self._log_fh = open(self.log, "a")
        self._start()

    def call(self, op: str, **args) -> dict:
        if self.proc.poll() is not None:
            raise WorkerError(f"{self.name} worker has exited ({self.proc.returncode}):\n{self.log_tail()}")
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            raise WorkerError(f"{self.name} worker died during {op} ({self.proc.returncode}):\n{self.log_tail()}")
        reply = json.loads(line)
        if not reply.pop("ok"):
            raise WorkerError(f"{self.name} {op} {args}: {reply['error']}\n{reply.get('trace', '')}")
        return reply

    def log_tail(self, lines: int = 30) -> str:
        self._log_fh.flush()
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.call("quit")
                self.proc.wait(timeout=60)
        except Exception:
            if self.proc.poll() is None:
                self.proc.kill()
        self._log_fh.close()
