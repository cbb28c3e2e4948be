"""Peak memory of ``load_v1`` on a full-size ACE-Step v1 all-in-one file (random bf16 weights).

1. Writes a file in ComfyUI's all-in-one layout with every key and shape of the published
   ``ace_step_v1_3.5b.safetensors`` (from the reference manifest), random bf16 values, the fp32 mel
   buffers (the vocoder's real Hann window and mel filterbank), ``logit_scale`` and a (tiny, real)
   SentencePiece model. About 7.7 GB, written tensor by tensor so the writer itself stays small.
2. Loads it with ``load_v1(dtype=bfloat16)`` in a fresh subprocess and prints that process's peak
   RSS against the bytes of the weights it holds afterwards (and against the file's weight bytes).
   The target is a ratio below 1.3.
3. Deletes the file.

Usage: ``python bench/bench_load_memory.py [--dir /tmp] [--keep]``. Needs ~8 GB free disk and RAM.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from ace_core.audio.mel import LogMelSpectrogram  # noqa: E402
from ace_core.loading.safetensors_io import write_safetensors  # noqa: E402
from ace_core.v1.layouts import COMFY_SPIECE_KEY  # noqa: E402
from ace_core.v1.testing import tiny_spiece_model_bytes  # noqa: E402

MANIFEST = REPO.parent / "shared" / "reference" / "checkpoints" / "comfy__ace_step_v1_3.5b.safetensors.json"

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})

def peak_rss():
    # VmHWM: this process's own high-water mark (ru_maxrss may include the parent's RSS at fork)
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

import torch
from {module} import {function} as load
base = peak_rss()
t0 = time.perf_counter()
bundle = load({path!r}, dtype=torch.bfloat16)
secs = time.perf_counter() - t0
peak = peak_rss()
print(json.dumps({{"peak_rss": peak, "baseline_rss": base, "weights": bundle.parameter_bytes(),
                  "seconds": secs, "skipped": len(bundle.skipped), **{extra}}}))
"""


def load_in_child(module: str, function: str, path: Path, extra: str = "{}"):
    """Run ``module.function(path, dtype=bfloat16)`` in a fresh process: its result dict (peak RSS,
    baseline, weight bytes, seconds, skipped keys, plus ``extra``: a dict expression over ``bundle``),
    or None after printing the child's output when it failed."""
    script = CHILD.format(repo=str(REPO), module=module, function=function, path=str(path), extra=extra)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        print(out.stdout, out.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def _gb(n: float) -> str:
    return f"{n / 1e9:.3f} GB"


def _dit_block(key: str):
    """The DiT transformer block index of a checkpoint key, else None."""
    prefix = "model.diffusion_model.transformer_blocks."
    if not key.startswith(prefix):
        return None
    return int(key[len(prefix):].split(".", 1)[0])


def write_full_size(path: Path, seed: int = 0, dit_blocks: int | None = None) -> int:
    """Write the full-size random file; returns its tensor data bytes.

    ``dit_blocks``: keep only the first N of the 24 DiT transformer blocks (a smaller file for quick
    runs; every other key and shape is the published one)."""
    tensors = json.loads(MANIFEST.read_text())["tensors"]
    if dit_blocks is not None:
        tensors = {k: v for k, v in tensors.items() if (_dit_block(k) is None or _dit_block(k) < dit_blocks)}
    spiece = tiny_spiece_model_bytes()
    specs = {}
    for key, entry in tensors.items():
        if key == COMFY_SPIECE_KEY:
            specs[key] = (torch.uint8, (len(spiece),))
        elif entry["dtype"].startswith("fp32"):
            specs[key] = (torch.float32, tuple(entry["shape"]))
        else:
            specs[key] = (torch.bfloat16, tuple(entry["shape"]))
    # a pool of random bf16 values, sliced at varying offsets (drawing 3.8e9 normals is needlessly slow)
    g = torch.Generator().manual_seed(seed)
    pool = (torch.randn(1 << 25, generator=g) * 0.02).to(torch.bfloat16)
    state = {"offset": 0}

    window, fb = LogMelSpectrogram().tables("cpu")
    mel_tables = {"vae.vocoder.mel_transform.spectrogram.window": window,
                  "vae.vocoder.mel_transform.mel_scale.fb": fb}

    def produce(key: str) -> torch.Tensor:
        dtype, shape = specs[key]
        if key == COMFY_SPIECE_KEY:
            return torch.frombuffer(bytearray(spiece), dtype=torch.uint8)
        if key in mel_tables:  # the real tables: a loader that reads them computes a real mel
            return mel_tables[key].reshape(shape)
        n = 1
        for s in shape:
            n *= s
        if dtype == torch.float32:
            return torch.randn(shape, generator=g)
        out = torch.empty(n, dtype=torch.bfloat16)
        done = 0
        while done < n:
            start = state["offset"] % pool.numel()
            take = min(n - done, pool.numel() - start)
            out[done:done + take] = pool[start:start + take]
            done += take
            state["offset"] += take + 7919
        return out.reshape(shape)

    write_safetensors(path, specs, produce, {"format": "pt"})
    return sum(
        (torch.finfo(d).bits // 8 if d.is_floating_point else 1) * int(torch.Size(s).numel())
        for d, s in specs.values()
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where to write the temporary file")
    ap.add_argument("--keep", action="store_true", help="keep the file afterwards")
    args = ap.parse_args()
    if not MANIFEST.exists():
        print(f"manifest not found: {MANIFEST}")
        return 2
    free = shutil.disk_usage(args.dir).free
    print(f"free disk in {args.dir}: {_gb(free)}")
    if free < 9e9:
        print("need about 9 GB free disk; aborting")
        return 2
    work = Path(tempfile.mkdtemp(prefix="aceforge_bench_", dir=args.dir))
    path = work / "ace_step_v1_3.5b_random.safetensors"
    try:
        t0 = time.perf_counter()
        data_bytes = write_full_size(path)
        print(f"wrote {path} ({_gb(path.stat().st_size)}, tensor data {_gb(data_bytes)}) "
              f"in {time.perf_counter() - t0:.1f} s")
        res = load_in_child("ace_core.v1.loader", "load_v1", path)
        if res is None:
            return 1
        peak, weights = res["peak_rss"], res["weights"]
        print(f"load_v1(bf16): {res['seconds']:.1f} s, {res['skipped']} keys skipped on purpose")
        print(f"baseline RSS before loading (python + torch): {_gb(res['baseline_rss'])}")
        print(f"peak RSS: {_gb(peak)}")
        print(f"loaded weights (parameters + buffers): {_gb(weights)}")
        print(f"peak RSS / loaded weights = {peak / weights:.3f} (target < 1.3)")
        print(f"peak RSS / file weight bytes = {peak / data_bytes:.3f}")
        return 0
    finally:
        if args.keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
