"""The family registry and adapter protocol, the latent spec, and the family-neutral step loop."""

from __future__ import annotations

import pytest
import torch

from ace_core import family
from ace_core.errors import CheckpointError, InputError
from ace_core.loading.recognise import ACE_V1, ACE_V15
from ace_core.loading.safetensors_io import write_safetensors
from ace_core.sampling.loop import StepHooks, run_steps
from ace_core.v1.latent import LATENT


def test_v1_adapter_is_registered_and_follows_the_protocol():
    adapter = family.adapter_for(ACE_V1)
    assert isinstance(adapter, family.FamilyAdapter)
    assert adapter.family == ACE_V1 and adapter.latent is LATENT
    assert set(adapter.capabilities) <= set(family.TASKS) and "repaint" in adapter.capabilities
    family.require(adapter, "flowedit")
    with pytest.raises(InputError, match="does not support 'lyric_edit'"):
        family.require(adapter, "lyric_edit")
    with pytest.raises(InputError, match="no AceForge support for the model family 'sdxl'"):
        family.adapter_for("sdxl")
    lat = adapter.empty_latent(2.0, 3)
    assert lat["aceforge_family"] == ACE_V1 and lat["samples"].shape == LATENT.shape(3, LATENT.frames(2.0))
    assert family.adapter_for_latent(lat) is adapter
    with pytest.raises(InputError, match=r"seconds.*240"):
        adapter.empty_latent(241.0)


def test_latent_spec_is_the_v1_time_grid():
    assert LATENT.max_frames == 2583 == int(240 * 44100 / 512 / 8)
    for seconds in (0.37, 1.5325170068027212, 59.999, -0.51):
        assert LATENT.frames(seconds) == int(seconds * 44100 / 512 / 8)
    assert LATENT.seconds(LATENT.frames_per_second) == pytest.approx(1.0)
    assert LATENT.layout == "(batch, 8, 16, frames)" and LATENT.matches(torch.zeros(2, 8, 16, 5))
    assert not LATENT.matches(torch.zeros(2, 64, 5))


def test_family_of_path(tmp_path):
    from ace_core.v1.testing import write_tiny_checkpoint

    official = write_tiny_checkpoint(tmp_path / "ACE-Step-v1-tiny", layout="official", seed=0)
    assert family.family_of_path(official) == ACE_V1
    assert family.family_of_path(official / "umt5-base") == ACE_V1
    assert family.adapter_for_path(official).family == ACE_V1
    dit15 = write_safetensors(tmp_path / "acestep_v1.5_turbo.safetensors",
                              {k: (torch.float32, (2,)) for k in ("null_condition_emb",
                                                                  "decoder.layers.0.cross_attn_norm.weight")},
                              lambda k: torch.zeros(2))
    if ACE_V15 in family.ADAPTERS:
        assert family.family_of_path(dit15) == ACE_V15
    else:
        with pytest.raises(CheckpointError, match=r"acestep_v1\.5_turbo\.safetensors.*ACE-Step 1\.5 DiT"):
            family.family_of_path(dit15)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="empty: no model AceForge knows"):
        family.family_of_path(empty)
    with pytest.raises(CheckpointError, match="no such file"):
        family.family_of_path(tmp_path / "missing.safetensors")


def test_run_steps_skips_calls_hooks_and_reports():
    timesteps = torch.tensor([4.0, 3.0, 2.0, 1.0])
    calls, reports = [], []

    def velocity(x, t, i):
        calls.append(("v", i))
        return torch.ones_like(x)

    def step(v, x, i):
        return x + v

    hooks = StepHooks(begin=lambda x, i: (calls.append(("begin", i)), x * 10)[1],
                      after_step=lambda x, i: (calls.append(("after", i)), x)[1])
    out = run_steps(velocity, timesteps, torch.zeros(1), step, start=2, hooks=hooks,
                    progress=lambda d, t: reports.append((d, t)))
    assert calls == [("begin", 2), ("v", 2), ("after", 2), ("v", 3), ("after", 3)]
    assert reports == [(1, 2), (2, 2)] and out.item() == 2.0
    assert run_steps(velocity, timesteps, torch.full((1,), 7.0), step, start=4).item() == 7.0
