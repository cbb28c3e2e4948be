"""Speed benchmark for ACE-Step v1 at full size with random weights.

Prints DiT seconds per forward pass (one guided step = a conditional and an unconditional
forward, as the official loop runs them), both with the encoder projections recomputed every
call and with the cross-attention K/V cache (``AceStepDiT.precompute_cross_kv``), and VAE decode
seconds per second of audio, with peak memory. No weights are needed: modules are built on the
``meta`` device and materialised with random values.

    python bench/bench_v1_speed.py                      # CPU, 10 s of audio
    python bench/bench_v1_speed.py --only dit --layers 2 --repeats 3   # quick: 2 of 24 blocks
    python bench/bench_v1_speed.py --device cuda --seconds 60 240
    python bench/bench_v1_speed.py --only vae --dtype fp32 --seconds 240 --repeats 1   # 4 min, windowed

Timings on a shared CPU are noisy: the CPU seconds (process time, all threads) are printed too;
``--threads 1`` is often faster than the default when other processes compete for the cores.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ace_core.v1.dcae import DCAEConfig  # noqa: E402
from ace_core.v1.dit import AceStepDiT, DiTConfig  # noqa: E402
from ace_core.v1.music_vae import MusicVAE  # noqa: E402
from ace_core.v1.vocoder import VocoderConfig  # noqa: E402

FRAMES_PER_SECOND = 44100 / 512 / 8


def materialise(module: torch.nn.Module, device: str, dtype: torch.dtype, seed: int = 0) -> torch.nn.Module:
    """Give a meta-device module random weights on ``device`` (std 0.02, norms ≈ 1).

    Values are drawn in place in the target dtype (no float32 temporaries; on CUDA from a CUDA
    generator): the numbers differ between devices, which does not matter for timing.
    """
    module = module.to_empty(device=device).to(dtype)
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.is_floating_point():
                p.normal_(0.0, 0.02, generator=gen)
                if name.endswith(("norm.weight", "weight_g")) or p.dim() == 1 and "norm" in name:
                    p.add_(1.0)
        for _, b in module.named_buffers():
            if b.is_floating_point():
                b.zero_()
    return module


def peak_memory_gb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(device: str, fn, repeats: int) -> tuple[float, float]:
    """Mean wall seconds and mean CPU (process) seconds per call of ``fn``."""
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats


def bench_dit(device: str, dtype: torch.dtype, seconds: float, repeats: int, layers: int | None = None) -> None:
    cfg = DiTConfig() if layers is None else DiTConfig(num_layers=layers)
    with torch.device("meta"):
        dit = AceStepDiT(cfg, dtype=dtype)
    dit = materialise(dit, device, dtype).eval()
    frames = int(seconds * FRAMES_PER_SECOND)
    gen = torch.Generator(device="cpu").manual_seed(1)
    x = torch.randn(1, 8, 16, frames, generator=gen).to(device, dtype)
    mask = torch.ones(1, frames, device=device, dtype=dtype)
    text = torch.randn(1, 64, cfg.text_embedding_dim, generator=gen).to(device, dtype)
    text_mask = torch.ones(1, 64, device=device, dtype=torch.long)
    lyric_ids = torch.randint(1, cfg.lyric_encoder_vocab_size, (1, 256), generator=gen).to(device)
    lyric_mask = torch.ones(1, 256, device=device, dtype=torch.long)
    speaker = torch.zeros(1, cfg.speaker_embedding_dim, device=device, dtype=dtype)
    what = f"DiT {cfg.num_layers} blocks, {seconds:g} s audio ({frames} frames), {dtype}, {device}"
    with torch.inference_mode():
        enc_wall, _ = _timed(device, lambda: dit.encode(text, text_mask, speaker, lyric_ids, lyric_mask), 1)
        enc, enc_mask = dit.encode(text, text_mask, speaker, lyric_ids, lyric_mask)
        t = torch.full((1,), 500.0, device=device, dtype=dtype)
        kv_wall, _ = _timed(device, lambda: dit.precompute_cross_kv(enc, enc_mask), 1)
        cache = dit.precompute_cross_kv(enc, enc_mask)
        print(f"{what}: encode {enc_wall:.3f} s, precompute_cross_kv {kv_wall:.3f} s "
              f"({cache.nbytes / 2**20:.0f} MiB), once per generation")
        plain = lambda: dit.decode(x, mask, enc, enc_mask, t, output_length=frames)  # noqa: E731
        cached = lambda: dit.decode(x, mask, None, None, t, output_length=frames, cross_kv=cache)  # noqa: E731
        for label, fn in (("decode", plain), ("decode, cached cross K/V", cached)):
            fn()  # warm-up
            per_forward, cpu = _timed(device, fn, repeats)
            print(
                f"  {label}: {per_forward:.3f} s/forward (CPU {cpu:.3f} s), "
                f"{2 * per_forward:.3f} s/guided step (cond+uncond)"
            )
    print(f"  peak {peak_memory_gb(device):.2f} GiB")
    del dit


def current_rss_gb() -> float:
    """Resident memory now (Linux ``/proc``; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**30
    except OSError:
        return 0.0


def bench_vae_decode(device: str, dtype: torch.dtype, seconds: float, repeats: int, exact: bool = False) -> None:
    """VAE decode of ``seconds`` of audio: wall and CPU seconds per audio second, windows, memory.

    Long latents are decoded in windows (``MusicVAE.windows``); ``exact`` also decodes in one shot
    (memory grows with the length) and prints the largest difference, which should be float
    rounding (the windows are exact: no seams).
    """
    with torch.device("meta"):
        vae = MusicVAE(DCAEConfig(), VocoderConfig(), dtype=dtype)
    vae = materialise(vae, device, dtype).eval()
    frames = int(seconds * FRAMES_PER_SECOND)
    gen = torch.Generator(device="cpu").manual_seed(2)
    latent = torch.randn(1, 8, 16, frames, generator=gen).to(device, dtype)
    dcae_w, voc_w, n_d, n_v = vae._plan(frames, None)
    before = current_rss_gb()
    with torch.inference_mode():
        wall, cpu = _timed(device, lambda: vae.decode(latent), repeats)
        wave = vae.decode(latent) if exact else None
    audio_seconds = frames * vae.samples_per_latent_frame / 44100
    windows = f"DCAE {n_d} window(s), vocoder {n_v} window(s)"
    print(
        f"VAE decode {audio_seconds:.1f} s audio, {dtype}, {device} ({windows}): {wall:.2f} s, CPU {cpu:.2f} s "
        f"({wall / audio_seconds:.3f} s per audio second); RSS {before:.2f} GiB with the model, "
        f"peak {peak_memory_gb(device):.2f} GiB"
    )
    if exact and (dcae_w or voc_w):
        with torch.inference_mode():
            one_shot = vae.decode(latent, windowed=False)
        print(f"  windowed vs one-shot: max |diff| {(wave - one_shot).abs().max().item():.2e} "
              f"(peak {peak_memory_gb(device):.2f} GiB after the one-shot decode)")
    del vae


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, choices=["bf16", "fp16", "fp32"])
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", choices=["dit", "vae"], default=None)
    parser.add_argument("--layers", type=int, default=None, help="DiT blocks (default: all 24; e.g. 2 for a quick run)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--exact", action="store_true",
                        help="VAE: also decode long latents in one shot and print the difference to the windows")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype_name = args.dtype or "bf16"  # the published weights are 16-bit; fp32 would need 13 GB for the DiT
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype_name]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}")
    if args.device.startswith("cuda"):
        print(torch.cuda.get_device_name())
    for seconds in args.seconds:
        if args.only in (None, "dit"):
            bench_dit(args.device, dtype, seconds, args.repeats, args.layers)
        if args.only in (None, "vae"):
            bench_vae_decode(args.device, dtype, seconds, args.repeats, args.exact)


if __name__ == "__main__":
    main()
