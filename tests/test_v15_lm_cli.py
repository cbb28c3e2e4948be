"""CLI: ``generate --lm`` (the LM plans and writes codes, the DiT renders them) and ``write``."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import save_file

from ace_core.cli import main
from ace_core.v15.bundle import save_v15_all_in_one, tiny_v15_bundle
from ace_core.v15.lm import tiny_five_hz_lm


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm_cli")
    lm = tiny_five_hz_lm()
    aio = save_v15_all_in_one(tiny_v15_bundle(), root / "ace_step_1.5_turbo_aio.safetensors", lm=lm.model)
    split = root / "qwen_1.7b_ace15.safetensors"
    save_file({k: v.contiguous() for k, v in lm.state_dict().items()}, str(split))
    return aio, split


def test_generate_with_lm(files, tmp_path, capsys):
    aio, _ = files
    out = tmp_path / "song.wav"
    code = main(["generate", "--checkpoint", str(aio), "--lm", "checkpoint", "--seconds", "10", "--steps", "1",
                 "--dtype", "fp32", "--device", "cpu", "--bpm", "100", "--no-think-caption", "--tags", "rock",
                 "--out", str(out), "--lm-temperature", "1.0"])
    assert code == 0 and out.is_file() and out.stat().st_size > 1000
    assert "'bpm': 100" in capsys.readouterr().err  # the plan kept the user's bpm


def test_generate_lm_errors(files, tmp_path, capsys):
    aio, _ = files
    code = main(["generate", "--checkpoint", str(aio), "--lm", str(tmp_path / "missing"), "--seconds", "10",
                 "--out", str(tmp_path / "x.wav"), "--quiet", "--tags", "rock", "--dtype", "fp32"])
    assert code != 0 and "missing" in capsys.readouterr().err


def test_write_format(files, tmp_path):
    _, split = files
    out = tmp_path / "song.json"
    code = main(["write", "--lm", str(split), "--tags", "rock", "--lyrics-text", "[verse]\\nhey", "--language", "en",
                 "--out", str(out), "--quiet", "--max-caption-tokens", "6", "--max-lyrics-tokens", "6"])
    data = json.loads(out.read_text(encoding="utf-8"))
    assert code == 0 and data["language"] == "en" and 30 <= data["bpm"] <= 300 and data["caption"] and data["lyrics"]
