"""Channel layouts: any channel count to stereo (the VAEs of both families take stereo)."""

from __future__ import annotations

import math

import torch

from ..errors import InputError

__all__ = ["stereo_downmix_matrix", "to_stereo"]

_SQRT1_2 = 1.0 / math.sqrt(2.0)


def stereo_downmix_matrix(channels: int) -> torch.Tensor:
    """The (2, channels) matrix :func:`to_stereo` applies (float64).

    * 1 channel: copied to both sides. 2 channels: unchanged.
    * 3 to 8 channels in the WAVE / SMPTE order ``FL, FR, FC, LFE, BL, BR, SL, SR`` (3 = L R C,
      4 = quad FL FR BL BR, 5 = FL FR FC BL BR, 6 = 5.1, 7 = 6.1 FL FR FC LFE BC SL SR, 8 = 7.1):
      an ITU-R BS.775-style downmix. Front left/right go to their side with weight 1; centre,
      back centre and each surround go to both sides (centre-like) or their own side with weight
      1/sqrt(2); LFE is dropped.
    * Any other count: channels alternate left, right, left, ... with equal weight.

    Each row is then divided by its sum so a signal common to all contributing channels keeps its
    level (and full-scale input cannot clip).
    """
    if channels < 1:
        raise InputError(f"audio must have at least one channel, got {channels}")
    if channels == 1:
        return torch.tensor([[1.0], [1.0]], dtype=torch.float64)
    if channels == 2:
        return torch.eye(2, dtype=torch.float64)
    a = _SQRT1_2
    # Per channel: (weight to L, weight to R).
    layouts = {
        3: [(1, 0), (0, 1), (a, a)],  # FL FR FC
        4: [(1, 0), (0, 1), (a, 0), (0, a)],  # FL FR BL BR
        5: [(1, 0), (0, 1), (a, a), (a, 0), (0, a)],  # FL FR FC BL BR
        6: [(1, 0), (0, 1), (a, a), (0, 0), (a, 0), (0, a)],  # FL FR FC LFE BL BR
        7: [(1, 0), (0, 1), (a, a), (0, 0), (a * a, a * a), (a, 0), (0, a)],  # FL FR FC LFE BC SL SR
        8: [(1, 0), (0, 1), (a, a), (0, 0), (a, 0), (0, a), (a, 0), (0, a)],  # 7.1
    }
    weights = layouts.get(channels) or [(1, 0) if i % 2 == 0 else (0, 1) for i in range(channels)]
    m = torch.tensor(weights, dtype=torch.float64).T  # (2, channels)
    return m / m.sum(dim=1, keepdim=True)


def to_stereo(wave: torch.Tensor) -> torch.Tensor:
    """wave (B, C, L) -> (B, 2, L): mono duplicated, stereo as is, more channels downmixed.

    See :func:`stereo_downmix_matrix` for the downmix of more than two channels.
    """
    channels = wave.shape[1]
    if channels == 2:
        return wave
    if channels == 1:
        return wave.expand(-1, 2, -1)
    m = stereo_downmix_matrix(channels).to(device=wave.device, dtype=wave.dtype)
    return torch.einsum("oc,bcl->bol", m, wave)  # (B, 2, L)
