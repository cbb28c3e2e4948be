"""Bad inputs and range checks through /prompt: HTTP 400 with node_errors naming the input, or an
execution error naming it; nothing written, the server alive after each, and /interrupt during
text encoding, sampling and decoding stops the run within a bounded time."""

from __future__ import annotations

import copy
import threading
import time

import pytest
import torch

from ace_core.comfy_client import PromptRejected
from checkpoints import V1
from stage import REPO, load_api, prepare

FAST_FAIL = 60.0  # seconds: a refused input must not keep the queue busy


def _workflow(server, name: str) -> dict:
    return prepare(server, copy.deepcopy(load_api(REPO / "workflows" / "api" / f"{name}.json")), V1, "comfy")


def _node(prompt: dict, class_type: str) -> dict:
    return next(v for v in prompt.values() if v["class_type"] == class_type)["inputs"]


def _bad_checkpoint(server, kind: str) -> str:
    """A tiny v1 checkpoint made bad in one way, in models/checkpoints; its name."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    good = server.models / "checkpoints" / server.layout(V1, "comfy")["ckpt_name"]
    name = f"aceforge_bad_{kind}.safetensors"
    target = server.models / "checkpoints" / name
    if not target.exists():
        if kind == "truncated":
            data = good.read_bytes()
            target.write_bytes(data[: len(data) // 2])
        else:
            tensors = load_file(str(good))
            with safe_open(str(good), "pt") as f:
                meta = f.metadata()
            key = "model.diffusion_model.genre_embedder.weight"
            if kind == "nan":
                tensors[key] = tensors[key].clone()
                tensors[key][0, 0] = float("nan")
            else:  # one DiT key missing
                del tensors[key]
            save_file(tensors, str(target), metadata=meta)
    return name


def _one_sample_wav(server) -> str:
    from ace_core.audio.io import save_audio

    path = server.input / "aceforge_one_sample.wav"
    if not path.exists():
        save_audio(path, torch.full((1, 1), 0.1), 48000)
    return path.name


# (workflow, node class, {input: value} or a callable(server) -> {input: value}, the name the error must say)
CASES = [
    ("audio_to_audio", "AceForge_KSampler", {"steps": -1}, "steps"),
    ("audio_to_audio", "AceForge_KSampler", {"steps": "many"}, "steps"),
    ("audio_to_audio", "AceForge_KSampler", {"seed": -1}, "seed"),
    ("audio_to_audio", "AceForge_KSampler", {"denoise": 1.5}, "denoise"),
    ("audio_to_audio", "AceForge_KSampler", {"guidance_scale": -1.0}, "guidance_scale"),
    ("audio_to_audio", "AceForge_KSampler", {"sampler": "dpmpp"}, "sampler"),
    ("audio_to_audio", "AceForge_KSampler", {"guidance_type": "magic"}, "guidance_type"),
    ("audio_to_audio", "AceForge_KSampler", {"guidance_interval": 2.0}, "guidance_interval"),
    ("audio_to_audio", "AceForge_CheckpointLoader", {"ckpt_name": "nope.safetensors"}, "ckpt_name"),
    ("audio_to_audio", "AceForge_CheckpointLoader", {"dtype": "int8"}, "dtype"),
    ("audio_to_audio", "AceForge_TextEncodeAceStepAudio", {"language": "xx"}, "language"),
    ("audio_to_audio", "AceForge_TextEncodeAceStepAudio", {"lyrics_strength": 11.0}, "lyrics_strength"),
    ("audio_to_audio", "LoadAudio", {"audio": "missing.wav"}, "audio"),
    ("text_to_audio", "AceForge_EmptyAceStepLatentAudio", {"seconds": 0.0}, "seconds"),
    ("text_to_audio", "AceForge_EmptyAceStepLatentAudio", {"seconds": 100000.0}, "seconds"),
    ("text_to_audio", "AceForge_EmptyAceStepLatentAudio", {"batch_size": 0}, "batch_size"),
    # found while running (execution errors naming the input)
    ("audio_to_audio", "AceForge_TextEncodeAceStepAudio", {"lyrics": "la " * 33334}, "lyrics"),  # defect 1
    ("audio_to_audio", "AceForge_TextEncodeAceStepAudio", {"tags": "x" * 5000}, "tags"),
    ("audio_to_audio", "AceForge_TextEncodeAceStepAudio", {"tags": "", "lyrics": "\x00\x01\x02\u200b"}, "lyrics"),
    ("audio_to_audio", "LoadAudio", lambda s: {"audio": _one_sample_wav(s)}, "audio"),  # defect 4
    ("inpaint", "AceForge_RepaintMask", {"start_time": 1.0, "end_time": 0.5}, "time"),  # defect 11
    ("inpaint", "AceForge_RepaintMask", {"start_time": 100.0, "end_time": 120.0}, "time"),
    ("outpaint", "AceForge_Outpaint", {"extend_after_duration": 500.0}, "extend_after_duration"),
    ("audio_to_audio", "AceForge_CheckpointLoader", lambda s: {"ckpt_name": _bad_checkpoint(s, "nan")},
     "aceforge_bad_nan.safetensors"),  # defect 7
    ("audio_to_audio", "AceForge_CheckpointLoader", lambda s: {"ckpt_name": _bad_checkpoint(s, "missing")},
     "genre_embedder.weight"),  # defect 6
    ("audio_to_audio", "AceForge_CheckpointLoader", lambda s: {"ckpt_name": _bad_checkpoint(s, "truncated")},
     "aceforge_bad_truncated.safetensors"),
]


def _error_text(server, prompt: dict) -> tuple[str, str]:
    """('400', node_errors as text) or ('run', the execution error), after posting ``prompt``."""
    try:
        entry = server.run(prompt, timeout=FAST_FAIL)
    except PromptRejected as exc:
        return "400", " | ".join(exc.lines(prompt))
    assert entry["status"]["status_str"] != "success", "the bad input ran to the end"
    errors = [d for kind, d in entry["status"]["messages"] if kind == "execution_error"]
    assert errors, entry["status"]
    return "run", f"{errors[0].get('exception_type')}: {errors[0].get('exception_message')}"


@pytest.mark.parametrize("workflow,class_type,change,name", CASES,
                         ids=[f"{c[1].replace('AceForge_', '')}-{k}" for k, c in enumerate(CASES)])
def test_bad_input_is_named(server, workflow, class_type, change, name):
    prompt = _workflow(server, workflow)
    _node(prompt, class_type).update(change(server) if callable(change) else change)
    before = server.files()
    started = time.monotonic()
    where, text = _error_text(server, prompt)
    assert time.monotonic() - started < FAST_FAIL
    assert name in text, f"{where}: {text}"
    assert "Traceback" not in text
    if where == "run":
        assert "Error" in text.split(":")[0]
    assert server.files() == before, "a failed run wrote files"
    assert server.alive()


# ------------------------------------------------------------------------------------------------
# /interrupt

INTERRUPT_BOUND = 10.0  # seconds from /interrupt to the end of the run (tiny models; 2 CPU cores)


def _interrupt_when(server, prompt: dict, node_class: str, on: str) -> tuple[dict, float]:
    """Run ``prompt``; on the first ``on`` event ("executing" or "progress") of ``node_class`` call
    /interrupt. Returns (history entry, seconds from /interrupt to the end)."""
    target = next(k for k, v in prompt.items() if v["class_type"] == node_class)
    sent = {}

    def on_event(event):
        data = event.get("data") or {}
        if "t" not in sent and event.get("type") == on and str(data.get("node")) == target:
            sent["t"] = time.monotonic()
            threading.Thread(target=server.client.interrupt, daemon=True).start()

    entry = server.run(prompt, timeout=300, on_event=on_event)
    assert "t" in sent, f"no {on} event of {node_class} was seen"
    return entry, time.monotonic() - sent["t"]


@pytest.mark.parametrize("node_class,on,changes", [
    ("AceForge_TextEncodeAceStepAudio", "executing", {}),
    ("AceForge_KSampler", "progress", {"AceForge_KSampler": {"steps": 1000},
                                       "AceForge_EmptyAceStepLatentAudio": {"seconds": 240.0}}),
    ("AceForge_VAEDecode", "progress", {"AceForge_KSampler": {"steps": 1},
                                        "AceForge_EmptyAceStepLatentAudio": {"seconds": 240.0}}),
], ids=["text-encoding", "sampling", "decoding"])
def test_interrupt_stops_the_run(server, node_class, on, changes):
    prompt = _workflow(server, "text_to_audio")
    for cls, values in changes.items():
        _node(prompt, cls).update(values)
    unique = time.monotonic_ns() % 1_000_000  # nothing cached from an earlier run: every node runs
    _node(prompt, "AceForge_KSampler")["seed"] = unique
    _node(prompt, "AceForge_TextEncodeAceStepAudio")["tags"] += f", take {unique}"
    before = server.files()
    entry, took = _interrupt_when(server, prompt, node_class, on)
    kinds = [kind for kind, _ in entry["status"]["messages"]]
    assert "execution_interrupted" in kinds, kinds
    print(f"{node_class}: ended {took:.2f} s after /interrupt")
    assert took < INTERRUPT_BOUND, f"the run ended {took:.1f} s after /interrupt"
    assert server.files() == before, "an interrupted run wrote files"
    assert server.alive()
