"""The ACE-Step 1.5 5 Hz LM: model, loading, constrained decoding, thinking and writing.

Entry points: :func:`load_lm` (every layout), :func:`think` (phase 1 metadata/caption, phase 2
audio codes), :func:`write_song` / :func:`format_song` (simple mode and format),
:func:`codes_to_hints` (codes -> the DiT's 25 Hz cover hints).
"""

from .codes import codes_text, codes_to_hints, parse_codes
from .loader import find_lm, load_lm, tiny_five_hz_lm
from .model import FiveHzLM
from .sampling import LMNumericsError, LMSampling
from .think import ThinkOptions, ThinkResult, think
from .write import WrittenSong, format_song, write_song

__all__ = [
    "FiveHzLM", "LMNumericsError", "LMSampling", "ThinkOptions", "ThinkResult", "WrittenSong", "codes_text",
    "codes_to_hints", "find_lm", "format_song", "load_lm", "parse_codes", "think", "tiny_five_hz_lm",
    "write_song",
]
