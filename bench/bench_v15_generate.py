"""One whole ACE-Step 1.5 text-to-music run at full size with random weights, phase by phase.

Builds the published 2B model, the Qwen3-Embedding-0.6B text encoder and the Oobleck VAE on
``meta``, gives them random weights, and times: text encoding, the 8-step turbo sampler
(condition encoder included) and the VAE decode, for ``--seconds`` of audio.

    python bench/bench_v15_generate.py                    # 30 s, bf16, CPU
    python bench/bench_v15_generate.py --dtype fp32 --seconds 60
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_v1_speed import materialise, peak_memory_gb  # noqa: E402

from ace_core.v15.config import AceStep15Config  # noqa: E402
from ace_core.v15.model import AceStep15Model  # noqa: E402
from ace_core.v15.oobleck import OobleckConfig, OobleckVAE  # noqa: E402
from ace_core.v15.pipeline import SongFields, encode_text, generate  # noqa: E402
from ace_core.v15.qwen3 import Qwen3Config, Qwen3Model  # noqa: E402
from ace_core.v15.text_tokenizer import load_tokenizer  # noqa: E402
from ace_core.v15.vae import MusicVAE15  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
LYRICS = "[Verse]\n" + "\n".join(["Walking down the empty street tonight"] * 8) + "\n[Chorus]\nLa la la"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--dtype", choices=list(DTYPES), default="bf16")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    dtype, device = DTYPES[args.dtype], args.device
    start = time.perf_counter()
    model = materialise(AceStep15Model(AceStep15Config(), device="meta"), device, dtype).eval()
    text_encoder = materialise(Qwen3Model(Qwen3Config(), device="meta"), device, dtype).eval()
    vae = MusicVAE15(materialise(OobleckVAE(OobleckConfig(), device="meta"), device, dtype).eval())
    print(f"ACE-Step 1.5 2B turbo, {args.seconds:g} s, {args.dtype}, {device}, {torch.get_num_threads()} threads; "
          f"models built in {time.perf_counter() - start:.1f} s", flush=True)
    phases = {}
    with torch.inference_mode():
        t = time.perf_counter()
        text = encode_text(text_encoder, load_tokenizer(), [SongFields(caption="synth-pop, female vocals, bright",
                                                                          lyrics=LYRICS, bpm=120, duration=args.seconds)])
        phases["text encoding"] = time.perf_counter() - t
        t = time.perf_counter()
        latents = generate(model, text, kind="turbo", seconds=args.seconds, seed=0)
        phases["8 turbo steps (+ condition encoder)"] = time.perf_counter() - t
        t = time.perf_counter()
        audio = vae.decode(latents)
        phases["VAE decode"] = time.perf_counter() - t
    for name, seconds in phases.items():
        print(f"  {name:38s} {seconds:7.1f} s")
    print(f"  {'total':38s} {sum(phases.values()):7.1f} s for {audio.shape[-1] / 48000:.1f} s of audio; "
          f"peak {peak_memory_gb(device):.2f} GiB")


if __name__ == "__main__":
    main()
