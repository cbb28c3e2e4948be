"""Speed benchmark for the ACE-Step 1.5 DiT at full size with random weights.

Prints the seconds of one DiT forward pass (batch 1, cross-attention K/V precomputed as the
sampler does) and of one whole turbo step (velocity + Euler update + DCW), for each length and
dtype asked, with the peak memory. The model is built on ``meta`` and given random weights, so
no checkpoint is needed.

    python bench/bench_v15_speed.py                               # CPU, 30 s and 240 s, bf16 and fp32
    python bench/bench_v15_speed.py --seconds 30 --dtype fp32 --layers 4   # quick: 4 of 24 layers
    python bench/bench_v15_speed.py --device cuda --xl
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_v1_speed import materialise, peak_memory_gb  # noqa: E402

from ace_core.v15.config import AceStep15Config, xl_config  # noqa: E402
from ace_core.v15.dcw import DCW_DEFAULT  # noqa: E402
from ace_core.v15.dit import AceStep15DiT  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
ENCODER_TOKENS = 600  # a typical packed [lyrics | timbre | caption] length


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - start)
    return out


def bench(config: AceStep15Config, seconds: float, dtype: torch.dtype, device: str, repeats: int) -> dict:
    dit = materialise(AceStep15DiT(config, device="meta"), device, dtype).eval()
    frames = int(seconds * 25)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(1, frames, 64, generator=gen, device=device, dtype=dtype)
    context = torch.randn(1, frames, 128, generator=gen, device=device, dtype=dtype)
    enc = torch.randn(1, ENCODER_TOKENS, config.enc_hidden, generator=gen, device=device, dtype=dtype)
    t = torch.full((1,), 0.75, device=device, dtype=dtype)
    with torch.inference_mode():
        kv = dit.precompute_cross_kv(enc)
        forward = timed(lambda: dit(x, t, t, None, context, cross_kv=kv), device, repeats)

        def step():
            v = dit(x, t, t, None, context, cross_kv=kv).float()
            x_next = x.float() - v * (0.75 - 0.5)
            DCW_DEFAULT.apply(x_next, x.float() - v * 0.75, 0.75)

        turbo_step = timed(step, device, repeats)
    del dit, kv
    return {"forward": forward, "step": turbo_step, "tokens": (frames + 1) // 2}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, nargs="+", default=[30.0, 240.0])
    p.add_argument("--dtype", nargs="+", choices=list(DTYPES), default=["bf16", "fp32"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--layers", type=int, default=None, help="DiT layers (default: all 24, or 32 for --xl)")
    p.add_argument("--xl", action="store_true", help="the 4B XL DiT instead of the 2B")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = xl_config() if args.xl else AceStep15Config()
    if args.layers:
        config.num_hidden_layers = args.layers
    print(f"ACE-Step 1.5 {'XL' if args.xl else '2B'} DiT, {config.num_hidden_layers} layers, "
          f"device {args.device}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    for name in args.dtype:
        for seconds in args.seconds:
            r = bench(config, seconds, DTYPES[name], args.device, args.repeats)
            print(f"{name:4s} {seconds:6.0f} s audio ({r['tokens']} tokens): forward min {min(r['forward']):7.2f} s "
                  f"median {sorted(r['forward'])[len(r['forward']) // 2]:7.2f} s | turbo step min "
                  f"{min(r['step']):7.2f} s | 8-step turbo ≈ {8 * min(r['step']):7.1f} s | "
                  f"peak {peak_memory_gb(args.device):5.2f} GiB", flush=True)


if __name__ == "__main__":
    main()
