"""Unit tests for the v1 DiT and its lyric encoder (golden parity is in test_golden.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from ace_core.errors import InputError
from ace_core.v1 import lyric_encoder as lyric_module
from ace_core.v1.dit import (
    AceStepDiT,
    CrossAttentionCache,
    DiTConfig,
    GLUMBConv,
    LinearSelfAttention,
    PatchEmbed,
    RotaryTables,
    _rotate_tokens,
    apply_rope,
    rope_cos_sin,
)
from ace_core.v1.lyric_encoder import LyricConformerEncoder, LyricEncoderConfig

MANIFEST = (
    Path(__file__).resolve().parents[2]
    / "shared/reference/checkpoints/v1__ace_step_transformer__diffusion_pytorch_model.safetensors.json"
)

TINY = dict(
    num_layers=2,
    attention_head_dim=16,
    num_attention_heads=2,
    speaker_embedding_dim=16,
    text_embedding_dim=24,
    ssl_latent_dims=[24, 16],
    lyric_encoder_vocab_size=50,
    lyric_hidden_size=32,
    lyric_encoder_overrides={"output_size": 32, "attention_heads": 2, "linear_units": 64, "num_blocks": 2},
)


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every parameter from a seeded generator (norm scales around 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for sub in module.modules():
            for name, p in sub.named_parameters(recurse=False):
                noise = torch.randn(p.shape, generator=gen) * 0.1
                if isinstance(sub, (nn.LayerNorm, nn.GroupNorm)) and name == "weight":
                    noise += 1.0
                p.copy_(noise)
    return module


def tiny_model(seed: int = 0) -> AceStepDiT:
    return randomize(AceStepDiT(DiTConfig.from_reference(TINY)), seed).eval()


def tiny_inputs(B: int = 2, T: int = 12, S_txt: int = 5, S_lyr: int = 7, seed: int = 1) -> dict:
    gen = torch.Generator().manual_seed(seed)
    text_mask = torch.ones(B, S_txt, dtype=torch.long)
    lyric_mask = torch.ones(B, S_lyr, dtype=torch.long)
    latent_mask = torch.ones(B, T)
    if B > 1:
        text_mask[1, 3:] = 0
        lyric_mask[0, 4:] = 0
        latent_mask[1, T - 4 :] = 0
    lyric_ids = torch.randint(1, 50, (B, S_lyr), generator=gen) * lyric_mask
    return dict(
        x=torch.randn(B, 8, 16, T, generator=gen),
        attention_mask=latent_mask,
        text_states=torch.randn(B, S_txt, 24, generator=gen),
        text_mask=text_mask,
        speaker_embeds=torch.randn(B, 16, generator=gen),
        lyric_ids=lyric_ids,
        lyric_mask=lyric_mask,
        timestep=torch.tensor([700.0, 250.0][:B]),
    )


# ---- config and checkpoint layout -------------------------------------------------------------


def test_full_size_keys_match_published_manifest():
    manifest = json.loads(MANIFEST.read_text())
    expected = {k: tuple(v["shape"]) for k, v in manifest["tensors"].items()}
    config = DiTConfig.from_reference(manifest["config_json"])
    assert config == DiTConfig()  # the defaults are the published 3.5B model
    model = AceStepDiT(config, device="meta")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    ignored = AceStepDiT.ignored_checkpoint_keys(config)
    assert not set(ours) & set(ignored)
    assert {**ours, **ignored} == expected
    assert sum(v.numel() for v in model.parameters()) == 3_305_659_264 - sum(
        torch.Size(s).numel() for s in ignored.values()
    )


def test_config_from_fixture_style_dict():
    cfg = DiTConfig.from_reference({**TINY, "inner_dim": 999, "_class_name": "x"})
    assert cfg.inner_dim == 32  # recomputed as heads * head_dim, like the reference
    assert (cfg.lyric_output_size, cfg.lyric_attention_heads, cfg.lyric_linear_units, cfg.lyric_num_blocks) == (
        32, 2, 64, 2,
    )
    assert cfg.patch_size == (16, 1) and cfg.ffn_hidden == 80
    with pytest.raises(InputError):
        DiTConfig.from_reference({"lyric_encoder_overrides": {"dropout": 0.1}})


def test_construction_is_deterministic_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a = AceStepDiT(DiTConfig.from_reference(TINY))
    assert torch.equal(torch.random.get_rng_state(), state)
    b = AceStepDiT(DiTConfig.from_reference(TINY))
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())


# ---- behaviour ----------------------------------------------------------------------------------


def test_batch_items_are_independent():
    model, inp = tiny_model(), tiny_inputs()
    with torch.no_grad():
        batched = model(**inp)
        for i in range(2):
            single = model(**{k: v[i : i + 1] for k, v in inp.items()})
            torch.testing.assert_close(batched[i : i + 1], single, atol=1e-5, rtol=1e-5)
    assert batched.shape == (2, 8, 16, 12) and torch.isfinite(batched).all()


def test_padded_encoder_tokens_do_not_matter():
    model, inp = tiny_model(), tiny_inputs()
    changed = dict(inp)
    changed["text_states"] = inp["text_states"].clone()
    changed["text_states"][1, 3:] += 5.0  # masked text positions of item 1
    changed["lyric_ids"] = inp["lyric_ids"].clone()
    changed["lyric_ids"][0, 4:] = 17  # masked lyric positions of item 0
    with torch.no_grad():
        torch.testing.assert_close(model(**inp), model(**changed), atol=1e-5, rtol=1e-5)


def test_linear_self_attention_ignores_masked_frames():
    attn = randomize(LinearSelfAttention(32, 2), seed=3)
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(1, 10, 32, generator=gen)
    mask = torch.ones(1, 10)
    mask[:, 7:] = 0
    rope = rope_cos_sin(10, 16, 1e6, "cpu", torch.float32)
    y = x.clone()
    y[:, 7:] = torch.randn(1, 3, 32, generator=gen) * 10
    with torch.no_grad():
        a, b = attn(x, mask, rope), attn(y, mask, rope)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    torch.testing.assert_close(a[:, 7:], attn.to_out[0].bias.expand(1, 3, 32))  # zero attention output


def test_output_length_crop_and_pad():
    model, inp = tiny_model(), tiny_inputs(B=1)
    with torch.no_grad():
        enc, enc_mask = model.encode(
            inp["text_states"], inp["text_mask"], inp["speaker_embeds"], inp["lyric_ids"], inp["lyric_mask"]
        )
        full = model.decode(inp["x"], inp["attention_mask"], enc, enc_mask, inp["timestep"])
        short = model.decode(inp["x"], inp["attention_mask"], enc, enc_mask, inp["timestep"], output_length=9)
        long = model.decode(inp["x"], inp["attention_mask"], enc, enc_mask, 700.0, output_length=15)
    assert torch.equal(short, full[..., :9])
    assert torch.equal(long[..., :12], full) and not long[..., 12:].any()
    with pytest.raises(InputError):
        model.decode(inp["x"][:, :, :8], None, enc, enc_mask, inp["timestep"])


def test_encode_layout_and_lyrics_strength():
    model, inp = tiny_model(), tiny_inputs()
    args = (inp["text_states"], inp["text_mask"], inp["speaker_embeds"], inp["lyric_ids"], inp["lyric_mask"])
    with torch.no_grad():
        enc, mask = model.encode(*args)
        half, _ = model.encode(*args, lyrics_strength=0.5)
    assert enc.shape == (2, 1 + 5 + 7, 32) and mask.dtype == torch.float32
    assert torch.equal(mask, torch.cat([torch.ones(2, 1), inp["text_mask"].float(), inp["lyric_mask"].float()], 1))
    torch.testing.assert_close(half[:, :6], enc[:, :6])
    torch.testing.assert_close(half[:, 6:], enc[:, 6:] * 0.5)


def test_lyric_encoder_query_blocks_do_not_change_results(monkeypatch):
    cfg = LyricEncoderConfig(input_size=32, output_size=32, attention_heads=2, linear_units=64, num_blocks=2)
    enc = randomize(LyricConformerEncoder(cfg), seed=5).eval()
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(2, 11, 32, generator=gen)
    mask = torch.ones(2, 11, dtype=torch.long)
    mask[1, 6:] = 0
    with torch.no_grad():
        whole = enc(x, mask)
        monkeypatch.setattr(lyric_module, "_QUERY_BLOCK", 4)
        blocked = enc(x, mask)
        mask[0] = 0  # a fully padded item stays finite
        empty = enc(x, mask)
    torch.testing.assert_close(whole, blocked, atol=1e-6, rtol=1e-6)
    assert torch.isfinite(empty).all()


def test_bf16_runs_close_to_fp32():
    model, inp = tiny_model(), tiny_inputs()
    with torch.no_grad():
        ref = model(**inp)
        out = model.to(torch.bfloat16)(**inp)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()


# ---- fast paths: same numerics as the straightforward formulation ------------------------------


def _encode(model, inp):
    return model.encode(
        inp["text_states"], inp["text_mask"], inp["speaker_embeds"], inp["lyric_ids"], inp["lyric_mask"]
    )


def test_cross_kv_cache_equals_uncached_decode():
    model, inp = tiny_model(), tiny_inputs()
    with torch.no_grad():
        enc, enc_mask = _encode(model, inp)
        cache = model.precompute_cross_kv(enc, enc_mask)
        for t in (inp["timestep"], 30.0):  # the same cache serves every step
            plain = model.decode(inp["x"], inp["attention_mask"], enc, enc_mask, t)
            cached = model.decode(inp["x"], inp["attention_mask"], None, None, t, cross_kv=cache)
            assert torch.equal(plain, cached)
        also_states = model.decode(inp["x"], inp["attention_mask"], enc, enc_mask, 30.0, 9, cross_kv=cache)
        assert torch.equal(also_states, cached[..., :9])
        # batching per-item caches (e.g. cond + uncond) equals the cache of the batch
        halves = [model.precompute_cross_kv(enc[i : i + 1], enc_mask[i : i + 1]) for i in range(2)]
        joined = model.decode(inp["x"], inp["attention_mask"], None, None, 30.0,
                              cross_kv=CrossAttentionCache.cat(halves))
        assert torch.equal(joined, cached)
    assert cache.batch_size == 2 and cache.length == enc.shape[1]
    assert cache.nbytes == 2 * 2 * enc.numel() * 4 + enc_mask.numel() * 4  # 2 blocks x (k, v) + mask


def test_cross_kv_cache_misuse_is_rejected():
    model, inp = tiny_model(), tiny_inputs()
    with torch.no_grad():
        enc, enc_mask = _encode(model, inp)
        cache = model.precompute_cross_kv(enc, enc_mask)
        with pytest.raises(InputError):  # batch mismatch
            model.decode(inp["x"][:1], None, None, None, 10.0, cross_kv=cache)
        with pytest.raises(InputError):  # states that do not match the cache
            model.decode(inp["x"], None, enc[:, :4], enc_mask[:, :4], 10.0, cross_kv=cache)
        with pytest.raises(InputError):  # another model's cache
            tiny_model(seed=1).decode(inp["x"], None, None, None, 10.0, cross_kv=cache)
        with pytest.raises(InputError):  # no context at all
            model.decode(inp["x"], None, None, None, 10.0)
        with pytest.raises(InputError):  # enc batch != latent batch
            model.decode(inp["x"][:1], None, enc, enc_mask, 10.0)
        model.to(torch.bfloat16)
        with pytest.raises(InputError):  # built before a dtype change
            model.decode(inp["x"], None, None, None, 10.0, cross_kv=cache)


def test_rotary_tables_match_reference_rope_exactly():
    gen = torch.Generator().manual_seed(7)
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(2, 9, 3, 16, generator=gen).to(dtype)  # (B, S, H, hd)
        cos, sin = rope_cos_sin(9, 16, 1e6, "cpu", dtype)
        expected = apply_rope(x.transpose(1, 2), cos, sin).transpose(1, 2)
        assert torch.equal(_rotate_tokens(x, RotaryTables(cos, sin)), expected)


def test_pointwise_ffn_and_patch_embed_match_convolutions():
    """The 1x1 convs run as matmuls; compare with the plain convolution formulation."""
    F = torch.nn.functional
    ff = randomize(GLUMBConv(32, 40), seed=8)
    for frames in (1, 2, 11):  # the depthwise conv runs channels-last: edges and a single frame
        x = torch.randn(2, frames, 32, generator=torch.Generator().manual_seed(9))
        with torch.no_grad():
            h = F.silu(ff.inverted_conv(x.transpose(1, 2)))
            h, gate = ff.depth_conv(h).chunk(2, dim=1)
            expected = ff.point_conv(h * F.silu(gate)).transpose(1, 2)
            torch.testing.assert_close(ff(x), expected, atol=1e-5, rtol=1e-5)
    embed = randomize(PatchEmbed(DiTConfig.from_reference(TINY)), seed=10)
    lat = torch.randn(2, 8, 16, 5, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        expected = embed.early_conv_layers(lat).flatten(2).transpose(1, 2)
        torch.testing.assert_close(embed(lat), expected, atol=1e-5, rtol=1e-5)
