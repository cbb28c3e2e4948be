"""AceForge against ComfyUI core, side by side in one run, on the same random weights and inputs.

    python bench/bench_side_by_side.py --quick          # a few minutes on 2 cores (2 of 24 DiT blocks)
    python bench/bench_side_by_side.py                  # full size v1 (needs ~8 GB disk, ~18 GB RAM)
    python bench/bench_side_by_side.py --phases dit_forward generate --rounds 5 --device cuda
    python bench/bench_side_by_side.py --quick --family v15   # ACE-Step 1.5 turbo (2 of 24 DiT, 2 of 28 LM layers)

1. Writes ONE random ACE-Step v1 all-in-one file in ComfyUI's layout (every key and shape of the
   published ``ace_step_v1_3.5b.safetensors``; ``--quick``: only the first 2 DiT blocks) and one
   small file of seeded inputs (conditioning, noise, latents, a waveform) both sides read.
2. Checkpoint load: each side in a fresh process per round, as a new user's first load (ours: the
   family adapter, default dtype; core: ``load_checkpoint_guess_config``, CPU default and bf16
   forced): seconds and peak RSS.
3. Starts two persistent workers that answer JSON lines on stdin/stdout: ours (this Python,
   ``ace_core``) and ComfyUI core's (the harness's Python, ``comfy`` from
   ``../shared/harness/comfyui/ComfyUI``, CPU forced). Per group of models (text encoder, DiT,
   VAE; loaded from the same file, one group at a time) and dtype, each phase runs in alternating
   rounds (ours, core, ours, core ...). When both sides' copies of a group would not fit in
   ``--mem-budget`` (fp32 DiT: 2 x 13 GB), each side loads, runs the round and unloads in turn.
4. Prints every phase as ours / core (min and median, their ratio), the peak RSS of each side
   during the phase, CPU/wall (about the number of busy cores), the threads of each worker and
   the load average before/after; the fp32 DiT outputs of both sides are compared (max abs diff).

Phases: load, text_encode (tags + lyrics), dit_forward (one call, CFG as a batch of 2), generate
(``--steps`` guided Euler steps of ``--seconds`` of audio, cfg ``--cfg``; also reported per step as
guided_step), vae_encode and vae_decode (fp32, seconds per audio second).
Both samplers are made comparable: plain CFG on every step (ours: no APG, no ERG), Euler, shift 3.

``--family v15`` (ACE-Step 1.5 turbo, ComfyUI's ``ace_step_1.5_turbo_aio`` layout with the 1.7B
5 Hz LM; ``--quick``: 2 of 24 DiT blocks, 2 of 28 LM layers, 10 s of audio, 3 s through the VAE,
4 steps, fp32 only): text_encode
(Qwen3-0.6B, core's 1.5 text node with the LM off), lm (``--lm-tokens`` audio codes, greedy, CFG
``--lm-cfg`` as a batch of 2; reported as s/token), dit_forward (one turbo call, batch 1, no
CFG), generate (turbo steps, Euler, shift 3, no CFG; ours without DCW, core has none),
vae_encode / vae_decode (Oobleck, 48 kHz). Groups: text, lm, dit, vae (see side_by_side/families.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for p in (str(REPO), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

from side_by_side import report  # noqa: E402
from side_by_side.channel import Worker, WorkerError  # noqa: E402
from side_by_side.families import ALL_PHASES, FAMILIES, Family  # noqa: E402
from side_by_side.families import make_inputs, phase_options, size_text, write_checkpoint  # noqa: E402
from side_by_side.inputs import save_inputs  # noqa: E402
from side_by_side.protocol import mem_available  # noqa: E402

HARNESS = REPO.parent / "shared" / "harness" / "comfyui"
COMFY_DIR = HARNESS / "ComfyUI"
CORE_VENV = Path(os.environ.get("ACEFORGE_COMFY_VENV", Path.home() / ".cache" / "aceforge-comfyui-venv"))
COMFY_VOCAB = COMFY_DIR / "comfy" / "text_encoders" / "ace_lyrics_tokenizer" / "vocab.json"

BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
RESTART_RSS = 3e9
"""A worker holding more than this after unloading is restarted before the other side loads."""
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "4090": 165.0}
"""Dense bf16 tensor-core peaks (TFLOP/s) for the MFU line; ``--peak-tflops`` overrides."""


def gb(n) -> str:
    return "-" if n is None else f"{n / 1e9:.1f} GB"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- set-up --------------------------------------------------------------------------------------
def _indices(checkpoint: Path, pattern: str) -> set:
    import re

    from ace_core.loading.safetensors_io import read_header

    return {int(m.group(1)) for k in read_header(checkpoint).tensors if (m := re.match(pattern, k))}


def dit_block_count(checkpoint: Path, family: Family) -> int:
    """DiT transformer blocks in the file (24 in the published models)."""
    return len(_indices(checkpoint, family.block_key))


def lm_layer_count(checkpoint: Path, family: Family) -> int:
    """5 Hz LM layers in the file (28 in the published 1.7B; 0 without an LM)."""
    return len(_indices(checkpoint, family.lm_key)) if family.lm_key else 0


def group_parameters(checkpoint: Path, family: Family) -> dict:
    """Parameters per group (text / lm / dit / vae) from the file's header."""
    from ace_core.loading.safetensors_io import read_header

    counts = dict.fromkeys(family.prefixes, 0)
    for key, info in read_header(checkpoint).tensors.items():
        for group, prefix in family.prefixes.items():
            if key.startswith(prefix) and key != "text_encoders.spiece_model":
                n = 1
                for s in info.shape:
                    n *= int(s)
                counts[group] += n
    return counts


def resident_estimate(side: str, group: str, dtype: str, params: dict, family: Family) -> float:
    """Bytes a side holds with ``group`` loaded (core's 1.5 CLIP holds the text encoder and the LM)."""
    total = 0.0
    for held in family.held(side, group):
        per = family.default_bytes[side][held] if dtype == "default" else BYTES[dtype]
        total += params[held] * per
    return total + 1.5e9  # weights, then activations and the process itself


def worker_argv(side: str, args, checkpoint: Path, inputs: Path, out: Path) -> list:
    python = sys.executable if side == "ours" else str(CORE_VENV / "bin" / "python")
    argv = [python, "-m", "side_by_side.worker_base", "--side", side, "--family", args.family,
            "--checkpoint", str(checkpoint), "--inputs", str(inputs), "--out", str(out),
            "--device", args.device, "--comfy", str(args.comfy), "--dit-blocks", str(args.dit_blocks)]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    return argv


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(BENCH)
    if not env.get("ACEFORGE_LYRICS_VOCAB") and COMFY_VOCAB.is_file():
        env["ACEFORGE_LYRICS_VOCAB"] = str(COMFY_VOCAB)
    return env


# --- phases --------------------------------------------------------------------------------------
def run_load(args, checkpoint: Path, params: dict, results: dict) -> None:
    """Fresh-process loads, rounds interleaved: ours (default dtype), core default, core bf16."""
    variants = [("ours", "default"), ("core", "default"), ("core", "bf16")]
    family = FAMILIES[args.family]
    core_fp32_need = sum(params[g] * family.default_bytes["core"][g] for g in params) + 2e9
    for r in range(args.load_rounds):
        for side, dtype in variants:
            if side == "core" and dtype == "default" and (mem_available() or 0) < core_fp32_need:
                print(f"  load: core default (fp32) skipped: needs ~{gb(core_fp32_need)}, "
                      f"{gb(mem_available())} available")
                continue
            python = sys.executable if side == "ours" else str(CORE_VENV / "bin" / "python")
            argv = [python, "-m", "side_by_side.load_child", "--side", side, "--checkpoint", str(checkpoint),
                    "--family", args.family, "--dtype", dtype, "--comfy", str(args.comfy), "--dit-blocks", str(args.dit_blocks)]
            before = loadavg()
            out = subprocess.run(argv, capture_output=True, text=True, env=child_env(), cwd=str(BENCH))
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
            if out.returncode != 0 or not lines:
                print(f"  load {side} {dtype} failed ({out.returncode}):\n{out.stderr[-3000:]}")
                continue
            res = json.loads(lines[-1])
            results.setdefault(("load", dtype if side == "core" else "ours"), []).append(res)
            print(f"  load round {r + 1} {side:4s} {dtype:7s}: {res['seconds']:.1f} s "
                  f"(imports {res['import_seconds']:.1f} s), peak RSS {gb(res['peak_rss'])}, "
                  f"weights {gb(res['weights'])}, load avg {before} -> {loadavg()}")


def load_rows(results: dict) -> list:
    ours = results.get(("load", "ours"), [])
    rows = []
    for dtype, what in (("default", "ours default (bf16) vs core's CPU default"),
                        ("bf16", "ours default (bf16) vs core with bf16 forced")):
        core = results.get(("load", dtype), [])
        if not ours and not core:
            continue
        row = report.rows_for("load", dtype, ours, core, what)[0]
        rows.append(row)
    return rows


def run_group(group: str, dtype: str, phases: list, workers: dict, args, params: dict,
              results: dict, notes: list) -> None:
    family = FAMILIES[args.family]
    budget = min(args.mem_budget * 1e9, (mem_available() or 0) * 0.9)
    need = sum(resident_estimate(s, group, dtype, params, family) for s in workers)
    both = need <= budget or args.device == "cuda"  # on a GPU the weights leave the RAM
    mode = "both resident, rounds alternate" if both else \
        f"one side at a time (needs ~{gb(need)} for both, budget {gb(budget)}): each round loads, runs, unloads"
    print(f"\n[{group} {dtype}] {', '.join(phases)}: {mode}; load avg {loadavg()}")

    def run(side, phase, r):
        save = r == 0 and phase in family.compared and (dtype == "fp32" or group == "vae")
        try:
            res = workers[side].call("run", phase=phase, dtype=dtype, save=save,
                                     options=phase_options(family, phase, args))
        except WorkerError as exc:
            print(f"  {side} {phase} failed: {exc}")
            notes.append(f"{side} {phase} {dtype} failed: {str(exc).splitlines()[0]}")
            return
        results.setdefault((phase, dtype, side), []).append(res)
        print(f"  {phase} round {r + 1} {side:4s}: {res['seconds']:.3f} s (cpu/wall "
              f"{res['cpu_seconds'] / max(res['seconds'], 1e-9):.1f}), peak RSS {gb(res['peak_rss'])}")

    def load(side) -> bool:
        try:
            res = workers[side].call("load", group=group, dtype=dtype)
        except WorkerError as exc:
            print(f"  load {group} {dtype} {side} failed: {exc}")
            notes.append(f"{side} could not load {group} {dtype}: {str(exc).splitlines()[0]}")
            unload(side)
            return False
        print(f"  load {group} {dtype} {side}: {res['seconds']:.1f} s, RSS {gb(res['rss'])}")
        return True

    def unload(side):
        try:
            res = workers[side].call("unload")
        except WorkerError:  # it died (e.g. out of memory): a new one for what follows
            res = None
        if res is not None and res["rss_before_trim"] > res["rss"] + 0.5e9:
            print(f"  {side} worker kept {gb(res['rss_before_trim'])} after unloading, {gb(res['rss'])} after "
                  "malloc_trim (memory the allocator held, not a leak)")
        if res is None or res["rss"] > RESTART_RSS:
            state = "died" if res is None else f"still holds {gb(res['rss'])}"
            print(f"  {side} worker {state}: restarting it")
            workers[side].restart()

    if both:
        loaded = [side for side in workers if load(side)]
        for phase in phases:
            before = loadavg()
            for r in range(args.rounds):
                for side in loaded:
                    run(side, phase, r)
            print(f"  {phase}: load avg {before} -> {loadavg()}")
        for side in workers:
            unload(side)
    else:
        before = loadavg()
        for r in range(args.rounds):
            for side in workers:
                if load(side):
                    for phase in phases:
                        run(side, phase, r)
                unload(side)
        print(f"  [{group} {dtype}]: load avg {before} -> {loadavg()}")
        notes.append(f"{group} {dtype}: sides loaded one at a time (memory); rounds still alternate")


def compare_outputs(out_dir: Path, phase: str, dtype: str) -> str | None:
    """Max abs difference of every tensor both sides saved for a phase (None when one is missing)."""
    from safetensors.torch import load_file

    a, b = out_dir / f"ours_{phase}_{dtype}.safetensors", out_dir / f"core_{phase}_{dtype}.safetensors"
    if not (a.exists() and b.exists()):
        return None
    ours, core = load_file(str(a)), load_file(str(b))
    parts = []
    for key in ours:
        if key not in core:
            continue
        x, y = ours[key], core[key]
        where = ""
        if x.shape != y.shape:
            if x.shape[:-1] != y.shape[:-1]:
                parts.append(f"{key}: shapes differ {tuple(x.shape)} vs {tuple(y.shape)}")
                continue
            n = min(x.shape[-1], y.shape[-1])  # one side pads the end further: compare the common part
            where = f" over the first {n} of {x.shape[-1]} | {y.shape[-1]}"
            x, y = x[..., :n], y[..., :n]
        if key == "codes":  # token ids: how many agree
            parts.append(f"codes: {int((x == y).sum())} of {x.numel()} equal{where}")
            continue
        diff = (x - y).abs().max().item()
        scale = y.abs().max().item()
        parts.append(f"{key}: max abs diff {diff:.3g} (max |core| {scale:.3g}){where}")
    return "; ".join(parts) if parts else None


def print_flops(args, workers: dict, results: dict, dtypes: list) -> None:
    """FLOPs of one DiT forward (counted on ours: the same computation) and the rate each side reached."""
    peak = args.peak_tflops
    name = workers["ours"].call("hello")["device_name"]
    if peak is None:
        peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    for dtype in dtypes:
        if ("dit_forward", dtype, "ours") not in results:
            continue
        workers["ours"].call("load", group="dit", dtype=dtype)
        flops = workers["ours"].call("flops", phase="dit_forward", dtype=dtype)["flops"]
        workers["ours"].call("unload")
        parts = []
        for side in workers:
            med = report.summary([r["seconds"] for r in results.get(("dit_forward", dtype, side), [])])
            if med:
                rate = flops / med / 1e12
                mfu = f", MFU {100 * rate / peak:.1f}% of {peak:g}" if (peak and args.device == "cuda") else ""
                parts.append(f"{side} {rate:.3g} TFLOP/s{mfu}")
        print(f"  DiT forward {dtype}: {flops / 1e9:.1f} GFLOP per call; " + ", ".join(parts))


# --- main ----------------------------------------------------------------------------------------
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="v1: 2 of 24 DiT blocks, 5 s of audio, 4 steps; v15: 2 of 24 DiT blocks, 2 of 28 LM "
                         "layers, 10 s of audio (3 s through the VAE), 4 steps, 12 LM tokens, fp32; both: 2 "
                         "rounds (1 of the loads)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--family", default="v1", choices=sorted(FAMILIES),
                    help="model family (a family adds side_by_side/ours_<family>.py and core_<family>.py)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per phase (default 3; --quick 2)")
    ap.add_argument("--load-rounds", type=int, default=None, help="fresh-process loads per variant (default: rounds)")
    ap.add_argument("--phases", nargs="+", choices=ALL_PHASES, default=None, help="default: all of the family's")
    ap.add_argument("--dtypes", nargs="+", default=None, choices=["default", "bf16", "fp32"],
                    help="dtypes of the text, LM and DiT phases (the VAE runs in fp32); default bf16 fp32 "
                         "(v15 --quick: fp32)")
    ap.add_argument("--seconds", type=float, default=None, help="audio length (v1 10, --quick 5; v15 30, --quick 10)")
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default 8; --quick 4)")
    ap.add_argument("--cfg", type=float, default=None, help="guidance of the generation (v1 5; v15 turbo: 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dit-blocks", type=int, default=None, help="DiT blocks in the file (default 24; --quick 2)")
    ap.add_argument("--lm-layers", type=int, default=None, help="v15: 5 Hz LM layers in the file (28; --quick 2)")
    ap.add_argument("--lm-tokens", type=int, default=None, help="v15: audio codes per LM run (150; --quick 12)")
    ap.add_argument("--lm-cfg", type=float, default=2.0, help="v15: LM guidance (core's text node default 2)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads of both workers (0: torch's default)")
    ap.add_argument("--mem-budget", type=float, default=18.0, help="GB both sides may hold at once")
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where the temporary files go")
    ap.add_argument("--keep", action="store_true", help="keep the checkpoint, inputs, outputs and worker logs")
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="reuse a random file written by an earlier --keep run")
    ap.add_argument("--comfy", type=Path, default=COMFY_DIR, help="ComfyUI folder for the core worker")
    ap.add_argument("--peak-tflops", type=float, default=None, help="device peak for the MFU line (cuda)")
    ap.add_argument("--flops", action="store_true", help="count DiT FLOPs on a CPU too (always on cuda)")
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = ap.parse_args(argv)
    family = FAMILIES[args.family]
    if args.phases is None:
        args.phases = family.phases
    unknown = [p for p in args.phases if p not in family.phases]
    if unknown:
        ap.error(f"--phases: {', '.join(unknown)} not in family {args.family} ({', '.join(family.phases)})")
    defaults = family.quick if args.quick else family.full
    args.rounds = args.rounds or (2 if args.quick else 3)
    args.load_rounds = args.load_rounds or (1 if args.quick else args.rounds)
    args.dtypes = args.dtypes or defaults.get("dtypes", ["bf16", "fp32"])
    args.steps = args.steps or defaults["steps"]
    args.seconds = args.seconds or defaults["seconds"]
    args.cfg = defaults["cfg"] if args.cfg is None else args.cfg
    args.dit_blocks = args.dit_blocks or defaults["dit_blocks"]
    args.lm_layers = args.lm_layers or defaults.get("lm_layers", 0)
    args.lm_tokens = args.lm_tokens or defaults.get("lm_tokens", 0)
    return args


def check_setup(args) -> str | None:
    manifest = FAMILIES[args.family].manifest
    if args.checkpoint is None and not manifest.exists():
        return f"manifest not found: {manifest}"
    if not (CORE_VENV / "bin" / "python").exists():
        return f"ComfyUI's environment is missing: run {HARNESS / 'setup'} (or set ACEFORGE_COMFY_VENV)"
    if not (Path(args.comfy) / "comfy" / "sd.py").exists():
        return f"ComfyUI not found in {args.comfy}"
    return None


def prepare_checkpoint(args, work: Path):
    """The random all-in-one file (written here, or ``--checkpoint``); None when the disk is too full."""
    family = FAMILIES[args.family]
    if args.checkpoint is not None:
        args.dit_blocks = dit_block_count(args.checkpoint, family)
        args.lm_layers = lm_layer_count(args.checkpoint, family)
        return args.checkpoint
    free = shutil.disk_usage(work).free
    full = args.dit_blocks >= family.full_blocks
    need = {"v1": (8.5e9, 2.5e9), "v15": (10.5e9, 5.5e9)}[family.name][0 if full else 1]
    if free < need:
        print(f"need about {gb(need)} free disk in {work}, {gb(free)} free")
        return None
    checkpoint = work / f"ace_step_{family.name}_random.safetensors"
    t0 = time.perf_counter()
    write_checkpoint(family, checkpoint, args.seed, args.dit_blocks, args.lm_layers or None)
    print(f"wrote {checkpoint} ({gb(checkpoint.stat().st_size)}) in {time.perf_counter() - t0:.0f} s")
    return checkpoint


def collect_rows(args, results: dict, out_dir: Path, notes: list) -> list:
    """Table rows in phase order, and a note per phase whose outputs both sides saved."""
    family = FAMILIES[args.family]
    rows = load_rows(results)
    for group, phases in family.groups.items():
        for phase in [p for p in phases if p in args.phases]:
            for dtype in family.dtypes_of(group, args.dtypes):
                ours = results.get((phase, dtype, "ours"), [])
                core = results.get((phase, dtype, "core"), [])
                if ours or core:
                    rows.extend(report.rows_for(phase, dtype, ours, core, family.notes.get(phase, "")))
                check = compare_outputs(out_dir, phase, dtype)
                if check:
                    notes.append(f"{phase} {dtype}, ours vs core: {check}")
    return rows


def print_report(args, rows: list, size: str, hello: dict, notes: list) -> None:
    lm = f", {args.lm_tokens} LM tokens (cfg {args.lm_cfg:g})" if args.family == "v15" else ""
    print(f"\n=== ours / core, {args.device}, {size}, {args.seconds:g} s audio, {args.steps} steps, "
          f"cfg {args.cfg:g}{lm}, {args.rounds} rounds ===")
    print(report.format_table(rows))
    print(f"ratio: ours / core (below 1: ours faster); GB: peak {'GPU memory' if args.device == 'cuda' else 'RSS'} "
          f"during the phase (load: of the whole fresh process); cpu/wall: busy cores; "
          f"target: time <= {report.TARGET:g}x and memory <= 1x core's")
    if args.markdown:
        print("\n" + report.format_markdown(rows))
    if hello:
        print("workers: " + "; ".join(f"{s} torch {h['torch']}, {h['threads']} threads" for s, h in hello.items()))
    print(f"load average now: {loadavg()}")
    for n in notes:
        print(f"note: {n}")


def main(argv=None) -> int:
    args = parse_args(argv)
    problem = check_setup(args)
    if problem:
        print(problem)
        return 2
    print(f"side by side, ACE-Step {args.family}, {args.device}; {os.cpu_count()} CPUs, "
          f"{gb(mem_available())} RAM available, load avg {loadavg()}")
    work = Path(tempfile.mkdtemp(prefix="aceforge_side_by_side_", dir=args.dir))
    out_dir = work / "outputs"
    out_dir.mkdir()
    workers, hello, results, notes = {}, {}, {}, []
    try:
        checkpoint = prepare_checkpoint(args, work)
        if checkpoint is None:
            return 2
        family = FAMILIES[args.family]
        params = group_parameters(checkpoint, family)
        size = size_text(family, args)
        counts = ", ".join(f"{g} {n / 1e9:.2f} B" for g, n in params.items())
        print(f"model: {size}; parameters: {counts}; {args.seconds:g} s of audio, {args.rounds} rounds")
        inputs = save_inputs(make_inputs(family, args, checkpoint), work / "inputs.safetensors")

        if "load" in args.phases:
            print(f"\n[load] fresh process per load; load avg {loadavg()}")
            run_load(args, checkpoint, params, results)

        wanted = [g for g, ps in family.groups.items() if any(p in args.phases for p in ps)]
        if wanted:
            for side in ("ours", "core"):
                workers[side] = Worker(side, worker_argv(side, args, checkpoint, inputs, out_dir), child_env(),
                                       work / f"{side}.log")
            hello = {s: w.call("hello") for s, w in workers.items()}
            for s, h in hello.items():
                print(f"{s} worker: python {h['python']}, torch {h['torch']}, {h['threads']} threads "
                      f"({h['interop_threads']} inter-op), {h['device_name']}, pid {h['pid']}")
        for group in wanted:
            phases = [p for p in family.groups[group] if p in args.phases]
            for dtype in family.dtypes_of(group, args.dtypes):
                run_group(group, dtype, phases, workers, args, params, results, notes)

        rows = collect_rows(args, results, out_dir, notes)
        if workers and "dit_forward" in args.phases and (args.device == "cuda" or args.flops):
            print()
            print_flops(args, workers, results, args.dtypes)
        print_report(args, rows, size, hello, notes)
        return 0
    finally:
        for w in workers.values():
            w.close()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
