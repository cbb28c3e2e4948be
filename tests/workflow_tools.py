"""Test helpers for the workflow files: load the pack the way ComfyUI does, convert a UI workflow to
its API prompt the way the ComfyUI frontend does, run an API prompt through NODE_CLASS_MAPPINGS with
small stand-ins for the core audio nodes.

Frontend rules followed (shared/research/comfyui_core_ace.md §4.7):
* ``widgets_values`` follow the node's input order (required, then optional); every widget input
  (INT, FLOAT, STRING, BOOLEAN, COMBO, DynamicCombo + its selected option's sub-widgets) takes a slot
  whether or not it is linked; socket-only inputs take none;
* an INT with ``control_after_generate`` (or named ``seed`` / ``noise_seed``) has one extra slot
  after it, which is not sent;
* a linked input sends ``[source_node_id_as_string, source_slot]``;
* frontend-only nodes (notes, primitives, reroutes) are not sent; upload widgets' trailing helper
  values are ignored;
* DynamicCombo sub-inputs are sent as ``"<combo>.<sub>"``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACK_MODULE = "ComfyUI-AceForge"


def shared_dir():
    """The project's shared data folder (../shared next to the repository), if present."""
    path = REPO.parent / "shared"
    return path if path.is_dir() else None


def lyrics_vocab():
    """The v1 lyric vocabulary: $ACEFORGE_LYRICS_VOCAB, else the copy in ../shared/reference/data."""
    env = os.environ.get("ACEFORGE_LYRICS_VOCAB")
    if env and Path(env).is_file():
        return Path(env)
    shared = shared_dir()
    path = shared / "reference" / "data" / "ace_v1_lyrics_vocab.json" if shared else None
    return path if path is not None and path.is_file() else None

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
FRONTEND_ONLY = {"MarkdownNote", "Note", "PrimitiveNode", "Reroute"}

# Core nodes the workflows use, as ComfyUI's /object_info describes them (comfy_extras/nodes_audio.py).
CORE_NODES = {
    "LoadAudio": {
        "display": "Load Audio",
        "inputs": [("audio", "COMBO", {"audio_upload": True})],
        "outputs": ["AUDIO"],
    },
    "PreviewAudio": {
        "display": "Preview Audio",
        "inputs": [("audio", "AUDIO", {})],
        "outputs": ["AUDIO"],
    },
    "SaveAudioAdvanced": {
        "display": "Save Audio (Advanced)",
        "inputs": [
            ("audio", "AUDIO", {}),
            ("filename_prefix", "STRING", {}),
            ("format", "DYNAMIC_COMBO", {"options": {"flac": [], "mp3": ["quality"], "opus": ["quality"]}}),
        ],
        "outputs": ["AUDIO"],
    },
}


def load_pack(name: str = PACK_MODULE):
    """Import the repository folder as a package by path, as ComfyUI's custom-node loader does."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def node_inputs(pack, class_type: str) -> list[tuple[str, str, dict]]:
    """[(name, type, options)] in input order; ``type`` is COMBO for list-typed inputs."""
    if class_type in CORE_NODES:
        return CORE_NODES[class_type]["inputs"]
    spec = pack.NODE_CLASS_MAPPINGS[class_type].INPUT_TYPES()
    out = []
    for section in ("required", "optional"):
        for name, s in spec.get(section, {}).items():
            kind = "COMBO" if isinstance(s[0], (list, tuple)) else s[0]
            options = dict(s[1]) if len(s) > 1 else {}
            if kind == "COMBO":
                options.setdefault("choices", list(s[0]))
            out.append((name, kind, options))
    return out


def display_name(pack, class_type: str) -> str:
    if class_type in CORE_NODES:
        return CORE_NODES[class_type]["display"]
    return pack.NODE_DISPLAY_NAME_MAPPINGS.get(class_type, class_type)


def has_control_slot(name: str, kind: str, options: dict) -> bool:
    return kind == "INT" and (options.get("control_after_generate") or name in ("seed", "noise_seed"))


def widget_slots(pack, node: dict, spec=None) -> list[tuple[str, str, dict, object]]:
    """[(api_input_name, kind, options, value)] read from ``widgets_values`` in frontend order.
    ``spec``: the node's ``node_inputs`` when the caller already has them."""
    values = list(node.get("widgets_values") or [])
    slots, i = [], 0
    for name, kind, options in spec if spec is not None else node_inputs(pack, node["type"]):
        if kind in WIDGET_TYPES:
            slots.append((name, kind, options, values[i]))
            i += 1
            if has_control_slot(name, kind, options):
                i += 1
        elif kind == "DYNAMIC_COMBO":
            choice = values[i]
            slots.append((name, "COMBO", {"choices": list(options["options"])}, choice))
            i += 1
            for sub in options["options"][choice]:
                slots.append((f"{name}.{sub}", "STRING", {}, values[i]))
                i += 1
    return slots


def ui_to_api(pack, workflow: dict) -> dict:
    """The API prompt the frontend would send for this UI workflow."""
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in sorted(workflow["nodes"], key=lambda n: n["id"]):
        if node["type"] in FRONTEND_ONLY or node.get("mode", 0) != 0:
            continue
        linked = {inp["name"]: inp["link"] for inp in node.get("inputs", []) if inp.get("link") is not None}
        spec = node_inputs(pack, node["type"])  # INPUT_TYPES once per node (the loader lists model folders)
        inputs = {}
        for name, _kind, _options, value in widget_slots(pack, node, spec):
            inputs[name] = value
        for name, kind, _options in spec:
            if name in linked:
                link = links[linked[name]]
                inputs[name] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {
            "inputs": inputs,
            "class_type": node["type"],
            "_meta": {"title": node.get("title") or display_name(pack, node["type"])},
        }
    return prompt


def topological_order(prompt: dict) -> list[str]:
    order, done = [], set()
    pending = dict(prompt)
    while pending:
        progressed = False
        for node_id, node in list(pending.items()):
            deps = {v[0] for v in node["inputs"].values() if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)}
            if deps <= done:
                order.append(node_id)
                done.add(node_id)
                del pending[node_id]
                progressed = True
        if not progressed:
            raise ValueError(f"cycle or missing node among {sorted(pending)}")
    return order


def execute(pack, prompt: dict, core_nodes: dict) -> dict:
    """Run an API prompt: our nodes through NODE_CLASS_MAPPINGS, core nodes through ``core_nodes``
    (``{class_type: fn(**inputs) -> tuple}``). Returns ``{node_id: outputs tuple}``.

    Like ComfyUI's executor, every node runs under ``torch.inference_mode()``: models loaded there
    hold inference tensors (no version counter, no in-place use outside inference mode)."""
    import torch

    with torch.inference_mode():
        return _execute(pack, prompt, core_nodes)


def _execute(pack, prompt: dict, core_nodes: dict) -> dict:
    results: dict = {}
    for node_id in topological_order(prompt):
        node = prompt[node_id]
        kwargs = {}
        for name, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                value = results[value[0]][value[1]]
            kwargs[name] = value
        class_type = node["class_type"]
        if class_type in core_nodes:
            out = core_nodes[class_type](**kwargs)
        else:
            cls = pack.NODE_CLASS_MAPPINGS[class_type]
            out = getattr(cls(), cls.FUNCTION)(**kwargs)
            if isinstance(out, dict):
                out = out["result"]
        results[node_id] = tuple(out)
    return results


@contextlib.contextmanager
def models_under(pack, root):
    """The pack's model folders point at ``root`` (a tree with ``checkpoints/`` etc.) inside the block."""
    compat = pack.nodes.comfy_compat
    compat.set_models_dir(root)
    try:
        yield root
    finally:
        compat.set_models_dir(None)


def with_inputs(prompt: dict, values: dict) -> dict:
    """A copy of an API prompt with every widget input named in ``values`` set (links are kept):
    the fast settings (few steps, short audio) the end-to-end workflow tests run with."""
    prompt = copy.deepcopy(prompt)
    for node in prompt.values():
        for key, value in values.items():
            if key in node["inputs"] and not isinstance(node["inputs"][key], list):
                node["inputs"][key] = value
    return prompt


def run_api(pack, prompt: dict, root, core_nodes: dict, values: dict) -> tuple[dict, dict]:
    """Run ``prompt`` with ``values`` applied and the models under ``root``; returns (prompt run, results)."""
    prompt = with_inputs(prompt, values)
    with models_under(pack, root):
        return prompt, execute(pack, prompt, core_nodes)
