"""Unit tests for the v1 schedulers, guidance and sampling / editing loops (tiny random DiT)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ace_core.editing.repaint import blend
from ace_core.errors import InputError
from ace_core.sampling import guidance as G
from ace_core.v1 import editing as E
from ace_core.v1 import erg as erg_hooks
from ace_core.v1 import official
from ace_core.v1 import sampling as SMP
from ace_core.v1 import schedulers as S
from ace_core.v1.dit import AceStepDiT, DiTConfig
from ace_core.v1.latent import FRAMES_PER_SECOND

T = 8  # latent frames used by the loop tests


def _tiny_config(num_layers: int = 2, lyric_blocks: int = 2) -> DiTConfig:
    return DiTConfig(
        num_layers=num_layers, attention_head_dim=8, num_attention_heads=2, speaker_embedding_dim=8,
        text_embedding_dim=12, ssl_latent_dims=(8, 8), lyric_encoder_vocab_size=20,
        lyric_hidden_size=16, lyric_output_size=16, lyric_attention_heads=2, lyric_linear_units=32,
        lyric_num_blocks=lyric_blocks,
    )


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            if name.endswith("norm_ff.weight") or name.endswith("norm_mha.weight") or "after_norm.weight" in name \
                    or name.endswith(".1.weight") and p.ndim == 1:
                p.add_(1.0)
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread is much faster on a shared CPU (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dit() -> AceStepDiT:
    return _randomize(AceStepDiT(_tiny_config(), dtype=torch.float32), 0)


def _cond(batch: int = 1, seed: int = 1, s_txt: int = 5, s_lyr: int = 6) -> SMP.Conditioning:
    g = torch.Generator().manual_seed(seed)
    return SMP.Conditioning(
        text_states=torch.randn(batch, s_txt, 12, generator=g),
        text_mask=torch.ones(batch, s_txt, dtype=torch.long),
        speaker_embeds=torch.zeros(batch, 8),
        lyric_ids=torch.randint(1, 20, (batch, s_lyr), generator=g),
        lyric_mask=torch.ones(batch, s_lyr, dtype=torch.long),
    )


def _noise(seed: int, batch: int = 1, frames: int = T) -> torch.Tensor:
    return torch.randn(batch, 8, 16, frames, generator=torch.Generator().manual_seed(seed))


FAST = dict(steps=4, guidance_scale=5.0, guidance_interval=1.0, use_erg_diffusion=False)
FAST2 = {**FAST, "steps": 2}


# ------------------------------------------------------------------------------------------------
# schedules
# ------------------------------------------------------------------------------------------------
def test_schedule_unpacks_and_heun_repeats_interior():
    ts, sig = S.make_schedule("euler", 5, 3.0)
    assert ts.shape == (5,) and sig.shape == (6,) and sig[-1] == 0 and ts[0] == 1000
    h = S.make_schedule("heun", 5, 3.0)
    assert len(h) == 9 and h.num_inference_steps == 5
    assert torch.equal(h.timesteps[1::2], h.timesteps[2::2])  # each interior timestep twice
    assert torch.equal(h.timesteps[::2], ts)
    assert torch.equal(h.sigmas[-1:], torch.zeros(1)) and h.sigmas[-2] == h.sigmas[-3]
    # last non-zero sigma is shifted twice: 3*s/(1+2s) applied to the once-shifted 1/1000
    once = 3 * 0.001 / (1 + 2 * 0.001)
    assert math.isclose(sig[-2].item(), 3 * once / (1 + 2 * once), rel_tol=1e-6)


def test_schedule_bad_inputs():
    with pytest.raises(InputError, match="scheduler"):
        S.make_schedule("dpm", 4)
    with pytest.raises(InputError, match="sigma_max"):
        S.make_schedule("euler", 4, sigma_max=1.5)


def test_oss_schedule_picks_positions_and_reshifts():
    base = S.make_schedule("euler", 10, 3.0)
    oss = S.make_oss_schedule("euler", [2, 5, 10], 3.0)
    assert oss.num_inference_steps == 3 and len(oss) == 3
    s = base.timesteps[[1, 4, 9]] / 1000
    assert torch.allclose(oss.sigmas[:3], 3 * s / (1 + 2 * s), atol=1e-6)  # official double shift
    heun = S.make_oss_schedule("heun", [2, 5, 10], 3.0)
    assert len(heun) == 5


def test_omega_step_keeps_mean_and_scales_deviation():
    x, v = torch.randn(1, 8, 16, 4), torch.randn(1, 8, 16, 4)
    s, sn = torch.tensor(0.8), torch.tensor(0.5)
    plain = S.euler_step(v, x, s, sn, omega_scale=0.0)
    assert torch.allclose(plain, x + (sn - s) * v, atol=1e-6)
    big = S.euler_step(v, x, s, sn, omega_scale=10.0)
    assert torch.allclose((big - x).mean(), (plain - x).mean(), atol=1e-6)
    w = S.omega_rescale(10.0)
    assert math.isclose(w, 1.0462117157260011, rel_tol=1e-12)


# ------------------------------------------------------------------------------------------------
# guidance
# ------------------------------------------------------------------------------------------------
def test_guidance_interval_indices_and_decay():
    assert G.guidance_interval_bounds(60, 0.5) == (15, 45)
    assert G.guidance_interval_bounds(6, 0.5) == (1, 4)
    assert G.guidance_interval_bounds(8, 1.0) == (0, 8)
    assert G.interval_guidance_scale(15, 15, 45, 15.0, 3.0, 0.0) == 15.0
    assert G.interval_guidance_scale(15, 15, 45, 15.0, 3.0, 1.0) == 15.0
    assert math.isclose(G.interval_guidance_scale(44, 15, 45, 15.0, 3.0, 1.0), 3.0)
    assert math.isclose(G.interval_guidance_scale(44, 15, 45, 15.0, 3.0, 0.5), 9.0)
    assert G.interval_guidance_scale(3, 3, 4, 7.0, 3.0, 1.0) == 7.0  # one-step interval: no 0-division


def test_apg_clips_and_projects():
    g = torch.Generator().manual_seed(3)
    c, u = torch.randn(2, 8, 16, 5, generator=g), torch.randn(2, 8, 16, 5, generator=g) * 10
    out = G.apg_forward(c, u, 4.0)
    upd = (out - c) / 3.0
    assert torch.all(upd.norm(dim=(-1, -2)) <= 2.5 + 1e-5)
    cos = (upd * c).sum(dim=(-1, -2)) / (c.norm(dim=(-1, -2)) * upd.norm(dim=(-1, -2)))
    assert cos.abs().max() < 1e-5  # orthogonal to cond


def test_cfg_star_zero_init_and_double_condition():
    c, u, t = torch.randn(1, 8, 16, 3), torch.randn(1, 8, 16, 3), torch.randn(1, 8, 16, 3)
    assert torch.count_nonzero(G.cfg_zero_star(c, u, 5.0, 1)) == 0
    assert torch.count_nonzero(G.cfg_zero_star(c, u, 5.0, 2)) > 0
    out = G.cfg_double_condition_forward(c, u, t, 5.0, 2.0)
    assert torch.allclose(out, -4 * u + 3 * t + 2 * c, atol=1e-6)


def _stub_umt5(n_blocks: int) -> nn.Module:
    root = nn.Module()
    root.encoder = nn.Module()
    blocks = nn.ModuleList()
    for _ in range(n_blocks):
        blk = nn.Module()
        layer0 = nn.Module()
        layer0.SelfAttention = nn.Module()
        layer0.SelfAttention.q = nn.Linear(2, 2)
        blk.layer = nn.ModuleList([layer0])
        blocks.append(blk)
    root.encoder.block = blocks
    return root


def _hook_count(modules) -> int:
    return sum(len(m._forward_hooks) for m in modules)


def test_erg_hooks_installed_and_always_removed():
    model = AceStepDiT(_tiny_config(num_layers=17, lyric_blocks=6), dtype=torch.float32)
    dmods = [m for b in model.transformer_blocks for m in (b.attn.to_q, b.cross_attn.to_q)]
    lmods = [e.self_attn.linear_q for e in model.lyric_encoder.encoders]
    with erg_hooks.erg_diffusion(model) as n:
        assert n == 4 and _hook_count(dmods) == 4  # only blocks 15 and 16 exist
    with erg_hooks.erg_lyric(model) as n:
        assert n == 2 and _hook_count(lmods) == 2
    umt5 = _stub_umt5(12)
    qs = [b.layer[0].SelfAttention.q for b in umt5.encoder.block]
    with pytest.raises(RuntimeError):
        with erg_hooks.erg_text(umt5) as n:
            assert n == 2 and _hook_count(qs) == 2
            raise RuntimeError("boom")
    assert _hook_count(dmods) == _hook_count(lmods) == _hook_count(qs) == 0
    # the hook scales the output by tau
    q = qs[8]
    x = torch.randn(3, 2)
    with erg_hooks.erg_text(umt5):
        assert torch.allclose(q(x), 0.01 * nn.functional.linear(x, q.weight, q.bias))
    assert torch.allclose(q(x), nn.functional.linear(x, q.weight, q.bias))
    with erg_hooks.erg_diffusion(AceStepDiT(_tiny_config(), dtype=torch.float32)) as n:
        assert n == 0  # the tiny model has no blocks 15..19


def test_erg_changes_uncond_and_leaves_no_hooks():
    big = _randomize(AceStepDiT(_tiny_config(num_layers=16), dtype=torch.float32), 5)
    x, t = _noise(2, frames=4), torch.tensor(500.0)
    out = []
    for erg in (True, False):
        settings = SMP.GuidanceSettings(guidance_scale=5.0, guidance_interval=1.0, use_erg_diffusion=erg)
        guider = SMP.build_guider(big, _cond(), None, settings, 1, 1)
        out.append(guider(x, t, 0))
    assert not torch.allclose(out[0], out[1])
    assert all(len(m._forward_hooks) == 0 for m in big.modules())


# ------------------------------------------------------------------------------------------------
# loops
# ------------------------------------------------------------------------------------------------
class _Counting(nn.Module):
    """Wraps a DiT and counts decode calls."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = 0
        self.rows = 0  # batch rows over all calls (a batched guided step: one call, 2B rows)

    @property
    def dtype(self):
        return self.inner.dtype

    @property
    def device(self):
        return self.inner.device

    def encode(self, *a, **k):
        return self.inner.encode(*a, **k)

    def decode(self, *a, **k):
        self.calls += 1
        self.rows += a[0].shape[0]
        return self.inner.decode(*a, **k)


@pytest.mark.parametrize("kind", ["euler", "heun", "pingpong"])
def test_samplers_run_finite_and_deterministic(dit, kind):
    cond = _cond()
    run = lambda seed: SMP.sample(dit, cond, frames=T, scheduler=kind, generator=torch.Generator().manual_seed(seed),
                                  **FAST)  # noqa: E731
    a, b, c = run(7), run(7), run(8)
    assert a.shape == (1, 8, 16, T) and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_global_rng_untouched(dit):
    state = torch.random.get_rng_state()
    SMP.sample(dit, _cond(), frames=T, scheduler="pingpong", generator=torch.Generator().manual_seed(1), **FAST)
    assert torch.equal(state, torch.random.get_rng_state())


def test_pingpong_needs_generator(dit):
    with pytest.raises(InputError, match="generator"):
        SMP.sample(dit, _cond(), noise=_noise(1), scheduler="pingpong", **FAST)


def test_generator_draws_noise_like_explicit(dit):
    g = torch.Generator().manual_seed(11)
    a = SMP.sample(dit, _cond(), frames=T, generator=g, **FAST)
    b = SMP.sample(dit, _cond(), noise=_noise(11), **FAST)
    assert torch.equal(a, b)


@pytest.fixture(params=["batched", "separate"])
def passes_mode(request, monkeypatch):
    """Guided steps as one batched call (the default) or as separate passes (batching off)."""
    if request.param == "separate":
        monkeypatch.setattr(SMP, "BATCHED_PASS_FRAMES", 0)
    return request.param


def test_decode_call_counts_interval_and_heun(dit, passes_mode):
    batched = passes_mode == "batched"

    def expect(guided, passes, plain):  # (calls, rows) for batch-1 latents
        return (guided if batched else guided * passes) + plain, guided * passes + plain

    def run(**kw):
        wrapped = _Counting(dit)
        SMP.sample(wrapped, _cond(), noise=_noise(1), use_erg_diffusion=False, **kw)
        return wrapped.calls, wrapped.rows

    # indices 1..3 guided (cond + uncond), 0, 4, 5 cond only
    assert run(steps=6, guidance_scale=5.0, guidance_interval=0.5) == expect(3, 2, 3)
    assert run(steps=6, guidance_scale=1.0) == expect(0, 2, 6)  # scale 1: no CFG
    # heun: 2N-1 evaluations, all guided
    assert run(steps=4, scheduler="heun", guidance_scale=5.0, guidance_interval=0.0) == expect(0, 2, 7)
    # double condition: cond, text-only, uncond
    assert run(steps=4, guidance_scale=5.0, guidance_interval=1.0, guidance_scale_text=3.0,
               guidance_scale_lyric=2.0) == expect(4, 3, 0)


def test_progress_hook_per_step_and_interrupt(dit):
    seen = []
    SMP.sample(dit, _cond(), noise=_noise(1), progress=lambda d, t: seen.append((d, t)), **FAST)
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]

    class Stop(Exception):
        pass

    def hook(done, total):
        if done == 2:
            raise Stop

    wrapped = _Counting(dit)
    with pytest.raises(Stop):
        SMP.sample(wrapped, _cond(), noise=_noise(1), progress=hook, **FAST)
    assert wrapped.rows == 4  # two guided steps (cond + uncond), then stopped
    seen.clear()
    E.repaint(dit, _cond(), _noise(3), E.region_mask(T, 2, 5), noise=_noise(4), retake_noise=_noise(5),
              retake_variance=0.5, progress=lambda d, t: seen.append((d, t)), **FAST)
    assert seen == [(1, 2), (2, 2)]


def test_retake_variance_zero_is_plain_sample_and_batch_broadcast(dit):
    a = SMP.sample(dit, _cond(), noise=_noise(1, batch=2), **FAST)
    b = E.retake(dit, _cond(), noise=_noise(1, batch=2), retake_noise=_noise(2, batch=2), retake_variance=0.0, **FAST)
    assert a.shape == (2, 8, 16, T) and torch.equal(a, b)
    c = E.retake(dit, _cond(), noise=_noise(1, batch=2), retake_noise=_noise(2, batch=2), retake_variance=0.4, **FAST)
    assert not torch.equal(a, c)


def test_audio2audio_steps_and_start(dit):
    seen = []
    ref = _noise(9)
    out = SMP.sample(dit, _cond(), noise=_noise(1), ref_latents=ref, ref_audio_strength=0.5, steps=8,
                     guidance_scale=5.0, use_erg_diffusion=False, progress=lambda d, t: seen.append(t))
    assert seen == [4] * 4 and out.shape == ref.shape and torch.isfinite(out).all()


# ------------------------------------------------------------------------------------------------
# editing
# ------------------------------------------------------------------------------------------------
def test_repaint_keeps_source_outside_and_soft_equals_hard(dit):
    src = _noise(3)
    hard = E.region_mask(T, 2, 5)
    kw = dict(noise=_noise(4), retake_noise=_noise(5), retake_variance=0.6, **FAST)
    a = E.repaint(dit, _cond(), src, hard, **kw)
    assert torch.equal(a[..., :2], src[..., :2]) and torch.equal(a[..., 5:], src[..., 5:])
    assert not torch.allclose(a[..., 2:5], src[..., 2:5])
    # the same {0,1} mask as (T,) float line and via seconds give identical results
    b = E.repaint(dit, _cond(), src, hard[0, 0, 0].clone(), **kw)
    c = E.repaint(dit, _cond(), src, repaint_start=2 / FRAMES_PER_SECOND + 1e-6,
                  repaint_end=5 / FRAMES_PER_SECOND + 1e-6, **kw)
    assert torch.equal(a, b) and torch.equal(a, c)
    # the soft formulas reduce exactly to the hard ones on {0,1}
    x, y = torch.randn(1, 8, 16, T), torch.randn(1, 8, 16, T)
    assert torch.equal(blend(hard, x, y, binary=False), blend(hard, x, y, binary=True))
    # a feathered mask: outside still exact, edges between hard and source
    soft = E.region_mask(T, 2, 6, feather=1)
    assert soft[0, 0, 0].tolist() == [0, 0, 0.5, 1, 1, 0.5, 0, 0]
    d = E.repaint(dit, _cond(), src, soft, **kw)
    assert torch.equal(d[..., :2], src[..., :2]) and torch.equal(d[..., 6:], src[..., 6:])
    assert torch.isfinite(d).all()


def test_repaint_bad_mask(dit):
    with pytest.raises(InputError, match="mask"):
        E.repaint(dit, _cond(), _noise(3), torch.full((T,), 2.0), noise=_noise(4), retake_noise=_noise(5), **FAST)
    with pytest.raises(InputError, match="repaint region"):
        E.region_mask(T, 5, 5)


def test_extend_plans_quirk_and_window():
    p = E.plan_extend_frames(15, -5, 24)
    assert (p.left_pad, p.right_pad, p.window_frames) == (5, 4, 24)  # right = end - (src + left)
    assert E.plan_extend_frames(18, 0, 24).right_pad == 6
    with pytest.raises(InputError, match="left-padded"):
        E.plan_extend_frames(15, -5, 17)
    with pytest.raises(InputError, match="inside the source"):
        E.plan_extend_frames(15, 0, 15)
    w = E.plan_extend(10, 4, 0, max_frames=12)
    assert (w.right_trim, w.window_frames, w.output_frames) == (2, 12, 14)
    w = E.plan_extend(10, 0, 4, max_frames=12)
    assert (w.left_trim, w.window_frames) == (2, 12)
    with pytest.raises(InputError, match="window"):
        E.plan_extend(10, 2, 2, max_frames=12)
    with pytest.raises(InputError, match="both extensions"):
        E.plan_extend(10, 0, 0)
    assert E.MAX_FRAMES == 2583


def test_extend_shapes_and_reattached_tails(dit):
    src = _noise(3, frames=6)
    kw = dict(noise=_noise(4, frames=6), retake_noise=_noise(5, frames=6), **FAST2)
    out = E.extend(dit, _cond(), src, left_frames=2, right_frames=3, **kw)
    assert out.shape == (1, 8, 16, 11) and torch.equal(out[..., 2:8], src)
    plan = E.plan_extend(6, 3, 0, max_frames=7)  # window keeps 3 new + 4 source frames
    out = E.extend(dit, _cond(), src, plan=plan, **kw)
    assert out.shape == (1, 8, 16, 9) and torch.equal(out[..., 3:], src)
    plan = E.plan_extend(6, 0, 4, max_frames=8)
    out = E.extend(dit, _cond(), src, plan=plan, **kw)
    assert out.shape == (1, 8, 16, 10) and torch.equal(out[..., :6], src)
    # longer than the source: retake noise is drawn long enough
    out = E.extend(dit, _cond(), src, right_frames=9, generator=torch.Generator().manual_seed(0), **FAST2)
    assert out.shape == (1, 8, 16, 15) and torch.equal(out[..., :6], src)


def test_flowedit_runs_and_keeps_shape(dit):
    src = _noise(3)
    tar = _cond(seed=9)
    g = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    a = E.flowedit(dit, _cond(), tar, src, steps=4, guidance_scale=5.0, n_min=0.25, n_max=1.0, n_avg=2, generator=g())
    assert a.shape == src.shape and torch.isfinite(a).all() and not torch.allclose(a, src)
    b = E.flowedit(dit, _cond(), tar, src, steps=4, guidance_scale=5.0, n_min=0.0, n_max=0.5, generator=g())
    assert b.shape == src.shape and torch.isfinite(b).all()
    c = E.flowedit(dit, _cond(), tar, src, steps=4, guidance_scale=5.0, n_max=0.5, scheduler="pingpong", generator=g())
    assert torch.isfinite(c).all()
    same = E.flowedit(dit, _cond(), tar, src, steps=4, n_min=1.0, n_max=1.0, generator=g())
    assert torch.equal(same, src)
    # explicit draws replay the generator run exactly
    gg = g()
    draws = [torch.randn(src.shape, generator=gg) for _ in range(4)]
    d = E.flowedit(dit, _cond(), tar, src, steps=4, guidance_scale=5.0, n_min=0.0, n_max=0.5, noises=draws)
    assert torch.equal(b, d)
    with pytest.raises(InputError, match="n_min"):
        E.flowedit(dit, _cond(), tar, src, steps=4, n_min=0.8, n_max=0.5, generator=g())


def test_reference_dispatch_matches_wrappers(dit):
    cond = _cond()
    base = dict(infer_steps=2, guidance_scale=5.0, guidance_interval=1.0, guidance_interval_decay=0.0,
                omega_scale=5.0)
    dur = T / FRAMES_PER_SECOND + 1e-6
    a = official.text2music_diffusion_process(dit, cond, duration=dur, noise=_noise(1), **base)
    b = SMP.sample(dit, cond, noise=_noise(1), steps=2, guidance_scale=5.0, guidance_interval=1.0,
                   omega_scale=5.0, use_erg_diffusion=False)
    assert torch.equal(a, b)
    src = _noise(3)
    r = official.text2music_diffusion_process(dit, cond, duration=dur, noise=_noise(4), retake_noise=_noise(5),
                                         add_retake_noise=True, retake_variance=0.5, src_latents=src,
                                         repaint_start=2 / FRAMES_PER_SECOND + 1e-6,
                                         repaint_end=5 / FRAMES_PER_SECOND + 1e-6, **base)
    r2 = E.repaint(dit, cond, src, E.region_mask(T, 2, 5), noise=_noise(4), retake_noise=_noise(5),
                   retake_variance=0.5, steps=2, guidance_scale=5.0, guidance_interval=1.0, use_erg_diffusion=False)
    assert torch.equal(r, r2)


class _CountingCache(_Counting):
    """Counts decode calls and cross-attention cache builds of the wrapped DiT."""

    def __init__(self, inner):
        super().__init__(inner)
        self.builds = 0

    def precompute_cross_kv(self, *a, **k):
        self.builds += 1
        return self.inner.precompute_cross_kv(*a, **k)


def test_cross_kv_cache_built_once_per_run_and_identical(dit, passes_mode):
    cached = _CountingCache(dit)
    a = SMP.sample(cached, _cond(), noise=_noise(3), **FAST)
    b = SMP.sample(_Counting(dit), _cond(), noise=_noise(3), **FAST)  # no cache API: plain decode
    assert torch.allclose(a, b, atol=1e-6, rtol=1e-6)
    # batched: cond + null projected together once; separate: once per pass
    assert cached.calls >= 4 and cached.builds == (1 if passes_mode == "batched" else 2)


def test_unguided_steps_use_a_view_of_the_batched_cache(dit):
    cached = _CountingCache(dit)
    SMP.sample(cached, _cond(), noise=_noise(3), steps=6, guidance_scale=5.0, guidance_interval=0.5,
               use_erg_diffusion=False)
    assert cached.builds == 1  # step 0 (cond only) builds the cond + null cache, never cond alone


@pytest.fixture(scope="module")
def erg_dit() -> AceStepDiT:
    """16 blocks: ERG-diffusion weakens block 15."""
    return _randomize(AceStepDiT(_tiny_config(num_layers=16), dtype=torch.float32), 5)


GUIDED = {
    "apg": dict(cfg_type="apg"),
    "cfg": dict(cfg_type="cfg"),
    "cfg_star": dict(cfg_type="cfg_star", zero_steps=0),
    "double_condition": dict(guidance_scale_text=3.0, guidance_scale_lyric=2.0),
    "erg_diffusion": dict(use_erg_diffusion=True),
    "erg_lyric_and_diffusion": dict(use_erg_lyric=True, use_erg_diffusion=True),
}


@pytest.mark.parametrize("case", sorted(GUIDED))
def test_batched_guided_step_equals_separate_passes(erg_dit, case):
    options = {"use_erg_diffusion": False, **GUIDED[case]}
    settings = SMP.GuidanceSettings(guidance_scale=5.0, guidance_interval=1.0, **options)
    batched = SMP.build_guider(erg_dit, _cond(batch=2), None, settings, 3, 2)
    separate = SMP.build_guider(erg_dit, _cond(batch=2), None, settings, 3, 2, max_batched_frames=0)
    x = _noise(4, batch=2, frames=6)
    for i, t in enumerate((900.0, 600.0, 300.0)):
        a, b = batched(x, torch.tensor(t), i), separate(x, torch.tensor(t), i)
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), (case, i, (a - b).abs().max())
        assert a.abs().max() > 0 or (case == "cfg_star" and i == 0)
    passes = 3 if case == "double_condition" else 2
    assert batched.calls == 3 and separate.calls == 3 * passes
    assert all(len(m._forward_hooks) == 0 for m in erg_dit.modules())


def test_batched_sampling_equals_separate_passes(erg_dit, monkeypatch):
    run = lambda: SMP.sample(erg_dit, _cond(), noise=_noise(6, frames=6), steps=6, guidance_scale=5.0)  # noqa: E731
    a = run()  # defaults: APG, guidance interval 0.5, ERG diffusion on the uncond pass
    monkeypatch.setattr(SMP, "BATCHED_PASS_FRAMES", 0)
    b = run()
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)


def test_erg_rows_weaken_only_those_rows_exactly():
    lin = _randomize(nn.Linear(4, 3), 2)
    x = torch.randn(6, 5, 4, generator=torch.Generator().manual_seed(3))
    with erg_hooks.temperature_hooks([lin], 0.01, rows=[slice(2, 4)]):
        part = lin(x)
    with erg_hooks.temperature_hooks([lin], 0.01):
        whole = lin(x)
    plain = lin(x)
    assert torch.equal(part[:2], plain[:2]) and torch.equal(part[4:], plain[4:])
    assert torch.equal(part[2:4], whole[2:4])
    assert len(lin._forward_hooks) == 0


def test_guided_step_falls_back_to_separate_passes(dit):
    settings = SMP.GuidanceSettings(guidance_scale=5.0, guidance_interval=1.0, use_erg_diffusion=False)
    x, t = _noise(2, frames=6), torch.tensor(700.0)
    # a negative prompt of another length cannot share the batch
    negative = _cond(seed=9, s_txt=3)
    g = SMP.build_guider(dit, _cond(), negative, settings, 1, 1)
    ref = SMP.build_guider(dit, _cond(), negative, settings, 1, 1, max_batched_frames=0)
    assert torch.equal(g(x, t, 0), ref(x, t, 0)) and g.calls == 2
    # over the frame budget: 2 passes x 1 x 6 frames > 11
    g = SMP.build_guider(dit, _cond(), None, settings, 1, 1, max_batched_frames=11)
    assert g(x, t, 0).shape == x.shape and g.calls == 2
    g = SMP.build_guider(dit, _cond(), None, settings, 1, 1, max_batched_frames=12)
    assert g(x, t, 0).shape == x.shape and g.calls == 1


# ------------------------------------------------------------------------------------------------
# properties checked against the official code off-repo (no official data here)
# ------------------------------------------------------------------------------------------------
def test_repaint_with_no_step_left_returns_source(dit):
    src = _noise(3)
    wrapped = _Counting(dit)
    out = E.repaint(wrapped, _cond(), src, E.region_mask(T, 2, 5), noise=_noise(4), retake_noise=_noise(5),
                    retake_variance=0.0, **FAST)
    assert torch.equal(out, src) and wrapped.calls == 0
    # oss_steps: n_min = int(max(oss)·(1 − variance)) = 4 ≥ 2 timesteps -> nothing to run either
    dur = T / FRAMES_PER_SECOND + 1e-6
    out = official.text2music_diffusion_process(
        wrapped, _cond(), duration=dur, noise=_noise(4), retake_noise=_noise(5), add_retake_noise=True,
        retake_variance=0.5, src_latents=src, repaint_start=2 / FRAMES_PER_SECOND + 1e-6,
        repaint_end=5 / FRAMES_PER_SECOND + 1e-6, oss_steps=[2, 8], guidance_scale=5.0)
    assert torch.equal(out, src) and wrapped.calls == 0


@pytest.mark.parametrize("scheduler", ["euler", "pingpong"])
def test_flowedit_identity_edit_keeps_source(dit, scheduler):
    # same source and target conditioning, no guidance, edit over all steps: V_tar − V_src ≈ 0
    # (pingpong too: the edit phase is FlowEdit's ODE whatever the sampler)
    src = _noise(3)
    out = E.flowedit(dit, _cond(), _cond(), src, steps=4, guidance_scale=1.0, n_max=1.0, n_avg=2,
                     scheduler=scheduler, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, src, atol=1e-5)


def test_double_condition_with_equal_scales_is_cfg(dit):
    # (1−g)·u + 0·text + g·c == CFG at g; guidance_scale / cfg_type / decay are not used by it
    base = dict(noise=_noise(1), steps=3, guidance_interval=1.0, use_erg_diffusion=False)
    a = SMP.sample(dit, _cond(), guidance_scale=9.0, cfg_type="apg", guidance_interval_decay=1.0,
                   guidance_scale_text=4.0, guidance_scale_lyric=4.0, **base)
    b = SMP.sample(dit, _cond(), guidance_scale=4.0, cfg_type="cfg", **base)
    assert torch.allclose(a, b, atol=1e-4)


def test_pingpong_noise_is_the_in_place_normal_stream():
    # the official scheduler draws torch.empty_like(x).normal_(generator=g): same numbers as randn
    x, v = torch.randn(2, 8, 16, 3), torch.randn(2, 8, 16, 3)
    s, sn = torch.tensor(0.7), torch.tensor(0.4)
    out = S.pingpong_step(v, x, s, sn, torch.Generator().manual_seed(5))
    eps = torch.empty_like(x).normal_(generator=torch.Generator().manual_seed(5))
    assert torch.allclose(out, (1 - sn) * (x - s * v) + sn * eps, atol=1e-6)
