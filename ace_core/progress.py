"""Progress and interruption for long loops.

Every long loop in the core takes ``progress: ProgressHook | None``: a callable
``hook(done, total)`` called after each unit of work. A hook interrupts the loop by
raising (ComfyUI's interrupt exception, ``KeyboardInterrupt``, ...). ``None`` is silent.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Optional

ProgressHook = Callable[[int, int], None]


def report(progress: Optional[ProgressHook], done: int, total: int) -> None:
    """Call ``progress(done, total)`` when a hook is given."""
    if progress is not None:
        progress(done, total)


@contextmanager
def layer_progress(layers: Iterable, progress: Optional[ProgressHook], passes: int = 1) -> Iterator[None]:
    """Within the block, ``progress(done, total)`` runs each time one of ``layers`` finishes (a
    forward hook; ``total`` = layers x ``passes``), so a hook can interrupt an encoder between its
    layers without the model code knowing about progress. Nothing is registered without a hook."""
    layers = list(layers) if progress is not None else []
    total, done, handles = len(layers) * passes, [0], []

    def after_layer(module, args, output) -> None:
        done[0] += 1
        report(progress, min(done[0], total), total)

    try:
        handles = [layer.register_forward_hook(after_layer) for layer in layers]
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def interrupt_points(modules: Iterable, progress: Optional[ProgressHook]) -> Iterator[None]:
    """Within the block, ``progress.check_interrupt()`` (when the hook has one: ComfyUI's does)
    runs after the forward of every weight-holding layer inside ``modules``, so a long window (a VAE
    stage) can be cancelled mid-way; the progress itself is still reported by the caller."""
    layers = []
    if getattr(progress, "check_interrupt", None) is not None:
        layers = [m for root in modules for m in root.modules() if next(m.parameters(recurse=False), None) is not None]
    with block_interrupts(layers, progress):
        yield


@contextmanager
def block_interrupts(blocks: Iterable, progress: Optional[ProgressHook]) -> Iterator[None]:
    """Within the block, ``progress.check_interrupt()`` (when the hook has one) runs after each of
    ``blocks`` (a DiT's transformer blocks), so one long sampler step can be cancelled between two
    blocks; nothing is registered otherwise."""
    check = getattr(progress, "check_interrupt", None)
    handles = []
    try:
        if check is not None:
            handles = [b.register_forward_hook(lambda module, args, output: check()) for b in blocks]
        yield
    finally:
        for handle in handles:
            handle.remove()


class ConsoleProgress:
    """A plain one-line progress display for the CLI and scripts (stderr)."""

    WIDTH = 24
    MIN_INTERVAL = 0.1  # seconds between redraws of the same bar

    def __init__(self, label: str, stream=None):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.monotonic()
        self._last = (-1, -1.0)  # (bar fill, time) of the last redraw

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        elapsed = now - self.start
        width = self.WIDTH
        filled = int(width * done / max(total, 1))
        last_filled, last_time = self._last
        if done < total and filled == last_filled and now - last_time < self.MIN_INTERVAL:
            return  # nothing visible changed: skip the redraw (loaders report hundreds of tensors)
        self._last = (filled, now)
        bar = "#" * filled + "." * (width - filled)
        end = "\n" if done >= total else ""
        self.stream.write(f"\r{self.label} [{bar}] {done}/{total} {elapsed:6.1f}s{end}")
        self.stream.flush()
