"""One checkpoint load in a fresh process, as a new user's first load: prints one JSON line.

``python -m side_by_side.load_child --side ours|core --checkpoint FILE [--family v1|v15]
[--dtype default|bf16|fp32] [--comfy DIR] [--dit-blocks N]``

* ours: the family adapter picked for the file (``ace_core.family.adapter_for_path``) loads it,
  with our default dtype unless one is forced;
* core: ``comfy.sd.load_checkpoint_guess_config`` (model, text encoder and VAE, as the Load
  Checkpoint node), CPU forced; a forced dtype goes to the model and the text encoder.

Reported: seconds of the load call, seconds of the imports before it, the process's peak RSS
(VmHWM: file pages a loader maps and touches count too) and RSS before loading, and the bytes of
the weights held afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .protocol import current_rss, peak_rss


def _module_bytes(*modules) -> int:
    seen, total = set(), 0
    for m in modules:
        if m is None:
            continue
        for t in (*m.parameters(), *m.buffers()):
            if id(t) not in seen:
                seen.add(id(t))
                total += t.numel() * t.element_size()
    return total


def load_ours(path: str, dtype):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from ace_core.family import adapter_for_path

    bundle = adapter_for_path(path).load(path, dtype=dtype)
    return bundle.parameter_bytes()


def setup_core(family: str, path: str, comfy_dir: str, dit_blocks: int) -> None:
    """ComfyUI's imports with the CPU forced and the family's patches for a truncated file."""
    if family == "v15":
        from .core_v15 import setup_comfy

        setup_comfy(comfy_dir, "cpu", path)
    else:
        from .core_v1 import setup_comfy

        setup_comfy(comfy_dir, "cpu", dit_blocks)


def load_core(path: str, dtype):
    from .core_v1 import forced
    import comfy.sd

    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(
        path, output_vae=True, output_clip=True, model_options=forced(dtype), te_model_options=forced(dtype))
    return _module_bytes(model.model, clip.cond_stage_model, vae.first_stage_model)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", choices=["ours", "core"], required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--family", default="v1", choices=["v1", "v15"])
    ap.add_argument("--dtype", default="default", choices=["default", "bf16", "fp32"])
    ap.add_argument("--comfy", default="")
    ap.add_argument("--dit-blocks", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    import torch

    dtype = {"default": None, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    if args.side == "core":  # ComfyUI's imports belong to its start-up, not to the load
        setup_core(args.family, args.checkpoint, args.comfy, args.dit_blocks)
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        import ace_core.family  # noqa: F401
    imports = time.perf_counter() - t0
    baseline = current_rss()
    t0 = time.perf_counter()
    if args.side == "ours":
        weights = load_ours(args.checkpoint, dtype)
    else:
        weights = load_core(args.checkpoint, dtype)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "import_seconds": imports, "peak_rss": peak_rss(),
                      "rss_before": baseline, "weights": weights, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
