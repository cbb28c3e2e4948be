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

// Widget values keep milliseconds. A time on a latent frame edge is rounded towards the inside of
// that frame (`up`: a bit later, `down`: a bit earlier) so the server's whole-frame conversion of
// the value (int(seconds * frames per second)) still lands on the frame the drawing shows.
const MS = 1000;
export const msNearest = (x) => Math.round(x * MS) / MS;
export const msUp = (x) => Math.ceil(x * MS - 1e-6) / MS;
export const msDown = (x) => Math.floor(x * MS + 1e-6) / MS;

// Set a widget as a user edit would: clamped to its range, then its callback (undo, other listeners).
export function setValue(node, name, value, toMs = msNearest) {
  const w = widgetOf(node, name);
  if (!w) return false;
  const { min = -Infinity, max = Infinity } = w.options ?? {};
  const v = toMs(Math.min(max, Math.max(min, value)));
  if (w.value === v) return false;
  w.value = v;
  w.callback?.(v);
  return true;
}

// The number widgets of an editor keep milliseconds (ComfyUI rounds a FLOAT to its step, 0.1 s,
// which would pull a dragged edge off the latent frame it was snapped to).
export function keepMilliseconds(node, spec) {
  for (const name of [spec.start, spec.end, spec.before, spec.after]) {
    const options = widgetOf(node, name)?.options;
    if (!options) continue;
    if (options.round > 1 / MS) options.round = 1 / MS;
    if (options.precision === undefined || options.precision < 3) options.precision = 3;
  }
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

// Write a region (seconds from the start) back to the widgets, each in its own anchor (a time from
// the end is the song's duration minus it, rounded the other way: the same side of the frame edge).
export function writeRange(node, spec, duration, start, end) {
  const put = (name, t, anchor) => (fromStart(node, anchor)
    ? setValue(node, name, Math.max(0, t), msUp)
    : setValue(node, name, Math.max(0, duration - t), msDown));
  const a = put(spec.start, start, spec.startAnchor);
  const b = put(spec.end, end, spec.endAnchor);
  return a || b;
}

export function readExtend(node, spec) {
  return { before: Number(valueOf(node, spec.before)), after: Number(valueOf(node, spec.after)) };
}

const limit = (node, name, fallback) => widgetOf(node, name)?.options?.max ?? fallback;

// A drag of `mode` from pointer time `t0` (with the region as it was then) to pointer time `t`:
// the new region, its edges on the latent grid (frame edges counted from the song's start, as the
// server counts them; the song's own end is an edge too) and inside the song.
export function dragRange(mode, region, t0, t, duration, grid, maxLength = Infinity) {
  const g = Math.max(grid, 1e-3);
  const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
  const below = (x) => (grid > 0 ? Math.floor(x / grid + 1e-9) * grid : x); // the frame edge at or before x
  const lastEdge = below(duration);
  const edge = (x) => { // the nearest frame edge, or the song's end when that is nearer
    const s = snap(x, grid);
    return s > duration || Math.abs(x - duration) < Math.abs(x - s) ? duration : s;
  };
  if (mode === "move") {
    const length = Math.max(g, region.end - region.start);
    const start = snap(region.start + t - t0, grid);
    if (start + length >= duration) { // pushed against the end: it ends with the song
      return { start: Math.max(0, Math.min(below(duration - length), duration - g)), end: duration };
    }
    return { start: Math.max(0, start), end: Math.max(Math.max(0, start) + g, edge(Math.max(0, start) + length)) };
  }
  if (mode === "start") {
    return { start: clamp(snap(t, grid), Math.max(0, region.end - maxLength), region.end - g), end: region.end };
  }
  if (mode === "end") {
    return { start: region.start, end: clamp(edge(t), region.start + g, Math.min(duration, region.start + maxLength)) };
  }
  // "new": a fresh region from where the press was to where the pointer is
  let start = clamp(snap(Math.min(t0, t), grid), 0, lastEdge);
  let end = clamp(edge(Math.max(t0, t)), 0, duration);
  if (end - start < g) end = Math.min(duration, start + g);
  if (end - start < g) start = Math.max(0, end - g);
  return { start, end: Math.min(end, start + maxLength) };
}

// Extension handles: `before` is dragged left of 0 (whole frames before the song), `after` right of
// the song's end (the new end on a frame edge of the extended timeline). Durations are rounded down
// to milliseconds: the server rounds extensions up to whole frames.
export function dragExtend(node, spec, mode, t, duration, grid) {
  if (mode === "before") return setValue(node, spec.before, Math.max(0, snap(-t, grid)), msDown);
  if (mode === "after") return setValue(node, spec.after, Math.max(0, snap(t, grid) - duration), msDown);
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
