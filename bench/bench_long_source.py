"""Peak memory of a time-range edit on long sources (10 and 60 minutes), on the CPU.

Every case runs in a fresh subprocess, whose own high-water mark (``VmHWM``) is reported:

1. ``tiny``: the tiny random ACE-Step v1 (``write_tiny_checkpoint`` + the real loader): VAE Encode
   (lazy for long sources) -> RepaintMask (30 s in the middle) -> sampling -> decode + splice.
2. ``full``: the full-size 3.5B DiT (random bf16 weights, built on ``meta`` and materialised tensor by
   tensor, ~6.6 GB) with the tiny VAE, 1 sampling step; same edit.

For each case it prints the peak RSS, the bytes the process must hold anyway (weights, the source
waveform and the spliced output, both full length) and what is left: the edit's own working memory,
which depends on the window (at most 240 s), not on the source. No timing assertions.

Usage: ``python bench/bench_long_source.py [--cases tiny,full] [--minutes 10,60] [--window-seconds 240]
[--region-seconds 30] [--steps 2]``. The full-size case needs ~10 GB RAM and takes minutes per case on
a small CPU (one DiT forward over the window); ``--window-seconds`` shrinks the window for a quick run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, math, resource, sys, time, tempfile
sys.path.insert(0, {repo!r})

def rss(key):
    try:
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

import torch
torch.manual_seed(0)
from types import SimpleNamespace
from ace_core.v1 import edit_pipeline as ep
from ace_core.v1.latent import LATENT
from ace_core.v1.loader import load_v1
from ace_core.v1.pipeline import SamplerSettings, TextConditioning
from ace_core.v1.testing import write_tiny_checkpoint

case, minutes, window_s, region_s, steps = {case!r}, {minutes!r}, {window_s!r}, {region_s!r}, {steps!r}
base = rss("VmRSS")
tiny = load_v1(write_tiny_checkpoint(tempfile.mkdtemp() + "/tiny.safetensors", "comfy"), dtype=torch.float32)
vae = tiny.vae
if case == "full":
    from ace_core.v1.dit import AceStepDiT, DiTConfig
    from ace_core.loading.streaming import materialize_buffers
    dit = AceStepDiT(DiTConfig(), dtype=torch.bfloat16, device="meta")
    g = torch.Generator().manual_seed(0)
    pool = (torch.randn(1 << 24, generator=g) * 0.02).to(torch.bfloat16)
    off = 0
    for mod in dit.modules():
        for name, p in list(mod._parameters.items()):
            if p is None:
                continue
            n = p.numel()
            t = torch.empty(n, dtype=p.dtype)
            pos = 0
            while pos < n:  # tile the random pool at shifting offsets (drawing 3.5e9 normals is slow)
                k = min(n - pos, pool.numel() - off)
                t[pos:pos + k] = pool[off:off + k]
                pos += k
                off = (off + k + 7919) % (pool.numel() - 1)
            mod._parameters[name] = torch.nn.Parameter(t.view(p.shape), requires_grad=False)
    materialize_buffers(dit, "cpu")
    dit.eval()
else:
    dit = tiny.dit
bundle = SimpleNamespace(dit=dit, vae=vae)
weights = sum(p.numel() * p.element_size() for m in (dit, vae) for p in m.parameters())
after_model = rss("VmRSS")

sr = 44100
n = int(minutes * 60 * sr)
t1 = torch.arange(sr, dtype=torch.float64) / sr
one = (0.05 * torch.sin(2 * math.pi * 110 * t1) + 0.02 * torch.sin(2 * math.pi * 220 * t1)).float()
wave = torch.empty(1, 2, n)
for c, gain in ((0, 1.0), (1, 0.8)):
    for s in range(0, n, sr):
        k = min(sr, n - s)
        wave[0, c, s:s + k] = one[:k] * gain
wave_bytes = wave.numel() * wave.element_size()

dim = int(dit.config.text_embedding_dim)
gc = torch.Generator().manual_seed(1)
cond = TextConditioning(text_states=torch.randn(1, 8, dim, generator=gc), text_mask=torch.ones(1, 8, dtype=torch.long),
                        lyric_ids=torch.tensor([[261, 50, 51, 52]]), lyric_mask=torch.ones(1, 4, dtype=torch.long))
t0 = time.perf_counter()
source = ep.encode_source(vae, {{"waveform": wave, "sample_rate": sr}})
mid = minutes * 30.0
wf = int(window_s * LATENT.frames_per_second)
edit = ep.repaint_latent(source, mid - region_s / 2, "start", mid + region_s / 2, "start",
                         max_window_frames=min(wf, LATENT.max_frames))
encoded = []
orig_encode = vae.encode
vae.encode = lambda w, s, **kw: (encoded.append(w.shape[-1]), orig_encode(w, s, **kw))[1]
with torch.no_grad():
    result = ep.run_edit(bundle, edit, cond, seed=0, settings=SamplerSettings(steps=steps, guidance_scale=15.0,
                                                                              erg_tag=False, erg_diffusion=False))
    audio = ep.decode_and_splice(bundle, result)
secs = time.perf_counter() - t0
out = audio["waveform"]
assert out.shape == wave.shape
a, b = round((mid - region_s / 2 - 0.05) * sr), round((mid + region_s / 2 + 0.05) * sr)
identical = bool(torch.equal(out[..., :a], wave[..., :a]) and torch.equal(out[..., b:], wave[..., b:]))
peak = rss("VmHWM")
print(json.dumps({{"case": case, "minutes": minutes, "window_frames": int(result["samples"].shape[-1]),
                   "encoded_samples": max(encoded) if encoded else 0, "peak_rss": peak, "baseline_rss": base,
                   "after_model_rss": after_model, "weights": weights, "wave_bytes": wave_bytes,
                   "seconds": secs, "identical_outside": identical}}))
"""


def _gb(n: float) -> str:
    return f"{n / 2**30:6.2f} GiB"


def run_case(case: str, minutes: float, window_s: float, region_s: float, steps: int) -> dict:
    code = CHILD.format(repo=str(REPO), case=case, minutes=minutes, window_s=window_s, region_s=region_s,
                        steps=steps)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"case {case} / {minutes} min failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="tiny,full")
    ap.add_argument("--minutes", default="10,60")
    ap.add_argument("--window-seconds", type=float, default=240.0)
    ap.add_argument("--region-seconds", type=float, default=30.0)
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: tiny 2, full 1)")
    args = ap.parse_args(argv)
    print(f"time-range edit on long sources, CPU; region {args.region_seconds:g} s, window <= "
          f"{args.window_seconds:g} s; VmHWM of a fresh process per case")
    print(f"{'case':<5} {'source':>7} {'window':>8} {'VAE saw':>8} {'peak RSS':>11} {'weights':>11} "
          f"{'src+out wave':>13} {'edit working set':>17} {'time':>7}  outside==source")
    for case in args.cases.split(","):
        for minutes in (float(m) for m in args.minutes.split(",")):
            steps = args.steps if args.steps is not None else (2 if case == "tiny" else 1)
            r = run_case(case, minutes, args.window_seconds, args.region_seconds, steps)
            held = r["baseline_rss"] + r["weights"] + 2 * r["wave_bytes"]
            work = r["peak_rss"] - held
            print(f"{case:<5} {minutes:5.0f} m {r['window_frames'] * 4096 / 44100:7.1f}s "
                  f"{r['encoded_samples'] / 44100:7.1f}s {_gb(r['peak_rss'])} {_gb(r['weights'])} "
                  f"{_gb(2 * r['wave_bytes'])} {_gb(work):>17} {r['seconds']:6.0f}s  {r['identical_outside']}",
                  flush=True)
    print("edit working set = peak RSS - (process baseline + weights + source and output waveforms)")


if __name__ == "__main__":
    main()
