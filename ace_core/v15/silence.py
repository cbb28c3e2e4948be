"""The ACE-Step 1.5 silence latent: the VAE latent of digital silence, [1, T, 64] at 25 Hz.

Every task needs it: text2music context (``src_latents``), padding of latents and LM hints,
silencing a repaint region, the "no reference audio" timbre input (its first 750 frames) and
the FSQ tokenizer's padding.

Two sources:

* the official checkpoint folder's ``silence_latent.pt`` (a [1, 64, 15000] float32 tensor, 600 s;
  transposed to [1, 15000, 64]): :func:`load_silence_latent` (``weights_only`` unpickling);
* without it (ComfyUI split / all-in-one checkpoints carry no copy), the pattern ComfyUI core
  hard-codes: 4 distinct head frames followed by one frame repeated to the requested length
  (:data:`SILENCE_HEAD`, :data:`SILENCE_FRAME`; values to 4-5 significant digits).

When a loaded latent is shorter than asked for, it is tiled along time, as upstream does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch

from ..errors import CheckpointError, InputError

LATENT_CHANNELS = 64

# The first four frames of the silence latent, [4][64] (ComfyUI core constants).
SILENCE_HEAD = (
    (
        0.5707, 0.0982, 0.6909, -0.5658, 0.6266, 0.6996, -0.1365, -0.1291,
        -0.0776, -0.1171, -0.2743, -0.8422, -0.1168, 1.5539, -4.6936, 0.7436,
        -1.1846, -0.2637, 0.6933, -6.7266, 0.0966, -0.1187, -0.3501, -1.1736,
        0.0587, -2.0517, -1.3651, 0.7508, -0.249, -1.3548, -0.129, -0.7261,
        1.1132, -0.3249, 0.2337, 0.3004, 0.6605, -0.0298, -0.1989, -0.4041,
        0.2843, -1.0963, -0.5519, 0.2639, -1.0436, -0.1183, 0.064, 0.446,
        -1.1001, -0.6172, -1.3241, 1.1379, 0.5623, -0.1507, -0.1963, -0.4742,
        -2.4697, 0.5302, 0.5381, 0.4636, -0.1782, -0.0687, 1.0333, 0.4202,
    ),
    (
        0.304, -0.1367, 0.62, 0.0665, -0.0642, 0.4655, -0.1187, -0.044,
        0.2941, -0.2753, 0.0173, -0.2421, -0.0147, 1.5603, -2.7025, 0.7907,
        -0.9736, -0.0682, 0.1294, -5.0707, -0.2167, 0.3302, -0.1513, -0.81,
        -0.3894, -0.2884, -0.3149, 0.866, -0.3817, -1.7061, 0.5824, -0.484,
        0.6938, 0.1859, 0.1753, 0.3081, 0.0195, 0.1403, -0.0754, -0.2091,
        0.1251, -0.1578, -0.4968, -0.1052, -0.4554, -0.032, 0.1284, 0.4974,
        -1.1889, -0.0344, -0.8313, 0.2953, 0.5445, -0.6249, -0.1595, -0.0682,
        -3.1412, 0.0484, 0.4153, 0.826, -0.1526, -0.0625, 0.5366, 0.8473,
    ),
    (
        0.053524, -0.17534, 0.54443, -0.43501, -2.1317e-03, 0.372, -4.0143e-03, -0.15516,
        -0.12968, -0.15375, -0.077107, -0.20593, -0.3278, 1.5142, -2.6101, 0.58698,
        -1.2716, -0.24773, -0.027933, -5.0799, 0.11601, 0.40987, -0.02203, -0.66495,
        -0.20995, -0.63474, -0.15893, 0.82745, -0.22992, -1.6816, 0.5444, -0.49579,
        0.55128, 0.30477, 0.083052, -0.061782, 5.9036e-03, 0.29553, -0.080645, -0.1006,
        0.19144, -0.38124, -0.72949, 0.02452, -0.50814, 0.23977, 0.092943, 0.39256,
        -1.1993, -0.32752, -0.72707, 0.29476, 0.43542, -0.88597, -0.41686, -0.08539,
        -2.9018, 0.064988, 0.53945, 0.91988, 0.058762, -0.070098, 0.64772, 0.89118,
    ),
    (
        -0.032225, -0.13195, 0.56411, -0.54766, -5.2170e-03, 0.31425, -0.054367, -0.19419,
        -0.13059, -0.1366, -0.090984, -0.1954, -0.2559, 1.544, -2.6349, 0.68273,
        -1.2532, -0.1981, -0.022793, -5.0506, 0.18818, 0.50109, 7.3546e-03, -0.68771,
        -0.30676, -0.73257, -0.16687, 0.92232, -0.18987, -1.7267, 0.53355, -0.53179,
        0.44953, 0.2882, 0.13012, -0.20943, -0.11348, 0.33929, -0.15069, -0.12919,
        0.18929, -0.36166, -0.80756, 0.066387, -0.58867, 0.16978, 0.10134, 0.33877,
        -1.2133, -0.32492, -0.81237, 0.38101, 0.43765, -0.80596, -0.44531, -0.047513,
        -2.9266, 1.1741e-03, 0.45123, 0.93075, 0.053688, -0.19621, 0.6453, 0.9387,
    ),
)

# The frame repeated after the head, [64] (ComfyUI core constant).
SILENCE_FRAME = (
    -0.13672, -0.1582, 0.58594, -0.57422, 0.030273, 0.2793, -2.5940e-03, -0.20703,
    -0.16113, -0.14746, -0.02771, -0.18066, -0.29688, 1.6016, -2.6719, 0.77734,
    -1.3516, -0.19434, -0.071289, -5.0938, 0.24316, 0.47266, 0.046387, -0.66406,
    -0.21973, -0.67578, -0.15723, 0.95312, -0.2002, -1.7109, 0.58984, -0.57422,
    0.51562, 0.2832, 0.14551, -0.1875, -0.059814, 0.36719, -0.10059, -0.15723,
    0.20605, -0.43359, -0.82812, 0.045654, -0.66016, 0.14844, 0.094727, 0.38477,
    -1.2578, -0.33203, -0.85547, 0.43359, 0.42383, -0.89453, -0.50391, -0.056152,
    -2.9219, -0.024658, 0.50391, 0.98438, 0.072754, -0.21582, 0.63672, 1.0,
)


def pattern_silence(frames: int, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """[1, frames, 64]: the 4 head frames, then :data:`SILENCE_FRAME` repeated."""
    frames = _check_frames(frames)
    out = torch.tensor(SILENCE_FRAME, dtype=torch.float32).expand(frames, LATENT_CHANNELS).clone()  # [T, 64]
    n = min(frames, len(SILENCE_HEAD))
    out[:n] = torch.tensor(SILENCE_HEAD[:n], dtype=torch.float32)
    return out[None].to(device=device, dtype=dtype)


def silence_latent(frames: int, *, source: Optional[torch.Tensor] = None, dtype: torch.dtype = torch.float32,
                   device=None) -> torch.Tensor:
    """[1, frames, 64] silence: from ``source`` ([1, S, 64], tiled when S < frames) or the pattern."""
    frames = _check_frames(frames)
    if source is None:
        return pattern_silence(frames, dtype=dtype, device=device)
    if source.dim() != 3 or source.shape[0] != 1 or source.shape[2] != LATENT_CHANNELS:
        raise InputError(f"silence latent: expected [1, frames, 64], got {tuple(source.shape)}")
    available = source.shape[1]
    if frames <= available:
        out = source[:, :frames]
    else:
        repeats = -(-frames // available)  # ceil
        out = source.repeat(1, repeats, 1)[:, :frames]  # [1, frames, 64]
    return out.to(device=device, dtype=dtype)


def load_silence_latent(path: Union[str, Path], *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Load ``silence_latent.pt`` ([1, 64, S] float) → [1, S, 64]. Only plain tensors are unpickled."""
    path = Path(path)
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: silence latent file not found") from exc
    except Exception as exc:  # corrupt file or disallowed pickle content
        raise CheckpointError(f"{path}: cannot read the silence latent ({exc})") from exc
    if not isinstance(data, torch.Tensor) or data.dim() != 3 or data.shape[0] != 1 \
            or data.shape[1] != LATENT_CHANNELS or not data.is_floating_point():
        what = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
        raise CheckpointError(f"{path}: expected a [1, 64, frames] float tensor, got {what}")
    return data.transpose(1, 2).contiguous().to(device=device, dtype=dtype)  # [1, S, 64]


def _check_frames(frames) -> int:
    if isinstance(frames, bool) or int(frames) != frames or frames < 1:
        raise InputError(f"silence latent length: must be a whole number ≥ 1, got {frames!r}")
    return int(frames)


__all__ = ["LATENT_CHANNELS", "SILENCE_FRAME", "SILENCE_HEAD", "load_silence_latent", "pattern_silence",
           "silence_latent"]
