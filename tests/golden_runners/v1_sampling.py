"""Golden runners for the v1 schedules, guidance and sampling / editing loops.

Components: ``v1.schedule`` (JSON only), ``v1.apg``, ``v1.sample``, ``v1.retake``, ``v1.repaint``,
``v1.extend``, ``v1.edit`` (FlowEdit). Every value is read from the fixture (``args`` holds the
official keywords as passed; tensors come from ``input.*``).
"""

from __future__ import annotations

import inspect
import re

import pytest
import torch

from ace_core.sampling import guidance as G
from ace_core.v1 import schedulers as S
from ace_core.v1.editing import flowedit
from ace_core.v1.official import text2music_diffusion_process
from ace_core.v1.sampling import Conditioning

from .v1_dit import load_dit


# ------------------------------------------------------------------------------------------------
# v1.schedule
# ------------------------------------------------------------------------------------------------
def run_schedule(fx) -> None:
    exp = fx.meta["expected"]
    n_train = int(fx.config.get("num_train_timesteps", S.NUM_TRAIN_TIMESTEPS))
    for k, e in enumerate(exp.get("schedules", [])):
        sc = S.make_schedule(e["scheduler"], e["steps"], e["shift"], num_train_timesteps=n_train)
        tag = f"schedules[{k}]:{e['scheduler']}/shift{e['shift']}/steps{e['steps']}"
        fx.check(f"{tag}.num_inference_steps", torch.tensor(sc.num_inference_steps),
                 torch.tensor(e["num_inference_steps"]))
        fx.check(f"{tag}.timesteps", sc.timesteps, torch.tensor(e["timesteps"], dtype=torch.float32))
        fx.check(f"{tag}.sigmas", sc.sigmas, torch.tensor(e["sigmas"], dtype=torch.float32))
    for k, e in enumerate(exp.get("omega", [])):
        fx.check(f"omega[{k}]", torch.tensor(S.omega_rescale(e["omega_scale"]), dtype=torch.float64),
                 torch.tensor(e["omega_rescaled"], dtype=torch.float64))
    for k, e in enumerate(exp.get("audio2audio", [])):
        tag = f"audio2audio[{k}]:{e['scheduler']}/strength{e['ref_audio_strength']}/steps{e['steps']}"
        sigma_max, n = S.audio2audio_plan(e["steps"], e["ref_audio_strength"])
        sc = S.make_schedule(e["scheduler"], n, 3.0, sigma_max=sigma_max)
        fx.check(f"{tag}.sigma_max_arg", torch.tensor(sigma_max, dtype=torch.float64),
                 torch.tensor(e["sigma_max_arg"], dtype=torch.float64))
        fx.check(f"{tag}.num_inference_steps", torch.tensor(n), torch.tensor(e["num_inference_steps"]))
        fx.check(f"{tag}.mix_sigma", torch.tensor(sc.sigma_max, dtype=torch.float64),
                 torch.tensor(e["mix_sigma"], dtype=torch.float64))
        fx.check(f"{tag}.start_timestep", sc.timesteps[0], torch.tensor(e["start_timestep"], dtype=torch.float32))
        fx.check(f"{tag}.timesteps", sc.timesteps, torch.tensor(e["timesteps"], dtype=torch.float32))
        fx.check(f"{tag}.sigmas", sc.sigmas, torch.tensor(e["sigmas"], dtype=torch.float32))
        # the mix itself, on a small synthetic pair
        gt, noise = torch.ones(1, 8, 16, 2), torch.zeros(1, 8, 16, 2)
        noisy, _ = S.add_latents_noise(gt, noise, e["scheduler"], e["steps"], e["ref_audio_strength"])
        fx.check(f"{tag}.noisy", noisy, torch.full_like(gt, 1 - e["mix_sigma"]))
    for k, e in enumerate(exp.get("guidance_interval", [])):
        got = G.guidance_interval_bounds(e["steps"], e["guidance_interval"])
        fx.check(f"guidance_interval[{k}]", torch.tensor(got), torch.tensor([e["start_idx"], e["end_idx"]]))


# ------------------------------------------------------------------------------------------------
# v1.apg
# ------------------------------------------------------------------------------------------------
def _indices(fx) -> list[int]:
    ks = sorted(int(name.split("_")[-1]) for name in fx.inputs if name.startswith("cond_"))
    steps = fx.args.get("steps")
    assert steps is None or steps == len(ks), f"{fx.stem}: args.steps {steps} != {len(ks)} inputs"
    return ks


def run_apg(fx) -> None:
    fn = fx.args["function"]
    cfg, args, inp = fx.config, fx.args, fx.inputs
    scale = args["guidance_scale"]
    if fn == "apg_forward":
        mb = G.MomentumBuffer(momentum=cfg.get("momentum", -0.75))
        for k in _indices(fx):
            out = G.apg_forward(inp[f"cond_{k}"], inp[f"uncond_{k}"], scale, momentum_buffer=mb,
                                eta=cfg.get("eta", 0.0), norm_threshold=cfg.get("norm_threshold", 2.5),
                                dims=tuple(cfg.get("dims", (-1, -2))))
            fx.check(f"guided_{k}", out)
    elif fn == "cfg_forward":
        for k in _indices(fx):
            fx.check(f"guided_{k}", G.cfg_forward(inp[f"cond_{k}"], inp[f"uncond_{k}"], scale))
    elif fn == "cfg_zero_star":
        zero_steps = args.get("zero_steps", cfg.get("zero_steps", 1))
        step_indices = args["step_indices"]
        for k in _indices(fx):
            c, u, i = inp[f"cond_{k}"], inp[f"uncond_{k}"], step_indices[k]
            fx.check(f"guided_{k}", G.cfg_zero_star(c, u, scale, i, zero_steps=zero_steps, use_zero_init=True))
            if f"guided_nozero_{k}" in fx.outputs:
                fx.check(f"guided_nozero_{k}",
                         G.cfg_zero_star(c, u, scale, i, zero_steps=zero_steps, use_zero_init=False))
    elif fn == "cfg_double_condition_forward":
        for k in _indices(fx):
            out = G.cfg_double_condition_forward(inp[f"cond_{k}"], inp[f"uncond_{k}"], inp[f"only_text_{k}"],
                                                 args["guidance_scale_text"], args["guidance_scale_lyric"])
            fx.check(f"guided_{k}", out)
    else:
        raise AssertionError(f"{fx.stem}: unknown apg function {fn!r}")


# ------------------------------------------------------------------------------------------------
# loops
# ------------------------------------------------------------------------------------------------
_COND_INPUTS = {"encoder_text_hidden_states", "text_attention_mask", "speaker_embds",
                "lyric_token_ids", "lyric_mask"}
_NOISE_INPUTS = {"noise_target": "noise", "noise_retake": "retake_noise"}


def run_loop(fx) -> None:
    inp = dict(fx.inputs)
    cond = Conditioning(
        text_states=inp["encoder_text_hidden_states"],
        text_mask=inp["text_attention_mask"],
        speaker_embeds=inp.get("speaker_embds"),
        lyric_ids=inp["lyric_token_ids"],
        lyric_mask=inp["lyric_mask"],
    )
    params = set(inspect.signature(text2music_diffusion_process).parameters)
    kwargs = {}
    for key, value in fx.args.items():
        assert key in params, f"{fx.stem}: official keyword {key!r} not supported"
        if value is None and key in inp:
            continue  # a tensor argument, taken from the inputs below
        kwargs[key] = value
    for name, tensor in inp.items():
        if name in _COND_INPUTS:
            continue
        key = _NOISE_INPUTS.get(name, name)
        assert key in params, f"{fx.stem}: input {name!r} has no matching keyword"
        kwargs[key] = tensor
    if kwargs.get("oss_steps") is None:
        kwargs["oss_steps"] = ()
    dit = load_dit(fx)
    with torch.no_grad():
        out = text2music_diffusion_process(dit, cond, **kwargs)
    fx.check("latent", out)


# ------------------------------------------------------------------------------------------------
# v1.edit (FlowEdit, official ``flowedit_diffusion_process``)
# ------------------------------------------------------------------------------------------------
# official keyword -> flowedit() keyword
_EDIT_ARGS = {"infer_steps": "steps", "guidance_scale": "guidance_scale", "n_min": "n_min",
              "n_max": "n_max", "n_avg": "n_avg", "scheduler_type": "scheduler"}
_EDIT_DEFAULTS = {"infer_steps": 60, "guidance_scale": 15.0, "n_min": 0, "n_max": 1.0, "n_avg": 1,
                  "scheduler_type": "euler"}
# official argument names of the two conditionings: (source name, target name, Conditioning field)
_EDIT_COND = [
    ("encoder_text_hidden_states", "target_encoder_text_hidden_states", "text_states"),
    ("text_attention_mask", "target_text_attention_mask", "text_mask"),
    ("speaker_embds", "target_speaker_embeds", "speaker_embeds"),
    ("lyric_token_ids", "target_lyric_token_ids", "lyric_ids"),
    ("lyric_mask", "target_lyric_mask", "lyric_mask"),
]
_EDIT_OPTIONAL = {"speaker_embds", "target_speaker_embeds"}  # absent = zeros (what the pipeline passes)
_NOISE_K = re.compile(r"^noise_(\d+)$")


def _edit_skip(fx, what: str) -> None:
    pytest.skip(f"v1.edit fixture layout not recognised: {fx.stem}: {what}")


def _edit_draw_count(steps: int, n_min: float, n_max: float, n_avg: int) -> tuple[int, int, int]:
    """(forward-noise draws, edit-phase steps, target-only steps) of one official FlowEdit run.

    Edit steps ``int(steps·n_min) <= i < int(steps·n_max)`` draw ``n_avg`` noises each; the first
    target-only step draws one more. pingpong adds one scheduler noise per model step (the caller).
    """
    i_min, i_max = int(steps * n_min), int(steps * n_max)
    edit = max(min(i_max, steps) - i_min, 0)
    tail = max(steps - max(i_max, i_min), 0)
    return edit * n_avg + (1 if tail else 0), edit, tail


def _edit_noises(fx, inp: dict, src: torch.Tensor) -> list:
    numbered = {name: int(m.group(1)) for name in inp if (m := _NOISE_K.match(name))}
    if numbered and "noises" in inp:
        _edit_skip(fx, "both input.noises and input.noise_<k> are present")
    if "noises" in inp:
        stacked = inp["noises"]
        if stacked.ndim == src.ndim + 1 and tuple(stacked.shape[1:]) == tuple(src.shape):
            return list(stacked.unbind(0))
        if stacked.ndim == src.ndim and src.shape[0] == 1 and tuple(stacked.shape[1:]) == tuple(src.shape[1:]):
            return [d.unsqueeze(0) for d in stacked.unbind(0)]
        _edit_skip(fx, f"input.noises has shape {tuple(stacked.shape)}; expected (K, *{tuple(src.shape)})")
    if numbered:
        ks = sorted(numbered.values())
        if ks != list(range(ks[0], ks[0] + len(ks))) or ks[0] not in (0, 1):
            _edit_skip(fx, f"input.noise_<k> indices {ks} are not consecutive from 0 or 1")
        by_k = {k: name for name, k in numbered.items()}
        draws = [inp[by_k[k]] for k in ks]
        for k, d in zip(ks, draws):
            if tuple(d.shape) != tuple(src.shape):
                _edit_skip(fx, f"input.noise_{k} has shape {tuple(d.shape)}, src_latents {tuple(src.shape)}")
        return draws
    return []


def run_edit(fx) -> None:
    """``flowedit_diffusion_process``: ``args`` = its keywords as passed; ``input.*`` = the source
    conditioning and ``target_*`` conditioning under the official argument names, ``src_latents``
    and every random draw in draw order (``noise_<k>`` numbered from 0 or 1, or a stacked
    ``noises`` (K, B, 8, 16, T)); ``output.latent``. Anything else is skipped as not recognised."""
    inp = dict(fx.inputs)
    # --- args: the official keywords as passed -------------------------------------------------
    official = dict(_EDIT_DEFAULTS)
    for key, value in fx.args.items():
        if key in _EDIT_ARGS:
            official[key] = value
        elif key == "random_generators" or (value is None and key in inp):
            continue  # draws are inputs; tensor arguments come from input.*
        else:
            _edit_skip(fx, f"unknown args key {key!r} (known: {sorted(_EDIT_ARGS)})")
    # --- conditionings and source ---------------------------------------------------------------
    if "src_latents" not in inp:
        _edit_skip(fx, "no input.src_latents")
    src = inp["src_latents"]
    known = {"src_latents", "noises"} | {n for row in _EDIT_COND for n in row[:2]}
    unknown = sorted(n for n in inp if n not in known and not _NOISE_K.match(n))
    if unknown:
        _edit_skip(fx, f"unknown inputs {unknown}")
    conds = {}
    for side, col in (("src", 0), ("tar", 1)):
        kw = {}
        for row in _EDIT_COND:
            name, attr = row[col], row[2]
            if name in inp:
                kw[attr] = inp[name]
            elif name in _EDIT_OPTIONAL:
                kw[attr] = None
            else:
                _edit_skip(fx, f"missing input.{name}")
        conds[side] = Conditioning(**kw)
    # --- the draws ------------------------------------------------------------------------------
    steps, n_avg = int(official["infer_steps"]), int(official["n_avg"])
    noises = _edit_noises(fx, inp, src)
    need, edit_steps, tail_steps = _edit_draw_count(steps, official["n_min"], official["n_max"], n_avg)
    pingpong = official["scheduler_type"] == "pingpong"
    if pingpong:
        need += edit_steps + tail_steps  # one scheduler noise per model step, drawn after the model call
        if edit_steps:
            pytest.skip(f"v1.edit {fx.stem}: pingpong with an edit phase; the official code drops the "
                        "edit-phase update, ours applies FlowEdit's ODE there (a documented deliberate deviation)")
    if len(noises) != need:
        _edit_skip(fx, f"{len(noises)} noise draws given, the run makes {need} "
                       f"(steps {steps}, n_min {official['n_min']}, n_max {official['n_max']}, n_avg {n_avg}, "
                       f"scheduler {official['scheduler_type']})")
    if "latent" not in fx.outputs:
        _edit_skip(fx, f"no output.latent (outputs: {sorted(fx.outputs)})")
    kwargs = {_EDIT_ARGS[k]: v for k, v in official.items()}
    dit = load_dit(fx)
    with torch.no_grad():
        out = flowedit(dit, conds["src"], conds["tar"], src, noises=noises, **kwargs)
    fx.check("latent", out)


RUNNERS = {
    "v1.schedule": run_schedule,
    "v1.apg": run_apg,
    "v1.sample": run_loop,
    "v1.retake": run_loop,
    "v1.repaint": run_loop,
    "v1.extend": run_loop,
    "v1.edit": run_edit,
}
