"""Peak memory of ``load_v15`` on full-size ACE-Step 1.5 files (random bf16 weights).

1. Writes files with every key and shape of the published ones (from the reference manifests),
   random bf16 values, tensor by tensor (the writer itself stays small):
   * ``--layout aio`` (default): ComfyUI's ``ace_step_1.5_turbo_aio.safetensors``, the 2B DiT,
     VAE, Qwen3-Embedding and the 1.7B 5 Hz LM (skipped by the loader): about 10 GB;
   * ``--layout split``: ComfyUI's ``diffusion_models/`` (4.8 GB), ``text_encoders/`` and
     ``vae/`` files: about 6.3 GB.
2. Loads them with ``load_v15(dtype=bfloat16)`` in a fresh subprocess and prints that process's
   peak RSS against the bytes of the weights it holds afterwards. The target is below 1.3.
3. Deletes the files (unless ``--keep``).

Usage: ``python bench/bench_v15_load_memory.py [--layout aio|split] [--dir /tmp] [--keep]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from ace_core.loading.safetensors_io import write_safetensors  # noqa: E402
from bench_load_memory import _gb, load_in_child  # noqa: E402

MANIFESTS = REPO.parent / "shared" / "reference" / "checkpoints"
FILES = {
    "aio": {"checkpoints/ace_step_1.5_turbo_aio.safetensors": "comfy__ace_step_1.5_turbo_aio.safetensors.json"},
    "split": {
        "diffusion_models/acestep_v1.5_turbo.safetensors": "comfy__acestep_v1.5_turbo.safetensors.json",
        "text_encoders/qwen_0.6b_ace15.safetensors": "comfy__qwen_0.6b_ace15.safetensors.json",
        "vae/ace_1.5_vae.safetensors": "comfy__ace_1.5_vae.safetensors.json",
    },
}

class RandomBF16:
    """Random bf16 tensors sliced from one pool at moving offsets (drawing 5e9 normals is needlessly slow)."""

    def __init__(self, seed: int = 0):
        self.gen = torch.Generator().manual_seed(seed)
        self.pool = (torch.randn(1 << 25, generator=self.gen) * 0.02).to(torch.bfloat16)
        self.offset = 0

    def __call__(self, shape: tuple) -> torch.Tensor:
        n = int(torch.Size(shape).numel())
        out = torch.empty(n, dtype=torch.bfloat16)
        done = 0
        while done < n:
            start = self.offset % self.pool.numel()
            take = min(n - done, self.pool.numel() - start)
            out[done:done + take] = self.pool[start:start + take]
            done += take
            self.offset += take + 7919
        return out.reshape(shape)


def write_full_size(path: Path, manifest: str, random: RandomBF16) -> int:
    """One file with the manifest's keys and shapes; returns its tensor data bytes."""
    tensors = json.loads((MANIFESTS / manifest).read_text())["tensors"]
    specs = {k: (torch.bfloat16 if e["dtype"].startswith("bf16") else torch.float32, tuple(e["shape"]))
             for k, e in tensors.items()}

    def produce(key: str) -> torch.Tensor:
        dtype, shape = specs[key]
        return random(shape) if dtype == torch.bfloat16 else torch.full(shape, 4.6052)  # logit_scale

    path.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(path, specs, produce, {"format": "pt"})
    return sum((2 if d == torch.bfloat16 else 4) * int(torch.Size(s).numel()) for d, s in specs.values())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layout", choices=sorted(FILES), default="aio")
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where to write the temporary files")
    ap.add_argument("--keep", action="store_true", help="keep the files afterwards")
    args = ap.parse_args()
    files = FILES[args.layout]
    if not all((MANIFESTS / m).exists() for m in files.values()):
        print(f"manifests not found in {MANIFESTS}")
        return 2
    need = 11e9 if args.layout == "aio" else 7e9
    free = shutil.disk_usage(args.dir).free
    print(f"free disk in {args.dir}: {_gb(free)}")
    if free < need:
        print(f"need about {_gb(need)} free disk; aborting")
        return 2
    work = Path(tempfile.mkdtemp(prefix="aceforge_bench15_", dir=args.dir))
    try:
        t0 = time.perf_counter()
        random = RandomBF16()
        data = sum(write_full_size(work / rel, m, random) for rel, m in files.items())
        first = work / next(iter(files))
        print(f"wrote {args.layout} files under {work} (tensor data {_gb(data)}) in {time.perf_counter() - t0:.1f} s")
        res = load_in_child("ace_core.v15.loader", "load_v15", first, extra="{'layout': bundle.variant.layout, "
                            "'size': bundle.variant.size, 'kind': bundle.variant.kind}")
        if res is None:
            return 1
        peak, weights = res["peak_rss"], res["weights"]
        print(f"load_v15(bf16): {res['layout']} {res['size']} {res['kind']}, {res['seconds']:.1f} s, "
              f"{res['skipped']} keys skipped on purpose")
        print(f"baseline RSS before loading (python + torch): {_gb(res['baseline_rss'])}")
        print(f"peak RSS: {_gb(peak)}")
        print(f"loaded weights (parameters + buffers): {_gb(weights)}")
        print(f"peak RSS / loaded weights = {peak / weights:.3f} (target < 1.3)")
        return 0 if peak / weights < 1.3 else 1
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
