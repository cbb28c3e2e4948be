"""The side-by-side benchmark (bench/bench_side_by_side.py) must not rot: our worker answers every
phase over its JSON-lines protocol on a tiny random model, and the report's ratio math and
table are right. No ComfyUI needed (the core worker is exercised only by the benchmark itself)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import bench_side_by_side as driver  # noqa: E402
from side_by_side import report  # noqa: E402
from side_by_side.inputs import LYRICS, TAGS, latent_frames, make_inputs, save_inputs  # noqa: E402


# --- report ----------------------------------------------------------------------------------------
def test_summary_and_ratio():
    assert report.summary([3.0, 1.0, 2.0]) == 2.0
    assert report.summary([3.0, 1.0, 2.0, 10.0]) == 2.5
    assert report.summary([3.0, 1.0, 2.0], "min") == 1.0
    assert report.summary([]) is None
    assert report.ratio(1.0, 4.0) == 0.25
    assert report.ratio(1.0, 0.0) is None
    assert report.ratio(None, 1.0) is None


def test_row_ratios_and_verdict():
    row = report.Row("dit_forward", "bf16", ours=[3.0, 3.2, 3.1], core=[5.0, 6.0, 5.5],
                     ours_peak=int(6e9), core_peak=int(12e9))
    assert row.ratio() == pytest.approx(3.1 / 5.5)
    assert row.ratio("min") == pytest.approx(3.0 / 5.0)
    assert row.peak_ratio() == pytest.approx(0.5)
    assert report.verdict(row) == "ok"
    slow = report.Row("vae_decode", "fp32", ours=[1.0], core=[1.1], ours_peak=2, core_peak=1)
    assert report.verdict(slow) == "behind: time+memory"
    assert report.verdict(report.Row("x", "fp32", ours=[1.0])) == ""


def test_rows_for_generate_and_vae():
    stamps = [0.0, 5.0, 6.0, 7.5, 8.5]  # start, then after each of 4 steps: set-up + 1, 1.5, 1
    ours = [{"seconds": 8.5, "cpu_seconds": 17.0, "peak_rss": 100, "step_stamps": stamps}]
    core = [{"seconds": 10.0, "cpu_seconds": 10.0, "peak_rss": 200, "step_stamps": [0.0, 2.0, 4.0, 6.0, 8.0]}]
    whole, step = report.rows_for("generate", "bf16", ours, core)
    assert whole.ours == [8.5] and whole.core == [10.0]
    assert whole.ours_cpu == pytest.approx(2.0) and whole.core_cpu == pytest.approx(1.0)
    assert step.phase == "guided_step" and step.unit == "s/step"
    assert step.ours == [1.0, 1.5, 1.0] and step.core == [2.0, 2.0, 2.0]
    assert step.ratio() == pytest.approx(0.5)
    assert report.first_step_overhead(stamps) == pytest.approx(4.0)
    assert "set-up before step 1: ours 4.00 s, core 0.0000 s" in step.note
    (vae,) = report.rows_for("vae_decode", "fp32", [{"seconds": 20.0, "audio_seconds": 10.0}],
                             [{"seconds": 40.0, "audio_seconds": 10.0}])
    assert vae.unit == "s/audio s" and vae.ours == [2.0] and vae.core == [4.0]
    assert vae.ours_cpu is None  # no CPU time reported: no ratio made up


def test_format_table_columns_line_up():
    rows = [report.Row("dit_forward", "bf16", ours=[3.15], core=[5.57], ours_peak=int(6.6e9), core_peak=int(22.7e9),
                       ours_cpu=1.9, core_cpu=1.8),
            report.Row("vae_decode", "fp32", "s/audio s", ours=[4.1], core=[3.8], note="DCAE equal, vocoder slower")]
    text = report.format_table(rows)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["phase", "dtype", "unit"]
    assert set(lines[1]) == {"-"}
    first = lines[2].split()
    assert first[:3] == ["dit_forward", "bf16", "s"]
    assert "0.57x" in first and "6.60" in first and "22.70" in first and "0.29x" in first and "1.9|1.8" in first
    assert first[-1] == "ok"
    assert "1.08x" in lines[3] and lines[3].endswith("behind: time")
    assert lines[-1] == "  vae_decode fp32: DCAE equal, vocoder slower"
    md = report.format_markdown(rows)
    assert "| dit_forward | bf16 | 3.15 s | 5.57 s | 0.57x | 6.60 / 22.70 |" in md


def test_inputs_are_seeded_and_sized():
    a, b = make_inputs(3, 2.0, text_dim=32), make_inputs(3, 2.0, text_dim=32)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["noise"], make_inputs(4, 2.0, text_dim=32)["noise"])
    frames = latent_frames(2.0)
    assert a["x"].shape == (2, 8, 16, frames) and a["noise"].shape == (1, 8, 16, frames)
    assert a["waveform"].shape == (1, 2, 88200) and a["waveform"].abs().max() < 0.5
    assert a["text_states"].shape == (1, 24, 32)


def test_compare_outputs(tmp_path):
    from safetensors.torch import save_file

    save_file({"v": torch.tensor([1.0, 2.0])}, str(tmp_path / "ours_dit_forward_fp32.safetensors"))
    save_file({"v": torch.tensor([1.0, 2.5])}, str(tmp_path / "core_dit_forward_fp32.safetensors"))
    assert driver.compare_outputs(tmp_path, "dit_forward", "fp32") == "v: max abs diff 0.5 (max |core| 2.5)"
    assert driver.compare_outputs(tmp_path, "dit_forward", "bf16") is None
    save_file({"latent": torch.ones(1, 8, 16, 54)}, str(tmp_path / "ours_vae_encode_fp32.safetensors"))
    save_file({"latent": torch.ones(1, 8, 16, 53)}, str(tmp_path / "core_vae_encode_fp32.safetensors"))
    assert driver.compare_outputs(tmp_path, "vae_encode", "fp32") == \
        "latent: max abs diff 0 (max |core| 1) over the first 53 of 54 | 53"


def test_driver_options():
    quick = driver.parse_args(["--quick"])
    assert (quick.rounds, quick.load_rounds, quick.seconds, quick.dit_blocks, quick.steps) == (2, 1, 5.0, 2, 4)
    full = driver.parse_args(["--rounds", "5", "--phases", "dit_forward"])
    assert (full.rounds, full.load_rounds, full.seconds, full.dit_blocks, full.steps) == (5, 5, 10.0, 24, 8)
    assert full.phases == ["dit_forward"]


# --- our worker over its protocol, on a tiny model -------------------------------------------------
@contextmanager
def _ours_worker(work: Path, ckpt, inputs: Path, argv: list):
    """Our worker process on ``ckpt`` and ``inputs`` (outputs and log under ``work``), closed on exit."""
    (work / "out").mkdir()
    args = driver.parse_args(argv)
    worker = driver.Worker("ours", driver.worker_argv("ours", args, Path(ckpt), inputs, work / "out"),
                           driver.child_env(), work / "ours.log")
    try:
        yield worker, args
    finally:
        worker.close()


@pytest.fixture(scope="module")
def ours_worker(tmp_path_factory):
    from ace_core.v1.testing import write_tiny_checkpoint

    work = tmp_path_factory.mktemp("side_by_side")
    ckpt = write_tiny_checkpoint(work / "tiny.safetensors", "comfy")
    inputs = save_inputs(make_inputs(0, 1.0, text_tokens=5, lyric_tokens=12, text_dim=32), work / "inputs.safetensors")
    with _ours_worker(work, ckpt, inputs, ["--quick", "--threads", "1"]) as (worker, _):
        yield worker, work


def test_ours_worker_runs_every_phase(ours_worker):
    worker, work = ours_worker
    hello = worker.call("hello")
    assert hello["side"] == "ours" and hello["family"] == "v1" and hello["threads"] == 1

    loaded = worker.call("load", group="text", dtype="fp32")
    assert loaded["seconds"] > 0 and loaded["rss"] > 0
    text = worker.call("run", phase="text_encode", dtype="fp32", save=True, options={"tags": TAGS, "lyrics": LYRICS})
    assert text["seconds"] > 0 and text["peak_rss"] > 0 and text["text_tokens"] > 1 and text["lyric_tokens"] > 10
    assert Path(text["saved"]).is_file()

    worker.call("load", group="dit", dtype="fp32")
    fwd = worker.call("run", phase="dit_forward", dtype="fp32", save=True)
    from safetensors.torch import load_file

    v = load_file(fwd["saved"])["v"]
    assert v.shape == (2, 8, 16, latent_frames(1.0)) and bool(torch.isfinite(v).all())
    gen = worker.call("run", phase="generate", dtype="fp32", options={"steps": 3, "cfg": 5.0, "seed": 0})
    assert len(gen["step_stamps"]) == 4 and gen["step_stamps"] == sorted(gen["step_stamps"])
    flops = worker.call("flops", phase="dit_forward", dtype="fp32")["flops"]
    assert flops > 0

    worker.call("load", group="vae", dtype="fp32")
    enc = worker.call("run", phase="vae_encode", dtype="fp32")
    dec = worker.call("run", phase="vae_decode", dtype="fp32")
    assert enc["audio_seconds"] == pytest.approx(1.0)
    assert dec["audio_seconds"] == pytest.approx(latent_frames(1.0) * 4096 / 44100)
    assert worker.call("unload")["rss"] > 0

    rows = report.rows_for("generate", "fp32", [gen], [gen])
    assert [r.phase for r in rows] == ["generate", "guided_step"] and rows[1].ratio() == pytest.approx(1.0)


def test_worker_reports_errors_and_keeps_serving(ours_worker):
    worker, _ = ours_worker
    worker.call("unload")
    with pytest.raises(driver.WorkerError, match="no model group is loaded"):
        worker.call("run", phase="dit_forward", dtype="fp32")
    with pytest.raises(driver.WorkerError, match="unknown op"):
        worker.call("nonsense")
    worker.call("load", group="vae", dtype="fp32")
    with pytest.raises(driver.WorkerError, match="asked for bf16, the vae group is loaded in fp32"):
        worker.call("run", phase="vae_decode", dtype="bf16")
    with pytest.raises(driver.WorkerError, match="no phase 'warp'"):
        worker.call("run", phase="warp", dtype="fp32")
    assert worker.call("hello")["side"] == "ours"


# --- ACE-Step 1.5 (--family v15) ------------------------------------------------------------------
def test_v15_driver_options():
    from side_by_side.families import V15

    quick = driver.parse_args(["--quick", "--family", "v15"])
    assert quick.phases == V15.phases and "lm" in quick.phases
    assert (quick.seconds, quick.steps, quick.cfg, quick.dit_blocks, quick.lm_layers, quick.lm_tokens) == \
        (10.0, 4, 1.0, 2, 2, 12)
    assert quick.dtypes == ["fp32"]
    full = driver.parse_args(["--family", "v15", "--phases", "lm", "dit_forward"])
    assert (full.seconds, full.steps, full.dit_blocks, full.lm_layers, full.lm_tokens) == (30.0, 8, 24, 28, 150)
    assert full.dtypes == ["bf16", "fp32"]
    with pytest.raises(SystemExit):  # v1 has no LM phase
        driver.parse_args(["--phases", "lm"])


def test_v15_truncated_manifest_and_memory_estimate():
    from side_by_side.families import V15, truncated_tensors

    tensors = {f"model.diffusion_model.decoder.layers.{i}.w": 1 for i in range(4)}
    tensors.update({f"text_encoders.qwen3_2b.transformer.model.layers.{i}.w": 1 for i in range(3)})
    tensors.update({"model.diffusion_model.encoder.lyric_encoder.layers.7.w": 1, "vae.x": 1})
    kept = truncated_tensors(V15, tensors, dit_blocks=2, lm_layers=1)
    assert sorted(kept) == ["model.diffusion_model.decoder.layers.0.w", "model.diffusion_model.decoder.layers.1.w",
                            "model.diffusion_model.encoder.lyric_encoder.layers.7.w",
                            "text_encoders.qwen3_2b.transformer.model.layers.0.w", "vae.x"]
    assert truncated_tensors(V15, tensors, None, None) == tensors
    params = {"text": 1e9, "lm": 2e9, "dit": 3e9, "vae": 1e8}
    # core's CLIP holds the text encoder and the LM for either group; ours only the group's model
    assert driver.resident_estimate("core", "text", "fp32", params, V15) == pytest.approx(12e9 + 1.5e9)
    assert driver.resident_estimate("ours", "text", "fp32", params, V15) == pytest.approx(4e9 + 1.5e9)


def test_v15_inputs_match_our_noise_and_prompts():
    from ace_core.v15.sampling import initial_noise, seed_generators
    from side_by_side.inputs_v15 import make_inputs_v15

    a = make_inputs_v15(5, 10.0, 16, caption=TAGS, lyrics=LYRICS, vae_seconds=2.0, text_tokens=7, lyric_tokens=9)
    assert a["x"].shape == (1, 64, 250) and a["latent"].shape == (1, 64, 50)
    assert a["waveform"].shape == (1, 2, 96000) and a["waveform"].abs().max() < 0.5
    assert a["text_hidden"].shape == (1, 7, 16) and a["lyric_hidden"].shape == (1, 9, 16)
    assert torch.equal(a["noise"], initial_noise(seed_generators(5, 1), 1, 250).transpose(1, 2))
    assert a["lm_prompt"].dtype == torch.long and a["lm_prompt"].numel() > a["lm_negative"].numel() > 5


def test_lm_rows_and_code_comparison(tmp_path):
    from safetensors.torch import save_file

    (row,) = report.rows_for("lm", "fp32", [{"seconds": 2.0, "tokens": 10}], [{"seconds": 8.0, "tokens": 10}], "x")
    assert row.unit == "s/token" and row.ours == [0.2] and row.core == [0.8] and row.ratio() == pytest.approx(0.25)
    assert row.note == "x; tokens/s (median): ours 5.00, core 1.25"
    save_file({"codes": torch.tensor([[1.0, 2.0, 3.0]])}, str(tmp_path / "ours_lm_fp32.safetensors"))
    save_file({"codes": torch.tensor([[1.0, 9.0, 3.0]])}, str(tmp_path / "core_lm_fp32.safetensors"))
    assert driver.compare_outputs(tmp_path, "lm", "fp32") == "codes: 2 of 3 equal"


def test_core_v15_counts_lm_layers_from_the_header(tmp_path):
    from safetensors.torch import save_file
    from side_by_side.core_v15 import lm_layer_count

    tensors = {f"text_encoders.qwen3_2b.transformer.model.layers.{i}.mlp.w": torch.zeros(1) for i in range(3)}
    save_file(tensors, str(tmp_path / "lm.safetensors"))
    save_file({"vae.w": torch.zeros(1)}, str(tmp_path / "none.safetensors"))
    assert lm_layer_count(str(tmp_path / "lm.safetensors")) == 3
    assert lm_layer_count(str(tmp_path / "none.safetensors")) == 0


@pytest.fixture(scope="module")
def ours_v15_worker(tmp_path_factory):
    from ace_core.v15.bundle import save_v15_all_in_one, tiny_v15_bundle
    from ace_core.v15.lm.loader import tiny_five_hz_lm
    from side_by_side.inputs_v15 import make_inputs_v15

    work = tmp_path_factory.mktemp("side_by_side_v15")
    ckpt = save_v15_all_in_one(tiny_v15_bundle(), work / "tiny15.safetensors", lm=tiny_five_hz_lm().model)
    inputs = save_inputs(make_inputs_v15(0, 10.0, 16, caption=TAGS, lyrics=LYRICS, vae_seconds=1.0, text_tokens=5,
                                         lyric_tokens=12), work / "inputs.safetensors")
    with _ours_worker(work, ckpt, inputs, ["--quick", "--family", "v15", "--threads", "1"]) as (worker, args):
        yield worker, args


def test_ours_v15_worker_runs_every_phase(ours_v15_worker):
    from safetensors.torch import load_file
    from side_by_side.families import V15, phase_options

    worker, args = ours_v15_worker
    hello = worker.call("hello")
    assert hello["family"] == "v15" and hello["threads"] == 1
    args.steps, args.lm_tokens = 2, 3
    results = {}
    for group, phases in V15.groups.items():
        assert worker.call("load", group=group, dtype="fp32")["rss"] > 0
        for phase in phases:
            results[phase] = worker.call("run", phase=phase, dtype="fp32", save=True,
                                         options=phase_options(V15, phase, args))
            assert results[phase]["seconds"] > 0 and Path(results[phase]["saved"]).is_file()
    text = load_file(results["text_encode"]["saved"])
    assert text["text_hidden"].shape[-1] == 16 and results["text_encode"]["lyric_tokens"] > 10
    codes = load_file(results["lm"]["saved"])["codes"]
    assert codes.shape == (1, 3) and bool(((codes >= 0) & (codes < 64000)).all())
    assert results["lm"]["tokens"] == 3
    v = load_file(results["dit_forward"]["saved"])["v"]
    assert v.shape == (1, 64, 250) and bool(torch.isfinite(v).all())
    assert len(results["generate"]["step_stamps"]) == 3
    assert load_file(results["generate"]["saved"])["latent"].shape == (1, 64, 250)
    assert results["vae_encode"]["audio_seconds"] == pytest.approx(1.0)
    assert load_file(results["vae_decode"]["saved"])["waveform"].shape == (1, 2, 48000)
    (row,) = report.rows_for("lm", "fp32", [results["lm"]], [results["lm"]])
    assert row.unit == "s/token" and row.ratio() == pytest.approx(1.0)
