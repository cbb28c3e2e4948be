"""ACE-Step 1.5 end to end on a tiny random model: prompts → text encoder → sampler → VAE."""

from __future__ import annotations

import pytest
import torch

from ace_core.errors import InputError
from ace_core.v15 import pipeline
from ace_core.v15.adapter import ADAPTER, latent_dict
from ace_core.v15.bundle import tiny_v15_bundle
from ace_core.v15.pipeline import SamplerSettings15, SongFields, encode_text, generate


@pytest.fixture(scope="module")
def bundle():
    return tiny_v15_bundle(seed=0)


@pytest.fixture(scope="module")
def text(bundle):
    fields = SongFields(caption="pop, piano", lyrics="[Verse]\nhello world", bpm=120, keyscale="C major",
                        timesignature="4", language="en", duration=10)
    return encode_text(bundle.text_encoder, bundle.text_tokenizer, [fields])


def test_text_encoding_shapes(bundle, text):
    hidden = bundle.text_encoder.config.hidden_size
    assert text.text_hidden.shape[0] == 1 and text.text_hidden.shape[-1] == hidden
    assert text.lyric_hidden.shape[-1] == hidden
    assert text.text_mask.dtype == torch.bool and bool(text.text_mask.all())
    # the caption prompt carries the metadata; the text2music instruction is the plain variant
    assert "- bpm: 120" in text.prompts[0].caption_prompt
    assert torch.equal(text.plain_text_hidden, text.text_hidden)  # text2music: same prompt


def test_generate_is_seeded_and_per_item(bundle, text):
    a = generate(bundle.model, text, kind="turbo", seconds=10, batch_size=2, seed=5)
    b = generate(bundle.model, text, kind="turbo", seconds=10, batch_size=2, seed=5)
    c = generate(bundle.model, text, kind="turbo", seconds=10, batch_size=1, seed=6)
    assert a.shape == (2, 64, 250) and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.equal(a[0], a[1])
    torch.testing.assert_close(a[1:], c)  # item 1 of seed 5 == item 0 of seed 6


def test_base_uses_guidance_and_more_steps(bundle, text):
    calls = []
    generate(bundle.model, text, kind="base", seconds=10, seed=1, settings=SamplerSettings15(steps=3),
             progress=lambda d, n: calls.append((d, n)))
    assert calls[-1] == (3, 3)
    guided = generate(bundle.model, text, kind="base", seconds=10, seed=1, settings=SamplerSettings15(steps=3))
    plain = generate(bundle.model, text, kind="base", seconds=10, seed=1,
                     settings=SamplerSettings15(steps=3, guidance_scale=1.0))
    assert not torch.allclose(guided, plain)


def test_resolved_defaults_per_variant():
    turbo = SamplerSettings15().resolved("turbo")
    assert (turbo.steps, turbo.shift, turbo.guidance_scale, turbo.dcw) == (8, 3.0, 1.0, True)
    base = SamplerSettings15().resolved("base")
    assert (base.steps, base.guidance_scale, base.dcw) == (32, 7.0, False)
    assert SamplerSettings15().resolved("sft").steps == 50
    assert SamplerSettings15(guidance_scale=5).notes("turbo")


@pytest.mark.parametrize("kwargs,needle", [
    (dict(seconds=5), "seconds"), (dict(seconds=601), "seconds"), (dict(batch_size=9), "batch_size"),
    (dict(settings=SamplerSettings15(steps=21)), "steps"), (dict(denoise=0.5), "denoise"),
])
def test_bad_generation_inputs_name_the_input(bundle, text, kwargs, needle):
    args = dict(kind="turbo", seconds=10)
    args.update(kwargs)
    with pytest.raises(InputError, match=needle):
        generate(bundle.model, text, **args)


def test_empty_prompt_is_refused(bundle):
    with pytest.raises(InputError, match="caption, lyrics: both are empty"):
        encode_text(bundle.text_encoder, bundle.text_tokenizer, [SongFields(caption=" ", lyrics="")])


def test_adapter_round_trip(bundle):
    cond = ADAPTER.encode_text(bundle, "ambient, pads", "[Instrumental]", bpm=90, language="unknown")
    latent = ADAPTER.empty_latent(10, batch=1)
    assert latent["samples"].shape == (1, 64, 250) and latent["aceforge_family"] == "ace_v15"
    out = ADAPTER.sample(bundle, cond, latent=latent, seed=0)
    audio = ADAPTER.decode_audio(bundle, out)
    assert audio["sample_rate"] == 48000
    assert audio["waveform"].shape == (1, 2, 250 * 1920) and torch.isfinite(audio["waveform"]).all()
    encoded = ADAPTER.encode_audio(bundle, audio)
    assert encoded["samples"].shape == (1, 64, 250)
    # audio to audio: denoise < 1 starts from the source; denoise 1 ignores it
    again = ADAPTER.sample(bundle, cond, latent=encoded, seed=0, denoise=0.5)
    assert again["samples"].shape == (1, 64, 250) and not torch.equal(again["samples"], out["samples"])


def test_adapter_refuses_other_family_latents(bundle):
    cond = ADAPTER.encode_text(bundle, "pop", "")
    v1_latent = {"samples": torch.zeros(1, 8, 16, 100), "aceforge_family": "ace_v1"}
    with pytest.raises(InputError, match="ace_v1"):
        ADAPTER.sample(bundle, cond, latent=v1_latent)
    with pytest.raises(InputError, match="unknown option"):
        ADAPTER.encode_text(bundle, "pop", "", tempo=3)


def test_untagged_core_latent_is_accepted(bundle):
    cond = ADAPTER.encode_text(bundle, "pop", "")
    out = ADAPTER.sample(bundle, cond, latent={"samples": torch.zeros(1, 64, 260), "type": "audio"}, seed=2)
    assert out["samples"].shape == (1, 64, 260)
    assert latent_dict(out["samples"])["aceforge_family"] == "ace_v15"
    assert pipeline.frames_for_seconds(600) == 15000
