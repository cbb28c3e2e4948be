"""What the side-by-side driver does differently per model family (driver side only).

A :class:`Family` holds the model groups and their phases, the checkpoint's key prefix of each
group, how many bytes per parameter each side holds by default, which outputs are compared, the
defaults of a quick and a full run, and how to write the random checkpoint and the inputs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .inputs import LYRICS, TAGS

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "checkpoints"


@dataclass(frozen=True)
class Family:
    name: str
    groups: dict  # group -> its phases, in run order
    prefixes: dict  # group -> checkpoint key prefix (parameter counts)
    default_bytes: dict  # side -> group -> bytes per parameter held with "default" dtype on a CPU
    compared: tuple  # phases whose outputs both sides save and the driver compares
    notes: dict  # phase -> table note
    full_blocks: int  # DiT blocks of the published model
    block_key: str  # regex: the DiT block index of a key
    manifest: Path
    quick: dict  # defaults of --quick: seconds, steps, dit_blocks, lm_layers, lm_tokens
    full: dict
    fp32_only: tuple = ("vae",)  # groups that run in fp32 only
    core_holds: dict = field(default_factory=dict)  # core group -> the groups its load holds
    lm_key: str = ""  # regex: the LM layer index of a key ("" = no LM)

    @property
    def phases(self) -> list:
        return ["load"] + [p for ps in self.groups.values() for p in ps]

    def dtypes_of(self, group: str, dtypes: list) -> list:
        return ["fp32"] if group in self.fp32_only else dtypes

    def held(self, side: str, group: str) -> tuple:
        return self.core_holds.get(group, (group,)) if side == "core" else (group,)


V1 = Family(
    name="v1",
    groups={"text": ["text_encode"], "dit": ["dit_forward", "generate"], "vae": ["vae_encode", "vae_decode"]},
    prefixes={"dit": "model.diffusion_model.", "text": "text_encoders.", "vae": "vae."},
    default_bytes={"ours": {"text": 2, "dit": 2, "vae": 4}, "core": {"text": 2, "dit": 4, "vae": 4}},
    compared=("text_encode", "dit_forward", "vae_encode", "vae_decode"),
    notes={"text_encode": "ours also computes the ERG-tag states (one UMT5 pass forked at block 8); core only the plain ones",
           "dit_forward": "one call on the CFG batch (cond + null rows): encode + decode, core's forward"},
    full_blocks=24,
    block_key=r"^model\.diffusion_model\.transformer_blocks\.(\d+)\.",
    manifest=REFERENCE / "comfy__ace_step_v1_3.5b.safetensors.json",
    quick={"seconds": 5.0, "steps": 4, "dit_blocks": 2, "cfg": 5.0},
    full={"seconds": 10.0, "steps": 8, "dit_blocks": 24, "cfg": 5.0},
)

V15 = Family(
    name="v15",
    groups={"text": ["text_encode"], "lm": ["lm"], "dit": ["dit_forward", "generate"],
            "vae": ["vae_encode", "vae_decode"]},
    prefixes={"dit": "model.diffusion_model.", "text": "text_encoders.qwen3_06b.", "lm": "text_encoders.qwen3_2b.",
              "vae": "vae."},
    default_bytes={"ours": {"text": 2, "lm": 2, "dit": 2, "vae": 4},
                   "core": {"text": 2, "lm": 2, "dit": 4, "vae": 4}},
    compared=("text_encode", "dit_forward", "generate", "vae_decode", "lm"),
    notes={"text_encode": "Qwen3-0.6B caption states + lyric embeddings (core's node, LM off); core's GB "
                          "include the 5 Hz LM its CLIP always loads; prompts differ (ours: upstream's instruction, "
                          "core: its own template), so the states do too",
           "dit_forward": "one turbo call, batch 1 (no CFG): condition encoder + decoder, core's forward",
           "lm": "audio codes, greedy, CFG 2 (batch 2); core computes in fp32 on a CPU whatever the weights"},
    full_blocks=24,
    block_key=r"^model\.diffusion_model\.decoder\.layers\.(\d+)\.",
    manifest=REFERENCE / "comfy__ace_step_1.5_turbo_aio.safetensors.json",
    # --quick: core's DiT runs its condition encoder on every step and its LM scores the whole
    # vocabulary per token, so a quick run keeps those small (fp32 only: the comparable outputs)
    quick={"seconds": 10.0, "vae_seconds": 3.0, "steps": 4, "dit_blocks": 2, "lm_layers": 2, "lm_tokens": 12,
           "text_tokens": 24, "lyric_tokens": 48, "cfg": 1.0, "dtypes": ["fp32"]},
    full={"seconds": 30.0, "vae_seconds": 30.0, "steps": 8, "dit_blocks": 24, "lm_layers": 28, "lm_tokens": 150,
          "text_tokens": 48, "lyric_tokens": 256, "cfg": 1.0},
    core_holds={"text": ("text", "lm"), "lm": ("text", "lm")},
    lm_key=r"^text_encoders\.qwen3_2b\.transformer\.model\.layers\.(\d+)\.",
)

FAMILIES = {f.name: f for f in (V1, V15)}
ALL_PHASES = list(dict.fromkeys(p for f in FAMILIES.values() for p in f.phases))


def _index(pattern: str, key: str):
    m = re.match(pattern, key) if pattern else None
    return int(m.group(1)) if m else None


def truncated_tensors(family: Family, tensors: dict, dit_blocks: int | None, lm_layers: int | None) -> dict:
    """The manifest's tensors without the DiT blocks from ``dit_blocks`` on and the LM layers from
    ``lm_layers`` on (None: all kept)."""
    def keep(key: str) -> bool:
        block, layer = _index(family.block_key, key), _index(family.lm_key, key)
        return ((block is None or dit_blocks is None or block < dit_blocks)
                and (layer is None or lm_layers is None or layer < lm_layers))

    return {k: v for k, v in tensors.items() if keep(k)}


def write_checkpoint(family: Family, path: Path, seed: int, dit_blocks: int, lm_layers: int | None) -> None:
    """The random all-in-one file in ComfyUI's layout, truncated as asked (the existing writers)."""
    dit = None if dit_blocks >= family.full_blocks else dit_blocks
    if family.name == "v1":
        from bench_load_memory import write_full_size

        write_full_size(path, seed=seed, dit_blocks=dit)
        return
    from bench_v15_load_memory import RandomBF16, write_full_size

    manifest = json.loads(family.manifest.read_text())
    layers = None if lm_layers is None or lm_layers >= family.full["lm_layers"] else lm_layers
    manifest["tensors"] = truncated_tensors(family, manifest["tensors"], dit, layers)
    trimmed = path.with_name(path.stem + ".manifest.json")  # an absolute path: the writer's folder is ignored
    trimmed.write_text(json.dumps(manifest))
    write_full_size(path, str(trimmed.resolve()), RandomBF16(seed))
    trimmed.unlink()


def text_dim(checkpoint: Path) -> int:
    """Width of the 1.5 DiT's text input (Qwen3 hidden size) from the file's header."""
    from ace_core.loading.safetensors_io import read_header

    info = read_header(checkpoint).tensors["model.diffusion_model.encoder.text_projector.weight"]
    return int(info.shape[1])


def make_inputs(family: Family, args, checkpoint: Path) -> dict:
    if family.name == "v1":
        from .inputs import make_inputs as make_v1

        return make_v1(args.seed, args.seconds, lyric_tokens=128 if args.quick else 256)
    from .inputs_v15 import make_inputs_v15

    d = family.quick if args.quick else family.full
    return make_inputs_v15(args.seed, args.seconds, text_dim(checkpoint), caption=TAGS, lyrics=LYRICS,
                           vae_seconds=min(args.seconds, d["vae_seconds"]), text_tokens=d["text_tokens"],
                           lyric_tokens=d["lyric_tokens"])


def phase_options(family: Family, phase: str, args) -> dict:
    """The options of a ``run`` request (both sides get the same)."""
    if family.name == "v15":
        from .inputs_v15 import LM_SONG

        if phase == "text_encode":
            return {"tags": TAGS, "lyrics": LYRICS, "duration": args.seconds, **LM_SONG}
        if phase == "generate":
            return {"steps": args.steps, "seed": args.seed, "shift": 3.0}
        if phase == "lm":
            return {"tokens": args.lm_tokens, "cfg": args.lm_cfg, "seed": args.seed}
        return {}
    if phase == "text_encode":
        return {"tags": TAGS, "lyrics": LYRICS}
    if phase == "generate":
        return {"steps": args.steps, "cfg": args.cfg, "seed": args.seed}
    return {}


def size_text(family: Family, args) -> str:
    """What the run's model is, for the headings."""
    if args.dit_blocks < family.full_blocks:
        size = f"{args.dit_blocks} of {family.full_blocks} DiT blocks"
    else:
        size = f"full size ({family.full_blocks} DiT blocks)"
    if family.lm_key:
        full = family.full["lm_layers"]
        size += f", {args.lm_layers} of {full} LM layers" if args.lm_layers < full else ", full LM"
    return size + (" (--quick: smaller than the real model)" if args.quick else "")
