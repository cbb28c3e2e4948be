"""``python -m ace_core queue`` against the real server: upload, --set, progress, outputs, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import soundfile as sf

from checkpoints import V1
from stage import FAST, REPO, SOURCE, write_source

WORKFLOW = REPO / "workflows" / "api" / "audio_to_audio.json"


def _ids(class_type: str) -> str:
    prompt = json.loads(WORKFLOW.read_text(encoding="utf-8"))
    return next(k for k, v in prompt.items() if v["class_type"] == class_type)


def queue(*args, timeout: float = 300):
    done = subprocess.run([sys.executable, "-m", "ace_core", "queue", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def test_queue_runs_and_downloads(server, tmp_path):
    ckpt = server.layout(V1, "comfy")["ckpt_name"]
    rate, seconds = SOURCE[V1]
    song = write_source(tmp_path / "song.wav", rate, seconds)
    sampler, loader, encoder = _ids("AceForge_KSampler"), _ids("AceForge_CheckpointLoader"), \
        _ids("AceForge_TextEncodeAceStepAudio")
    code, out, err = queue(WORKFLOW, "--server", server.url, "--set", f"{loader}.ckpt_name={ckpt}",
                           "--set", f"{sampler}.steps={FAST[V1]['steps']}", "--set", f"{sampler}.seed=42",
                           "--set", f"{encoder}.tags=lo-fi, queue client test", "--input", song,
                           "--wait", "--out", tmp_path / "out")
    assert code == 0, err
    assert f"node {sampler} (AceForge_KSampler)" in err  # a progress line per node
    files = sorted((tmp_path / "out").iterdir())
    assert files and all(f.stat().st_size > 0 for f in files), out
    data, out_rate = sf.read(str(files[0]), always_2d=True)
    assert out_rate == 44100 and data.shape[1] == 2
    assert abs(len(data) / out_rate - seconds) < 0.05
    assert (server.input / "song.wav").is_file()  # uploaded


def test_queue_prints_validation_errors_per_input(server):
    sampler = _ids("AceForge_KSampler")
    code, _, err = queue(WORKFLOW, "--server", server.url, "--set", f"{sampler}.steps=-5",
                         "--set", f"{sampler}.denoise=7", "--wait")
    assert code == 2
    assert f"node {sampler} (AceForge_KSampler) steps:" in err
    assert f"node {sampler} (AceForge_KSampler) denoise:" in err


def test_queue_missing_nodes_and_server_down_are_one_line(server, tmp_path):
    prompt = json.loads(WORKFLOW.read_text(encoding="utf-8"))
    prompt["99"] = {"class_type": "NoSuchNode_XYZ", "inputs": {}}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(prompt))
    code, _, err = queue(bad, "--server", server.url)
    assert code == 2 and "NoSuchNode_XYZ" in err and len(err.strip().splitlines()) == 1
    code, _, err = queue(WORKFLOW, "--server", "http://127.0.0.1:9", timeout=60)
    assert code == 2 and "no ComfyUI answers" in err and len(err.strip().splitlines()) == 1
