"""Issue 12: what real users send. One test per defect, and a table of bad inputs across the CLI,
the nodes (through NODE_CLASS_MAPPINGS) and the loaders: each error names the input and nothing
is written. (The /prompt cases run against a real ComfyUI in tests/comfy_real/test_errors.py.)"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ace_core import cli
from ace_core.audio.io import load_audio, save_audio
from ace_core.errors import AceStepError, CheckpointError, InputError
from ace_core.latent_spec import SOURCE_LENGTH_KEY
from ace_core.progress import layer_progress
from ace_core.validation import MAX_LYRICS_CHARS, MAX_TAGS_CHARS, validate_audio, validate_text
from workflow_tools import REPO, models_under

pytestmark = pytest.mark.usefixtures("quiet")


@pytest.fixture(scope="module")
def v1_file(tmp_path_factory):
    from ace_core.v1.testing import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("models")
    return write_tiny_checkpoint(root / "checkpoints" / "ace_step_v1_3.5b.safetensors", layout="comfy", seed=0)


@pytest.fixture(scope="module")
def v1_model(v1_file):
    from ace_core.v1.loader import load_v1

    return load_v1(v1_file, dtype=torch.float32)


def _tone(path: Path, seconds: float = 1.5, rate: int = 48000) -> Path:
    t = torch.arange(int(round(seconds * rate))) / rate
    return save_audio(path, (0.3 * torch.sin(2 * math.pi * 220 * t))[None], rate)


def _broken_copy(src: Path, dst: Path, edit) -> Path:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(src))
    with safe_open(str(src), "pt") as f:
        meta = f.metadata()
    edit(tensors)
    save_file(tensors, str(dst), metadata=meta)
    return dst


DIT_KEY = "model.diffusion_model.genre_embedder.weight"


# ------------------------------------------------------------------------------------------------
# defect 1: stated limits, and interrupts inside the encoders


@pytest.mark.parametrize("family_tags", ["tags", "caption"])
def test_text_limits_are_stated(family_tags):
    with pytest.raises(InputError, match=rf"lyrics: {MAX_LYRICS_CHARS + 1} characters .* allowed {MAX_LYRICS_CHARS}"):
        validate_text("pop", "a" * (MAX_LYRICS_CHARS + 1), family_tags)
    with pytest.raises(InputError, match=rf"{family_tags}: {MAX_TAGS_CHARS + 1} characters"):
        validate_text("a" * (MAX_TAGS_CHARS + 1), "", family_tags)
    validate_text("pop", "a" * MAX_LYRICS_CHARS, family_tags)


def test_100k_lyrics_are_refused_at_once_by_both_families():
    from ace_core.v1.adapter import ADAPTER as V1
    from ace_core.v15.adapter import ADAPTER as V15

    for adapter, caption in ((V1, "tags"), (V15, "caption")):
        started = time.monotonic()
        with pytest.raises(InputError, match=r"lyrics: 100000 characters"):
            adapter.check_text("pop", "x" * 100_000)
        with pytest.raises(InputError, match=rf"{caption}: 100000 characters"):
            adapter.check_text("x" * 100_000, "")
        assert time.monotonic() - started < 1.0


def test_v1_lyric_tokens_are_capped(v1_model):
    from ace_core.v1.pipeline import MAX_LYRIC_TOKENS, encode_conditioning

    lyrics = ("我们一起唱到天亮\n" * 1000)[:MAX_LYRICS_CHARS]  # many tokens per character
    with pytest.raises(InputError, match=rf"lyrics: \d+ lyric tokens is more than the {MAX_LYRIC_TOKENS}"):
        encode_conditioning(v1_model, "pop", lyrics)


class Stop(Exception):
    pass


def _stop_after(n: int):
    calls = []

    def hook(done, total):
        calls.append((done, total))
        if len(calls) >= n:
            raise Stop

    return hook, calls


def test_v1_text_encoder_can_be_interrupted_between_layers(v1_model):
    hook, calls = _stop_after(1)
    with pytest.raises(Stop):
        v1_model_adapter().encode_text(v1_model, "pop, piano", "", progress=hook)
    layers = len(v1_model.text_encoder.encoder.block)
    assert calls == [(1, layers)]  # stopped after the first layer of the one (forked) pass
    hooks = [b._forward_hooks for b in v1_model.text_encoder.encoder.block]
    assert not any(hooks), "the layer hooks were left behind"


def v1_model_adapter():
    from ace_core.v1.adapter import ADAPTER

    return ADAPTER


def test_v15_text_encoder_can_be_interrupted_between_layers():
    from ace_core.v15.bundle import tiny_v15_bundle
    from ace_core.v15.pipeline import SongFields, encode_text

    bundle = tiny_v15_bundle(seed=0)
    hook, calls = _stop_after(2)
    with pytest.raises(Stop):
        encode_text(bundle.text_encoder, bundle.text_tokenizer, [SongFields(caption="pop")], progress=hook)
    assert [c[0] for c in calls] == [1, 2]
    full = []
    encode_text(bundle.text_encoder, bundle.text_tokenizer, [SongFields(caption="pop")],
                progress=lambda d, t: full.append((d, t)))
    assert full[-1][0] == full[-1][1] == len(full)


def test_layer_progress_without_a_hook_registers_nothing():
    layers = [torch.nn.Linear(2, 2) for _ in range(3)]
    with layer_progress(layers, None):
        assert not any(layer._forward_hooks for layer in layers)


def test_loader_reports_every_tensor_so_it_can_be_interrupted(v1_file):
    from ace_core.v1.loader import load_v1

    hook, calls = _stop_after(3)
    with pytest.raises(Stop):
        load_v1(v1_file, dtype=torch.float32, progress=hook)
    assert len(calls) == 3 and calls[0][1] > 50


# ------------------------------------------------------------------------------------------------
# defect 2, 8, 13: the CLI checks before any compute


def _run_cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_out_naming_a_folder_is_refused_before_loading(tmp_path, capsys, monkeypatch):
    loads = []
    monkeypatch.setattr(cli, "_load", lambda *a, **k: loads.append(1))
    (tmp_path / "song.wav").mkdir()
    for out in (tmp_path, tmp_path / "song.wav"):
        code, err = _run_cli(["generate", "--demo", "--seconds", "1", "--out", out], capsys)
        assert code == 2 and re.search(r"--out: .* is a folder", err), err
    assert not loads


def test_out_in_a_read_only_folder_is_refused_before_loading(tmp_path, capsys, monkeypatch):
    loads = []
    monkeypatch.setattr(cli, "_load", lambda *a, **k: loads.append(1))

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cli.tempfile, "mkstemp", denied)  # root ignores chmod: simulate the refusal
    code, err = _run_cli(["generate", "--demo", "--seconds", "1", "--out", tmp_path / "a.wav"], capsys)
    assert code == 2 and "--out: cannot write into the folder" in err and "Permission denied" in err
    assert not loads and not list(tmp_path.iterdir())


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into read-only folders")
def test_out_in_a_really_read_only_folder(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, err = _run_cli(["generate", "--demo", "--seconds", "1", "--out", ro / "a.wav"], capsys)
        assert code == 2 and "--out: cannot write" in err
    finally:
        ro.chmod(0o755)


def test_input_folder_is_named_a_folder(tmp_path, capsys):
    code, err = _run_cli(["audio2audio", "--demo", "--input", tmp_path, "--out", tmp_path / "o.wav"], capsys)
    assert code == 2 and "--input:" in err and "is a folder" in err
    with pytest.raises(InputError, match="is a folder"):
        load_audio(tmp_path)


def test_bad_seed_is_refused_before_loading(tmp_path, capsys, monkeypatch):
    loads = []
    monkeypatch.setattr(cli, "_load", lambda *a, **k: loads.append(1))
    code, err = _run_cli(["generate", "--demo", "--seed", "-1", "--out", tmp_path / "a.wav"], capsys)
    assert code == 2 and "--seed" in err and not loads


def test_long_input_is_refused_from_its_header(tmp_path, monkeypatch):
    import soundfile as sf

    path = tmp_path / "long.wav"
    sf.write(str(path), torch.zeros(48000 * 5, 1).numpy(), 48000)
    reads = []
    real_read = sf.read
    monkeypatch.setattr(sf, "read", lambda *a, **k: reads.append(1) or real_read(*a, **k))
    with pytest.raises(InputError, match=r"--input: 5\.0 s is longer than the allowed 4 s"):
        load_audio(path, "--input", max_seconds=4.0)
    assert not reads, "the samples were read before the length was refused"


def test_sigterm_during_demo_removes_the_temporary_checkpoint(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path), ACEFORGE_QUIET="1")
    proc = subprocess.Popen([sys.executable, "-m", "ace_core", "generate", "--demo", "--seconds", "60", "--quiet",
                             "--out", str(tmp_path / "song.wav")], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(tmp_path.glob("aceforge-*/*.safetensors")):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        assert list(tmp_path.glob("aceforge-*/*.safetensors")), "the demo checkpoint never appeared"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == cli.EXIT_INTERRUPTED, err
    assert not list(tmp_path.iterdir()), "left behind: " + ", ".join(p.name for p in tmp_path.iterdir())


# ------------------------------------------------------------------------------------------------
# defects 4, 5, 6, 7, 12


def test_one_sample_audio_is_refused_by_every_entry(v1_model, tmp_path, capsys):
    from ace_core.v1.adapter import ADAPTER

    one = {"waveform": torch.full((1, 1, 1), 0.1), "sample_rate": 48000}
    with pytest.raises(InputError, match=r"audio: .* shorter than one latent frame"):
        ADAPTER.encode_audio(v1_model, one)  # VAE Encode
    with pytest.raises(InputError, match=r"--input: .* shorter than one latent frame"):
        validate_audio(one["waveform"], 48000, ADAPTER.latent, "--input")  # audio2audio
    save_audio(tmp_path / "one.wav", one["waveform"][0], 48000)
    code, err = _run_cli(["audio2audio", "--demo", "--input", tmp_path / "one.wav", "--out", tmp_path / "o.wav"], capsys)
    assert code == 2 and "shorter than one latent frame" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.wav"]


@pytest.mark.parametrize("lyrics", ["\x00\x00\x00", "\x01\x02\x1f\x7f", "\u200b\u200d\ufeff", " \x00 \n\t"])
def test_control_character_lyrics_with_empty_tags_are_empty(lyrics):
    from ace_core.v15.adapter import ADAPTER as V15

    with pytest.raises(InputError, match="both are empty"):
        validate_text("", lyrics)
    with pytest.raises(InputError, match="caption, lyrics: both are empty"):
        V15.check_text("", lyrics)


def test_a_missing_dit_key_is_named(v1_file, tmp_path):
    from ace_core.v1.loader import load_v1

    bad = _broken_copy(v1_file, tmp_path / "bad.safetensors", lambda t: t.pop(DIT_KEY))
    with pytest.raises(CheckpointError, match=rf"missing 1 keys: {re.escape(DIT_KEY)}"):
        load_v1(bad)


def test_nan_weights_name_the_checkpoint(v1_file, tmp_path):
    from ace_core.v1.loader import load_v1

    def poison(tensors):
        tensors[DIT_KEY] = tensors[DIT_KEY].clone()
        tensors[DIT_KEY][0, 0] = float("nan")

    bad = _broken_copy(v1_file, tmp_path / "nan.safetensors", poison)
    with pytest.raises(CheckpointError, match=r"nan\.safetensors: the tensor for 'genre_embedder\.weight' holds NaN"):
        load_v1(bad)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_all_finite_sees_nan_and_inf(dtype):
    from ace_core.loading.streaming import all_finite

    t = torch.randn(4097).to(dtype)
    assert all_finite(t)
    for bad in (float("nan"), float("inf"), -float("inf")):
        u = t.clone()
        u[4000] = bad
        assert not all_finite(u)


def test_audio_to_audio_keeps_the_source_length(v1_model):
    from ace_core.v1.adapter import ADAPTER

    rate = 48000
    wave = 0.3 * torch.sin(torch.arange(72000) / rate * 2 * math.pi * 220).view(1, 1, -1)  # 1.5 s
    latent = ADAPTER.encode_audio(v1_model, {"waveform": wave, "sample_rate": rate})
    assert latent[SOURCE_LENGTH_KEY]["seconds"] == 1.5
    cond = ADAPTER.encode_text(v1_model, "pop", "", lyrics_vocab=None)
    out = ADAPTER.sample(v1_model, cond, latent=latent, seed=0, settings={"steps": 2}, denoise=0.5)
    audio = ADAPTER.decode_audio(v1_model, out)
    assert audio["waveform"].shape[-1] == round(1.5 * 44100)  # not 17 whole frames (69632 samples)
    plain = ADAPTER.decode_audio(v1_model, {k: v for k, v in out.items() if k != SOURCE_LENGTH_KEY})
    assert plain["waveform"].shape[-1] == out["samples"].shape[-1] * 4096
    torch.testing.assert_close(audio["waveform"], plain["waveform"][..., : round(1.5 * 44100)])


def test_a_stale_length_tag_is_ignored(v1_model):
    from ace_core.latent_spec import trim_to_source_length

    latent = {"samples": torch.zeros(1, 8, 16, 5), SOURCE_LENGTH_KEY: {"seconds": 0.2, "frames": 17}}
    wave = torch.zeros(1, 2, 5 * 4096)
    assert trim_to_source_length(wave, 44100, latent).shape[-1] == 5 * 4096


# ------------------------------------------------------------------------------------------------
# the table: bad inputs across the CLI, the nodes and the loaders


@pytest.fixture()
def files(tmp_path, v1_file):
    """Named inputs for the table: good and bad audio, checkpoints, lyric files."""
    import soundfile as sf

    d = tmp_path / "in"
    d.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    _tone(d / "ok.wav")
    sf.write(str(d / "long.wav"), torch.zeros(44100 * 241, 1).numpy(), 44100)
    save_audio(d / "one.wav", torch.full((1, 1), 0.1), 48000)
    (d / "text.wav").write_text("not audio")
    (d / "lyrics_bin.txt").write_bytes(b"\xff\xfe\x00bad")
    (d / "huge.txt").write_text("la " * 40000)
    (d / "nul.txt").write_text("\x00" * 50)
    (d / "notes.txt").write_text("hello")
    (d / "empty.safetensors").write_bytes(b"")
    (d / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}xxxxxxx")
    (d / "model.ckpt").write_bytes(b"PK\x03\x04 pickle")
    data = v1_file.read_bytes()
    (d / "truncated.safetensors").write_bytes(data[: len(data) // 3])
    _broken_copy(v1_file, d / "nan.safetensors", lambda t: t.__setitem__(DIT_KEY, torch.full_like(t[DIT_KEY], float("nan"))))
    _broken_copy(v1_file, d / "missing.safetensors", lambda t: t.pop(DIT_KEY))
    return {"in": d, "out": out, "ckpt": v1_file}


A2A = ["audio2audio", "--demo", "--denoise", "0.5"]
GEN = ["generate", "--demo", "--seconds", "1"]
CLI_CASES = [
    (GEN + ["--seconds", "0"], "--seconds"),
    (GEN + ["--seconds", "nan"], "--seconds"),
    (GEN + ["--seconds", "241"], "--seconds"),
    (GEN + ["--batch-size", "0"], "--batch-size"),
    (GEN + ["--batch-size", "65"], "--batch-size"),
    (GEN + ["--seed", "-1"], "--seed"),
    (GEN + ["--seed", str(2**64)], "--seed"),
    (GEN + ["--steps", "0"], "steps"),
    (GEN + ["--steps", "1001"], "steps"),
    (GEN + ["--guidance-scale", "-1"], "guidance_scale"),
    (GEN + ["--guidance-scale", "inf"], "guidance_scale"),
    (GEN + ["--shift", "0"], "shift"),
    (GEN + ["--sampler", "dpmpp"], "sampler"),
    (GEN + ["--guidance-type", "magic"], "guidance_type"),
    (GEN + ["--omega", "1000"], "omega"),
    (GEN + ["--guidance-interval", "1.5"], "guidance_interval"),
    (GEN + ["--lyrics-strength", "11"], "--lyrics-strength"),
    (GEN + ["--language", "xx"], "language"),
    (GEN + ["--bpm", "120"], "--bpm"),
    (GEN + ["--method", "sde"], "--method"),
    (["generate", "--checkpoint", "{ckpt}", "--tags", "", "--lyrics-text", ""], "lyrics"),
    (["generate", "--checkpoint", "{ckpt}", "--tags", "", "--lyrics", "{in}/nul.txt"], "lyrics"),
    (["generate", "--checkpoint", "{ckpt}", "--tags", "\x00\x01", "--lyrics-text", "\u200b"], "lyrics"),
    (GEN + ["--tags", "x" * (MAX_TAGS_CHARS + 1)], "--tags"),
    (GEN + ["--lyrics", "{in}/huge.txt"], "lyrics"),
    (GEN + ["--lyrics", "{in}/nope.txt"], "--lyrics"),
    (GEN + ["--lyrics", "{in}/lyrics_bin.txt"], "--lyrics"),
    (GEN + ["--lyrics-vocab", "{in}/nope.json"], "--lyrics-vocab"),
    (GEN + ["--device", "quantum"], "--device"),
    (GEN + ["--out", "{out}/song.xyz"], "--out"),
    (GEN + ["--out", "{out}/song"], "--out"),
    (GEN + ["--out", "{out}"], "--out"),
    (GEN + ["--out", "{out}/no/such/song.wav"], "--out"),
    (["generate", "--checkpoint", "{in}/nope.safetensors"], "--checkpoint"),
    (["generate", "--checkpoint", "{in}/empty.safetensors"], "empty.safetensors"),
    (["generate", "--checkpoint", "{in}/junk.safetensors"], "junk.safetensors"),
    (["generate", "--checkpoint", "{in}/model.ckpt"], "model.ckpt"),
    (["generate", "--checkpoint", "{in}/truncated.safetensors"], "truncated.safetensors"),
    (["generate", "--checkpoint", "{in}/nan.safetensors"], "nan.safetensors"),
    (["generate", "--checkpoint", "{in}/missing.safetensors"], "genre_embedder.weight"),
    (["generate", "--checkpoint", "{in}"], "{in}"),
    (A2A + ["--input", "{in}/nope.wav"], "--input"),
    (A2A + ["--input", "{in}"], "--input"),
    (A2A + ["--input", "{in}/text.wav"], "--input"),
    (A2A + ["--input", "{in}/one.wav"], "--input"),
    (A2A + ["--input", "{in}/long.wav"], "--input"),
    (A2A + ["--input", "{in}/ok.wav", "--denoise", "0"], "--denoise"),
    (A2A + ["--input", "{in}/ok.wav", "--denoise", "-0.5"], "--denoise"),
    (A2A + ["--input", "{in}/ok.wav", "--denoise", "1.01"], "--denoise"),
    (A2A + ["--input", "{in}/ok.wav", "--denoise", "nan"], "--denoise"),
]


def _fill(arg: str, files: dict) -> str:
    return arg.replace("{in}", str(files["in"])).replace("{out}", str(files["out"])).replace("{ckpt}", str(files["ckpt"]))


@pytest.mark.parametrize("argv,name", CLI_CASES, ids=[f"cli{k}" for k in range(len(CLI_CASES))])
def test_cli_bad_input(argv, name, files, capsys):
    argv = [_fill(a, files) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(files["out"] / "song.wav")]
    if "--tags" not in argv:
        argv += ["--tags", "pop"]
    argv.append("--quiet")
    before = sorted(files["in"].iterdir())
    code, err = _run_cli(argv, capsys)
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    assert _fill(name, files) in err, err
    assert not list(files["out"].iterdir()), "something was written"
    assert sorted(files["in"].iterdir()) == before


@pytest.fixture()
def node_models(pack, v1_file):
    with models_under(pack, v1_file.parents[1]):
        yield pack


def _node(pack, node_id: str, *args, **kwargs):
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    out = getattr(cls(), cls.FUNCTION)(*args, **kwargs)
    return out["result"] if isinstance(out, dict) else out


def _model(pack):
    return _node(pack, "AceForge_CheckpointLoader", "ace_step_v1_3.5b.safetensors", "fp32")[0]


NODE_CASES = [
    (lambda p: _node(p, "AceForge_CheckpointLoader", "nope.safetensors", "fp32"), "ckpt_name"),
    (lambda p: _node(p, "AceForge_CheckpointLoader", "", "fp32"), "ckpt_name"),
    (lambda p: _node(p, "AceForge_CheckpointLoader", "../../etc/passwd", "fp32"), "ckpt_name"),
    (lambda p: _node(p, "AceForge_CheckpointLoader", "ace_step_v1_3.5b.safetensors", "int8"), "dtype"),
    (lambda p: _node(p, "AceForge_EmptyAceStepLatentAudio", 0.0, 1), "seconds"),
    (lambda p: _node(p, "AceForge_EmptyAceStepLatentAudio", 1e9, 1), "seconds"),
    (lambda p: _node(p, "AceForge_EmptyAceStepLatentAudio", 1.0, 0), "batch_size"),
    (lambda p: _node(p, "AceForge_LyricRomanizer", "hello", "xx"), "language"),
    (lambda p: _node(p, "AceForge_TextEncodeAceStepAudio", _model(p), "", ""), "lyrics"),
    (lambda p: _node(p, "AceForge_TextEncodeAceStepAudio", _model(p), "", "\x00\x00"), "lyrics"),
    (lambda p: _node(p, "AceForge_TextEncodeAceStepAudio", _model(p), "pop", "x" * 100_000), "lyrics"),
    (lambda p: _node(p, "AceForge_TextEncodeAceStepAudio", _model(p), "x" * 100_000, ""), "tags"),
    (lambda p: _node(p, "AceForge_TextEncodeAceStepAudio", _model(p), "pop", "", 11.0), "lyrics_strength"),
    (lambda p: _node(p, "AceForge_VAEEncode", _model(p), {"waveform": torch.zeros(1, 1, 1), "sample_rate": 48000}),
     "audio"),
    (lambda p: _node(p, "AceForge_VAEEncode", _model(p), {"waveform": torch.zeros(1, 1, 0), "sample_rate": 48000}),
     "audio"),
    (lambda p: _node(p, "AceForge_VAEEncode", _model(p),
                     {"waveform": torch.full((1, 1, 48000), float("nan")), "sample_rate": 48000}), "audio"),
    (lambda p: _node(p, "AceForge_VAEEncode", _model(p), {"waveform": torch.zeros(1, 1, 4800), "sample_rate": 0}),
     "sample_rate"),
    (lambda p: _node(p, "AceForge_VAEDecode", _model(p), {"samples": torch.zeros(1, 64, 10)}), "latent"),
]


@pytest.mark.parametrize("call,name", NODE_CASES, ids=[f"node{k}" for k in range(len(NODE_CASES))])
def test_node_bad_input(call, name, node_models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Exception) as info:
        call(node_models)
    # the pack is imported by path as ComfyUI does, so its error classes are the pack's own copies
    assert type(info.value).__name__ in ("InputError", "CheckpointError"), repr(info.value)
    assert name in str(info.value), str(info.value)
    assert not list(tmp_path.iterdir()), "something was written"


LOADER_CASES = ["nope.safetensors", "empty.safetensors", "junk.safetensors", "model.ckpt", "truncated.safetensors",
                "nan.safetensors", "missing.safetensors"]


@pytest.mark.parametrize("name", LOADER_CASES)
def test_loader_bad_checkpoint_names_the_file(name, files):
    from ace_core.family import adapter_for_path
    from ace_core.v1.loader import load_v1

    path = files["in"] / name
    before = sorted(files["in"].iterdir())
    for load in (lambda: adapter_for_path(path).load(path), lambda: load_v1(path)):
        with pytest.raises(AceStepError) as info:
            load()
        message = str(info.value)
        assert name in message or (name == "missing.safetensors" and "genre_embedder" in message), message
    assert sorted(files["in"].iterdir()) == before


def test_the_table_has_at_least_sixty_cases():
    assert len(CLI_CASES) + len(NODE_CASES) + len(LOADER_CASES) >= 60  # plus tests/comfy_real's /prompt cases


def test_v15_audio_to_audio_keeps_the_source_length():
    from ace_core.latent_spec import keep_source_length
    from ace_core.v15.adapter import ADAPTER
    from ace_core.v15.bundle import tiny_v15_bundle

    bundle = tiny_v15_bundle(seed=0)
    rate, n = 44100, 88_213  # 2.0003 s: not a whole number of 1.5 latent frames (1920 samples at 48 kHz)
    wave = 0.3 * torch.sin(torch.arange(n) / rate * 2 * math.pi * 220).view(1, 1, -1)
    latent = ADAPTER.encode_audio(bundle, {"waveform": wave, "sample_rate": rate})
    frames = latent["samples"].shape[-1]
    assert latent[SOURCE_LENGTH_KEY] == {"seconds": n / rate, "frames": frames}
    sampled = keep_source_length(latent, {"samples": latent["samples"].clone(), "aceforge_family": "ace_v15"})
    audio = ADAPTER.decode_audio(bundle, sampled)
    assert audio["sample_rate"] == 48000
    # never longer than the source (the 1.5 encoder drops a partial last frame rather than pad it)
    assert 0 <= round(n * 48000 / rate) - audio["waveform"].shape[-1] < 1920
    padded = dict(sampled, samples=torch.cat([sampled["samples"], sampled["samples"][..., -1:]], dim=-1))
    padded[SOURCE_LENGTH_KEY] = {"seconds": frames * 1920 / 48000, "frames": frames + 1}
    assert ADAPTER.decode_audio(bundle, padded)["waveform"].shape[-1] == frames * 1920  # a padded decode is cut back
