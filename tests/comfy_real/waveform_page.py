"""Helpers of the waveform editor's browser tests (test_waveform_browser.py): the headless Chromium
page on the real ComfyUI frontend, loading a workflow with the editing node framed on screen, and
reading / driving the editor and the node's widgets as a user does."""

from __future__ import annotations

import json
import math
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from stage import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--autoplay-policy=no-user-gesture-required"]
WAIT_MS = 20_000
APP = "window.app"


@contextmanager
def open_page(url: str):
    """A tab on the ComfyUI at ``url``; ``tab.problems`` collects this pack's console errors, page
    errors and failed requests."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (harness venv)")
    if not Path(CHROMIUM).exists():
        pytest.skip("browser tests skipped: Debian's chromium is not installed (apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            tab = browser.new_page(viewport={"width": 1500, "height": 950})
            tab.problems = []
            tab.on("pageerror", lambda exc: tab.problems.append(f"page error: {exc}"))
            tab.on("console", lambda m: m.type == "error" and _ours(m.text + str(m.location))
                   and tab.problems.append(f"console: {m.text}"))
            tab.on("response", lambda r: r.status >= 400 and _ours(r.url)
                   and tab.problems.append(f"HTTP {r.status} {r.url}"))
            tab.goto(url, timeout=120_000)
            tab.wait_for_function("() => window.app?.graph !== undefined", timeout=120_000)
            yield tab
        finally:
            browser.close()


def _ours(text: str) -> bool:
    """Errors of this pack: its extension files, its routes, its files' names. (ComfyUI's own page
    logs a few unrelated 404s and offline template fetches in this sandbox.)"""
    return any(k in text for k in ("aceforge", "AceForge", "waveform", f"/extensions/{REPO.name}"))


def workflow(name: str, song: str, edit: dict | None = None, values: dict | None = None) -> dict:
    """A shipped UI workflow with ``song`` in Load Audio; ``edit`` swaps a node ({type: (new type,
    widgets_values)}), ``values`` sets leading widgets_values ({type: [v0, v1, ...]})."""
    wf = json.loads((REPO / "workflows" / f"{name}.json").read_text(encoding="utf-8"))
    wf["nodes"] = [n for n in wf["nodes"] if n["type"] != "MarkdownNote"]  # it would lie over the editor
    for node in wf["nodes"]:
        if node["type"] == "LoadAudio":
            node["widgets_values"][0] = song
        if edit and node["type"] in edit:
            node["type"], node["widgets_values"] = edit[node["type"]]
        if values and node["type"] in values:
            node["widgets_values"][:len(values[node["type"]])] = values[node["type"]]
    return wf


def editor_selector(node_id) -> str:
    return f".aceforge-waveform[data-node='{node_id}']"


def load(page, wf: dict, node_type: str, ready: bool = True):
    """Load ``wf``, frame its ``node_type`` node alone on the screen at scale 1; wait for the drawn
    waveform when ``ready``. (node id, the editor's locator)."""
    # the app may still be restoring its start-up workflow: load until ours stays
    node_id = None
    for _ in range(5):
        page.evaluate(f"async (wf) => {{ await {APP}.loadGraphData(wf); }}", wf)
        page.wait_for_timeout(700)
        node_id = page.evaluate(f"(t) => {APP}.graph.nodes.find((n) => n.type === t)?.id ?? null", node_type)
        if node_id is not None:
            break
    assert node_id is not None, f"{node_type} did not load"
    page.keyboard.press("Escape")  # a first-run dialog, if any
    page.wait_for_function("(s) => document.querySelector(s)?.dataset.hint !== undefined",
                           arg=editor_selector(node_id), timeout=WAIT_MS)
    if ready:
        page.wait_for_function("(s) => { const e = document.querySelector(s);"
                               " return e?.dataset.ready === '1' && +e.dataset.columns > 100; }",
                               arg=editor_selector(node_id), timeout=WAIT_MS)
    frame(page, node_id)
    close_dialogs(page)
    return node_id, page.locator(editor_selector(node_id))


def frame(page, node_id) -> None:
    """The node at (160, 140) on the graph canvas at scale 1, 560 px wide, nothing else on top."""
    page.evaluate(f"""(id) => {{
        const app = {APP}; const n = app.graph.getNodeById(id);
        n.setSize([Math.max(n.size[0], 560), n.size[1]]);
        for (const m of app.graph.nodes) if (m.id !== id && m.pos[0] < 4000) m.pos = [m.pos[0] + 5000, m.pos[1]];
        app.canvas.ds.scale = 1; app.canvas.ds.offset = [160 - n.pos[0], 140 - n.pos[1]];
        app.canvas.setDirty(true, true); }}""", node_id)
    page.wait_for_timeout(100)  # one frame: the DOM widget follows the node


def close_dialogs(page) -> None:
    """Close what the frontend opens over the canvas on its own (template browser, missing-model
    dialogs): they would take the mouse."""
    for _ in range(10):
        if page.locator(".p-dialog").count() == 0:
            return
        page.keyboard.press("Escape")
        page.wait_for_timeout(300)
    page.evaluate("() => document.querySelectorAll('.p-dialog-mask, .p-dialog').forEach((e) => e.remove())")


def widgets(page, node_id) -> dict:
    return page.evaluate(f"(id) => Object.fromEntries({APP}.graph.getNodeById(id).widgets"
                         ".filter((w) => typeof w.value !== 'object').map((w) => [w.name, w.value]))", node_id)


def data(editor) -> dict:
    """The editor's published state (its data-* attributes)."""
    return editor.evaluate("(e) => ({ ...e.dataset })")


def view(editor) -> tuple[float, float]:
    t0, t1 = data(editor)["view"].split(",")
    return float(t0), float(t1)


def x_of(box, t, t0, t1) -> float:
    """Screen x of time ``t`` on a canvas showing ``t0`` .. ``t1``."""
    return box["x"] + (t - t0) / (t1 - t0) * box["width"]


def wait_state(page, node_id, js_condition: str, timeout: int = WAIT_MS) -> None:
    """Wait until ``js_condition`` (an expression of ``d``, the editor's dataset) holds."""
    page.wait_for_function(f"(s) => {{ const d = document.querySelector(s)?.dataset; return !!d && ({js_condition}); }}",
                           arg=editor_selector(node_id), timeout=timeout)


def widget_point(page, node_id, name: str) -> tuple[float, float]:
    """Screen point in the middle of widget ``name`` (clicking there opens its value prompt)."""
    return tuple(page.evaluate(f"""([id, name]) => {{
        const app = {APP}; const n = app.graph.getNodeById(id); const w = n.widgets.find((w) => w.name === name);
        const r = app.canvas.canvas.getBoundingClientRect(); const ds = app.canvas.ds;
        const y = n.pos[1] + (w.y ?? w.last_y) + (w.computedHeight ?? 20) / 2;
        return [r.left + (n.pos[0] + n.size[0] / 2 + ds.offset[0]) * ds.scale, r.top + (y + ds.offset[1]) * ds.scale];
    }}""", [node_id, name]))


def type_into_widget(page, node_id, name: str, text: str) -> None:
    """Click the number widget, type ``text`` into the prompt it opens, press Enter: the keyboard path."""
    x, y = widget_point(page, node_id, name)
    page.mouse.click(x, y)
    prompt = page.locator(".graphdialog input, .graphdialog textarea").last
    prompt.wait_for(state="visible", timeout=WAIT_MS)
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.type(text)
    page.keyboard.press("Enter")
    prompt.wait_for(state="detached", timeout=WAIT_MS)


def set_widget(page, node_id, name: str, value) -> None:
    """Change a widget as the frontend does after an edit (value, then its callback)."""
    page.evaluate(f"""([id, name, v]) => {{ const w = {APP}.graph.getNodeById(id).widgets.find((w) => w.name === name);
        w.value = v; w.callback?.(v); }}""", [node_id, name, value])


def pixel(canvas, fx: float, fy: float) -> tuple[int, int, int]:
    """RGB of the canvas at fractions (fx, fy) of its size."""
    return tuple(canvas.evaluate("(c, [fx, fy]) => Array.from(c.getContext('2d').getImageData("
                                 "Math.floor(c.width * fx), Math.floor(c.height * fy), 1, 1).data.slice(0, 3))", [fx, fy]))


def screenshot(page, node_id, name: str) -> None:
    """With ``ACEFORGE_SCREENSHOTS=DIR``: a picture of the node (the README's)."""
    folder = os.environ.get("ACEFORGE_SCREENSHOTS")
    if not folder:
        return
    box = page.evaluate(f"""(id) => {{ const app = {APP}; const n = app.graph.getNodeById(id);
        const r = app.canvas.canvas.getBoundingClientRect(); const ds = app.canvas.ds;
        const title = 30;
        return {{ x: r.left + (n.pos[0] + ds.offset[0]) * ds.scale - 6, y: r.top + (n.pos[1] - title + ds.offset[1]) * ds.scale - 6,
                  width: n.size[0] * ds.scale + 12, height: (n.size[1] + title) * ds.scale + 12 }}; }}""", node_id)
    page.wait_for_timeout(300)
    Path(folder).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(Path(folder) / name), clip={k: math.floor(v) for k, v in box.items()})
