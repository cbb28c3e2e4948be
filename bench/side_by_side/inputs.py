"""The seeded inputs both sides read (one small safetensors file), so they compute on the same numbers."""

from __future__ import annotations

import math
from pathlib import Path

import torch

SAMPLE_RATE = 44100
FRAMES_PER_SECOND = SAMPLE_RATE / 512 / 8
LYRIC_VOCAB = 6693  # the v1 lyric encoder's embedding rows

TAGS = "pop rock, energetic, female vocals, electric guitar, 120 bpm"
LYRICS = """[verse]
Neon lights are calling out my name
Every step I take is not the same
[chorus]
Sing it loud, sing it proud
We are dancing on a cloud
"""


def latent_frames(seconds: float) -> int:
    """Latent frames of ``seconds`` of audio (as the empty-latent nodes count them)."""
    return int(seconds * FRAMES_PER_SECOND)


def make_inputs(seed: int, seconds: float, text_tokens: int = 24, lyric_tokens: int = 128,
                text_dim: int = 768) -> dict:
    """Random inputs for every phase, drawn from one seeded generator.

    text_states (1, S_txt, text_dim) and lyric_ids (1, S_lyr): the conditioning; x (2, 8, 16, T) and
    timestep (1,) (σ·1000): one CFG-batch DiT call; noise (1, 8, 16, T): a generation's start
    noise; latent (1, 8, 16, T): the VAE decode input; waveform (1, 2, seconds·44100): the VAE
    encode input (a few tones with a little noise, amplitude below 0.5).
    """
    g = torch.Generator().manual_seed(seed)
    frames = latent_frames(seconds)
    n = int(round(seconds * SAMPLE_RATE))
    t = torch.arange(n, dtype=torch.float64) / SAMPLE_RATE
    tones = sum(0.1 * torch.sin(2 * math.pi * f * t) for f in (110.0, 220.0, 330.0, 440.0))
    wave = tones.float().expand(2, n) + 0.02 * torch.randn(2, n, generator=g)
    return {
        "text_states": torch.randn(1, text_tokens, text_dim, generator=g),
        "lyric_ids": torch.randint(3, LYRIC_VOCAB, (1, lyric_tokens), generator=g),
        "x": torch.randn(2, 8, 16, frames, generator=g),
        "timestep": torch.tensor([700.0]),
        "noise": torch.randn(1, 8, 16, frames, generator=g),
        "latent": torch.randn(1, 8, 16, frames, generator=g),
        "waveform": wave.unsqueeze(0).contiguous(),
    }


def save_inputs(inputs: dict, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in inputs.items()}, str(path))
    return path
