// One waveform editor on one editing node: the DOM (toolbar + canvas + <audio>), region dragging,
// zoom / scroll (wheel, shift+wheel, or dragging the ruler / with the middle button), playback
// (whole song, region, A/B against the last result); without a source, one line of hint. It talks
// to the server only through `io` ({fetchJson(path) -> {status, body}, audioURL(file) -> url, changed()}).
import { drawScene, HANDLE, RULER } from "./waveform_draw.js";
import {
  dragExtend, dragRange, extendLimit, formatTime, readExtend, readRange, valueOf, writeRange,
} from "./waveform_regions.js";

const PREROLL = 1.0; // seconds played before and after a region
const MIN_SPAN = 0.5; // seconds: the closest zoom
const HINT = "Waveform: choose or upload a file in Load Audio";
const MISSING_RETRY_MS = 2000; // a source the server does not have is asked for again (uploaded since?)
const fileKey = (f) => (f ? `${f.type}/${f.subfolder}/${f.filename}` : "");

function button(label, action, title) {
  const b = document.createElement("button");
  b.textContent = label;
  b.title = title;
  b.dataset.action = action;
  Object.assign(b.style, {
    font: "11px sans-serif", padding: "1px 6px", cursor: "pointer", borderRadius: "4px",
    border: "1px solid var(--border-color, #555)", background: "var(--comfy-input-bg, #222)",
    color: "var(--input-text, #ddd)",
  });
  return b;
}

export class WaveformEditor {
  constructor(node, spec, io) {
    Object.assign(this, { node, spec, io });
    this.source = null; // {filename, type, subfolder} of the connected Load Audio
    this.result = null; // the last run's output audio
    this.resultOffset = 0; // display time = result time + resultOffset (an intro added before the song)
    this.showing = "source";
    this.grid = 0.04; // seconds per latent frame (the route says which family)
    this.overview = new Map(); // file key -> whole-file peaks
    this.detail = null; // peaks of the zoomed window
    this.zoom = null; // {t0, t1} or null = fit
    this.drag = null;
    this.playhead = null;
    this.stopAt = null;
    this.error = "";
    this.missing = null; // {key, at}: the server has no such source file (yet), asked at `at`
    this.signature = "";
    this.ruler = [];
    this.build();
  }

  build() {
    const root = (this.element = document.createElement("div"));
    root.className = "aceforge-waveform";
    Object.assign(root.style, { display: "flex", flexDirection: "column", gap: "3px", width: "100%",
                                height: "100%", boxSizing: "border-box", userSelect: "none" });
    const bar = document.createElement("div");
    Object.assign(bar.style, { display: "flex", gap: "3px", alignItems: "center", flexWrap: "wrap" });
    this.buttons = {
      song: button("▶ Song", "play-song", "Play the whole song"),
      region: button("▶ Region", "play-region", `Play the edit region (with ${PREROLL} s before and after)`),
      stop: button("■", "stop", "Stop"),
      ab: button("A/B", "ab", "Switch between the source (A) and the last result (B); playback keeps its place"),
      out: button("−", "zoom-out", "Zoom out (or the mouse wheel)"),
      in: button("+", "zoom-in", "Zoom in (or the mouse wheel; shift+wheel scrolls)"),
      fit: button("Fit", "fit", "Show the whole song"),
    };
    this.label = document.createElement("span");
    Object.assign(this.label.style, { font: "11px sans-serif", color: "var(--descrip-text, #999)", marginLeft: "4px",
                                      whiteSpace: "nowrap", overflow: "hidden", textOverflow: "ellipsis", minWidth: "0",
                                      flex: "1 1 0" });
    bar.append(...Object.values(this.buttons), this.label);
    this.buttons.ab.style.display = "none";
    this.canvas = document.createElement("canvas");
    Object.assign(this.canvas.style, { flex: "1 1 auto", minHeight: "60px", width: "100%", borderRadius: "4px",
                                       touchAction: "none" });
    this.audio = document.createElement("audio");
    this.audio.preload = "none";
    this.audio.style.display = "none";
    root.append(bar, this.canvas, this.audio);

    const on = (el, type, fn, opts) => el.addEventListener(type, fn, opts);
    on(this.buttons.song, "click", () => this.play("song"));
    on(this.buttons.region, "click", () => this.play("region"));
    on(this.buttons.stop, "click", () => this.stop());
    on(this.buttons.ab, "click", () => this.toggleAB());
    on(this.buttons.in, "click", () => this.zoomBy(0.5));
    on(this.buttons.out, "click", () => this.zoomBy(2));
    on(this.buttons.fit, "click", () => this.setZoom(null));
    on(this.canvas, "pointerdown", (e) => this.pointerDown(e));
    on(this.canvas, "pointermove", (e) => this.pointerMove(e));
    on(this.canvas, "pointerup", (e) => this.pointerUp(e));
    on(this.canvas, "pointercancel", (e) => this.pointerUp(e));
    on(this.canvas, "wheel", (e) => this.wheel(e), { passive: false });
    on(this.audio, "ended", () => this.stop());
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(this.canvas);
    this.publish();
  }

  dispose() {
    this.stop();
    this.resizer.disconnect();
    this.audio.removeAttribute("src");
    clearTimeout(this.detailTimer);
  }

  // ---- what is shown -----------------------------------------------------------------------

  get file() {
    return this.showing === "result" && this.result ? this.result : this.source;
  }

  get offset() {
    return this.showing === "result" && this.result ? this.resultOffset : 0;
  }

  get duration() {
    return this.overview.get(fileKey(this.source))?.duration ?? 0;
  }

  get ready() {
    return this.duration > 0;
  }

  // No waveform to show (no source, not on the server, unreadable, or still being read): the editor
  // is one line saying so, the node its plain widgets.
  get hint() {
    return !this.ready;
  }

  hintText() {
    const file = this.source;
    if (!file) return HINT;
    if (this.error) return `Waveform: ${this.error}`;
    if (this.missing?.key === fileKey(file)) {
      return `Waveform: ${file.filename} is not in ComfyUI's ${file.type} folder (yet); choose or upload a file in Load Audio`;
    }
    return `Waveform: reading ${file.filename}…`;
  }

  extent() {
    const d = this.duration;
    if (this.spec.kind !== "extend") return { t0: 0, t1: d };
    const { before, after } = readExtend(this.node, this.spec);
    const room = Math.min(extendLimit(this.node, this.spec), Math.max(10, d * 0.25));
    return { t0: -Math.max(before * 1.1, room * 0.5), t1: d + Math.max(after * 1.1, room) };
  }

  view() {
    return this.zoom ?? this.drag?.view ?? this.extent(); // a drag keeps the view it started in
  }

  // The region in display seconds (range), the added parts (extend), and the fade bands.
  shapes() {
    const d = this.duration;
    const spec = this.spec;
    const featherSeconds = Number(valueOf(this.node, spec.feather, 0)) * this.grid;
    const fadeSeconds = Number(valueOf(this.node, spec.crossfade, 0)) / 1000;
    if (spec.kind === "range") {
      const r = readRange(this.node, spec, d);
      return {
        region: r, handles: [r.start, r.end], added: [],
        fades: [
          { start: r.start, end: r.start + featherSeconds }, { start: r.end - featherSeconds, end: r.end },
          { start: r.start - fadeSeconds, end: r.start }, { start: r.end, end: r.end + fadeSeconds },
        ],
      };
    }
    if (spec.kind === "extend") {
      const { before, after } = readExtend(this.node, spec);
      const added = [];
      const fades = [];
      if (before > 0) {
        added.push({ start: -before, end: 0 });
        fades.push({ start: 0, end: Math.max(featherSeconds, fadeSeconds) });
      }
      if (after > 0) {
        added.push({ start: d, end: d + after });
        fades.push({ start: d - Math.max(featherSeconds, fadeSeconds), end: d });
      }
      return { region: null, handles: [-before, d + after], added, fades };
    }
    return { region: { start: 0, end: d }, handles: [], added: [], fades: [] };
  }

  // Peaks in display time for the view: the zoomed detail when it covers it, else the whole file.
  peaks() {
    const whole = this.overview.get(fileKey(this.file));
    if (!whole) return null;
    const shift = (p) => ({ ...p, start: p.start + this.offset, end: p.end + this.offset });
    const v = this.view();
    const d = this.detail;
    if (d && d.key === fileKey(this.file) && d.start + this.offset <= Math.max(v.t0, this.offset) + 1e-6
        && d.end + this.offset >= Math.min(v.t1, whole.duration + this.offset) - 1e-6) {
      return shift(d);
    }
    return shift(whole);
  }

  redraw() {
    if (!this.canvas.width) return;
    const shapes = this.ready ? this.shapes() : { region: null, handles: [], added: [], fades: [] };
    const text = this.error || (this.ready ? this.caption() : this.source ? "loading…" : "");
    this.ruler = drawScene(this.canvas, {
      view: this.ready ? this.view() : { t0: 0, t1: 1 }, duration: this.duration, peaks: this.ready ? this.peaks() : null,
      ...shapes, playhead: this.playhead, text,
    });
    this.publish(shapes);
  }

  caption() {
    const name = this.file?.filename ?? "";
    return this.result ? `${this.showing === "result" ? "B: result" : "A: source"}  ${name}` : name;
  }

  // State for people and tests: the label, and data-* attributes on the root element.
  publish(shapes) {
    const ds = this.element.dataset;
    ds.node = String(this.node.id);
    ds.ready = this.ready ? "1" : "0";
    ds.hint = this.hint ? "1" : "0";
    const v = this.ready ? this.view() : null;
    ds.view = v ? `${v.t0.toFixed(3)},${v.t1.toFixed(3)}` : "";
    ds.ruler = this.ready ? this.ruler.join(" ") : "";
    ds.duration = String(this.duration);
    ds.showing = this.showing;
    ds.file = this.file?.filename ?? "";
    ds.playing = this.audio && !this.audio.paused ? "1" : "0";
    ds.columns = String(this.ready ? this.peaks()?.min.length ?? 0 : 0);
    ds.grid = String(this.grid);
    const r = shapes?.region;
    ds.region = r ? `${r.start.toFixed(3)},${r.end.toFixed(3)}` : "";
    let outside = false; // a region the server would refuse: said in red
    if (shapes && this.spec.kind === "range" && r) {
      outside = r.start < -1e-6 || r.end > this.duration + 1e-6 || r.end <= r.start;
      this.label.textContent = `${formatTime(r.start, true)} – ${formatTime(r.end, true)} (${(r.end - r.start).toFixed(2)} s)`
        + (outside ? ` ⚠ not inside the song (0:00 – ${formatTime(this.duration, true)})` : "");
    } else if (shapes && this.spec.kind === "extend") {
      const { before, after } = readExtend(this.node, this.spec);
      this.label.textContent = `+${before.toFixed(1)} s before, +${after.toFixed(1)} s after`;
    } else {
      this.label.textContent = this.ready ? formatTime(this.duration, true) : this.hintText();
    }
    this.label.title = this.label.textContent;
    this.label.style.color = outside ? "var(--error-text, #e55)" : "var(--descrip-text, #999)";
    for (const b of Object.values(this.buttons)) b.style.display = this.hint ? "none" : "";
    this.buttons.ab.style.display = this.result && !this.hint ? "" : "none";
    if (this.spec.kind === "whole") this.buttons.region.style.display = "none";
    this.canvas.style.display = this.hint ? "none" : "";
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(this.canvas.clientWidth * dpr);
    const h = Math.round(this.canvas.clientHeight * dpr);
    if (w && h && (w !== this.canvas.width || h !== this.canvas.height)) {
      this.canvas.width = w;
      this.canvas.height = h;
      this.redraw();
      this.requestDetail();
    }
  }

  // ---- data --------------------------------------------------------------------------------

  columns() {
    return Math.max(256, Math.min(4096, Math.round((this.canvas.clientWidth || 600) * (window.devicePixelRatio || 1))));
  }

  // The whole-file peaks of `file` (cached), or null: after an error (kept in this.error) or when
  // the server has no such file (this.missing; asked quietly, so the browser logs no failed request).
  async load(file) {
    const key = fileKey(file);
    if (!file || this.overview.has(key)) return this.overview.get(key);
    const q = new URLSearchParams({ ...file, width: String(this.columns()), missing_ok: "1" });
    const { status, body } = await this.io.fetchJson(`/aceforge/waveform?${q}`);
    if (status === 200 && body?.missing) {
      this.missing = { key, at: Date.now() };
      this.error = "";
      return null;
    }
    if (status !== 200) {
      this.error = `${file.filename}: ${body?.error ?? `HTTP ${status}`}`;
      return null;
    }
    if (this.missing?.key === key) this.missing = null;
    this.error = "";
    this.overview.set(key, body);
    return body;
  }

  async loadSource() {
    const source = this.source;
    this.asking = true;
    try {
      await this.load(source);
    } finally {
      this.asking = false;
    }
    if (fileKey(source) === fileKey(this.source)) this.redraw();
  }

  // Called by the extension whenever it looks at the graph: the Load Audio file, the grid, the widgets.
  async update({ source, grid }) {
    if (grid && grid !== this.grid) {
      this.grid = grid;
      this.redraw();
    }
    if (fileKey(source) !== fileKey(this.source)) {
      this.source = source;
      this.result = null; // a result of another song
      this.resultCall = (this.resultCall ?? 0) + 1;
      this.showing = "source";
      this.zoom = null;
      this.detail = null;
      this.stop();
      this.error = "";
      this.missing = null;
      this.redraw();
      if (source) await this.loadSource();
      return;
    }
    if (this.missing?.key === fileKey(source) && !this.asking && Date.now() - this.missing.at > MISSING_RETRY_MS) {
      await this.loadSource();
      return;
    }
    const signature = JSON.stringify((this.node.widgets ?? []).map((w) => w.value));
    if (signature !== this.signature && !this.drag) {
      this.signature = signature;
      this.redraw();
    }
  }

  // A run's output: shown instead of the source once its peaks are in (the latest call wins: a run
  // reports its preview and its saved file one after the other).
  async setResult(file, offset) {
    if (!file) return;
    const call = (this.resultCall = (this.resultCall ?? 0) + 1);
    this.overview.delete(fileKey(file)); // same name, new contents
    const loaded = await this.load(file);
    if (call !== this.resultCall) return;
    if (!loaded) {
      this.redraw(); // the error is shown
      return;
    }
    this.stop();
    this.result = file;
    this.resultOffset = offset;
    this.showing = "result";
    this.detail = null;
    this.redraw();
    this.requestDetail();
  }

  requestDetail() {
    clearTimeout(this.detailTimer);
    this.detailTimer = setTimeout(() => this.fetchDetail(), 150);
  }

  async fetchDetail() {
    const file = this.file;
    const whole = this.overview.get(fileKey(file));
    if (!whole || !this.zoom) return;
    const v = this.view();
    const start = Math.max(0, v.t0 - this.offset);
    const end = Math.min(whole.duration, v.t1 - this.offset);
    if (end <= start) return;
    const width = Math.max(16, Math.round(this.columns() * (end - start) / (v.t1 - v.t0)));
    const q = new URLSearchParams({ ...file, width: String(width), start: start.toFixed(4), end: end.toFixed(4) });
    const { status, body } = await this.io.fetchJson(`/aceforge/waveform?${q}`);
    if (status === 200 && fileKey(this.file) === fileKey(file)) {
      this.detail = { ...body, key: fileKey(file) };
      this.redraw();
    }
  }

  // ---- zoom and scroll ----------------------------------------------------------------------

  setZoom(view) {
    const full = this.extent();
    if (view) {
      const span = Math.min(full.t1 - full.t0, Math.max(MIN_SPAN, view.t1 - view.t0));
      const t0 = Math.min(full.t1 - span, Math.max(full.t0, view.t0));
      view = span >= full.t1 - full.t0 - 1e-9 ? null : { t0, t1: t0 + span };
    }
    this.zoom = view;
    this.redraw();
    this.requestDetail();
  }

  zoomBy(factor, at) {
    const v = this.view();
    const centre = at ?? (v.t0 + v.t1) / 2;
    this.setZoom({ t0: centre - (centre - v.t0) * factor, t1: centre + (v.t1 - centre) * factor });
  }

  wheel(e) {
    if (!this.ready) return;
    e.preventDefault();
    e.stopPropagation(); // the graph canvas would zoom too
    const v = this.view();
    if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) { // (browsers may turn shift+wheel into deltaX)
      const delta = Math.abs(e.deltaX) > Math.abs(e.deltaY) ? e.deltaX : e.deltaY;
      const shift = (delta / 500) * (v.t1 - v.t0);
      this.setZoom({ t0: v.t0 + shift, t1: v.t1 + shift });
    } else {
      this.zoomBy(e.deltaY > 0 ? 1.25 : 0.8, this.timeAt(e));
    }
  }

  // ---- pointer ------------------------------------------------------------------------------

  timeAt(e) {
    const rect = this.canvas.getBoundingClientRect();
    const v = this.view();
    return v.t0 + ((e.clientX - rect.left) / (rect.width || 1)) * (v.t1 - v.t0);
  }

  // What a press at this point grabs: an edge, the region's body, or (range) a new region.
  hit(e) {
    const v = this.view();
    const t = this.timeAt(e);
    const near = (edge) => Math.abs(edge - t) * (this.canvas.clientWidth / (v.t1 - v.t0)) <= HANDLE;
    const { region, handles } = this.shapes();
    if (this.spec.kind === "range") {
      if (near(handles[1])) return "end";
      if (near(handles[0])) return "start";
      return t > region.start && t < region.end ? "move" : "new";
    }
    if (this.spec.kind === "extend") {
      if (near(handles[0]) || t < 0) return "before";
      if (near(handles[1]) || t > this.duration) return "after";
    }
    return null;
  }

  onRuler(e) {
    return e.clientY - this.canvas.getBoundingClientRect().top >= this.canvas.clientHeight - RULER;
  }

  pointerDown(e) {
    if (!this.ready || (e.button !== 0 && e.button !== 1)) return;
    e.stopPropagation();
    const t = this.timeAt(e);
    if (e.button === 1 || this.onRuler(e)) { // scroll the zoomed view by dragging the timeline
      e.preventDefault();
      if (!this.zoom) return;
      this.drag = { mode: "pan", at: t, view: this.zoom };
      this.canvas.setPointerCapture(e.pointerId);
      return;
    }
    const mode = this.hit(e);
    if (!mode) {
      if (!this.audio.paused) this.seek(t);
      return;
    }
    this.drag = { mode, t0: t, region: readRange(this.node, this.spec, this.duration), view: this.view() };
    this.canvas.setPointerCapture(e.pointerId);
    this.pointerMove(e);
  }

  pointerMove(e) {
    if (!this.ready) return;
    if (!this.drag) {
      const mode = this.onRuler(e) ? (this.zoom ? "pan" : null) : this.hit(e);
      this.canvas.style.cursor = { move: "grab", pan: "grab", new: "crosshair" }[mode] ?? (mode ? "ew-resize" : "default");
      return;
    }
    if (this.drag.mode === "pan") { // keep the time that was pressed under the pointer
      const { at, view } = this.drag;
      const rect = this.canvas.getBoundingClientRect();
      const under = view.t0 + ((e.clientX - rect.left) / (rect.width || 1)) * (view.t1 - view.t0);
      this.setZoom({ t0: view.t0 + at - under, t1: view.t1 + at - under });
      return;
    }
    const t = this.timeAt(e);
    const { mode, t0, region } = this.drag;
    let changed;
    if (this.spec.kind === "range") {
      const next = dragRange(mode, region, t0, t, this.duration, this.grid, this.spec.maxLength ?? Infinity);
      changed = writeRange(this.node, this.spec, this.duration, next.start, next.end);
    } else {
      changed = dragExtend(this.node, this.spec, mode, t, this.duration, this.grid);
    }
    if (changed) {
      this.redraw();
      this.io.changed();
    }
  }

  pointerUp(e) {
    if (!this.drag) return;
    const panned = this.drag.mode === "pan";
    this.drag = null;
    if (this.canvas.hasPointerCapture(e.pointerId)) this.canvas.releasePointerCapture(e.pointerId);
    if (panned) return;
    this.signature = "";
    this.redraw(); // the window's mouseup that follows records the change for undo
  }

  // ---- playback -----------------------------------------------------------------------------

  playRange(mode) {
    const d = this.duration;
    if (mode === "song" || this.spec.kind === "whole") return [this.view().t0, null];
    if (this.spec.kind === "range") {
      const r = readRange(this.node, this.spec, d);
      return [r.start - PREROLL, r.end + PREROLL];
    }
    const { before, after } = readExtend(this.node, this.spec);
    const joins = [before > 0 ? [-before - PREROLL, PREROLL * 3] : null, after > 0 ? [d - PREROLL * 3, d + after + PREROLL] : null];
    return joins[1] ?? joins[0] ?? [0, null];
  }

  async play(mode) {
    const file = this.file;
    if (!this.ready || !file) return;
    const [from, to] = this.playRange(mode);
    const url = this.io.audioURL(file);
    if (this.audio.dataset.url !== url) {
      this.audio.src = url;
      this.audio.dataset.url = url;
    }
    this.stopAt = to;
    try {
      this.audio.currentTime = Math.max(0, from - this.offset);
      await this.audio.play();
    } catch (err) {
      this.error = `playback: ${err?.message ?? err}`;
      this.redraw();
      return;
    }
    this.error = "";
    this.tick();
  }

  seek(t) {
    this.audio.currentTime = Math.max(0, t - this.offset);
  }

  tick() {
    cancelAnimationFrame(this.frame);
    if (this.audio.paused) return;
    this.playhead = this.audio.currentTime + this.offset;
    if (this.stopAt != null && this.playhead >= this.stopAt) {
      this.stop();
      return;
    }
    this.redraw();
    this.frame = requestAnimationFrame(() => this.tick());
  }

  stop() {
    cancelAnimationFrame(this.frame);
    if (this.audio && !this.audio.paused) this.audio.pause();
    this.playhead = null;
    this.stopAt = null;
    if (this.canvas) this.redraw();
  }

  // A/B: show and play the other file at the same place on the timeline.
  async toggleAB() {
    if (!this.result) return;
    const playing = !this.audio.paused;
    const at = this.audio.currentTime + this.offset;
    const stopAt = this.stopAt;
    this.stop();
    this.showing = this.showing === "result" ? "source" : "result";
    this.detail = null;
    this.redraw();
    this.requestDetail();
    if (!playing) return;
    this.audio.dataset.url = this.io.audioURL(this.file);
    this.audio.src = this.audio.dataset.url;
    try {
      this.audio.currentTime = Math.max(0, at - this.offset);
      await this.audio.play();
      this.stopAt = stopAt;
      this.tick();
    } catch (err) {
      this.error = `playback: ${err?.message ?? err}`;
      this.redraw();
    }
  }
}
