"""What every side-by-side worker shares: loading a phase group, timing a phase, saving outputs.

A worker holds at most one *group* of models at a time (``text``: the text encoder; ``dit``: the
diffusion transformer; ``vae``: the audio VAE), loaded from the one all-in-one checkpoint in one
dtype. A subclass implements ``load_group(group, dtype)``, ``release()`` and one
``phase_NAME(dtype, **options)`` per phase: it prepares the inputs and returns a callable that does
the timed work and returns a dict (``"outputs"``: tensors to save for the numerical comparison;
anything else JSON-able is passed to the driver).

Runs in both Python environments (ours and ComfyUI's): torch, safetensors and ``protocol`` only.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path

import torch

from .protocol import current_rss, measure

DTYPES = {"default": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
"""Dtype names of the protocol; "default" = what each side picks by itself."""


def trim_heap() -> None:
    """Give freed heap memory back to the system (glibc ``malloc_trim``; nothing elsewhere)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def load_inputs(path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


class PhaseWorker:
    side = "?"
    family = "?"

    def __init__(self, args):
        self.args = args
        self.device = torch.device(args.device)
        if args.threads:
            torch.set_num_threads(args.threads)
        self.inputs = load_inputs(args.inputs)
        self.out_dir = Path(args.out)
        self.group = self.dtype = None  # the loaded group and its dtype name

    # -- to implement ------------------------------------------------------------------------------
    def load_group(self, group: str, dtype: torch.dtype) -> None:  # pragma: no cover - per side
        raise NotImplementedError

    def release(self) -> None:  # pragma: no cover - per side
        raise NotImplementedError

    # -- helpers -----------------------------------------------------------------------------------
    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def step_clock(self):
        """``(stamps, tick)``: ``tick(*_)`` (any sampler callback) syncs and appends the time to
        ``stamps``, which starts with the time of this call; ``generate`` returns them as
        ``step_stamps``."""
        stamps = [time.perf_counter()]

        def tick(*_) -> None:
            self.sync()
            stamps.append(time.perf_counter())

        return stamps, tick

    def tensor(self, name: str, dtype=None) -> torch.Tensor:
        t = self.inputs[name]
        return t.to(self.device, dtype) if dtype is not None else t.to(self.device)

    def _phase(self, phase: str, dtype: str, options: dict):
        method = getattr(self, "phase_" + phase, None)
        if method is None:
            raise ValueError(f"{self.side} {self.family} worker has no phase {phase!r}")
        if self.group is None:
            raise RuntimeError(f"phase {phase!r}: no model group is loaded")
        if dtype != self.dtype:
            raise ValueError(f"phase {phase!r} asked for {dtype}, the {self.group} group is loaded in {self.dtype}")
        return method(DTYPES[dtype], **options)

    # -- protocol ops ------------------------------------------------------------------------------
    def op_hello(self) -> dict:
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        return {"side": self.side, "family": self.family, "pid": os.getpid(), "python": sys.version.split()[0],
                "torch": torch.__version__, "threads": torch.get_num_threads(),
                "interop_threads": torch.get_num_interop_threads(), "device": str(self.device),
                "device_name": name, "rss": current_rss()}

    def op_load(self, group: str, dtype: str) -> dict:
        self.op_unload()
        stats, _ = measure(lambda: self.load_group(group, DTYPES[dtype]), self.sync)
        self.group, self.dtype = group, dtype
        return {**stats, "rss": current_rss()}

    def op_unload(self) -> dict:
        """Drop the group; ``rss_before_trim`` vs ``rss`` tells memory the allocator kept (given back
        by ``malloc_trim``) from memory still referenced."""
        self.release()
        self.group = self.dtype = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        kept = current_rss()
        trim_heap()
        return {"rss": current_rss(), "rss_before_trim": kept}

    def op_run(self, phase: str, dtype: str, save: bool = False, options: dict | None = None) -> dict:
        fn = self._phase(phase, dtype, dict(options or {}))
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        with torch.inference_mode():
            stats, extra = measure(fn, self.sync)
        if self.device.type == "cuda":
            stats["peak_device_memory"] = torch.cuda.max_memory_allocated(self.device)
        outputs = extra.pop("outputs", None)
        if save and outputs:
            from safetensors.torch import save_file

            path = self.out_dir / f"{self.side}_{phase}_{dtype}.safetensors"
            save_file({k: v.detach().float().cpu().contiguous() for k, v in outputs.items()}, str(path))
            stats["saved"] = str(path)
        return {**stats, **extra}

    def op_flops(self, phase: str, dtype: str, options: dict | None = None) -> dict:
        """FLOPs of one call of a phase (torch's FlopCounterMode: matmuls, convolutions, attention)."""
        from torch.utils.flop_counter import FlopCounterMode

        fn = self._phase(phase, dtype, dict(options or {}))
        counter = FlopCounterMode(display=False)
        with torch.inference_mode(), counter:
            fn()
        return {"flops": int(counter.get_total_flops())}

    def op_quit(self) -> dict:
        return {}


def main(argv=None) -> None:
    """``python -m side_by_side.worker_base --side ours|core --family v1 ...``: serve one worker."""
    import argparse
    import importlib

    from .protocol import serve

    ap = argparse.ArgumentParser()
    ap.add_argument("--side", choices=["ours", "core"], required=True)
    ap.add_argument("--family", default="v1")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--comfy", default="", help="ComfyUI folder (core side)")
    ap.add_argument("--dit-blocks", type=int, default=0, help="DiT blocks in the checkpoint (0: all)")
    args = ap.parse_args(argv)
    serve(lambda: importlib.import_module(f"{__package__}.{args.side}_{args.family}").WORKER(args))


if __name__ == "__main__":
    main()
