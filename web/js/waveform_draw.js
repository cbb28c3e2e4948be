// Drawing of the waveform editor on a <canvas>: the peaks, the edit region (or the added time of an
// extension), feather / crossfade bands at its edges, the playhead and a m:ss ruler. Pure drawing:
// every input comes in `scene`; colours follow the ComfyUI theme (CSS variables).
import { formatTime } from "./waveform_regions.js";

export const RULER = 16; // px at the bottom
export const HANDLE = 6; // px either side of an edge that grabs it

function themeColours(element) {
  const css = getComputedStyle(element);
  const v = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  return {
    bg: v("--comfy-input-bg", "#222"),
    fg: v("--input-text", v("--fg-color", "#ddd")),
    muted: v("--descrip-text", "#999"),
    border: v("--border-color", "#4e4e4e"),
    region: "rgba(64, 150, 255, 0.28)",
    edge: "rgb(64, 150, 255)",
    fade: "rgba(255, 170, 40, 0.35)",
    added: "rgba(120, 200, 120, 0.16)",
    playhead: "rgb(235, 70, 70)",
  };
}

const TICKS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800];

// scene: {view: {t0, t1}, duration, peaks: {start, end, min[], max[]} | null, region: {start, end} | null,
//   added: [{start, end}], fades: [{start, end, kind}], handles: [t], playhead: t | null, text: string}
// Returns the ruler's labels, left to right (shown to tests and screen readers by the editor).
export function drawScene(canvas, scene) {
  const ctx = canvas.getContext("2d");
  const dpr = window.devicePixelRatio || 1;
  const W = canvas.width / dpr;
  const H = canvas.height / dpr;
  if (!W || !H) return [];
  const c = themeColours(canvas);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = c.bg;
  ctx.fillRect(0, 0, W, H);
  const { t0, t1 } = scene.view;
  const x = (t) => ((t - t0) / (t1 - t0)) * W;
  const wave = H - RULER;
  const mid = wave / 2;

  for (const a of scene.added ?? []) {
    ctx.fillStyle = c.added;
    ctx.fillRect(x(a.start), 0, x(a.end) - x(a.start), wave);
    ctx.fillStyle = c.muted;
    ctx.font = "11px sans-serif";
    ctx.textAlign = "center";
    const label = `+${(a.end - a.start).toFixed(1)} s`;
    const cx = Math.min(W - 24, Math.max(24, (Math.max(0, x(a.start)) + Math.min(W, x(a.end))) / 2));
    ctx.fillText(label, cx, mid + 4);
  }
  if (scene.region) {
    ctx.fillStyle = c.region;
    ctx.fillRect(x(scene.region.start), 0, x(scene.region.end) - x(scene.region.start), wave);
  }
  for (const f of scene.fades ?? []) {
    ctx.fillStyle = c.fade;
    ctx.fillRect(x(f.start), wave - 6, Math.max(1, x(f.end) - x(f.start)), 6);
  }

  // the waveform: one vertical line per peak column
  const p = scene.peaks;
  if (p && p.min.length) {
    ctx.strokeStyle = c.fg;
    ctx.lineWidth = 1;
    ctx.beginPath();
    const step = (p.end - p.start) / p.min.length;
    for (let i = 0; i < p.min.length; i++) {
      const left = x(p.start + i * step);
      const right = x(p.start + (i + 1) * step);
      if (right < 0 || left > W) continue;
      const px = Math.round((left + right) / 2) + 0.5;
      ctx.moveTo(px, mid - Math.max(0.5, p.max[i] * mid * 0.95));
      ctx.lineTo(px, mid - Math.min(-0.5, p.min[i] * mid * 0.95));
    }
    ctx.stroke();
  }
  ctx.strokeStyle = c.border;
  ctx.beginPath();
  ctx.moveTo(x(0), mid + 0.5);
  ctx.lineTo(x(scene.duration), mid + 0.5);
  ctx.stroke();

  ctx.fillStyle = c.edge;
  for (const t of scene.handles ?? []) {
    const hx = Math.round(x(t));
    ctx.fillRect(hx - 1, 0, 2, wave);
    ctx.fillRect(hx - HANDLE / 2, 0, HANDLE, 10);
    ctx.fillRect(hx - HANDLE / 2, wave - 10, HANDLE, 10);
  }
  if (scene.playhead != null) {
    ctx.fillStyle = c.playhead;
    ctx.fillRect(Math.round(x(scene.playhead)) - 1, 0, 2, wave);
  }

  // ruler in m:ss
  ctx.fillStyle = c.border;
  ctx.fillRect(0, wave, W, 1);
  ctx.fillStyle = c.muted;
  ctx.font = "10px sans-serif";
  ctx.textAlign = "left";
  const span = t1 - t0;
  const step = TICKS.find((s) => (s / span) * W >= 64) ?? 3600;
  const labels = [];
  for (let k = Math.ceil(t0 / step - 1e-9); k * step <= t1 + 1e-9; k++) {
    const t = k * step;
    const tx = Math.round(x(t)) + 0.5;
    const label = formatTime(t, step < 1);
    ctx.fillRect(tx, wave, 1, 4);
    ctx.fillText(label, tx + 2, H - 3);
    labels.push(label);
  }
  if (scene.text) {
    ctx.fillStyle = c.muted;
    ctx.font = "11px sans-serif";
    ctx.fillText(scene.text, 4, 12);
  }
  return labels;
}
