"""The waveform region editor (web/js/waveform*.js) in the real ComfyUI frontend, headless Chromium:
the waveform of an uploaded file is drawn; a drag changes the widgets, snapped to the connected
model's latent frames; typing in the widgets with the keyboard moves the region; zoom and scroll
change the view and its m:ss ruler; playback starts and stops; after a run the result is shown with
A/B playback against the source; the light theme draws; without audio the node keeps its plain
widgets; graphToPrompt carries the new values, and nothing logs an error.

``ACEFORGE_SCREENSHOTS=DIR`` also saves a picture of each editing node (the README's)."""

from __future__ import annotations

import re

import pytest

from stage import write_source
from waveform_page import (APP, WAIT_MS, close_dialogs, data, frame, load, open_page, pixel, screenshot, set_widget,
                           type_into_widget, view, wait_state, widgets, workflow, x_of)

SECONDS = 12.0
V1_GRID = 4096 / 44100  # seconds per ACE-Step v1 latent frame
RUN_TIMEOUT_MS = 240_000  # one tiny-model inpaint run of the 12 s song on a busy 2-core machine


@pytest.fixture(scope="module")
def v1_model(server):
    """The tiny v1 checkpoint under the name the shipped inpaint workflow uses: the route then
    reports the v1 grid for it."""
    return server.layout("ace_v1", "comfy")["ckpt_name"]


@pytest.fixture(scope="module")
def song(server, tmp_path_factory):
    path = write_source(tmp_path_factory.mktemp("waveform") / "aceforge_waveform_song.wav", 48000, SECONDS)
    return server.client.upload(path)  # as a user does (the upload route), the name Load Audio shows


@pytest.fixture(scope="module")
def page(server, v1_model):
    with open_page(server.url) as tab:
        yield tab


@pytest.fixture(autouse=True)
def no_problems(page):
    page.problems.clear()
    yield
    assert not page.problems, page.problems


def _repaint(page, song, start=2.0, end=5.0):
    wf = workflow("inpaint", song, values={"AceForge_RepaintMask": [start, "start", end, "start"]})
    node_id, editor = load(page, wf, "AceForge_RepaintMask")
    wait_state(page, node_id, f"Math.abs(+d.grid - {V1_GRID!r}) < 1e-9")  # the route knows the v1 model
    return node_id, editor


def _on_frame_edge(t: float) -> int:
    """The v1 frame whose edge ``t`` is (a millisecond inside it at most), as the server counts it."""
    frame_index = int(t / V1_GRID)  # the official int() conversion (ace_core.editing.regions)
    assert 0 <= t - frame_index * V1_GRID < 1.001e-3, f"{t} s is not on a latent frame edge"
    return frame_index


def _region(editor) -> tuple[float, float]:
    start, end = data(editor)["region"].split(",")
    return float(start), float(end)


def _drag(page, box, t_from, t_to, t0=0.0, t1=SECONDS, y_fraction=1 / 3, steps=8):
    y = box["y"] + box["height"] * y_fraction
    page.mouse.move(x_of(box, t_from, t0, t1), y)
    page.mouse.down()
    page.mouse.move(x_of(box, (t_from + t_to) / 2, t0, t1), y, steps=steps)
    page.mouse.move(x_of(box, t_to, t0, t1), y, steps=steps)
    page.mouse.up()


def _prompt_inputs(page, node_id) -> dict:
    prompt = page.evaluate(f"async () => (await {APP}.graphToPrompt()).output")
    assert not any("waveform" in k for node in prompt.values() for k in node["inputs"])  # the editor adds nothing
    return prompt[str(node_id)]["inputs"]


def test_repaint_region_drag_snaps_to_the_model_frames(page, song):
    node_id, editor = _repaint(page, song)
    assert float(data(editor)["duration"]) == pytest.approx(SECONDS, abs=1e-3)
    assert _region(editor) == (2.0, 5.0)
    canvas = editor.locator("canvas")
    drawn = canvas.evaluate("(c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                            " const seen = new Set(); for (let i = 0; i < d.length; i += 4 * 97) seen.add(d[i] + ',' + d[i + 1]);"
                            " return seen.size; }")
    assert drawn > 4, "the canvas looks empty"
    # the feather (2 frames inside each edge) is drawn as an orange band at the bottom of the region
    band = 1 - 19 / canvas.evaluate("(c) => c.clientHeight")  # 3 px above the 16 px ruler
    r, g, b = pixel(canvas, (2.0 + V1_GRID) / SECONDS, band)
    assert r > b + 30, ("no feather band", (r, g, b))
    r, g, b = pixel(canvas, 3.5 / SECONDS, band)
    assert b > r + 20, ("no region tint away from the edges", (r, g, b))
    box = canvas.bounding_box()
    close_dialogs(page)

    # the region's body dragged 3 s to the right: both edges land on v1 frame edges (the widgets keep
    # milliseconds, not ComfyUI's 0.1 s step), the length stays 3 s to a frame
    _drag(page, box, 3.5, 6.5)
    values = widgets(page, node_id)
    start, end = values["start_time"], values["end_time"]
    assert _on_frame_edge(start) == round(5.0 / V1_GRID) and _on_frame_edge(end) - _on_frame_edge(start) in (32, 33)
    assert _region(editor) == (start, end), "the drawing and the widgets disagree"
    assert editor.locator("span").first.inner_text().startswith("0:05.0 – 0:08.0")

    # the end edge dragged to 9 s
    _drag(page, box, end, 9.0)
    values = widgets(page, node_id)
    assert _on_frame_edge(values["end_time"]) == round(9.0 / V1_GRID) and values["start_time"] == start

    # undo (ctrl+z on the graph) takes the drag back, as for any widget change
    page.mouse.click(900, 800)  # the empty graph canvas: keyboard focus on the graph
    page.keyboard.press("ControlOrMeta+Z")
    wait_state(page, node_id, f"d.region === '{start:.3f},{end:.3f}'")
    assert widgets(page, node_id)["end_time"] == end

    # the end counted from the track's end: the drag writes "seconds before the end", same frame edge
    set_widget(page, node_id, "end_time_relative_to", "end")
    set_widget(page, node_id, "end_time", 2.0)
    wait_state(page, node_id, f"d.region === '{start:.3f},10.000'")
    _drag(page, box, 10.0, 10.5)
    from_end = widgets(page, node_id)["end_time"]
    assert _on_frame_edge(SECONDS - from_end) == round(10.5 / V1_GRID)
    assert _region(editor)[1] == pytest.approx(SECONDS - from_end, abs=1e-9)

    # the API prompt has exactly the widgets' values
    inputs = _prompt_inputs(page, node_id)
    assert (inputs["start_time"], inputs["end_time"], inputs["end_time_relative_to"]) == (start, from_end, "end")
    screenshot(page, node_id, "waveform_repaint.png")


def test_typing_in_the_widgets_moves_the_region_and_playback_starts_and_stops(page, song):
    node_id, editor = _repaint(page, song)
    type_into_widget(page, node_id, "start_time", "1.5")
    wait_state(page, node_id, "d.region === '1.500,5.000'")
    type_into_widget(page, node_id, "end_time", "4.25")
    wait_state(page, node_id, "d.region === '1.500,4.250'")
    set_widget(page, node_id, "end_time_relative_to", "end")  # anchors are respected
    type_into_widget(page, node_id, "end_time", "2")
    wait_state(page, node_id, "d.region === '1.500,10.000'")
    assert widgets(page, node_id)["end_time"] == 2.0

    # playback of the region starts and stops
    editor.locator("[data-action='play-region']").click()
    audio = editor.locator("audio")
    audio.evaluate("(a) => new Promise((ok, fail) => { const t = setTimeout(() => fail(new Error("
                   "'no playback: ' + a.currentTime)), 15000); const check = () => !a.paused && "
                   "a.currentTime > 0.6 ? (clearTimeout(t), ok()) : setTimeout(check, 50); check(); })")
    assert data(editor)["playing"] == "1"
    editor.locator("[data-action='stop']").click()
    assert audio.evaluate("(a) => a.paused") and data(editor)["playing"] == "0"
    inputs = _prompt_inputs(page, node_id)
    assert (inputs["start_time"], inputs["end_time"], inputs["end_time_relative_to"]) == (1.5, 2.0, "end")


def test_zoom_and_scroll_change_the_view_and_the_ruler(page, song):
    node_id, editor = _repaint(page, song)
    whole = data(editor)["ruler"]
    assert view(editor) == (0.0, SECONDS) and re.fullmatch(r"0:00( 0:\d\d)+", whole), whole  # whole seconds, m:ss
    box = editor.locator("canvas").bounding_box()
    y = box["y"] + box["height"] / 3
    page.mouse.move(x_of(box, 6.0, 0, SECONDS), y)
    for _ in range(5):  # the wheel zooms in around the pointer
        page.mouse.wheel(0, -120)
    wait_state(page, node_id, "(([a, b]) => b - a < 5)(d.view.split(',').map(Number))")
    t0, t1 = view(editor)
    assert (6.0 - t0) / (t1 - t0) == pytest.approx(0.5, abs=0.02), "the time under the pointer moved"
    ruler = data(editor)["ruler"].split()
    assert len(ruler) >= 4 and all(label.startswith("0:0") and "." in label for label in ruler), ruler  # 0:04.5 ...
    wait_state(page, node_id, "+d.columns > 100")  # the zoomed view's own peaks

    # dragging the ruler scrolls: the pressed time follows the pointer
    _drag(page, box, t0 + (t1 - t0) * 0.75, t0 + (t1 - t0) * 0.25, t0, t1, y_fraction=0.97)
    s0, s1 = view(editor)
    assert s0 == pytest.approx(t0 + (t1 - t0) / 2, abs=0.05) and s1 - s0 == pytest.approx(t1 - t0, abs=1e-3)
    assert data(editor)["ruler"] != " ".join(ruler)
    assert _region(editor) == (2.0, 5.0), "scrolling moved the region"

    # shift+wheel scrolls back (to the song's start at most), Fit shows everything again
    page.mouse.move(x_of(box, 0.5, 0, 1), y)
    page.keyboard.down("Shift")
    for _ in range(4):
        page.mouse.wheel(0, -250)
    page.keyboard.up("Shift")
    wait_state(page, node_id, f"+d.view.split(',')[0] < {s0 - 1.0}")
    editor.locator("[data-action='fit']").click()
    assert view(editor) == (0.0, SECONDS) and data(editor)["ruler"] == whole


def test_light_theme(page, song):
    node_id, editor = _repaint(page, song)
    canvas = editor.locator("canvas")
    palette = f"{APP}.extensionManager.setting"
    luminance = lambda rgb: 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]  # noqa: E731
    assert luminance(pixel(canvas, 0.99, 0.04)) < 110  # dark background
    try:
        page.evaluate(f"async () => await {palette}.set('Comfy.ColorPalette', 'light')")
        page.wait_for_function("(c) => { const p = c.getContext('2d').getImageData(c.width - 3, 3, 1, 1).data;"
                               " return 0.2126 * p[0] + 0.7152 * p[1] + 0.0722 * p[2] > 170; }",
                               arg=canvas.element_handle(), timeout=WAIT_MS)
        frame(page, node_id)
        # the waveform is drawn dark on the light background, the region still tinted blue
        ink = canvas.evaluate("(c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                              " let dark = 0; for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] < 250) dark++;"
                              " return dark; }")
        assert ink > 200, "no waveform drawn on the light theme"
        r, g, b = pixel(canvas, 3.5 / SECONDS, 0.04)
        assert b > r + 20, (r, g, b)
    finally:
        page.evaluate(f"async () => await {palette}.set('Comfy.ColorPalette', 'dark')")
    page.wait_for_function("(c) => { const p = c.getContext('2d').getImageData(c.width - 3, 3, 1, 1).data;"
                           " return 0.2126 * p[0] + 0.7152 * p[1] + 0.0722 * p[2] < 110; }",
                           arg=canvas.element_handle(), timeout=WAIT_MS)


def test_without_audio_the_node_keeps_its_plain_widgets(page, tmp_path):
    # the shipped workflow names example.wav, which was never uploaded here
    node_id, editor = load(page, workflow("inpaint", "example.wav"), "AceForge_RepaintMask", ready=False)
    wait_state(page, node_id, "d.hint === '1'")
    assert editor.locator("canvas").is_hidden() and editor.locator("[data-action='play-song']").is_hidden()
    assert "example.wav is not in ComfyUI's input folder" in editor.inner_text()  # asked quietly: no failed request
    small = page.evaluate(f"(id) => {APP}.graph.getNodeById(id).size[1]", node_id)
    type_into_widget(page, node_id, "start_time", "3")  # the plain widgets work as ever
    assert _prompt_inputs(page, node_id)["start_time"] == 3.0

    # a file uploaded with Load Audio's own button (its file chooser): the waveform appears at once,
    # before anything runs, and the node grows to show it
    loader = page.evaluate(f"() => {APP}.graph.nodes.find((n) => n.type === 'LoadAudio').id")
    upload = write_source(tmp_path / "aceforge_waveform_upload.wav", 44100, 6.0)
    with page.expect_file_chooser() as chooser:
        page.evaluate(f"(id) => {APP}.graph.getNodeById(id).widgets.find((w) => w.type === 'button').callback()", loader)
    chooser.value.set_files(str(upload))
    wait_state(page, node_id, "d.ready === '1' && d.hint === '0' && d.file === 'aceforge_waveform_upload.wav'")
    assert float(data(editor)["duration"]) == pytest.approx(6.0, abs=1e-3)
    assert data(editor)["region"] == "3.000,40.000"  # the typed start; the workflow's end (past this song) ...
    assert "not inside the song (0:00 – 0:06.0)" in editor.inner_text()  # ... which the editor points out
    page.wait_for_function(f"([id, small]) => {APP}.graph.getNodeById(id).size[1] >= small + 100", arg=[node_id, small],
                           timeout=WAIT_MS)  # the node grew to show the waveform
    grown = page.evaluate(f"(id) => {APP}.graph.getNodeById(id).size[1]", node_id)
    assert editor.locator("canvas").is_visible()

    # Load Audio removed: back to the plain widgets
    page.evaluate(f"(id) => {APP}.graph.remove({APP}.graph.getNodeById(id))", loader)
    wait_state(page, node_id, "d.hint === '1' && d.ready === '0'")
    page.wait_for_function(f"([id, grown]) => {APP}.graph.getNodeById(id).size[1] < grown - 100", arg=[node_id, grown],
                           timeout=WAIT_MS)


def test_after_a_run_the_result_is_shown_with_ab_playback(page, song, server):
    wf = workflow("inpaint", song, values={"AceForge_RepaintMask": [2.0, "start", 5.0, "start"],
                                           "AceForge_KSampler": [0, "fixed", 3]})
    node_id, editor = load(page, wf, "AceForge_RepaintMask")
    page.evaluate(f"async () => await {APP}.queuePrompt(0, 1)")
    wait_state(page, node_id, "d.showing === 'result' && +d.columns > 100", timeout=RUN_TIMEOUT_MS)
    state = data(editor)
    assert state["file"].startswith(("AceForge_inpaint", "ComfyUI_temp")) and state["file"] != song
    assert state["region"] == "2.000,5.000"  # the edited region stays highlighted on the result
    assert editor.locator("[data-action='ab']").is_visible()
    r, g, b = pixel(editor.locator("canvas"), 3.5 / SECONDS, 0.04)
    assert b > r + 20, "the region is not highlighted"

    # A/B: the result plays, switching to the source keeps playing at the same place, stop stops
    audio = editor.locator("audio")
    editor.locator("[data-action='play-song']").click()
    playing = ("(a, [name, after]) => new Promise((ok, fail) => { const t = setTimeout(() => fail(new Error("
               "'not playing ' + name + ' past ' + after + ': ' + a.src + ' at ' + a.currentTime)), 15000);"
               " const check = () => !a.paused && a.src.includes(encodeURIComponent(name)) && a.currentTime > after"
               " ? (clearTimeout(t), ok(a.currentTime)) : setTimeout(check, 50); check(); })")
    at = audio.evaluate(playing, [state["file"], 0.5])
    editor.locator("[data-action='ab']").click()
    assert data(editor)["showing"] == "source"
    audio.evaluate(playing, [song, at])
    editor.locator("[data-action='ab']").click()
    assert data(editor)["showing"] == "result"
    audio.evaluate(playing, [state["file"], at])
    editor.locator("[data-action='stop']").click()
    assert audio.evaluate("(a) => a.paused") and data(editor)["playing"] == "0"
    screenshot(page, node_id, "waveform_result.png")


def test_outpaint_handles_change_the_durations(page, song):
    node_id, editor = load(page, workflow("outpaint", song), "AceForge_Outpaint")
    before = widgets(page, node_id)
    t0, t1 = view(editor)
    box = editor.locator("canvas").bounding_box()
    _drag(page, box, SECONDS + before["extend_after_duration"], SECONDS + 20.0, t0, t1)
    values = widgets(page, node_id)
    assert values["extend_after_duration"] == pytest.approx(20.0, abs=0.3)
    assert _prompt_inputs(page, node_id)["extend_after_duration"] == values["extend_after_duration"]
    screenshot(page, node_id, "waveform_outpaint.png")


def test_cover_shows_the_song(page, song):
    wf = workflow("inpaint", song, {"AceForge_RepaintMask": ("AceForge_Cover", [1.0, 0.0, "cover"])})
    node_id, editor = load(page, wf, "AceForge_Cover")
    assert float(data(editor)["duration"]) == pytest.approx(SECONDS, abs=1e-3)
    assert editor.locator("[data-action='play-region']").is_hidden()
    screenshot(page, node_id, "waveform_cover.png")
