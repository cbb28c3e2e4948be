// AceForge frontend extension: shows the language detected for every lyric line on the
// Lyric Romanizer node after it runs (read-only, never saved in the workflow).
import { app } from "../../../scripts/app.js";

const ROMANIZER = "AceForge_LyricRomanizer";
const SETTING = "AceForge.LyricRomanizer.ShowLanguages";
const WIDGET = "detected_languages";
const NOTED = ["AceForge_CheckpointLoader", "AceForge_SplitCheckpointLoader", "AceForge_TextEncodeAceStepAudio",
               "AceForge_KSampler"];

// Call `callback` after the object's existing `property` function (if any), keeping its result.
export function chainCallback(object, property, callback) {
  const original = object[property];
  object[property] = function (...args) {
    const result = original?.apply(this, args);
    callback.apply(this, args);
    return result;
  };
}

// A read-only <textarea> added through the public `addDOMWidget` API (no internal modules).
function showLanguages(node, text) {
  let widget = node.widgets?.find((w) => w.name === WIDGET);
  if (!widget) {
    const textarea = document.createElement("textarea");
    textarea.className = "comfy-multiline-input";
    textarea.readOnly = true;
    textarea.style.opacity = 0.85;
    widget = node.addDOMWidget(WIDGET, "textarea", textarea, {
      serialize: false, // not part of the API prompt
      getValue: () => textarea.value,
      setValue: (v) => (textarea.value = v ?? ""),
    });
    widget.serialize = false; // nor of the workflow's widgets_values
  }
  widget.value = text;
  node.setSize([node.size[0], Math.max(node.size[1], node.computeSize()[1])]);
  node.setDirtyCanvas(true, true);
}

app.registerExtension({
  name: "AceForge.lyricLanguages",
  settings: [
    {
      id: SETTING,
      category: ["AceForge", "Lyric Romanizer", "Show languages"],
      name: "Show the detected language of every lyric line on the Lyric Romanizer",
      type: "boolean",
      defaultValue: true,
    },
  ],
  nodeCreated(node) {
    if (node.comfyClass === ROMANIZER) {
      chainCallback(node, "onExecuted", function (message) {
        if (app.extensionManager?.setting?.get(SETTING) === false) return;
        const text = (message?.text ?? []).join("\n");
        if (text) showLanguages(this, text);
      });
    } else if (NOTED.includes(node.comfyClass)) {
      // the loaded variant (loaders) and settings without effect on the loaded model (encoder, sampler)
      chainCallback(node, "onExecuted", function (message) {
        const text = (message?.text ?? []).join("\n");
        if (text) showLanguages(this, text);
      });
    }
  },
});
