"""The command line: ``python -m ace_core generate / audio2audio`` with ``--demo`` and with a tiny
checkpoint written in a published layout; bad input gives a clear error, exit status 2 and no file."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import soundfile as sf
import torch

from workflow_tools import REPO, lyrics_vocab

from ace_core.cli import main

VOCAB = lyrics_vocab()
FRAMES_PER_SECOND = 44100 / 4096


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny random model in the official four-folder layout (the nodes' tests use the ComfyUI file)."""
    from ace_core.v1.testing import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "ACE-Step-v1-tiny", layout="official", seed=3)


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    if VOCAB is not None:
        monkeypatch.setenv("ACEFORGE_LYRICS_VOCAB", str(VOCAB))


def read(path):
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return torch.from_numpy(data.T.copy()), rate


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err


def test_demo_as_a_module(tmp_path):
    """``python -m ace_core generate --demo``: the whole pipeline on a fresh machine, no weights."""
    out = tmp_path / "demo.wav"
    env = {k: v for k, v in os.environ.items() if k != "ACEFORGE_LYRICS_VOCAB"}
    proc = subprocess.run(
        [sys.executable, "-m", "ace_core", "generate", "--demo", "--tags", "pop, piano", "--seconds", "1",
         "--lyrics-text", "[verse]\\nhello world", "--steps", "3", "--seed", "7", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "untrained noise" in proc.stderr
    assert "demo vocabulary" in proc.stderr  # no lyric vocab on a fresh machine: a made-up one, said plainly
    assert "--checkpoint /path/to/ace_step_v1_3.5b.safetensors" in proc.stderr
    assert "--demo" not in proc.stderr.rsplit("run:", 1)[-1]
    assert "sampling" in proc.stderr and "3/3" in proc.stderr  # progress shown
    wave, rate = read(out)
    assert rate == 44100 and wave.shape == (2, int(1 * FRAMES_PER_SECOND) * 4096)
    assert torch.isfinite(wave).all() and wave.std() > 1e-4


@pytest.mark.skipif(VOCAB is None, reason="no ACE-Step v1 lyric vocabulary")
def test_generate_with_checkpoint_and_lyrics(tiny, tmp_path, capsys):
    lyrics = tmp_path / "song.txt"
    lyrics.write_text("[verse]\nHello neon night\n我们一起唱\n\n[chorus]\nla la la\n", encoding="utf-8")
    out = tmp_path / "song.flac"
    code, err = run(["generate", "--checkpoint", tiny, "--tags", "synth-pop, female vocals", "--lyrics", lyrics,
                     "--seconds", "1", "--seed", "1", "--steps", "2", "--sampler", "heun",
                     "--guidance-type", "cfg_star", "--no-erg-diffusion", "--batch-size", "2", "--dtype", "fp32",
                     "--out", out], capsys)
    assert code == 0, err
    frames = int(1 * FRAMES_PER_SECOND)
    for k in (1, 2):
        wave, rate = read(tmp_path / f"song_{k}.flac")
        assert rate == 44100 and wave.shape == (2, frames * 4096) and wave.std() > 1e-4
    assert not out.exists()


@pytest.mark.skipif(VOCAB is None, reason="no ACE-Step v1 lyric vocabulary")
def test_audio2audio(tiny, tmp_path, capsys):
    src = tmp_path / "in.wav"
    t = torch.arange(int(1.2 * 22050)) / 22050
    sf.write(str(src), (0.3 * torch.sin(2 * math.pi * 330 * t)).numpy(), 22050)  # mono, 22.05 kHz
    out = tmp_path / "out.mp3"
    code, err = run(["audio2audio", "--checkpoint", tiny, "--input", src, "--denoise", "0.6", "--tags", "lo-fi",
                     "--lyrics-text", "[inst]", "--steps", "4", "--dtype", "fp32", "--quiet", "--out", out], capsys)
    assert code == 0 and err == "", err
    wave, rate = read(out)
    assert rate == 44100 and wave.shape[0] == 2
    assert abs(wave.shape[1] - int(1.2 * 44100)) < 2000  # mp3 adds a little padding
    assert torch.isfinite(wave).all() and wave.std() > 1e-4


def _nan_wav(path):
    data = torch.zeros(4410, 2)
    data[100, 0] = float("nan")
    sf.write(str(path), data.numpy(), 44100, subtype="FLOAT")


def _empty_wav(path):
    sf.write(str(path), torch.zeros(0, 2).numpy(), 44100)


def _foreign_checkpoint(path):
    from safetensors.torch import save_file

    save_file({"decoder.layers.0.self_attn_norm.weight": torch.zeros(4),
               "encoder.lyric_encoder.layers.0.input_layernorm.weight": torch.zeros(4)}, str(path))


BAD = [
    (["generate", "--seconds", "0"], r"--seconds: 0\.0 s is outside the allowed range \(0, 240\]"),
    (["generate", "--seconds", "-3"], r"--seconds.*\(0, 240\]"),
    (["generate", "--seconds", "241"], r"--seconds.*\(0, 240\]"),
    (["generate", "--tags", " ", "--lyrics-text", ""], r"tags, lyrics: both are empty"),
    (["generate", "--sampler", "dpmpp"], r"sampler: unknown value 'dpmpp'; allowed: euler, heun, pingpong"),
    (["generate", "--guidance-scale", "-1"], r"guidance_scale.*\[0, 200\]"),
    (["generate", "--steps", "0"], r"steps.*\[1, 1000\]"),
    (["audio2audio", "--input", "{nan}", "--denoise", "0.5"], r"--input.*NaN"),
    (["audio2audio", "--input", "{empty}", "--denoise", "0.5"], r"--input.*empty"),
    (["audio2audio", "--input", "{missing}", "--denoise", "0.5"], r"--input.*does not exist"),
    (["audio2audio", "--input", "{ok}", "--denoise", "0"], r"--denoise.*\(0, 1\]"),
    (["audio2audio", "--input", "{ok}", "--denoise", "1.5"], r"--denoise.*\(0, 1\]"),
    (["generate", "--checkpoint", "{foreign}"], r"foreign\.safetensors"),
    (["generate", "--checkpoint", "{missing}"], r"--checkpoint.*does not exist"),
    (["generate", "--out", "{tmp}/song.xyz"], r"--out: unsupported audio file extension '\.xyz'"),
    (["generate", "--out", "{tmp}/no/such/dir/song.wav"], r"--out: the folder .* does not exist"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[f"{i}-{b[0][0]}-{b[0][1]}" for i, b in enumerate(BAD)])
def test_bad_input_exits_2_and_writes_nothing(argv, message, tiny, tmp_path, capsys):
    import re

    files = {"nan": tmp_path / "nan.wav", "empty": tmp_path / "empty.wav", "ok": tmp_path / "ok.wav",
             "foreign": tmp_path / "foreign.safetensors", "missing": tmp_path / "missing.wav", "tmp": tmp_path}
    _nan_wav(files["nan"])
    _empty_wav(files["empty"])
    sf.write(str(files["ok"]), torch.zeros(4410).numpy(), 44100)
    _foreign_checkpoint(files["foreign"])
    argv = [a.format(**files) for a in argv]
    if "--checkpoint" not in argv:
        argv += ["--checkpoint", str(tiny)]
    if "--tags" not in argv:
        argv += ["--tags", "pop"]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out.wav")]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = run(argv, capsys)
    assert code == 2
    assert re.search(message, err), err
    assert "\nerror: " in "\n" + err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_no_checkpoint_points_to_demo(tmp_path, capsys):
    code, err = run(["generate", "--tags", "pop", "--out", tmp_path / "x.wav"], capsys)
    assert code == 2 and "--checkpoint" in err and "--demo" in err
    assert not (tmp_path / "x.wav").exists()
