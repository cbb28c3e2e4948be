"""Tiny random checkpoints in every published layout, written into a ComfyUI ``models`` folder.

Which family a workflow needs is read from the model names it references (``ckpt_name`` or the
split loader's ``dit_name`` ...): names with "1.5" / "v15" are ACE-Step 1.5, the rest v1; "base" /
"sft" in a 1.5 name picks that variant. Each workflow runs in every layout its loader can take:
the checkpoint loader every layout of the family, the split loader the split files.
"""

from __future__ import annotations

import re
from pathlib import Path

V1, V15 = "ace_v1", "ace_v15"
LAYOUTS = {V1: ("comfy", "official"), V15: ("aio", "split", "official")}
SPLIT_INPUTS = ("dit_name", "text_encoder_name", "vae_name")
MODEL_INPUTS = ("ckpt_name",) + SPLIT_INPUTS
"""Inputs that name model files; the stage replaces them with the layout under test."""
LM_LAYOUTS = ("aio", "official")
"""The 1.5 layouts that carry a 5 Hz LM (the tiny models written here include one)."""


def family_of_name(name: str) -> str:
    return V15 if re.search(r"1[._]5|v15|ace15", str(name), re.IGNORECASE) else V1


def _names(prompt: dict) -> list:
    return [v["inputs"][k] for v in prompt.values() for k in MODEL_INPUTS if isinstance(v["inputs"].get(k), str)]


def workflow_family(prompt: dict) -> str:
    names = _names(prompt)
    families = {family_of_name(n) for n in names}
    if len(families) != 1:
        raise AssertionError(f"the workflow names {len(families)} checkpoint families ({names}); expected one")
    return families.pop()


def workflow_kind(prompt: dict) -> str:
    """The 1.5 variant the workflow's model names ask for (turbo unless "base" / "sft" is named)."""
    text = " ".join(_names(prompt)).lower()
    return "sft" if "sft" in text else "base" if "base" in text else "turbo"


def workflow_layouts(prompt: dict) -> tuple:
    """The layouts to run a workflow in."""
    family = workflow_family(prompt)
    if any(k in v["inputs"] for v in prompt.values() for k in SPLIT_INPUTS):
        return ("split",)
    if family == V15 and any("LM" in v["class_type"] for v in prompt.values()):
        return LM_LAYOUTS
    return LAYOUTS[family]


def write_layout(models: Path, family: str, layout: str, kind: str = "turbo", seed: int = 0) -> dict:
    """Write one tiny model into ``models`` (ComfyUI/models): {model input: the name its combo shows}."""
    if family == V1:
        from ace_core.v1.testing import write_tiny_checkpoint

        if layout == "comfy":
            write_tiny_checkpoint(models / "checkpoints" / "ace_step_v1_3.5b.safetensors", layout="comfy", seed=seed)
            return {"ckpt_name": "ace_step_v1_3.5b.safetensors"}
        write_tiny_checkpoint(models / "checkpoints" / "ACE-Step-v1-3.5B", layout="official", seed=seed)
        return {"ckpt_name": "ACE-Step-v1-3.5B/"}
    from ace_core.v15.bundle import save_v15_all_in_one, save_v15_official, save_v15_split, tiny_v15_bundle
    from ace_core.v15.lm import tiny_five_hz_lm

    bundle = tiny_v15_bundle(seed=seed, kind=kind)
    if layout == "aio":
        name = f"ace_step_1.5_{kind}_aio.safetensors"
        save_v15_all_in_one(bundle, models / "checkpoints" / name, lm=tiny_five_hz_lm().model)
        return {"ckpt_name": name}
    if layout == "split":
        paths = save_v15_split(bundle, models)
        return {"ckpt_name": paths["dit"].name, "dit_name": paths["dit"].name,
                "text_encoder_name": paths["text_encoder"].name, "vae_name": paths["vae"].name}
    save_v15_official(bundle, models / "checkpoints" / f"Ace-Step1.5-{kind}", lm=tiny_five_hz_lm().model)
    return {"ckpt_name": f"Ace-Step1.5-{kind}/"}
