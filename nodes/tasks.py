"""ACE-Step 1.5 task nodes: Cover (a new song from the source's structure), Stems (base models:
extract / lego / complete) and Reference Timbre. Like the editing nodes they build edit LATENTs
(``ace_core/v15/tasks.py``) that the ACE-Step KSampler runs; the source's family picks the editor."""

from __future__ import annotations

from ..ace_core.editing import regions as er
from ..ace_core.family import require
from ..ace_core.v15 import tasks as v15_tasks
from ..ace_core.v15.prompts import TRACK_NAMES
from . import comfy_compat
from .conditioning import with_timbre
from .editing import CATEGORY, editor

class Cover:
    DESCRIPTION = (
        "Cover (ACE-Step 1.5): a new song in the style of the sampler's caption and lyrics that follows the "
        "structure of the source audio (upstream's cover task). The source goes through the model's 5 Hz semantic "
        "tokenizer and back, so melody and rhythm stay while timbre and style change; 'remix raw' skips that round "
        "trip (the raw latents guide the model: closer to the source). Connect the output to the ACE-Step KSampler, "
        "then ACE-Step VAE Decode. Sources up to 600 s."
    )
    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The source latent with the cover settings, for the ACE-Step KSampler.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "source": ("LATENT", {"tooltip": "The encoded source song (ACE-Step VAE Encode with a 1.5 model), "
                                                 "at most 600 s."}),
                "audio_cover_strength": ("FLOAT", {
                    "default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                    "tooltip": "Share of the steps guided by the source (official audio_cover_strength). 1.0: every "
                               "step; lower: the last steps follow only the caption and lyrics (freer).",
                }),
                "cover_noise_strength": ("FLOAT", {
                    "default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                    "tooltip": "Start from the source re-noised to this level instead of pure noise (official "
                               "cover_noise_strength): 0 = from noise; higher keeps more of the source's sound.",
                }),
                "mode": (list(v15_tasks.COVER_MODES), {
                    "default": "cover",
                    "tooltip": "cover: the source through the 5 Hz semantic tokens (official cover); remix raw: the raw "
                               "source latents (official 'cover-nofsq', Remix (Raw); upstream's remix defaults are "
                               "strength 0.0 and noise 0.2).",
                }),
            }
        }

    def apply(self, source, audio_cover_strength=1.0, cover_noise_strength=0.0, mode="cover"):
        return (editor(source, "cover").cover_latent(source, audio_cover_strength, cover_noise_strength, mode),)


class Stems:
    DESCRIPTION = (
        "Stems (ACE-Step 1.5 base models): extract one named track from the source (e.g. the vocals), lego: "
        "generate one named track that fits over the source, or complete: add the listed tracks to it. The "
        "sampler's caption and lyrics describe the result. Needs a base checkpoint (acestep-v15-base or xl-base): "
        "turbo and sft models refuse it with a clear error. Sources up to 600 s."
    )
    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The source latent with the stem task, for the ACE-Step KSampler.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "source": ("LATENT", {"tooltip": "The encoded source song (ACE-Step VAE Encode with a 1.5 model)."}),
                "task": (list(v15_tasks.STEM_TASKS), {
                    "default": "extract",
                    "tooltip": "extract: isolate track_name; lego: generate track_name over the source; complete: "
                               "add the tracks listed in complete_tracks.",
                }),
                "track_name": (list(TRACK_NAMES), {
                    "default": "vocals",
                    "tooltip": "The track to extract or generate (the official track names). Not used by complete.",
                }),
                "complete_tracks": ("STRING", {
                    "default": "drums, bass",
                    "tooltip": "complete only: the tracks to add, separated by commas, from: " + ", ".join(TRACK_NAMES),
                }),
            }
        }

    def apply(self, source, task="extract", track_name="vocals", complete_tracks=""):
        return (editor(source, task).stem_latent(source, task, track_name, complete_tracks),)


class ReferenceTimbre:
    DESCRIPTION = (
        "Reference timbre (ACE-Step 1.5): the sound of one or more reference clips (voice, instruments, mix) "
        "guides the song, independently of the task: use it with text to music, repaint, extend, cover or stems. "
        "Each clip is encoded and fitted to the 30 s the model takes (shorter clips are looped; longer ones give "
        "three slices from the front, middle and back). The clips ride on the conditioning under core's key, so "
        "core's ReferenceTimbreAudio output is accepted too."
    )
    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = ("CONDITIONING",)
    OUTPUT_TOOLTIPS = ("The conditioning with the reference clips added, for the ACE-Step KSampler.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("ACE_MODEL", {"tooltip": "The ACE-Step 1.5 model (its VAE encodes the clips)."}),
                "conditioning": ("CONDITIONING", {"tooltip": "The positive conditioning (Text Encode ACE-Step Audio)."}),
                "reference_audio": ("AUDIO", {
                    "tooltip": "The reference clip(s), e.g. from Load Audio; every item of a batch is one clip.",
                }),
            },
            "optional": {
                "reference_audio_2": ("AUDIO", {"tooltip": "Optional: one more reference clip."}),
            },
        }

    def apply(self, model, conditioning, reference_audio, reference_audio_2=None):
        require(model.adapter, "reference_timbre")
        latents = []
        for name, audio in (("reference_audio", reference_audio), ("reference_audio_2", reference_audio_2)):
            if audio is None:
                continue
            wave, rate = v15_tasks.check_audio(audio, name, max_seconds=er.MAX_SOURCE_SECONDS)
            model.prepare("vae")
            for k in range(wave.shape[0]):
                enc = model.adapter.encode_audio(model.bundle, {"waveform": wave[k:k + 1], "sample_rate": rate},
                                                 progress=comfy_compat.progress_hook("encoding"))
                latents.append(enc["samples"][:1])
        return (with_timbre(conditioning, latents),)


NODE_CLASS_MAPPINGS = {
    "AceForge_Cover": Cover,
    "AceForge_Stems": Stems,
    "AceForge_ReferenceTimbre": ReferenceTimbre,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "AceForge_Cover": "ACE-Step 1.5 Cover / Remix (AceForge)",
    "AceForge_Stems": "ACE-Step 1.5 Stems: Extract / Lego / Complete (AceForge)",
    "AceForge_ReferenceTimbre": "ACE-Step 1.5 Reference Timbre (AceForge)",
}
