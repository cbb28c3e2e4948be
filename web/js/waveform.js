// AceForge waveform region editor: draws the source song on the editing nodes (EDITORS in
// waveform_regions.js) and lets you drag the edit region; the number widgets and the drawing stay
// in sync both ways. Public extension API only: registerExtension, addDOMWidget, node links, the
// `executed` event and api.fetchApi / api.apiURL. Peaks come from the pack's /aceforge/waveform route.
//
// The source is the file of the Load Audio node found upstream (through VAE Encode); until its
// waveform is known (none chosen, not uploaded yet, being read) the editor is one line of hint and
// the node keeps its plain widgets. The snapping grid is the latent frame of the upstream checkpoint's family
// (/aceforge/latent_grid), or the finer grid of the supported families while that is not known.
// After a run, the result's waveform (an audio output found downstream) replaces the view, with A/B
// playback against the source.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";
import { chainCallback } from "./aceforge.js";
import { WaveformEditor } from "./waveform_editor.js";
import { editorFor, keepMilliseconds, readExtend, valueOf } from "./waveform_regions.js";

const WIDGET = "aceforge_waveform";
const POLL_MS = 300; // how often the graph is looked at (file chosen, widgets typed, links changed)
const HEIGHT = 170;
const HINT_HEIGHT = 24; // the editor's one line while no audio is known
const GRID_RETRY_MS = 5000; // an unknown model is asked again after this (the file may have arrived)
const editors = new Map(); // node -> WaveformEditor
const grids = new Map(); // loader query -> {seconds, known, at} (a Promise while asked)
let theme = "";

async function fetchJson(path) {
  try {
    const res = await api.fetchApi(path);
    let body = null;
    try {
      body = await res.json();
    } catch {
      body = { error: `HTTP ${res.status}` };
    }
    return { status: res.status, body };
  } catch (err) {
    return { status: 0, body: { error: String(err?.message ?? err) } };
  }
}

const io = (node) => ({
  fetchJson,
  audioURL: (file) => api.apiURL(`/view?${new URLSearchParams(file)}`),
  changed: () => node.setDirtyCanvas?.(true, true),
});

// Breadth-first up the input links: the first node that passes `test`.
function upstream(node, test) {
  const seen = new Set([node.id]);
  const queue = [node];
  while (queue.length) {
    const n = queue.shift();
    for (let i = 0; i < (n.inputs?.length ?? 0); i++) {
      const up = n.getInputNode?.(i);
      if (!up || seen.has(up.id)) continue;
      seen.add(up.id);
      if (test(up)) return up;
      queue.push(up);
    }
  }
  return null;
}

function downstreamIds(node) {
  const seen = new Set();
  const queue = [node];
  while (queue.length) {
    const n = queue.shift();
    for (let i = 0; i < (n.outputs?.length ?? 0); i++) {
      for (const down of n.getOutputNodes?.(i) ?? []) {
        if (seen.has(String(down.id))) continue;
        seen.add(String(down.id));
        queue.push(down);
      }
    }
  }
  return seen;
}

// A Load Audio value: "song.wav", "sub/song.wav" or "song.wav [output]".
export function parseAudioName(value) {
  const m = /^(.*?)(?: \[(input|output|temp)\])?$/.exec(String(value).trim());
  const cut = m[1].lastIndexOf("/");
  return { filename: m[1].slice(cut + 1), subfolder: cut >= 0 ? m[1].slice(0, cut) : "", type: m[2] ?? "input" };
}

const audioWidget = (n) => n.widgets?.find((w) => w.name === "audio" && typeof w.value === "string" && w.value.includes("."));

function audioSource(node) {
  const loader = upstream(node, audioWidget);
  return loader ? parseAudioName(audioWidget(loader).value) : null;
}

// The latent grid of the checkpoint upstream (the checkpoint loader's ckpt_name, or the split
// loader's dit_name), asked once per model; an unknown model is asked again a little later.
function gridOf(node) {
  const loader = upstream(node, (n) => ["ckpt_name", "dit_name"].some((k) => typeof valueOf(n, k, null) === "string"));
  const key = !loader ? "" : typeof valueOf(loader, "dit_name", null) === "string"
    ? new URLSearchParams({ dit_name: valueOf(loader, "dit_name") }).toString()
    : new URLSearchParams({ ckpt_name: valueOf(loader, "ckpt_name") }).toString();
  const known = grids.get(key);
  if (known instanceof Promise) return null;
  if (!known || (!known.known && Date.now() - known.at > GRID_RETRY_MS)) {
    grids.set(key, fetchJson(`/aceforge/latent_grid?${key}`).then(({ status, body }) => {
      const ok = status === 200 && body.seconds_per_frame > 0;
      grids.set(key, { seconds: ok ? body.seconds_per_frame : 1920 / 48000, known: ok && !!body.known, at: Date.now() });
    }));
  }
  return known?.seconds ?? null;
}

// The theme's colours (ComfyUI's colour palette sets them as CSS variables): a change redraws.
function themeKey() {
  const css = getComputedStyle(document.documentElement);
  return ["--comfy-input-bg", "--input-text", "--descrip-text", "--border-color", "--fg-color"]
    .map((name) => css.getPropertyValue(name).trim()).join("|");
}

function poll() {
  const now = themeKey();
  const repaint = now !== theme;
  theme = now;
  for (const [node, editor] of editors) {
    if (!node.graph) continue;
    editor.update({ source: audioSource(node), grid: gridOf(node) });
    if (repaint) editor.redraw();
    if (editor.hint !== editor.fittedHint) {
      editor.fittedHint = editor.hint;
      fitNode(node, editor.hint);
    }
  }
}

// The node grows to show the waveform and shrinks back to its plain widgets while there is none.
function fitNode(node, hint) {
  const natural = node.computeSize()[1];
  node.setSize([node.size[0], hint ? natural : Math.max(node.size[1], natural)]);
  node.setDirtyCanvas?.(true, true);
}

function onExecuted({ detail }) {
  const file = detail?.output?.audio?.[0];
  if (!file) return;
  const id = String(detail.display_node ?? detail.node);
  for (const [node, editor] of editors) {
    if (!node.graph || !downstreamIds(node).has(id)) continue;
    const offset = editor.spec.kind === "extend" ? -readExtend(node, editor.spec).before : 0;
    editor.setResult({ filename: file.filename, subfolder: file.subfolder ?? "", type: file.type ?? "output" }, offset);
  }
}

app.registerExtension({
  name: "AceForge.waveform",
  setup() {
    api.addEventListener("executed", onExecuted);
    setInterval(poll, POLL_MS);
  },
  nodeCreated(node) {
    const spec = editorFor(node);
    if (!spec) return;
    keepMilliseconds(node, spec);
    const editor = new WaveformEditor(node, spec, io(node));
    const widget = node.addDOMWidget(WIDGET, "aceforge-waveform", editor.element, {
      serialize: false, // neither in the API prompt
      getMinHeight: () => (editor.hint ? HINT_HEIGHT : HEIGHT),
      getMaxHeight: () => (editor.hint ? HINT_HEIGHT : undefined),
      getValue: () => undefined,
      setValue: () => {},
    });
    widget.serialize = false; // nor in the workflow's widgets_values
    editors.set(node, editor);
    chainCallback(node, "onRemoved", () => {
      editor.dispose();
      editors.delete(node);
    });
    node.setSize([Math.max(node.size[0], 460), Math.max(node.size[1], node.computeSize()[1])]);
  },
});
