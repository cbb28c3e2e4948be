"""The editor's region math (web/js/waveform_regions.js) run in Node: anchors, snapping, drags, m:ss.
Skipped where Node is not installed (the browser test covers the same code in the real frontend)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import pytest

from workflow_tools import REPO

NODE = shutil.which("node")

SCRIPT = """
import * as r from "%s";
const node = (values) => ({ comfyClass: "AceForge_RepaintMask", widgets: Object.entries(values).map(([name, value]) =>
  ({ name, value, options: { min: 0, max: 100 }, callback() { this.called = true; } })) });
const n = node({ start_time: 15, start_time_relative_to: "end", end_time: 0, end_time_relative_to: "end" });
const out = {};
out.read = r.readRange(n, r.EDITORS.AceForge_RepaintMask, 60);
r.writeRange(n, r.EDITORS.AceForge_RepaintMask, 60, 30, 50);
out.written = n.widgets.map((w) => [w.name, w.value, !!w.called]);
out.move = r.dragRange("move", { start: 10, end: 20 }, 12, 15.01, 60, 0.04);
out.moveClamped = r.dragRange("move", { start: 10, end: 20 }, 12, 100, 60, 0.04);
out.end = r.dragRange("end", { start: 10, end: 20 }, 20, 5, 60, 0.5);
out.long = r.dragRange("end", { start: 10, end: 20 }, 20, 400, 500, 0.04, 240);
out.fresh = r.dragRange("new", { start: 0, end: 1 }, 30, 25, 60, 0.04);
out.guess = r.editorFor({ comfyClass: "AceForge_Future", widgets: [{ name: "extend_before_duration" },
                                                                   { name: "extend_after_duration" }] })?.kind;
out.foreign = r.editorFor({ comfyClass: "SomethingElse", widgets: [{ name: "start_time" }, { name: "end_time" }] });
out.times = [r.formatTime(75.34), r.formatTime(59.96, true), r.formatTime(-3.2, true)];
// v1 grid: both edges of a moved region land on frame edges; the song's end is an edge too
const G = 4096 / 44100;
out.gridMove = r.dragRange("move", { start: 2, end: 5 }, 3.5, 6.5, 12, G);
out.gridMoveToEnd = r.dragRange("move", { start: 2, end: 5 }, 3.5, 30, 12, G);
out.gridNew = r.dragRange("new", { start: 0, end: 1 }, 11.995, 9.03, 12, G);
// written in milliseconds on the inside of the frame edge, in each anchor
const m = node({ start_time: 0, start_time_relative_to: "start", end_time: 0, end_time_relative_to: "end" });
r.writeRange(m, r.EDITORS.AceForge_RepaintMask, 12, 54 * G, 97 * G);
out.snappedValues = [m.widgets[0].value, m.widgets[2].value];
// extensions: the added time before in whole frames, the new end on a frame edge, rounded down
const o = node({ extend_before_duration: 0, extend_after_duration: 0 });
r.dragExtend(o, r.EDITORS.AceForge_Outpaint, "before", -3.01, 12, G);
r.dragExtend(o, r.EDITORS.AceForge_Outpaint, "after", 20.02, 12, G);
out.extendValues = o.widgets.map((w) => w.value);
// ComfyUI rounds a FLOAT widget to its step (0.1 s); the editor's widgets keep milliseconds
const f = node({ start_time: 1, end_time: 2, strength: 1 });
for (const w of f.widgets) Object.assign(w.options, { round: 0.1, precision: 1 });
r.keepMilliseconds(f, r.EDITORS.AceForge_RepaintMask);
out.options = f.widgets.map((w) => [w.options.round, w.options.precision]);
console.log(JSON.stringify(out));
"""


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_region_math(tmp_path):
    script = tmp_path / "check.mjs"
    script.write_text(SCRIPT % (REPO / "web" / "js" / "waveform_regions.js").as_uri(), encoding="utf-8")
    done = subprocess.run([NODE, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["read"] == {"start": 45, "end": 60}  # 15 s before the end .. the very end
    assert out["written"] == [["start_time", 30, True], ["start_time_relative_to", "end", False],
                              ["end_time", 10, True], ["end_time_relative_to", "end", False]]
    assert out["move"]["start"] == pytest.approx(13.0) and out["move"]["end"] == pytest.approx(23.0)
    assert out["moveClamped"] == {"start": 50, "end": 60}
    assert out["end"] == {"start": 10, "end": 10.5}  # never before start + one frame
    assert out["long"]["end"] == pytest.approx(250.0)  # at most 240 s long
    assert out["fresh"]["start"] == pytest.approx(25.0) and out["fresh"]["end"] == pytest.approx(30.0)
    assert out["guess"] == "extend" and out["foreign"] is None
    assert out["times"] == ["1:15", "1:00.0", "-0:03.2"]
    grid = 4096 / 44100
    on_grid = lambda t: abs(t / grid - round(t / grid)) < 1e-9  # noqa: E731
    move = out["gridMove"]
    assert move["start"] == pytest.approx(54 * grid) and on_grid(move["end"])  # 5.0 s -> frame 54 (5.016 s)
    assert move["end"] - move["start"] == pytest.approx(3.0, abs=grid / 2)
    assert out["gridMoveToEnd"]["end"] == 12 and on_grid(out["gridMoveToEnd"]["start"])
    assert on_grid(out["gridNew"]["start"]) and out["gridNew"]["end"] == 12  # the song's end is an edge
    start, end_from_end = out["snappedValues"]
    assert start == pytest.approx(54 * grid, abs=1e-3) and start >= 54 * grid  # 5.016: int(5.016 * fps) = 54
    assert int(start * 44100 / 4096) == 54
    assert int((12 - end_from_end) * 44100 / 4096) == 97 and 12 - end_from_end - 97 * grid < 1e-3
    before, after = out["extendValues"]
    assert before == pytest.approx(32 * grid, abs=1e-3) and before <= 32 * grid  # ceil(before * fps) = 32
    k = round(20.02 / grid)  # the new end: the frame edge nearest the pointer
    assert 12 + after <= k * grid and 12 + after == pytest.approx(k * grid, abs=1e-3)
    assert math.ceil((12 + after) * 44100 / 4096 - 1e-9) == k  # as regions.resolve_extension counts it
    assert out["options"] == [[0.001, 3], [0.001, 3], [0.1, 1]]  # strength keeps its rounding
