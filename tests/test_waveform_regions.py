"""The editor's region math (web/js/waveform_regions.js) run in Node: anchors, snapping, drags, m:ss.
Skipped where Node is not installed (the browser test covers the same code in the real frontend)."""

from __future__ import annotations

import json
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
