"""The seeded ACE-Step 1.5 inputs both sides read (driver side: uses ``ace_core`` for the noise and the LM prompt).

Layouts are ComfyUI core's (latents channel-first, (B, 64, T) at 25 Hz); our worker transposes
where the pack works on (B, T, 64).
"""

from __future__ import annotations

import math

import torch

SAMPLE_RATE = 48000
FRAMES_PER_SECOND = 25  # 48000 / 1920
LM_SONG = {"bpm": 120, "keyscale": "C major", "timesignature": "4", "language": "en"}
"""Song metadata of the text prompts (core's text node has the same fields)."""


def latent_frames(seconds: float) -> int:
    return int(round(seconds * SAMPLE_RATE)) // 1920


def lm_prompt_ids(caption: str, lyrics: str, seconds: float) -> tuple[list, list]:
    """Token ids of the 5 Hz LM's audio-code prompt and its CFG negative (ours; both sides get them)."""
    from ace_core.v15 import prompts as P
    from ace_core.v15.text_tokenizer import load_tokenizer

    tok = load_tokenizer()
    cot = P.format_cot(dict(LM_SONG, caption=caption, duration=int(math.ceil(seconds))))
    return (tok.encode(P.lm_codes_prompt(caption, lyrics, cot)),
            tok.encode(P.lm_codes_prompt(caption, lyrics, cot, unconditional=True)))


def turbo_noise(seed: int, frames: int) -> torch.Tensor:
    """(1, 64, T): the start noise our pipeline draws for ``seed`` (item 0), channel-first."""
    from ace_core.v15.sampling import initial_noise, seed_generators

    return initial_noise(seed_generators(seed, 1), 1, frames).transpose(1, 2).contiguous()


def make_inputs_v15(seed: int, seconds: float, text_dim: int, *, caption: str, lyrics: str,
                    vae_seconds: float | None = None, text_tokens: int = 48, lyric_tokens: int = 160) -> dict:
    """Random inputs of every 1.5 phase from one seeded generator.

    text_hidden (1, Lt, text_dim) / lyric_hidden (1, Ll, text_dim): the DiT's text conditioning
    (Qwen3 caption states, lyric embeddings); x (1, 64, T) and timestep (1,) (σ): one turbo DiT
    call (batch 1, no CFG); noise (1, 64, T): the generation's start noise (what our pipeline
    draws for ``seed``); latent (1, 64, T_vae) and waveform (1, 2, vae_seconds·48 kHz): the VAE
    decode and encode inputs (``vae_seconds``: default ``seconds``); lm_prompt / lm_negative:
    token ids of the LM prompt and its negative.
    """
    g = torch.Generator().manual_seed(seed)
    frames = latent_frames(seconds)
    vae_seconds = seconds if vae_seconds is None else vae_seconds
    n = int(round(vae_seconds * SAMPLE_RATE))
    t = torch.arange(n, dtype=torch.float64) / SAMPLE_RATE
    tones = sum(0.1 * torch.sin(2 * math.pi * f * t) for f in (110.0, 220.0, 330.0, 440.0))
    wave = tones.float().expand(2, n) + 0.02 * torch.randn(2, n, generator=g)
    prompt, negative = lm_prompt_ids(caption, lyrics, seconds)
    return {
        "text_hidden": torch.randn(1, text_tokens, text_dim, generator=g),
        "lyric_hidden": torch.randn(1, lyric_tokens, text_dim, generator=g) * 0.05,  # embedding scale
        "x": torch.randn(1, 64, frames, generator=g),
        "timestep": torch.tensor([0.7]),
        "noise": turbo_noise(seed, frames),
        "latent": torch.randn(1, 64, latent_frames(vae_seconds), generator=g),
        "waveform": wave.unsqueeze(0).contiguous(),
        "lm_prompt": torch.tensor(prompt, dtype=torch.long),
        "lm_negative": torch.tensor(negative, dtype=torch.long),
    }
