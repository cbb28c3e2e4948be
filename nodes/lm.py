"""ACE-Step 1.5 5 Hz LM nodes: load the LM, Think (metadata, caption, audio codes), Write lyrics.

The LM work happens in ``ace_core.v15.lm``; these nodes only read widgets, place the LM (ComfyUI
memory management, any device), show progress in tokens with tokens/s, and honour Cancel
between two tokens.
"""

from __future__ import annotations

import logging
import time

from ..ace_core.errors import InputError
from ..ace_core.loading.recognise import ACE_V15
from ..ace_core.v15 import prompts as p15
from ..ace_core.v15.lm import (LMSampling, ThinkOptions, format_song, load_lm, parse_codes, think,
                               write_song)
from ..ace_core.v15.pipeline import SongFields
from ..ace_core.v15.text_tokenizer import load_tokenizer
from . import comfy_compat
from .conditioning import encode_for
from .text_encode import KEYSCALES, NA, TIME_SIGNATURES, metadata_options

log = logging.getLogger("AceForge")

CATEGORY = "audio/ACE-Step"
FROM_CHECKPOINT = "(from the checkpoint)"
LM_FOLDERS = ("text_encoders", comfy_compat.PACK_FOLDER, "checkpoints")
LM_DTYPES = ["auto", "bf16", "fp16", "fp32"]
LM_DEVICES = ["auto", "cpu"]


class AceLM:
    """What travels on an ``ACE_LM`` socket: the 5 Hz LM (memory-managed) and its tokenizer."""

    def __init__(self, lm, name: str):
        self.lm, self.name = lm, name
        self.tokenizer = load_tokenizer()
        self.handle = comfy_compat.ManagedModule(lm, "lm")

    def prepare(self) -> None:
        self.handle.load()


def _lm_choices() -> list:
    names = [FROM_CHECKPOINT]
    for kind in LM_FOLDERS:
        names += [f for f in comfy_compat.list_files(kind) if "qwen_0.6b" not in f]
    return list(dict.fromkeys(names))


def _sampling_inputs() -> dict:
    return {
        "temperature": ("FLOAT", {"default": 0.85, "min": 0.0, "max": 2.0, "step": 0.01,
                                  "tooltip": "LM sampling temperature (official 0.85); 0 = greedy."}),
        "top_p": ("FLOAT", {"default": 0.9, "min": 0.01, "max": 1.0, "step": 0.01,
                            "tooltip": "Nucleus sampling (official 0.9); 1 = off."}),
        "top_k": ("INT", {"default": 0, "min": 0, "max": 64000, "tooltip": "Top-k sampling; 0 = off (official)."}),
        "min_p": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                            "tooltip": "Drop tokens below min_p × the best token's probability; 0 = off."}),
    }


def _tokens_hook(label: str):
    """A progress hook that also logs tokens/s at the end (ComfyUI bar + Cancel inside ComfyUI)."""
    inner = comfy_compat.progress_hook(label)
    start = time.perf_counter()
    state = {"done": 0}

    def hook(done: int, total: int) -> None:
        state["done"] = done
        inner(done, total)

    def rate() -> str:
        seconds = time.perf_counter() - start
        return f"{state['done']} tokens in {seconds:.1f} s ({state['done'] / max(seconds, 1e-9):.1f} tokens/s)"

    return hook, rate


class LoadAceStepLM:
    DESCRIPTION = (
        "Loads the ACE-Step 1.5 5 Hz language model (0.6B, 1.7B or 4B): the part that plans a song (bpm, key, "
        "time signature, duration, language, a rewritten caption) and writes its audio codes. Pick a file "
        "(ComfyUI's text_encoders/qwen_1.7b_ace15 or qwen_4b_ace15, or an official acestep-5Hz-lm-* folder's "
        "model.safetensors), or '(from the checkpoint)' to take the LM inside the all-in-one checkpoint. The LM "
        "can run on another device than the DiT (device = cpu frees the GPU for the DiT)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("ACE_LM",)
    OUTPUT_TOOLTIPS = ("The 5 Hz LM, for the Think and Write lyrics nodes.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "lm_name": (_lm_choices(), {"tooltip": "The LM file, or the one inside the loaded checkpoint."}),
                "dtype": (LM_DTYPES, {"default": "auto", "tooltip": "auto: bf16 where supported, else fp32. fp16 "
                                      "can overflow (NaN logits are left out; a run with none left stops)."}),
                "device": (LM_DEVICES, {"default": "auto", "tooltip": "auto: ComfyUI's device; cpu keeps the LM "
                                        "off the GPU."}),
            },
            "optional": {
                "model": ("ACE_MODEL", {"tooltip": "The ACE-Step 1.5 checkpoint, for '(from the checkpoint)'."}),
            },
        }

    def load(self, lm_name, dtype="auto", device="auto", model=None):
        if lm_name == FROM_CHECKPOINT:
            if model is None or model.family != ACE_V15:
                raise InputError("lm_name: '(from the checkpoint)' needs an ACE-Step 1.5 model on the model input")
            source = model.bundle
        else:
            source = comfy_compat.resolve_in(lm_name, LM_FOLDERS, "lm_name")
        torch_dtype = comfy_compat.choose_dtype(dtype)
        where = comfy_compat.torch_device() if device == "auto" else device
        lm = load_lm(source, dtype=torch_dtype, device="cpu" if comfy_compat.IN_COMFYUI else where,
                     progress=comfy_compat.progress_hook("loading the 5 Hz LM"))
        holder = AceLM(lm, lm_name)
        if device == "cpu":
            holder.handle.patcher = None  # stays on the CPU, outside ComfyUI's GPU management
        return (holder,)


class AceStepThink:
    DESCRIPTION = (
        "ACE-Step 1.5 thinking with the 5 Hz LM, as the official 'Think' option. Phase 1 writes the song's plan: "
        "bpm, key/scale, time signature, duration, vocal language and a rewritten caption, each kept when you set "
        "it and generated only when its switch is on. Phase 2 writes exactly duration × 5 audio codes (CFG against "
        "the negative prompt), which the DiT renders as a cover of the planned song. Outputs the conditioning for "
        "the ACE-Step KSampler (set the latent to the output duration) plus every planned field. Progress counts "
        "tokens; Cancel stops between two tokens."
    )
    CATEGORY = CATEGORY
    FUNCTION = "think"
    RETURN_TYPES = ("CONDITIONING", "STRING", "INT", "STRING", "STRING", "STRING", "FLOAT", "STRING")
    RETURN_NAMES = ("conditioning", "caption", "bpm", "keyscale", "timesignature", "language", "duration",
                    "audio_codes")
    OUTPUT_TOOLTIPS = (
        "Text conditioning with the LM's fields and audio codes, for the ACE-Step KSampler.",
        "The caption the DiT gets (the LM's rewrite when caption rewriting is on).",
        "Beats per minute.", "Key and scale.", "Beats per bar (2, 3, 4, 6).", "Vocal language code.",
        "Song length in seconds: make the latent this long.",
        "Item 1's audio codes as <|audio_code_N|> tokens (feed them back to reuse or edit them).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("ACE_MODEL", {"tooltip": "The ACE-Step 1.5 model (its text encoder encodes the plan)."}),
                "lm": ("ACE_LM", {"tooltip": "The 5 Hz LM from Load ACE-Step LM."}),
                "caption": ("STRING", {"multiline": True, "dynamicPrompts": True, "default": "pop, piano, upbeat",
                                       "tooltip": "Style caption: genre, mood, instruments, voice."}),
                "lyrics": ("STRING", {"multiline": True, "dynamicPrompts": True, "default": "[verse]\n\n[chorus]\n",
                                      "tooltip": "Lyrics with [verse], [chorus] ... tags; [Instrumental] for none."}),
                "bpm": ("INT", {"default": 0, "min": 0, "max": p15.BPM_RANGE[1], "tooltip": "0 = the LM decides."}),
                "keyscale": (KEYSCALES, {"default": NA, "tooltip": "N/A = the LM decides."}),
                "timesignature": (TIME_SIGNATURES, {"default": NA, "tooltip": "N/A = the LM decides."}),
                "vocal_language": (list(p15.VALID_LANGUAGES), {"default": "unknown",
                                                               "tooltip": "unknown = the LM detects it."}),
                "duration": ("FLOAT", {"default": 0.0, "min": 0.0, "max": float(p15.DURATION_RANGE[1]), "step": 0.1,
                                       "tooltip": "Seconds; 0 = the LM decides (within max_duration)."}),
                "think_metadata": ("BOOLEAN", {"default": True, "tooltip": "Generate the missing bpm, key, time "
                                               "signature and duration."}),
                "think_caption": ("BOOLEAN", {"default": True, "tooltip": "Let the LM rewrite the caption."}),
                "think_language": ("BOOLEAN", {"default": True, "tooltip": "Let the LM detect the vocal language."}),
                "generate_audio_codes": ("BOOLEAN", {"default": True, "tooltip": "Phase 2: audio codes for the DiT. "
                                                     "Off = metadata only (the DiT composes freely)."}),
                "cfg_scale": ("FLOAT", {"default": 2.0, "min": 1.0, "max": 10.0, "step": 0.1,
                                        "tooltip": "LM CFG on the audio codes (official 2.0); 1 = off (twice as fast)."}),
                "negative_prompt": ("STRING", {"default": p15.NO_USER_INPUT, "tooltip": "The codes' CFG negative; "
                                               "'NO USER INPUT' = none (upstream's default)."}),
                **_sampling_inputs(),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                                 "tooltip": "LM seed; batch item k uses seed + k."}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 8, "tooltip": "Codes for this many songs."}),
                "max_duration": ("INT", {"default": 240, "min": p15.DURATION_RANGE[0], "max": p15.DURATION_RANGE[1],
                                         "tooltip": "The longest duration the LM may choose (seconds)."}),
                "prompt_style": (list(p15.LM_CODES_STYLES), {"default": "open_turn",
                                 "tooltip": "open_turn: current upstream's codes prompt; closed_turn: the legacy one "
                                            "(ComfyUI core's)."}),
            },
            "optional": {
                "audio_codes": ("STRING", {"multiline": True, "default": "",
                                           "tooltip": "Codes to use instead of phase 2 (<|audio_code_N|> tokens or "
                                                      "integers)."}),
            },
        }

    def think(self, model, lm, caption, lyrics, bpm=0, keyscale=NA, timesignature=NA, vocal_language="unknown",
              duration=0.0, think_metadata=True, think_caption=True, think_language=True,
              generate_audio_codes=True, cfg_scale=2.0, negative_prompt=p15.NO_USER_INPUT, temperature=0.85,
              top_p=0.9, top_k=0, min_p=0.0, seed=0, batch_size=1, max_duration=240, prompt_style="open_turn",
              audio_codes=""):
        if model.family != ACE_V15:
            raise InputError("model: the 5 Hz LM plans ACE-Step 1.5 songs; load an ACE-Step 1.5 checkpoint")
        meta = metadata_options(bpm, keyscale, timesignature, vocal_language, duration)
        given_codes = parse_codes(audio_codes) if audio_codes and audio_codes.strip() else None
        options = ThinkOptions(metadata=think_metadata, caption=think_caption, language=think_language,
                               codes=generate_audio_codes and given_codes is None, style=prompt_style,
                               max_duration=int(max_duration))
        sampling = LMSampling(temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p, cfg_scale=cfg_scale,
                              negative_prompt=negative_prompt)
        if given_codes is not None and meta["duration"] is None:
            meta["duration"] = max(float(p15.DURATION_RANGE[0]), len(given_codes) / 5)
        lm.prepare()
        hook, rate = _tokens_hook("5 Hz LM")
        result = think(lm.lm, lm.tokenizer, caption, lyrics, options=options, sampling=sampling, seed=seed,
                       batch_size=batch_size, progress=hook, **meta)
        log.info("AceForge: 5 Hz LM: %s; plan %s", rate(), result.metadata)
        if given_codes is not None:
            result.codes = given_codes[None]
        fields = result.song_fields(SongFields(caption=caption, lyrics=lyrics, bpm=meta["bpm"],
                                               keyscale=meta["keyscale"], timesignature=meta["timesignature"],
                                               language=vocal_language, duration=meta["duration"]))
        model.prepare("text_encoder")
        cond = model.adapter.encode_text(model.bundle, fields.caption, fields.lyrics, bpm=fields.bpm,
                                         keyscale=fields.keyscale, timesignature=fields.timesignature,
                                         language=fields.language, duration=fields.duration, task=fields.task)
        cond.audio_codes = result.codes
        return (encode_for(model, cond), fields.caption, int(fields.bpm or 0), fields.keyscale or NA,
                str(fields.timesignature or NA), fields.language, float(fields.duration),
                result.codes_text(0) if result.codes is not None else "")


class AceStepWriteLyrics:
    DESCRIPTION = (
        "ACE-Step 1.5 lyric writing with the 5 Hz LM, as the official API: 'simple' turns a short description into "
        "a caption, lyrics and metadata; 'format' tidies your caption and lyrics into a detailed caption with "
        "metadata. Connect the outputs to the Think node or the text encoder."
    )
    CATEGORY = CATEGORY
    FUNCTION = "write"
    RETURN_TYPES = ("STRING", "STRING", "INT", "STRING", "STRING", "STRING", "FLOAT")
    RETURN_NAMES = ("caption", "lyrics", "bpm", "keyscale", "timesignature", "language", "duration")
    OUTPUT_TOOLTIPS = ("The caption the LM wrote.", "The lyrics.", "Beats per minute.", "Key and scale.",
                       "Beats per bar.", "Vocal language code.", "Song length in seconds.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "lm": ("ACE_LM", {"tooltip": "The 5 Hz LM from Load ACE-Step LM."}),
                "mode": (["simple", "format"], {"default": "simple", "tooltip": "simple: from a description; "
                                               "format: tidy the caption and lyrics below."}),
                "description": ("STRING", {"multiline": True, "default": "a soft love song for a quiet evening",
                                           "tooltip": "simple mode: what the song should be."}),
                "instrumental": ("BOOLEAN", {"default": False, "tooltip": "simple mode: no vocals."}),
                "caption": ("STRING", {"multiline": True, "default": "", "tooltip": "format mode: your caption."}),
                "lyrics": ("STRING", {"multiline": True, "default": "", "tooltip": "format mode: your lyrics."}),
                "vocal_language": (list(p15.VALID_LANGUAGES), {"default": "unknown",
                                                               "tooltip": "unknown = the LM chooses."}),
                **_sampling_inputs(),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                                 "tooltip": "LM seed."}),
            }
        }

    def write(self, lm, mode, description, instrumental, caption, lyrics, vocal_language="unknown",
              temperature=0.85, top_p=0.9, top_k=0, min_p=0.0, seed=0):
        sampling = LMSampling(temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p, cfg_scale=1.0)
        lm.prepare()
        hook, rate = _tokens_hook("5 Hz LM writing")
        if mode == "simple":
            song = write_song(lm.lm, lm.tokenizer, description, instrumental=instrumental, language=vocal_language,
                              sampling=sampling, seed=seed, progress=hook)
        elif mode == "format":
            song = format_song(lm.lm, lm.tokenizer, caption, lyrics, language=vocal_language, sampling=sampling,
                               seed=seed, progress=hook)
        else:
            raise InputError(f"mode: {mode!r}; allowed: simple, format")
        log.info("AceForge: 5 Hz LM writing: %s", rate())
        return (song.caption, song.lyrics, int(song.bpm or 0), song.keyscale or NA, str(song.timesignature or NA),
                song.language or "unknown", float(song.duration or 0))


NODE_CLASS_MAPPINGS = {
    "AceForge_LoadAceStepLM": LoadAceStepLM,
    "AceForge_AceStepThink": AceStepThink,
    "AceForge_AceStepWriteLyrics": AceStepWriteLyrics,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "AceForge_LoadAceStepLM": "Load ACE-Step 1.5 LM (AceForge)",
    "AceForge_AceStepThink": "ACE-Step 1.5 Think (AceForge)",
    "AceForge_AceStepWriteLyrics": "ACE-Step 1.5 Write Lyrics (AceForge)",
}
