"""The command line with ACE-Step 1.5: the family follows the checkpoint; ``--demo v15``; options of
the other family refused by name before anything loads; output stereo 48 kHz."""

from __future__ import annotations

import subprocess
import sys

import pytest
import soundfile as sf

from workflow_tools import REPO

from ace_core.cli import main
from ace_core.v15.bundle import save_v15_split, tiny_v15_bundle


@pytest.fixture(scope="module")
def split_checkpoint(tmp_path_factory):
    """A tiny random 1.5 in ComfyUI's split layout; returns the DiT file."""
    parts = save_v15_split(tiny_v15_bundle(seed=4), tmp_path_factory.mktemp("models"))
    return parts["dit"]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_demo_v15_as_a_module(tmp_path):
    out = tmp_path / "demo.wav"
    proc = subprocess.run(
        [sys.executable, "-m", "ace_core", "generate", "--demo", "v15", "--caption", "pop, piano", "--seconds", "10",
         "--lyrics-text", "[Verse]\\nhello", "--bpm", "100", "--seed", "7", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "untrained noise" in proc.stderr
    assert "--checkpoint /path/to/ace_step_1.5_turbo_aio.safetensors" in proc.stderr
    tail = proc.stderr.rsplit("run:", 1)[-1]
    assert "--demo" not in tail and " v15 " not in tail
    assert "sampling" in proc.stderr and "8/8" in proc.stderr  # turbo: 8 steps by default
    info = sf.info(str(out))
    assert (info.samplerate, info.channels, info.frames) == (48000, 2, 250 * 1920)


def test_generate_from_split_files_batch_and_seed(split_checkpoint, tmp_path, capsys):
    out = tmp_path / "song.flac"
    argv = ["generate", "--checkpoint", split_checkpoint, "--caption", "ambient", "--lyrics-text", "[Instrumental]",
            "--key", "F# minor", "--time-signature", "3", "--language", "en", "--seconds", "10.5",
            "--batch-size", "2", "--steps", "3", "--seed", "1", "--quiet", "--out", out]
    code, err = run(argv, capsys)
    assert code == 0, err
    first = [sf.read(str(tmp_path / f"song_{k}.flac"))[0] for k in (1, 2)]
    assert first[0].shape == (262 * 1920, 2) and not (first[0] == first[1]).all()
    code, err = run(argv, capsys)  # same seed: the same audio
    assert code == 0, err
    assert (sf.read(str(tmp_path / "song_1.flac"))[0] == first[0]).all()


@pytest.mark.parametrize("extra,message", [
    (["--omega", "3"], r"--omega: not an option of ACE-Step 1\.5"),
    (["--erg-tag"], r"--erg-tag: not an option of ACE-Step 1\.5"),
    (["--bpm", "12"], r"bpm: 12 is out of range"),
    (["--key", "H major"], r"keyscale"),
    (["--language", "xx"], r"language"),
    (["--time-signature", "5"], r"time"),
    (["--seconds", "5"], r"--seconds: must be in 10"),
    (["--seconds", "601"], r"--seconds: must be in 10"),
    (["--batch-size", "9"], r"batch_size: must be in 1"),
    (["--steps", "25"], r"steps: must be in 1–20 for a turbo model"),
    (["--method", "heun"], r"method"),
])
def test_bad_input_names_the_option_and_writes_nothing(split_checkpoint, tmp_path, capsys, extra, message):
    import re

    out = tmp_path / "x.wav"
    code, err = run(["generate", "--checkpoint", split_checkpoint, "--caption", "pop", "--out", out, *extra], capsys)
    assert code == 2 and re.search(message, err), err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_v15_option_with_a_v1_model_is_refused(tmp_path, capsys):
    code, err = run(["generate", "--demo", "--bpm", "120", "--out", tmp_path / "x.wav"], capsys)
    assert code == 2 and "--bpm: not an option of ACE-Step v1" in err
