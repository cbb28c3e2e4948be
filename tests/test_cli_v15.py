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


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """12 s of a stereo 44.1 kHz tone (another rate than the model's 48 kHz)."""
    import numpy as np

    t = np.arange(12 * 44100) / 44100
    path = tmp_path_factory.mktemp("audio") / "song.wav"
    sf.write(str(path), np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 330 * t)], 1), 44100)
    return path


@pytest.mark.parametrize("command,extra,seconds", [
    ("repaint", ["--start-time", "2", "--end-time", "6", "--repaint-mode", "conservative"], 12.0),
    ("extend", ["--extend-before-duration", "0", "--extend-after-duration", "4"], 16.0),
    ("cover", ["--audio-cover-strength", "0.5", "--cover-noise-strength", "0.2"], 12.0),
])
def test_edit_commands(split_checkpoint, song, tmp_path, capsys, command, extra, seconds):
    out = tmp_path / f"{command}.wav"
    code, err = run([command, "--checkpoint", split_checkpoint, "--input", song, "--caption", "lo-fi", "--steps", "2",
                     "--quiet", "--out", out, *extra], capsys)
    assert code == 0, err
    data, rate = sf.read(str(out))
    assert rate == 48000 and data.shape[1] == 2 and abs(data.shape[0] / rate - seconds) < 0.05


def test_repaint_keeps_the_source_outside_the_region(split_checkpoint, song, tmp_path, capsys):
    import numpy as np

    out = tmp_path / "r.wav"
    code, err = run(["repaint", "--checkpoint", split_checkpoint, "--input", song, "--caption", "x", "--steps", "2",
                     "--start-time", "4", "--end-time", "8", "--repaint-mode", "balanced", "--quiet", "--out", out],
                    capsys)
    assert code == 0, err
    result, _ = sf.read(str(out))
    changed = np.abs(result[: 48000 * 3] - result[: 48000 * 3].mean()).max() > 0  # audio is there
    outside = result[48000 * 9: 48000 * 11]
    reference = 0.3 * np.sin(2 * np.pi * 220 * (np.arange(48000 * 9, 48000 * 11) / 48000))
    assert changed and np.abs(outside[:, 0] - reference).max() < 0.02  # the source, resampled, kept


@pytest.mark.parametrize("argv,message", [
    (["extract", "--track-name", "vocals"], r"base"),  # a turbo model cannot extract stems
    (["extract", "--track-name", "kazoo"], r"track_name"),
    (["repaint", "--start-time", "8", "--end-time", "4"], r"start_time|end_time"),
])
def test_edit_commands_refuse_bad_input(split_checkpoint, song, tmp_path, capsys, argv, message):
    import re

    out = tmp_path / "x.wav"
    command, *rest = argv
    code, err = run([command, "--checkpoint", split_checkpoint, "--input", song, "--caption", "x", "--out", out,
                     *rest], capsys)
    assert code == 2 and re.search(message, err), err
    assert not out.exists()


def test_cover_is_refused_for_v1(song, tmp_path, capsys):
    code, err = run(["cover", "--demo", "--input", song, "--out", tmp_path / "x.wav"], capsys)
    assert code == 2 and "cover" in err and "v1" in err
