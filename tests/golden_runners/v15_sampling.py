"""Golden runners for the ACE-Step 1.5 schedules, sampling loops and repaint.

Components: ``v15.schedule`` (JSON only), ``v15.sample`` (turbo and base+APG), ``v15.repaint``.
"""

from __future__ import annotations

import torch

from ace_core.v15 import schedules as S


def _f32(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


# ------------------------------------------------------------------------------------------------
# v15.schedule
# ------------------------------------------------------------------------------------------------
def run_schedule(fx) -> None:
    meta = fx.meta
    # the fixed tables and the snapping set
    for shift, table in meta["turbo_tables"].items():
        got = S.turbo_schedule(None, float(shift)).model_timesteps
        fx.check(f"turbo_tables[{shift}]", got, _f32(table))
        # current upstream: the continuous formula at 8 steps equals the table
        fx.check(f"turbo_tables[{shift}].continuous_8", S.turbo_schedule(8, float(shift)).model_timesteps,
                 _f32(table))
    fx.check("turbo_valid_timesteps", torch.tensor(S.TURBO_VALID_TIMESTEPS, dtype=torch.float64),
             torch.tensor(meta["turbo_valid_timesteps"], dtype=torch.float64))
    # turbo cases: infer_steps was ignored by the reference -> the legacy (steps=None) path
    for k, case in enumerate(meta["turbo"]):
        sc = S.turbo_schedule(None, case["shift"], case.get("timesteps_input"))
        fx.check(f"turbo[{k}].timesteps_used", sc.model_timesteps, _f32(case["timesteps_used"]))
        fx.check(f"turbo[{k}].final_zero", sc.sigmas[-1:], torch.zeros(1))
    for k, case in enumerate(meta["base"]):
        sc = S.base_schedule(case["infer_steps"], case["shift"])
        fx.check(f"base[{k}].t_full_float32", sc.sigmas, _f32(case["t_full_float32"]))
        fx.check(f"base[{k}].timesteps_model_calls", sc.model_timesteps, _f32(case["timesteps_model_calls"]))
    sft = meta["sft_custom"]
    sc = S.base_schedule(shift=3.0, timesteps=sft["timesteps_input"], family="sft")
    fx.check("sft_custom.timesteps_model_calls", sc.model_timesteps, _f32(sft["timesteps_model_calls"]))
    fx.check("sft_custom.steps", torch.tensor(sc.steps), torch.tensor(len(sft["timesteps_input"]) - 1))


# ------------------------------------------------------------------------------------------------
# v15.sample / v15.repaint (the whole model.safetensors key set, loaded strictly)
# ------------------------------------------------------------------------------------------------
def load_model(fx):
    from ace_core.v15.config import AceStep15Config
    from ace_core.v15.model import AceStep15Model

    model = AceStep15Model(AceStep15Config.from_dict(fx.config), dtype=torch.float32).eval()
    model.load_state_dict(fx.state_dict, strict=True)
    return model


def _condition(fx, model, src_latents, chunk_masks, is_covers, silence):
    from ace_core.v15.conditioning import prepare_condition

    inp = fx.inputs
    return prepare_condition(
        model, text_hidden_states=inp["text_hidden_states"], text_attention_mask=inp["text_attention_mask"],
        lyric_hidden_states=inp["lyric_hidden_states"], lyric_attention_mask=inp["lyric_attention_mask"],
        refer_packed=inp["refer_audio_acoustic_hidden_states_packed"],
        refer_order=inp["refer_audio_order_mask"], src_latents=src_latents, chunk_masks=chunk_masks,
        is_covers=is_covers, silence_latent=silence)


def run_sample(fx) -> None:
    from ace_core.v15.dcw import DCW_OFF
    from ace_core.v15.sampling import DiTVelocity, GuidanceSettings, sample

    model, inp, args = load_model(fx), fx.inputs, fx.args
    cond = _condition(fx, model, inp["src_latents"], inp["chunk_masks"], inp["is_covers"], inp["silence_latent"])
    velocity = DiTVelocity(model.decoder)
    if "diffusion_guidance_scale" in args:  # base / sft with CFG + APG
        assert args["apg"]["dims"] == [1] and args["apg"]["momentum"] == -0.75 and not args["use_adg"]
        schedule = S.base_schedule(args["infer_steps"], args["shift"])
        fx.check("timesteps", schedule.sigmas)
        guidance = GuidanceSettings(args["diffusion_guidance_scale"], "apg",
                                    args["cfg_interval_start"], args["cfg_interval_end"])
        x0 = sample(velocity, cond, inp["noise"], schedule, method=args["infer_method"], guidance=guidance,
                    null_condition_emb=model.null_condition_emb, dcw=DCW_OFF)
    else:  # turbo (the fixture predates DCW: off)
        fx.check("encoder_hidden_states", cond.encoder_hidden_states)
        fx.check("encoder_attention_mask", cond.encoder_attention_mask)
        fx.check("context_latents", cond.context_latents)
        schedule = S.turbo_schedule(args["fix_nfe"], args["shift"], args["timesteps"])
        fx.check("schedule", schedule.model_timesteps, _f32(args["schedule"]))
        x0 = sample(velocity, cond, inp["noise"], schedule, method=args["infer_method"], dcw=DCW_OFF,
                    audio_cover_strength=args["audio_cover_strength"],
                    cover_noise_strength=args["cover_noise_strength"])
    fx.check("target_latents", x0)


def run_repaint(fx) -> None:
    from ace_core.v15 import repaint as R
    from ace_core.v15.dcw import DCW_OFF
    from ace_core.v15.sampling import DiTVelocity, sample

    model, inp, args = load_model(fx), fx.inputs, fx.args
    clean = inp["clean_src_latents"]
    frames = clean.shape[1]
    assert frames == args["max_latent_length"]
    regions = [R.region_frames(s, e, frames, sample_rate=args["sample_rate"], hop=args["latent_hop"])
               for s, e in zip(args["repainting_start"], args["repainting_end"])]
    assert [["repainting", a, b] for a, b in regions] == args["spans"]
    chunk, repaint_mask = R.repaint_masks(regions, frames, chunk_mask_mode=args["chunk_mask_modes"])
    src = R.repaint_src_latents(clean, regions, inp["silence_latent"])
    is_covers = torch.zeros(clean.shape[0], dtype=torch.bool)
    fx.check("chunk_masks_bool", chunk)
    fx.check("chunk_masks", R.expand_chunk_mask(chunk))
    fx.check("repaint_mask", repaint_mask)
    fx.check("src_latents", src)
    fx.check("is_covers", is_covers)
    config = R.resolve_repaint_config(args["repaint_mode"], args["repaint_strength"])
    fx.check("repaint_config", torch.tensor([config.injection_ratio, config.crossfade_frames,
                                             config.wav_crossfade_sec], dtype=torch.float64),
             torch.tensor([args["repaint_injection_ratio"], args["repaint_crossfade_frames"],
                           args["repaint_wav_crossfade_sec"]], dtype=torch.float64))
    cond = _condition(fx, model, src, R.expand_chunk_mask(chunk), is_covers, inp["silence_latent"])
    guide = R.RepaintGuide(repaint_mask, clean, config.injection_ratio, config.crossfade_frames)
    x0 = sample(DiTVelocity(model.decoder), cond, inp["noise"], S.turbo_schedule(None, args["shift"]),
                method=args["infer_method"], dcw=DCW_OFF, repaint=guide)
    fx.check("target_latents", x0)


RUNNERS = {
    "v15.schedule": run_schedule,
    "v15.sample": run_sample,
    "v15.repaint": run_repaint,
}
