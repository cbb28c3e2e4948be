"""Speed benchmark for the ACE-Step 1.5 5 Hz LM: audio-code generation in tokens/s.

Builds a full-size LM (0.6B shape by default; ``--size 1.7B``) with random weights, takes the
phase-2 (audio codes) prompt and generates ``--codes`` codes with our decoder (KV cache, the
prompt run once, logits over the 64,000 code rows only), without and with CFG. When HF
``transformers`` is installed, its ``generate`` (greedy, KV cache, the same weights and prompt)
runs too and the ratio is printed. Also prints the time per 30 s of music (150 codes).

    python bench/bench_v15_lm.py                     # CPU, 0.6B, fp32, 64 codes
    python bench/bench_v15_lm.py --size 1.7B --codes 32 --layers 8
    python bench/bench_v15_lm.py --device cuda --dtype bf16 --codes 300
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ace_core.v15 import prompts as P  # noqa: E402
from ace_core.v15.lm.decode import decode_codes  # noqa: E402
from ace_core.v15.lm.model import FiveHzLM  # noqa: E402
from ace_core.v15.lm.sampling import LMSampling, make_generators  # noqa: E402
from ace_core.v15.qwen3 import Qwen3Config  # noqa: E402
from ace_core.v15.text_tokenizer import load_tokenizer  # noqa: E402

SIZES = {  # the published LM shapes (manifests v15__acestep-5Hz-lm-*)
    "0.6B": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16),
    "1.7B": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16),
}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
CODES_PER_30_S = 150


def build(size: str, layers, dtype, device) -> FiveHzLM:
    cfg = Qwen3Config(**dict(SIZES[size], num_hidden_layers=layers or SIZES[size]["num_hidden_layers"]),
                      num_key_value_heads=8, head_dim=128, vocab_size=217204)
    lm = FiveHzLM(cfg, dtype=dtype, device="meta").to_empty(device=device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    with torch.no_grad():
        for name, p in lm.named_parameters():
            x = 1.0 + 0.05 * torch.randn(p.shape, generator=gen) if p.dim() == 1 else 0.02 * torch.randn(p.shape, generator=gen)
            p.copy_(x.to(dtype))
    return lm.eval()


def prompt_ids() -> tuple:
    tok = load_tokenizer()
    cot = P.format_cot({"bpm": 120, "caption": "an upbeat synth-pop song with bright piano and female vocals",
                        "duration": 30, "keyscale": "C major", "language": "en", "timesignature": "4"})
    lyrics = "[verse]\nNeon lights across the harbor\nEvery window hums a tune\n\n[chorus]\nHold on to the night"
    cond = tok.encode(P.lm_codes_prompt("synth-pop, piano", lyrics, cot))
    neg = tok.encode(P.lm_codes_prompt("synth-pop, piano", lyrics, cot, unconditional=True))
    return cond, neg


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def ours(lm, cond, neg, codes: int, cfg: float, device) -> float:
    sampling = LMSampling(temperature=0.85, top_p=0.9, cfg_scale=cfg)
    sync(device)
    start = time.perf_counter()
    decode_codes(lm, cond, codes, batch_size=1, sampling=sampling, generators=make_generators(0, 1, lm.device),
                 negative=neg if cfg > 1 else None)
    sync(device)
    return time.perf_counter() - start


def hf(lm: FiveHzLM, cond, codes: int, device):
    try:
        from transformers import Qwen3Config as HFConfig, Qwen3ForCausalLM
    except ImportError:
        return None
    c = lm.config
    hf_cfg = HFConfig(vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
                      num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
                      num_key_value_heads=c.num_key_value_heads, head_dim=c.head_dim, rms_norm_eps=c.rms_norm_eps,
                      rope_theta=c.rope_theta, tie_word_embeddings=True, max_position_embeddings=40960)
    with torch.device(device):
        model = Qwen3ForCausalLM(hf_cfg).to(lm.dtype)
    model.load_state_dict(lm.state_dict(), strict=False, assign=True)  # shares our tensors (tied head)
    model.tie_weights()
    model.eval()
    ids = torch.tensor([cond], device=device)
    sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=codes, min_new_tokens=codes,
                       do_sample=False, use_cache=True, pad_token_id=151643)
    sync(device)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="0.6B", choices=list(SIZES))
    ap.add_argument("--layers", type=int, default=None, help="fewer layers for a quick run (default: all)")
    ap.add_argument("--codes", type=int, default=64, help="codes to generate per run (default 64)")
    ap.add_argument("--dtype", default="fp32", choices=list(DTYPES))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype]
    lm = build(args.size, args.layers, dtype, args.device)
    cond, neg = prompt_ids()
    n = args.codes
    print(f"5 Hz LM {args.size} ({lm.config.num_hidden_layers} layers), random weights, {args.dtype} on {args.device}, "
          f"{torch.get_num_threads()} threads; prompt {len(cond)} tokens, {n} codes per run")
    ours(lm, cond, neg, 4, 1.0, args.device)  # warm-up
    t1 = ours(lm, cond, neg, n, 1.0, args.device)
    t2 = ours(lm, cond, neg, n, 2.0, args.device)
    rate1, rate2 = n / t1, n / t2
    print(f"  ours, no CFG : {rate1:8.2f} tokens/s  ({t1:.2f} s; 30 s of codes ≈ {CODES_PER_30_S / rate1:.1f} s)")
    print(f"  ours, CFG 2.0: {rate2:8.2f} tokens/s  ({t2:.2f} s; 30 s of codes ≈ {CODES_PER_30_S / rate2:.1f} s)")
    t_hf = hf(lm, cond, n, args.device)
    if t_hf is None:
        print("  HF transformers: not installed (pip install transformers) — no reference figure")
        return
    rate_hf = n / t_hf
    print(f"  HF generate (greedy, KV cache, no CFG): {rate_hf:8.2f} tokens/s  ({t_hf:.2f} s; 30 s of codes ≈ "
          f"{CODES_PER_30_S / rate_hf:.1f} s)")
    print(f"  ratio ours / HF (no CFG): {rate1 / rate_hf:.2f}x")


if __name__ == "__main__":
    main()
