// AceForge waveform region editor: draws the source song on the editing nodes (EDITORS in
// waveform_regions.js) and lets you drag the edit region; the number widgets and the drawing stay
// in sync both ways. Public extension API only: registerExtension, addDOMWidget, node links, the
// `executed` event and api.fetchApi / api.apiURL. Peaks come from the pack's /aceforge/waveform route.
//
// The source is the file of the Load Audio node found upstream (through VAE Encode); the snapping
// grid is the latent frame of the upstream checkpoint's family (/aceforge/latent_grid), or the finer
// grid of the supported families while that is not known. After a run, the result's waveform (an
// audio output found downstream) replaces the view, with A/B playback against the source.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";
import { chainCallback } from "./aceforge.js";
import { WaveformEditor } from "./waveform_editor.js";
import { editorFor, readExtend, valueOf } from "./waveform_regions.js";

const WIDGET = "aceforge_waveform";
const POLL_MS = 300; // how often the graph is looked at (file chosen, widgets typed, links changed)
const HEIGHT = 170;
const editors = new Map(); // node -> WaveformEditor
const grids = new Map(); // ckpt_name -> seconds per latent frame (a Promise while asked)

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

function gridOf(node) {
  const loader = upstream(node, (n) => typeof valueOf(n, "ckpt_name", null) === "string");
  const name = loader ? valueOf(loader, "ckpt_name") : "";
  const known = grids.get(name);
  if (typeof known === "number") return known;
  if (!known) {
    grids.set(name, fetchJson(`/aceforge/latent_grid?${new URLSearchParams({ ckpt_name: name })}`).then(({ status, body }) => {
      grids.set(name, status === 200 ? body.seconds_per_frame : 1920 / 48000);
    }));
  }
  return null;
}

function poll() {
  for (const [node, editor] of editors) {
    if (!node.graph) continue;
    editor.update({ source: audioSource(node), grid: gridOf(node) });
  }
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
    const editor = new WaveformEditor(node, spec, io(node));
    const widget = node.addDOMWidget(WIDGET, "aceforge-waveform", editor.element, {
      serialize: false, // neither in the API prompt
      getMinHeight: () => HEIGHT,
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
