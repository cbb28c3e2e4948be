"""ACE-Step 1.5 DiT: a naive re-derivation of the reference math, caching, banding, shapes, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ace_core.errors import InputError
from ace_core.v15 import dit as dit_module
from ace_core.v15.config import AceStep15Config
from ace_core.v15.dit import AceStep15DiT, BandPlan, CrossKVCache, attend


def tiny_config(**overrides) -> AceStep15Config:
    base = dict(hidden_size=24, intermediate_size=40, num_hidden_layers=6, num_attention_heads=4,
                num_key_value_heads=2, head_dim=8, sliding_window=2)
    base.update(overrides)
    return AceStep15Config(**base)


def make_dit(config: AceStep15Config, seed: int = 0, dtype=torch.float32) -> AceStep15DiT:
    """A DiT with random, non-trivial weights (norm weights around 1)."""
    model = AceStep15DiT(config, dtype=torch.float32).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith("norm.weight") or name.endswith("norm_out.weight") or "_norm." in name:
                p.copy_(1 + 0.1 * noise)
            elif p.ndim >= 2 and "scale_shift_table" not in name:
                fan_in = p[0].numel()
                p.copy_(noise * min(max(1 / math.sqrt(fan_in), 0.02), 0.2))
            else:
                p.copy_(0.1 * noise)
    return model.to(dtype)


def make_inputs(config: AceStep15Config, B: int, T: int, Le: int, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, 64, generator=gen)
    ctx = torch.randn(B, T, 128, generator=gen)
    enc = torch.randn(B, Le, config.enc_hidden, generator=gen)
    t = torch.rand(B, generator=gen)
    r = t * torch.rand(B, generator=gen)
    return x, t, r, enc, ctx


# --------------------------------------------------------------------------------------------
# Naive reference: the COMPONENTS.md description written out directly (float64, eager attention)
# --------------------------------------------------------------------------------------------


def naive_dit(model: AceStep15DiT, x, t, r, enc, ctx) -> torch.Tensor:
    cfg = model.config
    p = {k: v.double() for k, v in model.state_dict().items()}
    x, t, r, enc, ctx = (a.double() for a in (x, t, r, enc, ctx))
    eps, hd = cfg.rms_norm_eps, cfg.head_dim

    def lin(h, name):
        return F.linear(h, p[name + ".weight"], p.get(name + ".bias"))

    def rms(h, w):
        return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps) * w

    def embed(name, tt):
        half = 128
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
        args = (tt * 1000)[:, None] * freqs[None]
        e = lin(F.silu(lin(torch.cat([args.cos(), args.sin()], -1), name + ".linear_1")), name + ".linear_2")
        return e, lin(F.silu(e), name + ".time_proj").view(len(tt), 6, -1)

    (e1, p1), (e2, p2) = embed("time_embed", t), embed("time_embed_r", t - r)
    temb, proj = e1 + e2, p1 + p2

    h = torch.cat([ctx, x], -1)
    T = h.shape[1]
    if T % 2:
        h = torch.cat([h, torch.zeros_like(h[:, :1])], 1)
    h = F.conv1d(h.transpose(1, 2), p["proj_in.1.weight"], p["proj_in.1.bias"], stride=2).transpose(1, 2)
    e = lin(enc, "condition_embedder")
    B, N, _ = h.shape
    pos = torch.arange(N, dtype=torch.float64)
    inv = 1.0 / cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = torch.cat([pos[:, None] * inv, pos[:, None] * inv], -1)
    cos, sin = ang.cos(), ang.sin()

    def rope(a):
        return a * cos + torch.cat([-a[..., hd // 2:], a[..., :hd // 2]], -1) * sin

    def attention(name, q_in, kv_in, use_rope, allowed):
        q = rms(lin(q_in, name + ".q_proj").view(B, q_in.shape[1], -1, hd), p[name + ".q_norm.weight"])
        k = rms(lin(kv_in, name + ".k_proj").view(B, kv_in.shape[1], -1, hd), p[name + ".k_norm.weight"])
        v = lin(kv_in, name + ".v_proj").view(B, kv_in.shape[1], -1, hd)
        q, k, v = (a.transpose(1, 2) for a in (q, k, v))
        if use_rope:
            q, k = rope(q), rope(k)
        g = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
        s = q @ k.transpose(-1, -2) / math.sqrt(hd)
        if allowed is not None:
            s = s.masked_fill(~allowed, float("-inf"))
        o = s.softmax(-1) @ v
        return lin(o.transpose(1, 2).reshape(B, q_in.shape[1], -1), name + ".o_proj")

    band = (pos[:, None] - pos[None]).abs() <= cfg.sliding_window
    for i in range(cfg.num_hidden_layers):
        n = f"layers.{i}"
        sh, sc, gt, csh, csc, cgt = (p[n + ".scale_shift_table"] + proj).chunk(6, 1)
        allowed = band if cfg.is_sliding(i) else None
        a = rms(h, p[n + ".self_attn_norm.weight"]) * (1 + sc) + sh
        h = h + gt * attention(n + ".self_attn", a, a, True, allowed)
        c = rms(h, p[n + ".cross_attn_norm.weight"])
        h = h + attention(n + ".cross_attn", c, e, False, None)
        m = rms(h, p[n + ".mlp_norm.weight"]) * (1 + csc) + csh
        h = h + cgt * lin(F.silu(lin(m, n + ".mlp.gate_proj")) * lin(m, n + ".mlp.up_proj"), n + ".mlp.down_proj")
    sh, sc = (p["scale_shift_table"] + temb[:, None]).chunk(2, 1)
    h = rms(h, p["norm_out.weight"]) * (1 + sc) + sh
    out = F.conv_transpose1d(h.transpose(1, 2), p["proj_out.1.weight"], p["proj_out.1.bias"], stride=2)
    return out.transpose(1, 2)[:, :T]


CASES = {
    "6 layers, window 2, odd T": (tiny_config(), 2, 27, 9),
    "no GQA, window 3": (tiny_config(num_key_value_heads=4, sliding_window=3, num_hidden_layers=4), 2, 26, 5),
    "GQA 4:1, heads*hd != hidden, T=1": (tiny_config(num_attention_heads=8, num_key_value_heads=2, head_dim=4), 1, 1, 3),
    "XL-like encoder width": (tiny_config(encoder_hidden_size=16, encoder_num_attention_heads=2), 3, 11, 7),
    "long T (blocked band)": (tiny_config(num_hidden_layers=2, sliding_window=3), 2, 2 * 170 + 1, 6),
    "no sliding window": (tiny_config(use_sliding_window=False, num_hidden_layers=2), 1, 13, 4),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_naive_reference(case):
    config, B, T, Le = CASES[case]
    model = make_dit(config)
    x, t, r, enc, ctx = make_inputs(config, B, T, Le)
    with torch.no_grad():
        out = model(x, t, r, enc, ctx)
    assert out.shape == (B, T, 64) and out.dtype == torch.float32
    expected = naive_dit(model, x, t, r, enc, ctx)
    assert torch.allclose(out.double(), expected, atol=1e-4, rtol=1e-4), (out.double() - expected).abs().max()


def test_long_sequence_uses_the_blocked_band(monkeypatch):
    config, B, T, Le = CASES["long T (blocked band)"]
    plan = BandPlan((T + 1) // 2, config.sliding_window, "cpu")
    assert plan.blocked and plan.n_blocks > 2
    model = make_dit(config)
    inputs = make_inputs(config, B, T, Le)
    with torch.no_grad():
        blocked = model(*inputs)
        monkeypatch.setattr(dit_module, "BAND_BLOCK", 10_000)  # one (N, N) band mask instead
        assert not BandPlan((T + 1) // 2, config.sliding_window, "cpu").blocked
        assert torch.allclose(model(*inputs), blocked, atol=5e-6)


@pytest.mark.parametrize("window,length,groups,block", [(1, 200, 1, 8), (2, 97, 2, 5), (3, 64, 4, 3), (5, 131, 1, 16)])
def test_blocked_band_equals_masked_attention(window, length, groups, block):
    gen = torch.Generator().manual_seed(window)
    q = torch.randn(2, 4, length, 8, generator=gen)
    k = torch.randn(2, 4 // groups, length, 8, generator=gen)
    v = torch.randn(2, 4 // groups, length, 8, generator=gen)
    plan = BandPlan(length, window, "cpu", block=block)
    assert plan.blocked
    pos = torch.arange(length)
    full = attend(q, k, v, (pos[:, None] - pos[None]).abs() <= window)
    assert torch.allclose(plan.attend(q, k, v), full, atol=1e-6)


def test_cached_cross_kv_is_identical():
    config = tiny_config()
    model = make_dit(config)
    x, t, r, enc, ctx = make_inputs(config, 2, 15, 7)
    with torch.no_grad():
        cache = model.precompute_cross_kv(enc)
        assert isinstance(cache, CrossKVCache) and cache.batch_size == 2 and cache.length == 7
        assert len(cache.layers) == config.num_hidden_layers
        assert cache.layers[0][0].shape == (2, config.num_key_value_heads, 7, config.head_dim)
        plain = model(x, t, r, enc, ctx)
        assert torch.equal(model(x, t, r, None, ctx, cross_kv=cache), plain)
        assert torch.equal(model(x, t, r, enc, ctx, cross_kv=cache), plain)
        # the cache is reusable across steps: a second timestep still matches the uncached call
        assert torch.equal(model(x, t * 0.5, r * 0.5, None, ctx, cross_kv=cache), model(x, t * 0.5, r * 0.5, enc, ctx))
        joined = CrossKVCache.cat([model.precompute_cross_kv(enc[:1]), model.precompute_cross_kv(enc[1:])])
        assert torch.allclose(model(x, t, r, None, ctx, cross_kv=joined), plain, atol=1e-6)


def test_batch_items_are_independent():
    config = tiny_config()
    model = make_dit(config)
    x, t, r, enc, ctx = make_inputs(config, 3, 19, 5)
    with torch.no_grad():
        full = model(x, t, r, enc, ctx)
        for b in range(3):
            one = model(x[b:b + 1], t[b:b + 1], r[b:b + 1], enc[b:b + 1], ctx[b:b + 1])
            assert torch.allclose(one, full[b:b + 1], atol=1e-5)


def test_odd_length_is_right_padded_with_zeros_and_cropped():
    config = tiny_config()
    model = make_dit(config)
    x, t, r, enc, ctx = make_inputs(config, 2, 21, 5)
    with torch.no_grad():
        odd = model(x, t, r, enc, ctx)
        padded = model(F.pad(x, (0, 0, 0, 1)), t, r, enc, F.pad(ctx, (0, 0, 0, 1)))
    assert odd.shape == (2, 21, 64)
    assert torch.allclose(odd, padded[:, :21], atol=1e-6)


def test_timestep_r_none_means_r_equals_t_and_both_embedders_matter():
    config = tiny_config()
    model = make_dit(config)
    x, t, r, enc, ctx = make_inputs(config, 2, 10, 4)
    with torch.no_grad():
        same = model(x, t, None, enc, ctx)
        assert torch.equal(same, model(x, t, t, enc, ctx))
        assert (model(x, t, r, enc, ctx) - same).abs().max() > 1e-3
        # a scalar timestep is broadcast over the batch
        assert torch.equal(model(x, 0.5, 0.5, enc, ctx), model(x, torch.full((2,), 0.5), torch.full((2,), 0.5), enc, ctx))


def test_sliding_window_is_banded():
    """One sliding layer: output token i only depends on input tokens |i - j| <= window."""
    window = 2
    config = tiny_config(num_hidden_layers=1, sliding_window=window)
    model = make_dit(config)
    x, t, r, enc, ctx = make_inputs(config, 1, 40, 4)  # 20 tokens of 2 frames
    with torch.no_grad():
        base = model(x, t, r, enc, ctx)
        far, near = x.clone(), x.clone()
        far[:, 2 * 15:2 * 16] += 1.0  # token 15: outside token 10's window
        near[:, 2 * 12:2 * 13] += 1.0  # token 12: inside it
        out_far, out_near = model(far, t, r, enc, ctx), model(near, t, r, enc, ctx)
    tok10 = slice(20, 22)
    assert torch.equal(out_far[:, tok10], base[:, tok10])
    assert (out_near[:, tok10] - base[:, tok10]).abs().max() > 1e-4
    full = make_dit(tiny_config(num_hidden_layers=1, sliding_window=window, use_sliding_window=False))
    with torch.no_grad():
        assert (full(far, t, r, enc, ctx)[:, tok10] - full(x, t, r, enc, ctx)[:, tok10]).abs().max() > 1e-4


def test_layer_types_follow_the_config():
    """Default: even layers sliding, odd full; an explicit all-full list turns banding off."""
    config = tiny_config(num_hidden_layers=2)
    assert [config.is_sliding(i) for i in range(2)] == [True, False]
    explicit = tiny_config(num_hidden_layers=2, layer_types=["full_attention", "full_attention"])
    nowindow = tiny_config(num_hidden_layers=2, use_sliding_window=False)
    a, b = make_dit(explicit), make_dit(nowindow)
    x, t, r, enc, ctx = make_inputs(explicit, 1, 30, 3)
    with torch.no_grad():
        assert torch.equal(a(x, t, r, enc, ctx), b(x, t, r, enc, ctx))


def test_half_precision_runs_in_the_model_dtype():
    config = tiny_config()
    ref = make_dit(config)
    model = make_dit(config, dtype=torch.bfloat16)
    x, t, r, enc, ctx = make_inputs(config, 2, 17, 5)
    with torch.no_grad():
        out = model(x, t, r, enc, ctx)
        cache = model.precompute_cross_kv(enc)
        assert cache.layers[0][0].dtype == torch.bfloat16
        expected = ref(x, t, r, enc, ctx)
    assert out.dtype == torch.bfloat16 and out.shape == (2, 17, 64)
    assert (out.float() - expected).abs().max() < 0.1 * expected.abs().max()


def test_bad_inputs_raise_input_error():
    config = tiny_config()
    model = make_dit(config)
    x, t, r, enc, ctx = make_inputs(config, 2, 8, 3)
    with pytest.raises(InputError, match="hidden_states"):
        model(x[..., :32], t, r, enc, ctx)
    with pytest.raises(InputError, match="context_latents"):
        model(x, t, r, enc, ctx[:, :7])
    with pytest.raises(InputError, match="encoder_hidden_states"):
        model(x, t, r, enc[..., :5], ctx)
    with pytest.raises(InputError, match="encoder_hidden_states"):
        model(x, t, r, None, ctx)
    with pytest.raises(InputError, match="timestep"):
        model(x, torch.rand(3), r, enc, ctx)
    with pytest.raises(InputError, match="cross_kv"):
        model(x, t, r, None, ctx, cross_kv=make_dit(config).precompute_cross_kv(enc))
    with pytest.raises(InputError, match="cross_kv batch"):
        model(x, t, r, None, ctx, cross_kv=model.precompute_cross_kv(enc[:1]))


def test_published_key_names():
    keys = set(AceStep15DiT(tiny_config(num_hidden_layers=1), device="meta").state_dict())
    assert {"proj_in.1.weight", "proj_out.1.bias", "time_embed_r.time_proj.weight", "scale_shift_table",
            "layers.0.cross_attn.k_norm.weight", "layers.0.mlp_norm.weight", "condition_embedder.bias"} <= keys


def test_whole_model_loads_fixture_keys_and_reproduces_the_turbo_chain():
    """AceStep15Model takes a full (tiny) model.safetensors strictly; its decoder, driven by the
    8-step turbo Euler loop with a cross-K/V cache, gives the reference target latents."""
    from golden_harness import Fixture, golden_dir

    from ace_core.v15.model import AceStep15Model

    folder = golden_dir() / "v15"
    if not (folder / "v15_sample_turbo_dev_a.json").exists():
        pytest.skip("golden fixture v15_sample_turbo_dev_a not available")
    fx = Fixture(folder, "v15_sample_turbo_dev_a")
    model = AceStep15Model(AceStep15Config.from_dict(fx.config)).eval()
    model.load_state_dict(fx.state_dict, strict=True)
    out, x, steps = fx.outputs, fx.inputs["noise"], fx.args["schedule"]
    null = model.null_condition(out["encoder_hidden_states"])
    assert null.shape == out["encoder_hidden_states"].shape
    assert torch.equal(null[1, -1], fx.state_dict["null_condition_emb"][0, 0])
    with torch.no_grad():
        cache = model.decoder.precompute_cross_kv(out["encoder_hidden_states"])
        for i, t in enumerate(steps):
            v = model.decoder(x, torch.full((x.shape[0],), t), None, None, out["context_latents"], cross_kv=cache)
            x = x - v * (t - (steps[i + 1] if i + 1 < len(steps) else 0.0))
    fx.check("target_latents", x)
