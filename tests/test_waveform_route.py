"""The waveform routes (nodes/waveform_route.py), called directly with a fake request: only files
inside input / output / temp are served, bad names and non-audio files get a JSON error naming the
problem, and the latent grid comes from the checkpoint's family."""

from __future__ import annotations

import importlib
import os
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from workflow_tools import load_pack


@pytest.fixture(scope="module")
def route():
    return importlib.import_module(load_pack().__name__ + ".nodes.waveform_route")


@pytest.fixture
def roots(tmp_path, route):
    folders = {kind: tmp_path / "ComfyUI" / kind for kind in ("input", "output", "temp")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    sf.write(str(folders["input"] / "song.wav"), np.linspace(-0.5, 0.5, 16_000, dtype=np.float32), 8000)
    (folders["output"] / "audio").mkdir()
    sf.write(str(folders["output"] / "audio" / "take 1.flac"), np.zeros((8000, 2), np.float32), 8000)
    (tmp_path / "secret.wav").write_bytes((folders["input"] / "song.wav").read_bytes())
    route.peaks.clear_cache()
    return folders


# the pack's own copy of ace_core (imported as ComfyUI does): patch route.peaks, not ace_core.audio.peaks
def get(route, roots, **query):
    return route.waveform(SimpleNamespace(query=query), roots)


def test_peaks_of_an_input_file(route, roots):
    status, body = get(route, roots, filename="song.wav", type="input", width="50")
    assert status == 200, body
    assert body["width"] == 50 and body["duration"] == pytest.approx(2.0) and body["sample_rate"] == 8000
    assert body["min"][0] == pytest.approx(-0.5, abs=1e-3) and body["max"][-1] == pytest.approx(0.5, abs=1e-3)
    assert (body["filename"], body["type"], body["subfolder"]) == ("song.wav", "input", "")


def test_subfolder_window_and_defaults(route, roots):
    status, body = get(route, roots, filename="take 1.flac", type="output", subfolder="audio", start="0.25", end="0.75",
                       width="20")
    assert status == 200, body
    assert body["channels"] == 2 and body["start"] == pytest.approx(0.25) and body["end"] == pytest.approx(0.75)
    status, body = get(route, roots, filename="song.wav")  # type defaults to input, width to 1024 (capped)
    assert status == 200 and body["type"] == "input" and body["width"] == route.DEFAULT_WIDTH


@pytest.mark.parametrize("query, fragment", [
    ({"filename": "../secret.wav"}, "not a file name"),
    ({"filename": "secret.wav", "subfolder": ".."}, "leaves the input folder"),
    ({"filename": "secret.wav", "subfolder": "a/../../"}, "leaves the input folder"),
    ({"filename": "song.wav", "subfolder": "/etc"}, "leaves the input folder"),
    ({"filename": "/etc/passwd"}, "not a file name"),
    ({"filename": "..\\secret.wav"}, "not a file name"),
    ({"filename": ""}, "not a file name"),
    ({"filename": "song.wav\x00.txt"}, "not a file name"),
    ({"filename": "song.wav", "type": "models"}, "type: 'models'"),
    ({"filename": "song.wav", "width": "wide"}, "width: 'wide' is not a number"),
    ({"filename": "song.wav", "width": "0"}, "width"),
    ({"filename": "song.wav", "start": "x"}, "start"),
])
def test_bad_requests_are_400_with_the_reason(route, roots, query, fragment, monkeypatch):
    monkeypatch.setattr(route.peaks, "_scan", lambda *a: pytest.fail("a file was read"))
    status, body = get(route, roots, **query)
    assert status == 400 and fragment in body["error"], body


def test_symlinks_leading_out_are_refused(route, roots, tmp_path):
    os.symlink(tmp_path / "secret.wav", roots["input"] / "link.wav")
    os.symlink(tmp_path, roots["input"] / "outside")
    for query in ({"filename": "link.wav"}, {"filename": "secret.wav", "subfolder": "outside"}):
        status, body = get(route, roots, **query)
        assert status == 400 and "leads outside the input folder" in body["error"], body
    os.symlink(roots["input"] / "song.wav", roots["input"] / "inside.wav")  # a link within the folder is fine
    assert get(route, roots, filename="inside.wav")[0] == 200


def test_missing_file_is_404(route, roots):
    status, body = get(route, roots, filename="nope.wav", type="temp")
    assert status == 404 and "no file 'nope.wav' in the temp folder" in body["error"]
    # the editor asks quietly (a workflow's example file before the upload): 200, saying it is missing
    status, body = get(route, roots, filename="nope.wav", missing_ok="1")
    assert status == 200 and body["missing"] is True and "no file 'nope.wav' in the input folder" in body["error"]
    assert get(route, roots, filename="../nope.wav", missing_ok="1")[0] == 400  # a bad name is still refused


def test_non_audio_file_is_400_naming_it(route, roots):
    (roots["input"] / "cover.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    status, body = get(route, roots, filename="cover.png")
    assert status == 400 and "'cover.png' is not an audio file" in body["error"], body


@pytest.mark.parametrize("name, header", [
    ("voice memo.m4a", b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A isommp42"),  # an MP4 container
    ("take.aac", b"\xff\xf1\x50\x80\x02\x1f\xfc"),  # an ADTS frame header
])
def test_unsupported_container_is_400_saying_what_to_do(route, roots, name, header):
    (roots["input"] / name).write_bytes(header + bytes(4000))
    status, body = get(route, roots, filename=name)
    assert status == 400, body
    assert f"{name!r} is not an audio file" in body["error"] and "convert it to wav or flac" in body["error"]
    assert str(roots["input"]) not in body["error"]  # the server's folders are not shown


def test_huge_file_is_refused_from_its_header(route, roots, monkeypatch):
    monkeypatch.setattr(route.peaks, "MAX_SECONDS", 1.0)
    monkeypatch.setattr(route.peaks, "_scan", lambda *a: pytest.fail("samples were read"))
    status, body = get(route, roots, filename="song.wav")
    assert status == 400 and "minutes long" in body["error"]


def test_latent_grid(route, monkeypatch):
    status, body = route.latent_grid(SimpleNamespace(query={}))
    assert status == 200 and not body["known"]
    assert set(body["grids"]) == {"ace_v1", "ace_v15"}
    assert body["grids"]["ace_v1"]["seconds_per_frame"] == pytest.approx(4096 / 44100)
    assert body["grids"]["ace_v15"]["seconds_per_frame"] == pytest.approx(1920 / 48000)
    assert body["seconds_per_frame"] == pytest.approx(0.04)  # unknown model: the finer grid
    status, body = route.latent_grid(SimpleNamespace(query={"ckpt_name": "missing.safetensors"}))
    assert status == 200 and not body["known"] and "missing.safetensors" in body["reason"]
    monkeypatch.setattr(route.comfy_compat, "resolve_checkpoint", lambda name: name)
    monkeypatch.setattr(route, "family_of_path", lambda path: "ace_v1")
    status, body = route.latent_grid(SimpleNamespace(query={"ckpt_name": "v1.safetensors"}))
    assert body["known"] and body["family"] == "ace_v1" and body["samples_per_frame"] == 4096
    # the split loader names its diffusion model: looked up in the diffusion model folders
    looked = []
    monkeypatch.setattr(route.comfy_compat, "resolve_in", lambda name, kinds, what: looked.append((name, what)) or name)
    monkeypatch.setattr(route, "family_of_path", lambda path: "ace_v15")
    status, body = route.latent_grid(SimpleNamespace(query={"dit_name": "acestep_v1.5_turbo.safetensors"}))
    assert looked == [("acestep_v1.5_turbo.safetensors", "dit_name")]
    assert body["known"] and body["family"] == "ace_v15" and body["seconds_per_frame"] == pytest.approx(0.04)


def test_register_is_a_no_op_outside_comfyui(route):
    assert route.register() is False
    assert set(route.ROUTES) == {"/aceforge/waveform", "/aceforge/latent_grid"}
