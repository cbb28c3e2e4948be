// Which widgets of which node are the edit's time region, and the math between widget values and
// seconds on the song's timeline. Data-driven: a new editing node joins with one entry in EDITORS.
//
// kinds
//   range:  a section of the song (start/end seconds, each counted from the song's start or end)
//   extend: new audio before and after the song (two durations; the added time is drawn empty)
//   whole:  the whole song is the source (no handles), e.g. Cover

export const EDITORS = {
  AceForge_RepaintMask: {
    kind: "range", start: "start_time", end: "end_time",
    startAnchor: "start_time_relative_to", endAnchor: "end_time_relative_to",
    feather: "feather_frames", crossfade: "crossfade_ms", maxLength: 240,
  },
  AceForge_Outpaint: {
    kind: "extend", before: "extend_before_duration", after: "extend_after_duration",
    feather: "feather_frames", crossfade: "crossfade_ms",
  },
  AceForge_Cover: { kind: "whole" },
};

// Pack nodes not listed above still get the editor when their widget names say what they are.
const BY_WIDGETS = [
  { needs: ["start_time", "end_time"], spec: EDITORS.AceForge_RepaintMask },
  { needs: ["extend_before_duration", "extend_after_duration"], spec: EDITORS.AceForge_Outpaint },
];

export function editorFor(node) {
  const type = String(node?.comfyClass ?? node?.type ?? "");
  if (EDITORS[type]) return EDITORS[type];
  if (!type.startsWith("AceForge_")) return null;
  const names = new Set((node.widgets ?? []).map((w) => w.name));
  return BY_WIDGETS.find((g) => g.needs.every((n) => names.has(n)))?.spec ?? null;
}

export const widgetOf = (node, name) => (name ? node.widgets?.find((w) => w.name === name) : undefined);

export function valueOf(node, name, fallback = 0) {
  const w = widgetOf(node, name);
  return w === undefined ? fallback : w.value;
}

const round3 = (x) => Math.round(x * 1000) / 1000;

// Set a widget as a user edit would: clamped to its range, then its callback (undo, other listeners).
export function setValue(node, name, value) {
  const w = widgetOf(node, name);
  if (!w) return false;
  const { min = -Infinity, max = Infinity } = w.options ?? {};
  const v = round3(Math.min(max, Math.max(min, value)));
  if (w.value === v) return false;
  w.value = v;
  w.callback?.(v);
  return true;
}

export const snap = (t, grid) => (grid > 0 ? Math.round(t / grid) * grid : t);

const fromStart = (node, anchor) => valueOf(node, anchor, "start") !== "end";

// The region of a `range` node in seconds from the song's start (song of `duration` seconds).
export function readRange(node, spec, duration) {
  const at = (name, anchor) => {
    const v = Number(valueOf(node, name));
    return fromStart(node, anchor) ? v : duration - v;
  };
  return { start: at(spec.start, spec.startAnchor), end: at(spec.end, spec.endAnchor) };
}

// Write a region (seconds from the start) back to the widgets, each in its own anchor.
export function writeRange(node, spec, duration, start, end) {
  const rel = (t, anchor) => Math.max(0, fromStart(node, anchor) ? t : duration - t);
  const a = setValue(node, spec.start, rel(start, spec.startAnchor));
  const b = setValue(node, spec.end, rel(end, spec.endAnchor));
  return a || b;
}

export function readExtend(node, spec) {
  return { before: Number(valueOf(node, spec.before)), after: Number(valueOf(node, spec.after)) };
}

const limit = (node, name, fallback) => widgetOf(node, name)?.options?.max ?? fallback;

// A drag of `mode` from pointer time `t0` (with the region as it was then) to pointer time `t`:
// the new region, snapped to the latent grid and kept inside the song.
export function dragRange(mode, region, t0, t, duration, grid, maxLength = Infinity) {
  const g = Math.max(grid, 1e-3);
  const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
  if (mode === "move") {
    const length = region.end - region.start;
    const start = clamp(snap(region.start + t - t0, grid), 0, Math.max(0, duration - length));
    return { start, end: start + length };
  }
  if (mode === "start") {
    return { start: clamp(snap(t, grid), Math.max(0, region.end - maxLength), region.end - g), end: region.end };
  }
  if (mode === "end") {
    return { start: region.start, end: clamp(snap(t, grid), region.start + g, Math.min(duration, region.start + maxLength)) };
  }
  // "new": a fresh region from where the press was to where the pointer is
  let start = clamp(snap(Math.min(t0, t), grid), 0, duration);
  let end = clamp(snap(Math.max(t0, t), grid), 0, duration);
  if (end - start < g) end = Math.min(duration, start + g);
  if (end - start < g) start = Math.max(0, end - g);
  return { start, end: Math.min(end, start + maxLength) };
}

// Extension handles: `before` is dragged left of 0, `after` right of the song's end.
export function dragExtend(node, spec, mode, t, duration, grid) {
  if (mode === "before") return setValue(node, spec.before, Math.max(0, snap(-t, grid)));
  if (mode === "after") return setValue(node, spec.after, Math.max(0, snap(t - duration, grid)));
  return false;
}

export const extendLimit = (node, spec) => Math.max(limit(node, spec.before, 240), limit(node, spec.after, 240));

// m:ss (with tenths when `fine`), e.g. 75.3 -> "1:15" / "1:15.3"; negative times get a minus sign.
export function formatTime(t, fine = false) {
  const sign = t < 0 ? "-" : "";
  const tenths = fine ? Math.round(Math.abs(t) * 10) : Math.floor(Math.abs(t) + 1e-9) * 10;
  const m = Math.floor(tenths / 600);
  const s = (tenths - m * 600) / 10;
  const ss = fine ? s.toFixed(1).padStart(4, "0") : String(s).padStart(2, "0");
  return `${sign}${m}:${ss}`;
}
