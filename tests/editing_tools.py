"""Shared helpers for the editing tests: a tiny random ACE-Step v1 (written in the ComfyUI layout
and read back by the real loader), synthetic sources and a conditioning."""

from __future__ import annotations

import functools
import math
import tempfile
from pathlib import Path

import torch


@functools.lru_cache(maxsize=1)
def tiny_bundle():
    from ace_core.v1.loader import load_v1
    from ace_core.v1.testing import write_tiny_checkpoint

    with tempfile.TemporaryDirectory(prefix="aceforge_edit_") as folder:  # the loader reads it whole
        path = write_tiny_checkpoint(Path(folder) / "tiny.safetensors", layout="comfy", seed=0)
        bundle = load_v1(path, dtype=torch.float32)
    for m in (bundle.dit, bundle.vae, bundle.text_encoder):
        m.eval()
    return bundle


def conditioning(bundle, seed: int = 0):
    from ace_core.v1.pipeline import TextConditioning

    g = torch.Generator().manual_seed(seed)
    dim = int(bundle.dit.config.text_embedding_dim)
    return TextConditioning(
        text_states=torch.randn(1, 6, dim, generator=g),
        text_mask=torch.ones(1, 6, dtype=torch.long),
        lyric_ids=torch.tensor([[261, 40, 41, 42, 43]]),
        lyric_mask=torch.ones(1, 5, dtype=torch.long),
    )


def tone(seconds: float, sample_rate: int = 44100, channels: int = 2, level: float = 0.05,
         seed: int = 0) -> torch.Tensor:
    """A smooth synthetic 'song' (a few low partials with a slow tremolo): (1, channels, L)."""
    n = int(round(seconds * sample_rate))
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    g = torch.Generator().manual_seed(seed)
    phases = torch.rand(4, generator=g, dtype=torch.float64) * 2 * math.pi
    x = sum(torch.sin(2 * math.pi * f * t + p) / (k + 1)
            for k, (f, p) in enumerate(zip((110.0, 165.0, 220.0, 330.0), phases)))
    x = x * (0.8 + 0.2 * torch.sin(2 * math.pi * 0.5 * t))
    x = (level * x / x.abs().max()).float()
    chans = [x if c % 2 == 0 else 0.9 * x for c in range(channels)]
    return torch.stack(chans)[None]
