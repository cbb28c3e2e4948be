"""JSON lines between the driver and a worker, and what a process measures about itself.

Stdlib only: the ComfyUI worker runs in another Python environment and imports this file too.

A request is one JSON object per line on the worker's stdin, ``{"op": NAME, ...arguments}``; the
reply is one JSON object per line on its stdout, ``{"ok": true, ...}`` or ``{"ok": false, "error":
..., "trace": ...}``. Everything else a worker (or a library it imports) prints goes to stderr.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from typing import Callable, Optional


# --- process measurements ------------------------------------------------------------------------
def _status_kib(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss() -> int:
    """This process's resident high-water mark in bytes (VmHWM; ru_maxrss where /proc is missing)."""
    kib = _status_kib("VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * 1024


def current_rss() -> int:
    kib = _status_kib("VmRSS")
    return (kib or 0) * 1024


def reset_peak_rss() -> bool:
    """Restart VmHWM from the current RSS (Linux ``clear_refs`` 5), so a phase reports its own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def mem_available() -> Optional[int]:
    """MemAvailable of the machine in bytes (None when unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def measure(fn: Callable[[], Optional[dict]], sync: Callable[[], None] = lambda: None) -> tuple[dict, dict]:
    """Run ``fn`` once: ({seconds, cpu_seconds, peak_rss, rss_before}, what fn returned or {}).

    ``cpu_seconds`` is process CPU time (all threads): about ``threads x seconds`` when every core
    works, about ``seconds`` when the work ran on one core."""
    reset_peak_rss()
    before = current_rss()
    sync()
    wall, cpu = time.perf_counter(), time.process_time()
    extra = fn() or {}
    sync()
    out = {"seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu,
           "peak_rss": peak_rss(), "rss_before": before}
    return out, extra


# --- the worker's side of the protocol -----------------------------------------------------------
def serve(make_handler: Callable[[], object]) -> None:
    """Build the handler, then answer requests until ``quit`` or end of input: ``op`` NAME calls
    ``handler.op_NAME(**args)``.

    The protocol keeps the original stdout; file descriptor 1 and ``sys.stdout`` are pointed at
    stderr before the handler is built, so prints from libraries (C code included, at import time
    too) cannot break a reply line."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    handler = make_handler()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        msg = json.loads(line)
        op = msg.pop("op")
        try:
            method = getattr(handler, "op_" + op, None)
            if method is None:
                raise ValueError(f"unknown op {op!r}")
            reply = {"ok": True, **(method(**msg) or {})}
        except Exception as exc:  # reported to the driver, which decides what to do
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
        out.write(json.dumps(reply) + "\n")
        if op == "quit":
            break
