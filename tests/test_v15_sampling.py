"""Unit tests of the ACE-Step 1.5 schedules, DCW, sampling loops (stub velocities), repaint, silence."""

from __future__ import annotations

import math

import pytest
import torch

from ace_core.errors import CheckpointError, InputError
from ace_core.sampling.guidance import MomentumBuffer, apg_forward
from ace_core.v15 import conditioning as C
from ace_core.v15 import repaint as R
from ace_core.v15 import sampling as SM
from ace_core.v15 import schedules as S
from ace_core.v15 import silence as SL
from ace_core.v15.dcw import DCW_OFF, DCWSettings, default_dcw, haar_dwt, haar_idwt

B, T, CH = 2, 10, 64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _cond(batch: int = B, frames: int = T, length: int = 5, width: int = 8, seed: int = 0) -> SM.DiTCondition:
    g = _gen(seed)
    return SM.DiTCondition(torch.randn(batch, length, width, generator=g),
                           torch.ones(batch, length, dtype=torch.bool),
                           torch.randn(batch, frames, 2 * CH, generator=g))


def _noise(seed: int = 1, batch: int = B, frames: int = T) -> torch.Tensor:
    return torch.randn(batch, frames, CH, generator=_gen(seed))


class Recorder:
    """A stub velocity: ``v = a·x + b`` (+ cond-dependent offset); records every call."""

    def __init__(self, a: float = 0.3, b: float = 0.1, cond_offset: bool = False):
        self.a, self.b, self.cond_offset = a, b, cond_offset
        self.calls = []

    def __call__(self, x, t, cond):
        self.calls.append((x.clone(), t, cond))
        v = self.a * x + self.b
        if self.cond_offset:  # item-wise offset from the encoder states: differs for cond and null
            v = v + cond.encoder_hidden_states.mean(dim=(1, 2))[:, None, None]
        return v


class ExactX0:
    """The exact flow velocity towards a fixed x0: v = (x − x0)/t."""

    def __init__(self, x0):
        self.x0 = x0

    def __call__(self, x, t, cond):
        return (x - self.x0) / t


# ------------------------------------------------------------------------------------------------
# schedules
# ------------------------------------------------------------------------------------------------
def test_turbo_continuous_equals_tables_at_8_steps():
    for shift, table in S.TURBO_SHIFT_TABLES.items():
        sc = S.turbo_schedule(8, shift)
        assert torch.equal(sc.model_timesteps, torch.tensor(table, dtype=torch.float32))
        assert sc.sigmas[-1] == 0 and sc.steps == 8 and sc.family == "turbo"


def test_turbo_any_step_count_and_continuous_shift():
    sc = S.turbo_schedule(4, 2.5)
    expected = [2.5 * t / (1 + 1.5 * t) for t in (1.0, 0.75, 0.5, 0.25)] + [0.0]
    assert torch.allclose(sc.sigmas, torch.tensor(expected), atol=0, rtol=0)
    assert S.turbo_schedule(1, 3.0).values() == [1.0]
    assert S.turbo_schedule(20, 1.0).steps == 20
    for bad in (0, 21, 2.5, -1):
        with pytest.raises(InputError, match="steps"):
            S.turbo_schedule(bad, 3.0)
    for bad in (0.0, -1.0):
        with pytest.raises(InputError, match="shift"):
            S.turbo_schedule(8, bad)


def test_turbo_legacy_rounds_shift():
    assert S.legacy_turbo_shift(2.5) == 2.0 and S.legacy_turbo_shift(1.5) == 1.0
    assert S.legacy_turbo_shift(0.2) == 1.0 and S.legacy_turbo_shift(9.0) == 3.0
    assert S.turbo_schedule(None, 2.4).values() == S.turbo_schedule(8, 2.0).values()


def test_turbo_custom_timesteps_snap():
    assert S.snap_turbo_timesteps([0.97, 0.8, 0.0, 0.0]) == [0.9545454545454546, 0.7692307692307693]
    assert S.snap_turbo_timesteps([0.0]) == []
    # empty after trailing zeros: the steps/shift path
    assert S.turbo_schedule(8, 3.0, [0.0]).values() == S.turbo_schedule(8, 3.0).values()
    long = [1 - i / 30 for i in range(30)]
    assert len(S.snap_turbo_timesteps(long)) == 20
    assert set(S.snap_turbo_timesteps(long)) <= set(S.TURBO_VALID_TIMESTEPS)
    assert len(S.TURBO_VALID_TIMESTEPS) == 20
    with pytest.raises(InputError, match="decreasing"):
        S.turbo_schedule(8, 3.0, [0.5, 0.9])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        S.turbo_schedule(8, 3.0, [1.5, 0.5])


def test_base_and_sft_schedules():
    sc = S.base_schedule(4, 1.0)
    assert torch.equal(sc.sigmas, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    sc3 = S.base_schedule(4, 3.0)
    assert torch.allclose(sc3.sigmas, torch.tensor([S.shift_time(t, 3.0) for t in (1, .75, .5, .25, 0)]))
    sft = S.base_schedule(timesteps=[0.9, 0.4, 0.0], family="sft")
    assert sft.steps == 2 and sft.values() == [pytest.approx(0.9), pytest.approx(0.4)]
    assert S.make_schedule("sft", 10, 3.0).steps == 10
    with pytest.raises(InputError, match="at least 2"):
        S.base_schedule(timesteps=[0.5])
    with pytest.raises(InputError, match="decreasing"):
        S.base_schedule(timesteps=[0.5, 0.5, 0.0])
    with pytest.raises(InputError, match="shift"):
        S.base_schedule(8, 0.0)
    with pytest.raises(InputError, match="family"):
        S.make_schedule("xl", 8, 3.0)


def test_schedule_nearest_and_truncated():
    sc = S.turbo_schedule(8, 3.0)
    assert sc.nearest_index(1 - 0.2) == 3  # 0.8333 is nearest to 0.8
    assert sc.nearest_index(2.0) == 0
    tr = sc.truncated(3)
    assert tr.steps == 5 and tr.values()[0] == pytest.approx(0.8333333)
    with pytest.raises(InputError):
        sc.truncated(8)


# ------------------------------------------------------------------------------------------------
# DCW
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("frames", [1, 6, 7])
def test_haar_perfect_reconstruction(frames):
    x = torch.randn(2, frames, 3, generator=_gen(3))
    low, high = haar_dwt(x)
    assert low.shape == (2, (frames + 1) // 2, 3)
    assert torch.allclose(haar_idwt(low, high, frames), x, atol=1e-6)
    # orthonormal: energy is kept (the zero pad adds none)
    assert torch.allclose(low.square().sum() + high.square().sum(), x.square().sum(), rtol=1e-5)


def test_dcw_identity_cases():
    x, y = torch.randn(1, 6, 4, generator=_gen(1)), torch.randn(1, 6, 4, generator=_gen(2))
    assert DCW_OFF.apply(x, y, 0.5) is x
    assert DCWSettings(scaler=0.0, high_scaler=0.0).apply(x, y, 0.5) is x
    assert DCWSettings(mode="low", scaler=0.0, high_scaler=0.3).apply(x, y, 0.5) is x
    assert torch.allclose(DCWSettings().apply(x, x.clone(), 0.7), x, atol=1e-6)  # denoised == x
    # double mode at t = 1: the high band has weight 0 and the low band 0.05
    assert DCWSettings().band_scalers(1.0) == (0.05, 0.0)
    assert default_dcw("turbo").is_active and not default_dcw("base").is_active
    with pytest.raises(InputError, match="dcw_mode"):
        DCWSettings(mode="wide")
    with pytest.raises(InputError, match="dcw_scaler"):
        DCWSettings(scaler=-0.1)


def test_dcw_hand_computed():
    # one pair of frames, one channel: x = (a, b), denoised = (c, d)
    a, b, c, d = 1.0, 3.0, 0.5, 2.0
    x, y = torch.tensor([[[a], [b]]]), torch.tensor([[[c], [d]]])
    t, s, hs = 0.6, 0.05, 0.02
    low = t * s * ((a + b) - (c + d)) / 2  # the low band moves both frames equally
    high = (1 - t) * hs * ((a - b) - (c - d)) / 2  # the high band moves them oppositely
    out = DCWSettings(mode="double", scaler=s, high_scaler=hs).apply(x, y, t)
    assert torch.allclose(out.flatten(), torch.tensor([a + low + high, b + low - high]), atol=1e-6)
    out = DCWSettings(mode="low", scaler=s).apply(x, y, t)
    assert torch.allclose(out.flatten(), torch.tensor([a + low, b + low]), atol=1e-6)
    high_only = (1 - t) * s * ((a - b) - (c - d)) / 2
    out = DCWSettings(mode="high", scaler=s).apply(x, y, t)
    assert torch.allclose(out.flatten(), torch.tensor([a + high_only, b - high_only]), atol=1e-6)
    out = DCWSettings(mode="pix", scaler=s).apply(x, y, t)
    assert torch.allclose(out.flatten(), torch.tensor([a + s * (a - c), b + s * (b - d)]), atol=1e-6)
    # odd length: the last frame pairs with a zero pad: it moves by (λ_low + λ_high)·(x − y)/2
    x3, y3 = torch.tensor([[[a], [b], [5.0]]]), torch.tensor([[[c], [d], [1.0]]])
    out = DCWSettings(mode="double", scaler=s, high_scaler=hs).apply(x3, y3, t)
    assert out[0, 2, 0].item() == pytest.approx(5.0 + (t * s + (1 - t) * hs) * 4.0 / 2, abs=1e-6)


# ------------------------------------------------------------------------------------------------
# noise and seeds
# ------------------------------------------------------------------------------------------------
def test_seed_generators_and_noise():
    gens = SM.seed_generators(7, 3)
    noise = SM.draw_noise(gens, (3, T, CH))
    for k in range(3):  # item k is the draw of a generator seeded 7 + k
        assert torch.equal(noise[k:k + 1], torch.randn(1, T, CH, generator=_gen(7 + k)))
    listed = SM.draw_noise(SM.seed_generators([9, 4], 2), (2, T, CH))
    assert torch.equal(listed[1:], torch.randn(1, T, CH, generator=_gen(4)))
    with pytest.raises(InputError, match="batch_size"):
        SM.seed_generators(0, 9)
    with pytest.raises(InputError, match="seeds"):
        SM.seed_generators([1, 2], 3)
    with pytest.raises(InputError, match="generator"):
        SM.draw_noise(None, (1, T, CH))


def test_retake_mix():
    n, r = _noise(1, 4, 400), _noise(2, 4, 400)
    assert SM.mix_retake(n, r, 0.0) is n
    assert torch.allclose(SM.mix_retake(n, r, 1.0), r, atol=1e-6)
    a = 0.3 * math.pi / 2
    assert torch.allclose(SM.mix_retake(n, r, 0.3), math.cos(a) * n + math.sin(a) * r)
    assert abs(SM.mix_retake(n, r, 0.5).std().item() - 1.0) < 0.02  # variance preserving
    x = SM.initial_noise(SM.seed_generators(5, 2), 2, T, retake_generator=SM.seed_generators(50, 2),
                         retake_variance=0.2)
    n5, n50 = SM.draw_noise(SM.seed_generators(5, 2), (2, T, CH)), SM.draw_noise(SM.seed_generators(50, 2), (2, T, CH))
    assert torch.allclose(x, SM.mix_retake(n5, n50, 0.2))
    with pytest.raises(InputError, match="retake_variance"):
        SM.mix_retake(n, r, 1.5)
    with pytest.raises(InputError, match="retake"):
        SM.initial_noise(SM.seed_generators(5, 2), 2, T, retake_variance=0.2)


# ------------------------------------------------------------------------------------------------
# turbo loop
# ------------------------------------------------------------------------------------------------
def _manual_euler(vel, x, times, cond):
    for i in range(len(times) - 1):
        v = vel(x, times[i], cond)
        x = x - v * (times[i] - times[i + 1])
    return x


def test_turbo_euler_matches_manual_loop_and_reports_progress():
    cond, noise = _cond(), _noise()
    sc = S.turbo_schedule(8, 3.0)
    seen = []
    stub = Recorder()
    out = SM.sample(stub, cond, noise, sc, dcw=DCW_OFF, progress=lambda d, n: seen.append((d, n)))
    times = sc.values() + [0.0]
    assert torch.allclose(out, _manual_euler(Recorder(), noise, times, cond), atol=1e-6)
    assert [c[1] for c in stub.calls] == sc.values()  # t passed as the float32 values
    assert seen == [(i + 1, 8) for i in range(8)]
    # the last step is x0 = x − v·t_last
    x7 = stub.calls[-1][0]
    assert torch.allclose(out, x7 - (0.3 * x7 + 0.1) * sc.values()[-1], atol=1e-6)


def test_progress_hook_interrupts():
    def hook(done, total):
        if done == 3:
            raise KeyboardInterrupt

    stub = Recorder()
    with pytest.raises(KeyboardInterrupt):
        SM.sample(stub, _cond(), _noise(), S.turbo_schedule(8, 3.0), progress=hook)
    assert len(stub.calls) == 3


def test_exact_flow_lands_on_x0_with_and_without_dcw_and_sde():
    x0 = torch.randn(B, T, CH, generator=_gen(11))
    for family_schedule in (S.turbo_schedule(8, 3.0), S.base_schedule(6, 3.0)):
        for dcw in (DCW_OFF, DCWSettings()):
            out = SM.sample(ExactX0(x0), _cond(), _noise(), family_schedule, dcw=dcw,
                            guidance=SM.GuidanceSettings(scale=1.0))
            assert torch.allclose(out, x0, atol=1e-5)
        out = SM.sample(ExactX0(x0), _cond(), _noise(), family_schedule, method="sde",
                        generator=SM.seed_generators(3, B), guidance=SM.GuidanceSettings(scale=1.0))
        assert torch.allclose(out, x0, atol=1e-5)


def test_dcw_changes_turbo_result():
    cond, noise = _cond(), _noise()
    off = SM.sample(Recorder(), cond, noise, S.turbo_schedule(8, 3.0), dcw=DCW_OFF)
    on = SM.sample(Recorder(), cond, noise, S.turbo_schedule(8, 3.0))  # turbo default: DCW on
    assert not torch.allclose(on, off) and (on - off).abs().max() < 0.2


def test_sde_renoises_from_the_generator():
    cond, noise, sc = _cond(), _noise(), S.turbo_schedule(4, 3.0)
    a = SM.sample(Recorder(), cond, noise, sc, method="sde", generator=SM.seed_generators(1, B), dcw=DCW_OFF)
    b = SM.sample(Recorder(), cond, noise, sc, method="sde", generator=SM.seed_generators(1, B), dcw=DCW_OFF)
    c = SM.sample(Recorder(), cond, noise, sc, method="sde", generator=SM.seed_generators(2, B), dcw=DCW_OFF)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    # step 0 by hand: x0 = x − v·t, then t_next·ε + (1 − t_next)·x0 with ε from the generator
    stub = Recorder()
    SM.sample(stub, cond, noise, sc, method="sde", generator=SM.seed_generators(1, B), dcw=DCW_OFF)
    t0, t1 = sc.values()[:2]
    eps = SM.draw_noise(SM.seed_generators(1, B), noise.shape)
    x0 = noise - (0.3 * noise + 0.1) * t0
    assert torch.allclose(stub.calls[1][0], t1 * eps + (1 - t1) * x0, atol=1e-6)
    with pytest.raises(InputError, match="generator"):
        SM.sample(Recorder(), cond, noise, sc, method="sde")
    with pytest.raises(InputError, match="infer_method"):
        SM.sample(Recorder(), cond, noise, sc, method="heun")


def test_cover_strength_switches_condition():
    cond, other, noise = _cond(seed=0), _cond(seed=5), _noise()
    stub = Recorder()
    SM.sample(stub, cond, noise, S.turbo_schedule(8, 3.0), non_cover_cond=other, audio_cover_strength=0.5)
    assert [c[2] is cond for c in stub.calls] == [True] * 4 + [False] * 4
    assert all(c[2] is other for c in stub.calls[4:])
    stub = Recorder()
    SM.sample(stub, cond, noise, S.turbo_schedule(8, 3.0), non_cover_cond=other, audio_cover_strength=0.3)
    assert sum(c[2] is cond for c in stub.calls) == 2  # int(8·0.3)
    with pytest.raises(InputError, match="audio_cover_strength"):
        SM.sample(Recorder(), cond, noise, S.turbo_schedule(8, 3.0), audio_cover_strength=0.5)


def test_cover_noise_strength_starts_from_renoised_source():
    cond, noise = _cond(), _noise()
    src = torch.randn(B, T, CH, generator=_gen(21))
    sc = S.turbo_schedule(8, 3.0)
    stub = Recorder()
    seen = []
    SM.sample(stub, cond, noise, sc, cover_src=src, cover_noise_strength=0.2, dcw=DCW_OFF,
              progress=lambda d, n: seen.append(n))
    t_star = sc.values()[3]  # 0.8333, nearest to 0.8
    assert len(stub.calls) == 5 and stub.calls[0][1] == t_star and set(seen) == {5}
    assert torch.allclose(stub.calls[0][0], t_star * noise + (1 - t_star) * src, atol=1e-6)
    with pytest.raises(InputError, match="cover_src"):
        SM.sample(Recorder(), cond, noise, sc, cover_noise_strength=0.2)


# ------------------------------------------------------------------------------------------------
# base / sft loop with guidance
# ------------------------------------------------------------------------------------------------
def test_cfg_batch_uses_null_over_whole_sequence_and_same_context():
    cond, noise = _cond(), _noise()
    null = torch.randn(1, 1, 8, generator=_gen(4))
    stub = Recorder(cond_offset=True)
    SM.sample(stub, cond, noise, S.base_schedule(3, 3.0), null_condition_emb=null)
    x, _, cfg_cond = stub.calls[0]
    assert x.shape[0] == 2 * B and torch.equal(x[:B], x[B:])
    assert torch.equal(cfg_cond.encoder_hidden_states[:B], cond.encoder_hidden_states)
    assert torch.equal(cfg_cond.encoder_hidden_states[B:], null.expand(B, 5, 8))
    assert torch.equal(cfg_cond.context_latents[B:], cond.context_latents)
    assert all(c[2] is cfg_cond for c in stub.calls)  # one condition object: the KV cache is reused
    with pytest.raises(InputError, match="null_condition_emb"):
        SM.sample(Recorder(), cond, noise, S.base_schedule(3, 3.0))


def _manual_base(cond, noise, null, sc, scale, start, end, kind):
    stub = Recorder(cond_offset=True)
    cfg_cond = cond.with_null(null)
    mb = MomentumBuffer(-0.75)
    times = [float(v) for v in sc.sigmas.tolist()]
    x = noise
    for i in range(sc.steps):
        t = times[i]
        vc, vu = stub(torch.cat([x, x]), t, cfg_cond).chunk(2)
        if start <= t <= end:
            v = apg_forward(vc, vu, scale, momentum_buffer=mb, dims=[1]) if kind == "apg" else vu + scale * (vc - vu)
        else:
            v = vc
        x = x - v * (t - times[i + 1])
    return x


@pytest.mark.parametrize("kind", ["apg", "cfg"])
def test_base_guidance_interval(kind):
    cond, noise = _cond(), _noise()
    null = torch.randn(1, 1, 8, generator=_gen(4))
    sc = S.base_schedule(6, 3.0)
    g = SM.GuidanceSettings(7.0, kind, 0.5, 0.95)
    out = SM.sample(Recorder(cond_offset=True), cond, noise, sc, guidance=g, null_condition_emb=null)
    assert torch.allclose(out, _manual_base(cond, noise, null, sc, 7.0, 0.5, 0.95, kind), atol=1e-5)
    unguided = SM.sample(Recorder(cond_offset=True), cond, noise, sc, guidance=SM.GuidanceSettings(1.0))
    assert not torch.allclose(out, unguided)
    assert not g.applies_at(1.0) and g.applies_at(0.95) and g.applies_at(0.5) and not g.applies_at(0.375)


def test_turbo_ignores_guidance():
    cond, noise = _cond(), _noise()
    stub = Recorder()
    SM.sample(stub, cond, noise, S.turbo_schedule(8, 3.0), guidance=SM.GuidanceSettings(7.0))
    assert stub.calls[0][0].shape[0] == B
    with pytest.raises(InputError, match="guidance"):
        SM.GuidanceSettings(7.0, "adg")
    with pytest.raises(InputError, match="cfg_interval"):
        SM.GuidanceSettings(7.0, "apg", 0.9, 0.5)


# ------------------------------------------------------------------------------------------------
# repaint
# ------------------------------------------------------------------------------------------------
def test_region_frames_and_padding_plan():
    assert R.region_frames(0.4, 1.0, 50) == (10, 25)
    assert R.region_frames(1.2, 10.0, 50) == (30, 50)
    assert R.region_frames(3.0, 4.0, 50) == (49, 50)  # start clamped to T−1, end to start+1
    assert R.region_frames(-1.0, 0.5, 100) == (0, 37)  # a negative start counts from the padding
    with pytest.raises(InputError, match="repainting_end"):
        R.region_frames(2.0, 1.0, 50)
    plan = R.outpaint_plan(10 * 48000, -2.0, 12.5)
    assert (plan.left_samples, plan.right_samples) == (96000, 120000)
    assert (plan.start_sec, plan.end_sec) == (0.0, 14.5)
    wav = torch.ones(1, 2, 10 * 48000)
    padded = plan.pad(wav)
    assert padded.shape[-1] == 10 * 48000 + 216000 and padded[..., :96000].abs().sum() == 0
    inner = R.outpaint_plan(10 * 48000, 2.0, None)
    assert (inner.left_samples, inner.right_samples, inner.end_sec) == (0, 0, 10.0)


def test_masks_and_source_latents():
    regions = [(2, 5), (3, 6), None]
    chunk, rep = R.repaint_masks(regions, 8, chunk_mask_mode=["explicit", "auto", "explicit"])
    assert chunk[0].tolist() == [False, False, True, True, True, False, False, False]
    assert chunk[1].all() and chunk[2].all()  # auto: all ones (upstream's bool cast)
    assert rep[1].tolist() == [False, False, False, True, True, True, False, False] and rep[2].all()
    chunk, rep = R.repaint_masks([None, None], 8)
    assert rep is None and chunk.all()
    assert R.DEFAULT_CHUNK_MASK_MODE == "explicit"
    with pytest.raises(InputError, match="chunk_mask_mode"):
        R.repaint_masks([(1, 2)], 8, chunk_mask_mode="model")
    assert R.expand_chunk_mask(torch.tensor([[True, False]])).shape == (1, 2, 64)
    clean = torch.randn(2, 8, CH, generator=_gen(2))
    silence = SL.silence_latent(20)
    src = R.repaint_src_latents(clean, [(2, 5), None], silence)
    assert torch.equal(src[0, 2:5], silence[0, 2:5]) and torch.equal(src[0, :2], clean[0, :2])
    assert torch.equal(src[1], clean[1])
    assert torch.equal(R.repaint_src_latents(clean, [(2, 5), None], silence, lego=True), clean)


def test_repaint_config_presets():
    assert R.resolve_repaint_config("balanced", 0.5) == R.RepaintConfig(0.5, 12, 0.025)
    assert R.resolve_repaint_config("conservative", 0.9) == R.RepaintConfig(1.0, 25, 0.05)
    agg = R.resolve_repaint_config("aggressive")
    assert (agg.injection_ratio, agg.crossfade_frames, agg.splice) == (0.0, 0, False)
    assert R.resolve_repaint_config("balanced", 2.0).injection_ratio == 0.0
    with pytest.raises(InputError, match="repaint_mode"):
        R.resolve_repaint_config("wild")


def test_soft_mask_and_blend():
    mask = torch.zeros(1, 10, dtype=torch.bool)
    mask[0, 4:6] = True
    soft = R.soft_mask(mask, 2)
    assert torch.allclose(soft[0], torch.tensor([0, 0, 1 / 3, 2 / 3, 1, 1, 2 / 3, 1 / 3, 0, 0.]))
    full = torch.ones(1, 10, dtype=torch.bool)
    assert torch.equal(R.soft_mask(full, 3), torch.ones(1, 10))
    x, clean = torch.randn(1, 10, CH, generator=_gen(1)), torch.randn(1, 10, CH, generator=_gen(2))
    out = R.boundary_blend(x, clean, mask, 2)
    assert torch.equal(out[0, :2], clean[0, :2]) and torch.allclose(out[0, 4:6], x[0, 4:6])
    injected = R.inject_source(x, clean, mask, 0.25, torch.zeros_like(x))
    assert torch.allclose(injected[0, 0], 0.75 * clean[0, 0]) and torch.equal(injected[0, 4], x[0, 4])


def test_repaint_in_the_loop():
    cond, noise = _cond(), _noise()
    clean = torch.randn(B, T, CH, generator=_gen(8))
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[:, 3:6] = True
    # base: injection after every step (ratio 1) including the last: outside = the source
    guide = R.RepaintGuide(mask, clean, injection_ratio=1.0, crossfade_frames=0)
    out = SM.sample(Recorder(), cond, noise, S.base_schedule(4, 3.0), guidance=SM.GuidanceSettings(1.0), repaint=guide)
    assert torch.allclose(out[:, :3], clean[:, :3]) and not torch.allclose(out[:, 3:6], clean[:, 3:6])
    # turbo never injects after its x0 step: without the blend the outside is generated
    out = SM.sample(Recorder(), cond, noise, S.turbo_schedule(8, 3.0), repaint=guide)
    assert not torch.allclose(out[:, :3], clean[:, :3])
    # with the blend the outside beyond the ramps is the source exactly
    guide = R.RepaintGuide(mask, clean, injection_ratio=0.5, crossfade_frames=2)
    stub = Recorder()
    out = SM.sample(stub, cond, noise, S.turbo_schedule(8, 3.0), repaint=guide, dcw=DCW_OFF)
    assert torch.equal(out[:, :1], clean[:, :1]) and torch.equal(out[:, 8:], clean[:, 8:])
    # the injection: after step 0 the outside frames are t1·noise + (1 − t1)·clean
    t1 = S.turbo_schedule(8, 3.0).values()[1]
    assert torch.allclose(stub.calls[1][0][:, :3], t1 * noise[:, :3] + (1 - t1) * clean[:, :3], atol=1e-6)
    assert not torch.allclose(stub.calls[5][0][:, :3], stub.calls[5][1] * noise[:, :3] + (1 - stub.calls[5][1]) * clean[:, :3])


def test_waveform_splice():
    sr = 100
    decoded, source = torch.full((2, 2, 300), 2.0), torch.full((1, 2, 280), 1.0)
    out = R.waveform_splice(decoded, source, [1.0, 0.0], [2.0, 5.0], sample_rate=sr, crossfade_sec=0.03)
    assert out.shape == (2, 2, 300)
    assert torch.equal(out[0, :, :97], torch.ones(2, 97)) and torch.equal(out[0, :, 100:200], decoded[0, :, 100:200])
    assert torch.allclose(out[0, 0, 97:100], 1 + torch.tensor([0.25, 0.5, 0.75]))  # ramp on the kept side
    assert torch.equal(out[0, :, 203:280], torch.ones(2, 77))
    assert torch.equal(out[:, :, 280:], decoded[:, :, 280:])  # decoded tail kept
    assert torch.equal(out[1], decoded[1])  # the region covers everything
    with pytest.raises(InputError):
        R.waveform_splice(decoded, source, [1.0], [2.0])


# ------------------------------------------------------------------------------------------------
# silence latent
# ------------------------------------------------------------------------------------------------
def test_silence_pattern_and_source(tmp_path):
    s = SL.silence_latent(12)
    assert s.shape == (1, 12, 64) and s.dtype == torch.float32
    assert torch.equal(s[0, 0], torch.tensor(SL.SILENCE_HEAD[0]))
    assert torch.equal(s[0, 4:], torch.tensor(SL.SILENCE_FRAME).expand(8, 64))
    assert len(SL.SILENCE_HEAD) == 4 and all(len(r) == 64 for r in SL.SILENCE_HEAD)
    assert SL.silence_latent(2, dtype=torch.bfloat16).shape == (1, 2, 64)
    src = torch.arange(3 * 64, dtype=torch.float32).reshape(1, 3, 64)
    tiled = SL.silence_latent(7, source=src)
    assert torch.equal(tiled[0, 3:6], src[0]) and torch.equal(tiled[0, 6], src[0, 0])
    with pytest.raises(InputError):
        SL.silence_latent(0)
    # the .pt layout: [1, 64, S] -> [1, S, 64]
    path = tmp_path / "silence_latent.pt"
    torch.save(src.transpose(1, 2).contiguous(), path)
    assert torch.equal(SL.load_silence_latent(path), src)
    torch.save(torch.zeros(1, 32, 5), path)
    with pytest.raises(CheckpointError, match="silence_latent.pt"):
        SL.load_silence_latent(path)
    with pytest.raises(CheckpointError, match="not found"):
        SL.load_silence_latent(tmp_path / "missing.pt")
    torch.save({"x": Recorder()}, path)  # arbitrary pickles are refused (weights_only)
    with pytest.raises(CheckpointError):
        SL.load_silence_latent(path)


# ------------------------------------------------------------------------------------------------
# conditioning glue and the DiT adapter
# ------------------------------------------------------------------------------------------------
class _StubModel:
    def __init__(self):
        self.tokenize_calls = 0
        outer = self

        class Tok:
            def tokenize(self, x, silence, mask):
                outer.tokenize_calls += 1
                assert torch.equal(mask, torch.ones(x.shape[:2]))
                return x[:, ::5] * 0 + 7.0, None, None

        self.tokenizer = Tok()
        self.detokenizer = lambda q: q.repeat_interleave(5, dim=1)
        self.encoder = lambda *a: (torch.ones(2, 3, 8), torch.ones(2, 3, dtype=torch.bool))


def test_prepare_condition_covers_use_hints():
    model = _StubModel()
    src = torch.randn(2, 7, CH, generator=_gen(1))
    kw = dict(text_hidden_states=None, text_attention_mask=None, lyric_hidden_states=None,
              lyric_attention_mask=None, refer_packed=None, refer_order=None, src_latents=src,
              chunk_masks=torch.ones(2, 7, dtype=torch.bool), silence_latent=SL.silence_latent(10))
    cond = C.prepare_condition(model, is_covers=torch.tensor([0, 1]), **kw)
    assert cond.context_latents.shape == (2, 7, 128)
    assert torch.equal(cond.context_latents[0, :, :64], src[0])
    assert torch.equal(cond.context_latents[1, :, :64], torch.full((7, 64), 7.0))
    assert torch.equal(cond.context_latents[..., 64:], torch.ones(2, 7, 64))
    cond = C.prepare_condition(model, is_covers=torch.tensor([0, 0]), **kw)
    assert model.tokenize_calls == 1  # no cover: no FSQ round trip
    with pytest.raises(InputError, match="chunk_masks"):
        C.context_latents(src, torch.ones(2, 6))


def test_dit_velocity_caches_cross_kv_per_condition():
    class Decoder:
        dtype, device = torch.float32, torch.device("cpu")
        builds = 0

        def precompute_cross_kv(self, enc):
            Decoder.builds += 1
            return enc.sum()

        def __call__(self, x, t, r, enc, ctx, cross_kv=None):
            assert enc is None and torch.equal(t, r) and t.shape == (x.shape[0],)
            return x * 0 + t[:, None, None] + cross_kv

    vel = SM.DiTVelocity(Decoder())
    c1, c2 = _cond(seed=1), _cond(seed=2)
    out = SM.sample(vel, c1, _noise(), S.turbo_schedule(8, 3.0), non_cover_cond=c2, audio_cover_strength=0.5)
    assert Decoder.builds == 2 and out.dtype == torch.float32
