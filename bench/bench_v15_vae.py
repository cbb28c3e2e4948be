"""ACE-Step 1.5 VAE decode speed and memory on long audio, full size with random weights.

Builds the published Oobleck VAE (168.7 M parameters) on ``meta``, gives it random weights on the
target device and decodes N minutes of random 25 Hz latents through the windowed
:meth:`MusicVAE15.decode`. Prints seconds per audio second and the peak memory: the process's peak
RSS (``VmHWM``) next to what it must hold anyway (weights and the output waveform), so the rest is
the windowed decode's own working set, which depends on the window, not on the length.

    python bench/bench_v15_vae.py                         # 10 min, fp32, CPU (slow on a small CPU)
    python bench/bench_v15_vae.py --minutes 1             # a quick figure
    python bench/bench_v15_vae.py --device cuda --dtype bf16 --minutes 10
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ace_core.progress import ConsoleProgress  # noqa: E402
from ace_core.v15.oobleck import OobleckConfig, OobleckVAE  # noqa: E402
from ace_core.v15.vae import MusicVAE15, VAEWindows15, plan_windows  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def rss_bytes(key: str) -> int:
    """``VmRSS`` / ``VmHWM`` of this process (ru_maxrss where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def materialise(model: OobleckVAE, device: str, dtype: torch.dtype, seed: int = 0) -> OobleckVAE:
    """Random weights in place: ``weight_v`` ~ N(0, 1), ``weight_g`` = 1 (unit-norm filters), Snake and biases ~ 0."""
    model = model.to_empty(device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight_g"):
                p.fill_(1.0)
            elif name.endswith("weight_v"):
                p.normal_(0.0, 1.0, generator=gen)
            else:
                p.normal_(0.0, 0.02, generator=gen)
    return model.eval()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--core", type=int, default=VAEWindows15.decode_core, help="latent frames kept per window")
    ap.add_argument("--context", type=int, default=VAEWindows15.decode_context, help="latent frames of context per side")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}, {args.dtype}")
    if args.device.startswith("cuda"):
        print(torch.cuda.get_device_name())

    base = rss_bytes("VmRSS")
    model = materialise(OobleckVAE(OobleckConfig(), dtype=dtype, device="meta"), args.device, dtype)
    vae = MusicVAE15(model, VAEWindows15(decode_core=args.core, decode_context=args.context))
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    frames = round(args.minutes * 60 * vae.frames_per_second)
    context = max(args.context, model.decoder_context_frames())
    windows = len(plan_windows(frames, args.core, context))
    latents = torch.randn(1, vae.latent_channels, frames, generator=torch.Generator().manual_seed(1)).to(args.device)
    out_bytes = 2 * model.decoded_length(frames) * 4
    print(f"decode {args.minutes:g} min = {frames} latent frames in {windows} windows of {args.core} + 2 x {context} "
          f"frames; weights {weights / 2**20:.0f} MiB, output waveform {out_bytes / 2**20:.0f} MiB")

    with torch.inference_mode():
        vae.decode(latents[..., : min(frames, 8)])  # warm-up (kernel selection, allocator)
        sync(args.device)
        start, cpu = time.perf_counter(), time.process_time()
        wave = vae.decode(latents, progress=ConsoleProgress("decode"))
        sync(args.device)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    audio_s = wave.shape[-1] / vae.sample_rate
    finite = bool(torch.isfinite(wave).all())
    peak = rss_bytes("VmHWM")
    held = base + weights + out_bytes
    print(f"{audio_s:.1f} s of audio in {wall:.1f} s: {wall / audio_s:.3f} s per audio second "
          f"(CPU time {cpu / audio_s:.3f} s per audio second); output finite: {finite}")
    print(f"peak RSS {peak / 2**30:.2f} GiB = baseline {base / 2**30:.2f} + weights {weights / 2**30:.2f} "
          f"+ output {out_bytes / 2**30:.2f} + windowed working set {(peak - held) / 2**30:.2f} GiB")
    if args.device.startswith("cuda"):
        print(f"peak CUDA memory allocated {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
