"""ACE-Step 1.5 prompt strings: DiT caption/lyric prompts and the 5 Hz LM chat prompts.

Everything here is plain string work, checked character for character against the official
handler (golden fixture ``v15_prompts``):

* DiT: the task instruction, the metadata dict and its ``- bpm: ...`` string, the caption prompt
  (``SFT_GEN_PROMPT``) and the lyric prompt; :func:`build_dit_prompts` does all of it from the
  user's fields and validates them (:class:`~ace_core.errors.InputError` names the field and
  the allowed values).
* LM: the phase-1 (chain-of-thought) and phase-2 (audio codes) chat prompts with their CFG
  negatives, the Qwen3 chat rendering, the ``<think>`` YAML block (:func:`format_cot`) and
  :func:`parse_lm_output`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from ..errors import InputError

__all__ = [
    "VALID_LANGUAGES", "TRACK_NAMES", "TASK_TYPES", "TASK_INSTRUCTIONS", "DEFAULT_DIT_INSTRUCTION",
    "DEFAULT_LM_INSTRUCTION", "SFT_GEN_PROMPT", "DEFAULT_METAS", "VALID_KEYSCALES",
    "VALID_TIME_SIGNATURES", "BPM_RANGE", "DURATION_RANGE", "NO_USER_INPUT", "LM_CODES_STYLES",
    "MAX_AUDIO_CODE",
    "validate_language", "validate_track_name", "validate_bpm", "validate_duration",
    "validate_time_signature", "validate_keyscale",
    "task_instruction", "format_instruction", "is_cover_by_instruction", "metadata_dict",
    "metas_string", "caption_prompt", "lyric_prompt", "DitPrompts", "build_dit_prompts",
    "render_chat", "lm_system_message", "lm_cot_messages", "lm_cot_prompt", "lm_codes_messages",
    "lm_codes_prompt", "format_cot", "parse_lm_output", "audio_code_values",
]

# --- official constants (acestep/constants.py) ---------------------------------------------

VALID_LANGUAGES = (
    "ar", "az", "bg", "bn", "ca", "cs", "da", "de", "el", "en", "es", "fa", "fi", "fr", "he",
    "hi", "hr", "ht", "hu", "id", "is", "it", "ja", "ko", "la", "lt", "ms", "ne", "nl", "no",
    "pa", "pl", "pt", "ro", "ru", "sa", "sk", "sr", "sv", "sw", "ta", "te", "th", "tl", "tr",
    "uk", "ur", "vi", "yue", "zh", "unknown",
)
"""Lyric languages: 50 ISO codes + ``unknown`` (instrumental or undetermined)."""

TRACK_NAMES = ("woodwinds", "brass", "fx", "synth", "strings", "percussion", "keyboard", "guitar",
               "bass", "drums", "backing_vocals", "vocals")
"""Stem names for the lego / extract / complete tasks."""

TASK_TYPES = ("text2music", "repaint", "cover", "cover-nofsq", "extract", "lego", "complete")
"""``cover-nofsq`` (current upstream "Remix (Raw)") uses the cover instruction."""

TASK_INSTRUCTIONS = {
    "text2music": "Fill the audio semantic mask based on the given conditions:",
    "repaint": "Repaint the mask area based on the given conditions:",
    "cover": "Generate audio semantic tokens based on the given conditions:",
    "extract": "Extract the {TRACK_NAME} track from the audio:",
    "extract_default": "Extract the track from the audio:",
    "lego": "Generate the {TRACK_NAME} track based on the audio context:",
    "lego_default": "Generate the track based on the audio context:",
    "complete": "Complete the input track with {TRACK_CLASSES}:",
    "complete_default": "Complete the input track:",
}
DEFAULT_DIT_INSTRUCTION = TASK_INSTRUCTIONS["text2music"]
DEFAULT_LM_INSTRUCTION = "Generate audio semantic tokens based on the given conditions:"
SFT_GEN_PROMPT = "# Instruction\n{}\n\n# Caption\n{}\n\n# Metas\n{}<|endoftext|>\n"
"""Caption prompt template: instruction, caption, metas string."""
DEFAULT_METAS = "- bpm: N/A\n- timesignature: N/A\n- keyscale: N/A\n- duration: 30 seconds\n"

VALID_KEYSCALES = tuple(f"{note}{acc} {mode}" for note in "ABCDEFG" for acc in ("", "#", "b", "♯", "♭")
                        for mode in ("major", "minor"))
"""The 70 key/scale values: note A-G x accidental (none, #, b, ♯, ♭) x major/minor."""
VALID_TIME_SIGNATURES = (2, 3, 4, 6)
"""Beats per bar as the model knows them: 2 = 2/4, 3 = 3/4, 4 = 4/4, 6 = 6/8."""
BPM_RANGE = (30, 300)
DURATION_RANGE = (10, 600)
"""Seconds."""
NO_USER_INPUT = "NO USER INPUT"
"""The LM's default negative prompt, meaning "no negative prompt"."""
MAX_AUDIO_CODE = 63999

_KEYSCALE_BY_LOWER = {k.lower(): k for k in VALID_KEYSCALES}
_TIME_SIGNATURE_ALIASES = {"2/4": "2", "3/4": "3", "4/4": "4", "6/8": "6"}


# --- validation ----------------------------------------------------------------------------

def _is_missing(value) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in ("", "N/A"))


def validate_language(language: Optional[str]) -> str:
    """A code of :data:`VALID_LANGUAGES` (case-insensitive); None or "" -> ``unknown``."""
    if language is None or (isinstance(language, str) and not language.strip()):
        return "unknown"
    code = str(language).strip().lower()
    if code not in VALID_LANGUAGES:
        raise InputError(f"language: {language!r} is not supported; allowed: {', '.join(VALID_LANGUAGES)}")
    return code


def validate_track_name(name: str, field: str = "track_name") -> str:
    """A name of :data:`TRACK_NAMES` (case-insensitive), lower case."""
    key = str(name).strip().lower()
    if key not in TRACK_NAMES:
        raise InputError(f"{field}: {name!r} is not a track name; allowed: {', '.join(TRACK_NAMES)}")
    return key


def validate_bpm(bpm) -> Optional[int]:
    """Integer beats per minute in :data:`BPM_RANGE`; None, 0, "" or "N/A" = not given (None)."""
    if _is_missing(bpm) or bpm == 0:
        return None
    try:
        value = float(bpm)
    except (TypeError, ValueError):
        raise InputError(f"bpm: {bpm!r} is not a number; allowed: integers {BPM_RANGE[0]}-{BPM_RANGE[1]}") from None
    if not math.isfinite(value) or value != int(value) or not BPM_RANGE[0] <= value <= BPM_RANGE[1]:
        raise InputError(f"bpm: {bpm!r} is out of range; allowed: integers {BPM_RANGE[0]}-{BPM_RANGE[1]}")
    return int(value)


def validate_duration(duration) -> Optional[float]:
    """Seconds in :data:`DURATION_RANGE`; None = not given."""
    if duration is None:
        return None
    try:
        value = float(duration)
    except (TypeError, ValueError):
        raise InputError(f"duration: {duration!r} is not a number; allowed: "
                         f"{DURATION_RANGE[0]}-{DURATION_RANGE[1]} seconds") from None
    if not DURATION_RANGE[0] <= value <= DURATION_RANGE[1]:
        raise InputError(f"duration: {duration!r} s is out of range; allowed: "
                         f"{DURATION_RANGE[0]}-{DURATION_RANGE[1]} seconds")
    return value


def validate_time_signature(time_signature) -> Optional[str]:
    """``"2"``/``"3"``/``"4"``/``"6"`` (also ints and 2/4, 3/4, 4/4, 6/8); "", None, "N/A" -> None."""
    if _is_missing(time_signature):
        return None
    text = str(time_signature).strip()
    text = _TIME_SIGNATURE_ALIASES.get(text, text)
    if text not in {str(v) for v in VALID_TIME_SIGNATURES}:
        raise InputError(f"time signature: {time_signature!r} is not supported; allowed: "
                         f"{', '.join(map(str, VALID_TIME_SIGNATURES))} (2/4, 3/4, 4/4, 6/8)")
    return text


def validate_keyscale(keyscale) -> Optional[str]:
    """One of :data:`VALID_KEYSCALES` (case-insensitive, returned canonical); "", None, "N/A" -> None."""
    if _is_missing(keyscale):
        return None
    canonical = _KEYSCALE_BY_LOWER.get(" ".join(str(keyscale).split()).lower())
    if canonical is None:
        raise InputError(f"keyscale: {keyscale!r} is not supported; allowed: a note A-G, an optional "
                         f"accidental (#, b, ♯, ♭) and 'major' or 'minor', e.g. 'C major', 'F# minor'")
    return canonical


# --- DiT prompts ---------------------------------------------------------------------------

def task_instruction(task_type: str, track_name: Optional[str] = None,
                     complete_track_classes: Optional[Sequence[str]] = None) -> str:
    """The DiT instruction of a task; track names are validated and upper-cased.

    ``track_name`` is used by lego/extract, ``complete_track_classes`` by complete (joined with
    " | "); without them those tasks take their generic instruction.
    """
    if task_type not in TASK_TYPES:
        raise InputError(f"task: {task_type!r} is not supported; allowed: {', '.join(TASK_TYPES)}")
    if task_type in ("extract", "lego"):
        if not track_name:
            return TASK_INSTRUCTIONS[f"{task_type}_default"]
        name = validate_track_name(track_name)
        return TASK_INSTRUCTIONS[task_type].format(TRACK_NAME=name.upper())
    if task_type == "complete":
        if not complete_track_classes:
            return TASK_INSTRUCTIONS["complete_default"]
        names = [validate_track_name(n, "complete_track_classes").upper() for n in complete_track_classes]
        return TASK_INSTRUCTIONS["complete"].format(TRACK_CLASSES=" | ".join(names))
    if task_type == "cover-nofsq":
        return TASK_INSTRUCTIONS["cover"]
    return TASK_INSTRUCTIONS[task_type]


def format_instruction(instruction: Optional[str]) -> str:
    """The instruction with a trailing ":" (empty -> :data:`DEFAULT_DIT_INSTRUCTION`)."""
    instruction = instruction or DEFAULT_DIT_INSTRUCTION
    return instruction if instruction.endswith(":") else instruction + ":"


def is_cover_by_instruction(instruction: str) -> bool:
    """The handler's cover test: the instruction asks to generate audio semantic tokens."""
    lower = instruction.lower()
    return "generate audio semantic tokens" in lower and "based on the given conditions" in lower


def metadata_dict(bpm=None, keyscale=None, timesignature=None, duration=None) -> dict:
    """The handler's metadata dict: validated values, ``"N/A"`` for a missing bpm / key /
    time signature; ``duration`` becomes ``"{int(duration)} seconds"`` and is left out when None."""
    bpm, keyscale = validate_bpm(bpm), validate_keyscale(keyscale)
    timesignature, duration = validate_time_signature(timesignature), validate_duration(duration)
    metas: dict[str, Any] = {
        "bpm": "N/A" if bpm is None else bpm,
        "keyscale": keyscale or "N/A",
        "timesignature": timesignature or "N/A",
    }
    if duration is not None:
        metas["duration"] = f"{int(duration)} seconds"
    return metas


def metas_string(metas: Optional[Mapping[str, Any]]) -> str:
    """``- bpm: ..`` lines of a metadata dict (missing fields "N/A", duration "30 seconds");
    None -> :data:`DEFAULT_METAS`. A numeric duration is truncated to whole seconds."""
    if metas is None:
        return DEFAULT_METAS
    duration = metas.get("duration", 30)
    if isinstance(duration, (int, float)) and not isinstance(duration, bool):
        duration = f"{int(duration)} seconds"
    elif not isinstance(duration, str):
        duration = "30 seconds"
    return (f"- bpm: {metas.get('bpm', 'N/A')}\n- timesignature: {metas.get('timesignature', 'N/A')}\n"
            f"- keyscale: {metas.get('keyscale', 'N/A')}\n- duration: {duration}\n")


def caption_prompt(instruction: str, caption: str, metas) -> str:
    """The caption-encoder prompt; ``metas`` is a metas string or a metadata dict (or None)."""
    text = metas if isinstance(metas, str) else metas_string(metas)
    return SFT_GEN_PROMPT.format(format_instruction(instruction), caption, text)


def lyric_prompt(lyrics: str, language: str) -> str:
    """The lyric prompt: ``# Languages`` header, the lyrics, then the literal ``<|endoftext|>``."""
    return f"# Languages\n{language}\n\n# Lyric\n{lyrics}<|endoftext|>"


@dataclass(frozen=True)
class DitPrompts:
    """Everything the DiT text side needs for one item."""

    instruction: str
    metas: dict
    metas_string: str
    caption_prompt: str
    lyric_prompt: str
    is_cover: bool
    text2music_caption_prompt: str
    """The caption prompt with the text2music instruction: the non-cover condition the
    reference switches to after ``audio_cover_strength`` of the steps."""


def build_dit_prompts(task_type: str, caption: str, lyrics: str, *, bpm=None, keyscale=None,
                      timesignature=None, duration=None, language: Optional[str] = "unknown",
                      track_name: Optional[str] = None,
                      complete_track_classes: Optional[Sequence[str]] = None,
                      instruction: Optional[str] = None) -> DitPrompts:
    """User fields -> the caption and lyric prompts, validated (``InputError`` names the field).

    ``instruction`` overrides the task's instruction (as the reference allows); ``is_cover``
    is then decided from its text. Instrumental music uses lyrics ``"[Instrumental]"``.
    """
    if not isinstance(caption, str) or not isinstance(lyrics, str):
        raise InputError("caption and lyrics: expected strings")
    instruction = format_instruction(instruction or task_instruction(task_type, track_name,
                                                                     complete_track_classes))
    metas = metadata_dict(bpm, keyscale, timesignature, duration)
    text = metas_string(metas)
    return DitPrompts(
        instruction=instruction, metas=metas, metas_string=text,
        caption_prompt=caption_prompt(instruction, caption, text),
        lyric_prompt=lyric_prompt(lyrics, validate_language(language)),
        is_cover=is_cover_by_instruction(instruction),
        text2music_caption_prompt=caption_prompt(DEFAULT_DIT_INSTRUCTION, caption, text),
    )


# --- LM chat prompts -----------------------------------------------------------------------

LM_CODES_STYLES = ("open_turn", "closed_turn")
"""Phase-2 prompt layouts. ``open_turn`` (upstream since PRs #1127/#1128, the default): the
assistant turn stays open after ``<think>..</think>\\n\\n`` and the negative's user message is
the bare negative prompt (``NO USER INPUT``). ``closed_turn`` (upstream 53067ab, the golden
fixture, ComfyUI): the CoT is a complete assistant message ending in ``<|im_end|>\\n`` and the
negative keeps caption and lyrics with an empty ``<think>\\n</think>``."""


def _split_think(content: str) -> tuple[str, str]:
    """Qwen3 template: an assistant message's (reasoning, answer) around ``</think>``."""
    if "</think>" not in content:
        return "", content
    reasoning = content.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
    return reasoning, content.split("</think>")[-1].lstrip("\n")


def render_chat(messages: Sequence[Mapping[str, str]], add_generation_prompt: bool) -> str:
    """Render system/user/assistant messages as the stock Qwen3 chat template does (no tools).

    An assistant message after the last user message shows its reasoning as
    ``<think>\\n{reasoning}\\n</think>\\n\\n{answer}`` when it is the last message or has
    reasoning; earlier assistant messages keep only the answer.
    """
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    parts = []
    for i, message in enumerate(messages):
        role, content = message["role"], message["content"]
        if role in ("system", "user"):
            parts.append(f"<|im_start|>{role}\n{content}<|im_end|>\n")
        elif role == "assistant":
            reasoning, answer = _split_think(content)
            if i > last_user and (i == len(messages) - 1 or reasoning):
                body = f"<think>\n{reasoning.strip(chr(10))}\n</think>\n\n{answer.lstrip(chr(10))}"
            else:
                body = answer
            parts.append(f"<|im_start|>assistant\n{body}<|im_end|>\n")
        else:
            raise InputError(f"chat message role: {role!r}; allowed: system, user, assistant")
    if add_generation_prompt:
        parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def _has_negative(negative_prompt: Optional[str]) -> bool:
    return bool(negative_prompt and negative_prompt.strip() and negative_prompt.strip() != NO_USER_INPUT)


def lm_system_message() -> dict:
    return {"role": "system", "content": f"# Instruction\n{DEFAULT_LM_INSTRUCTION}\n\n"}


def _lm_user(caption: str, lyrics: str) -> str:
    return f"# Caption\n{caption}\n\n# Lyric\n{lyrics}\n"


def lm_cot_messages(caption: str, lyrics: str, *, unconditional: bool = False,
                    negative_prompt: str = NO_USER_INPUT) -> list[dict]:
    """Phase-1 (metadata CoT) messages. The unconditional variant drops the caption, or uses
    ``negative_prompt`` as the caption when one is given (phase 1 runs at CFG 1, so it is
    normally unused)."""
    if not unconditional:
        user = _lm_user(caption, lyrics)
    elif _has_negative(negative_prompt):
        user = _lm_user(negative_prompt, lyrics)
    else:
        user = f"# Lyric\n{lyrics}\n"
    return [lm_system_message(), {"role": "user", "content": user}]


def lm_cot_prompt(caption: str, lyrics: str, *, unconditional: bool = False,
                  negative_prompt: str = NO_USER_INPUT) -> str:
    """Phase-1 prompt text, ending in an open ``<|im_start|>assistant\\n`` turn."""
    return render_chat(lm_cot_messages(caption, lyrics, unconditional=unconditional,
                                       negative_prompt=negative_prompt), add_generation_prompt=True)


def lm_codes_messages(caption: str, lyrics: str, cot_text: str, *, unconditional: bool = False,
                      negative_prompt: str = NO_USER_INPUT) -> list[dict]:
    """Phase-2 messages of the ``closed_turn`` layout (system, user, assistant = CoT)."""
    if unconditional:
        cot_text = "<think>\n</think>"
        caption = negative_prompt if _has_negative(negative_prompt) else caption
    return [lm_system_message(), {"role": "user", "content": _lm_user(caption, lyrics)},
            {"role": "assistant", "content": cot_text}]


def lm_codes_prompt(caption: str, lyrics: str, cot_text: str, *, unconditional: bool = False,
                    negative_prompt: str = NO_USER_INPUT, style: str = "open_turn") -> str:
    """Phase-2 (audio codes) prompt text; ``cot_text`` is ``<think>\\n...\\n</think>``
    (:func:`format_cot` or the phase-1 output). See :data:`LM_CODES_STYLES` for ``style``."""
    if style == "closed_turn":
        text = render_chat(lm_codes_messages(caption, lyrics, cot_text, unconditional=unconditional,
                                             negative_prompt=negative_prompt), add_generation_prompt=False)
        return text if text.endswith("\n") else text + "\n"
    if style != "open_turn":
        raise InputError(f"LM prompt style: {style!r}; allowed: {', '.join(LM_CODES_STYLES)}")
    if unconditional:
        user = negative_prompt if _has_negative(negative_prompt) else NO_USER_INPUT
        cot_text = "<think>\n\n</think>"
    else:
        user = _lm_user(caption, lyrics)
    head = render_chat([lm_system_message(), {"role": "user", "content": user}], add_generation_prompt=True)
    return head + cot_text + "\n\n"


# --- CoT YAML (PyYAML ``dump(allow_unicode=True, sort_keys=True)`` of a flat dict) ------------

_COT_KEYS = ("bpm", "caption", "duration", "keyscale", "language", "timesignature")
_BREAKS = "\n\x85\u2028\u2029"
_BLANK = "\0 \t\r" + _BREAKS
# YAML 1.1 implicit types: a str matching one of these is quoted so that it stays a string.
_IMPLICIT = re.compile(
    r"^(?:(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)"  # bool
    r"|(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"  # float
    r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))"
    r"|(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+"  # int
    r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)"
    r"|<<|~|null|Null|NULL|=|"  # merge, null (empty included), value
    r"|[0-9]{4}-[0-9]{2}-[0-9]{2}"  # timestamp
    r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?"
    r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)$")
_ESCAPES = {"\0": "0", "\x07": "a", "\x08": "b", "\t": "t", "\n": "n", "\x0b": "v", "\x0c": "f",
            "\r": "r", "\x1b": "e", '"': '"', "\\": "\\", "\x85": "N", "\u2028": "L", "\u2029": "P"}


def _printable(ch: str, *, double_quoted: bool = False) -> bool:
    if ch == "\n" or "\x20" <= ch <= "\x7e":
        return not double_quoted or ch not in '\n"\\'
    if double_quoted:
        return ("\xa0" <= ch <= "\ud7ff" or "\ue000" <= ch <= "\ufffd") and ch not in "\u2028\u2029\ufeff"
    return (ch == "\x85" or "\xa0" <= ch <= "\ud7ff" or "\ue000" <= ch <= "\ufffd"
            or "\U00010000" <= ch < "\U0010ffff") and ch != "\ufeff"


def _scalar_style(text: str) -> str:
    """'' (plain), "'" or '"' as PyYAML picks for a block-mapping value."""
    if not text:
        return "'"
    # block indicators: a leading indicator character, ": " / "- " / "? " and " #"
    block = text.startswith(("---", "..."))
    line_breaks = special = space_break = break_space = False
    for i, ch in enumerate(text):
        before = i == 0 or text[i - 1] in _BLANK
        after = i + 1 >= len(text) or text[i + 1] in _BLANK
        if i == 0 and (ch in "#,[]{}&*!|>'\"%@`" or (ch in "-?:" and after)):
            block = True
        elif i > 0 and ((ch == ":" and after) or (ch == "#" and before)):
            block = True
        line_breaks |= ch in _BREAKS
        special |= not _printable(ch)
        if i > 0 and ch == " " and text[i - 1] in _BREAKS:
            break_space = True
        if i > 0 and ch in _BREAKS and text[i - 1] == " ":
            space_break = True
    leading, trailing = text[0] in " " + _BREAKS, text[-1] in " " + _BREAKS
    plain = not (leading or trailing or break_space or space_break or special or line_breaks or block)
    if plain and not _IMPLICIT.match(text):
        return ""
    return '"' if break_space or space_break or special else "'"


class _Writer:
    """The few PyYAML emitter rules a flat ``key: value`` mapping needs (width 80, indent 2)."""

    WIDTH, INDENT = 80, 2

    def __init__(self):
        self.parts: list[str] = []
        self.column = 0
        self.whitespace = self.indention = True

    def write(self, data: str) -> None:
        self.parts.append(data)
        self.column += len(data)

    def line_break(self, data: str = "\n") -> None:
        self.parts.append(data)
        self.column, self.whitespace, self.indention = 0, True, True

    def indent(self, indent: int) -> None:
        if not self.indention or self.column > indent or (self.column == indent and not self.whitespace):
            self.line_break()
        if self.column < indent:
            self.whitespace = True
            self.write(" " * (indent - self.column))

    def indicator(self, mark: str, need_space: bool) -> None:
        self.write(mark if self.whitespace or not need_space else " " + mark)
        self.whitespace = self.indention = False

    def plain(self, text: str) -> None:
        if not self.whitespace:
            self.write(" ")
        self.whitespace = self.indention = False
        for run in re.findall(r" +|[^ ]+", text):  # plain scalars hold no line breaks
            if run == " " and self.column > self.WIDTH:  # fold at a single space past the width
                self.indent(self.INDENT)
                self.whitespace = self.indention = False
            else:
                self.write(run)

    def single_quoted(self, text: str) -> None:
        self.indicator("'", True)
        for m in re.finditer(r" +|[\n\x85\u2028\u2029]+|'|[^ \n\x85\u2028\u2029']+", text):
            run, start, end = m.group(), m.start(), m.end()
            if run[0] == " ":
                if len(run) == 1 and self.column > self.WIDTH and start != 0 and end != len(text):
                    self.indent(self.INDENT)
                else:
                    self.write(run)
            elif run[0] in _BREAKS:
                if run[0] == "\n":
                    self.line_break()
                for br in run:
                    self.line_break(br)
                self.indent(self.INDENT)
            elif run == "'":
                self.write("''")
            else:
                self.write(run)
        self.indicator("'", False)

    def double_quoted(self, text: str) -> None:
        self.indicator('"', True)
        start = 0
        for end in range(len(text) + 1):
            ch = text[end] if end < len(text) else None
            if ch is None or not _printable(ch, double_quoted=True):
                if start < end:
                    self.write(text[start:end])
                    start = end
                if ch is not None:
                    code = ord(ch)
                    self.write("\\" + (_ESCAPES.get(ch) or (f"x{code:02X}" if code <= 0xFF else
                                       f"u{code:04X}" if code <= 0xFFFF else f"U{code:08X}")))
                    start = end + 1
            if 0 < end < len(text) - 1 and (ch == " " or start >= end) \
                    and self.column + (end - start) > self.WIDTH:
                self.write(text[start:end] + "\\")
                start = max(start, end)
                self.indent(self.INDENT)
                self.whitespace = self.indention = False
                if text[start] == " ":
                    self.write("\\")
        self.indicator('"', False)


def _yaml_scalar(value) -> tuple[str, str]:
    """(text, forced style) of a value as PyYAML represents it."""
    if isinstance(value, bool):
        return ("true" if value else "false"), ""
    if isinstance(value, int):
        return str(value), ""
    if isinstance(value, float):
        if value != value:
            return ".nan", ""
        if value in (float("inf"), float("-inf")):
            return (".inf" if value > 0 else "-.inf"), ""
        text = repr(value).lower()
        return (text.replace("e", ".0e", 1) if "." not in text and "e" in text else text), ""
    if value is None:
        return "null", ""
    text = str(value)
    return text, _scalar_style(text)


def format_cot(metadata: Mapping[str, Any]) -> str:
    """``<think>\\n{yaml}\\n</think>`` of the LM metadata (bpm, caption, duration, keyscale,
    language, timesignature; None skipped), as the reference's ``yaml.dump(sort_keys=True)``:
    a time signature "N/4" becomes N and digit strings become integers."""
    writer = _Writer()
    for key in _COT_KEYS:
        value = metadata.get(key)
        if value is None:
            continue
        if key == "timesignature" and isinstance(value, str) and value.endswith("/4"):
            value = value.split("/")[0]
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        writer.indent(0)
        writer.plain(key)
        writer.indicator(":", False)
        text, style = _yaml_scalar(value)
        if style == "":
            writer.plain(text)
        elif style == "'":
            writer.single_quoted(text)
        else:
            writer.double_quoted(text)
    return f"<think>\n{''.join(writer.parts).strip()}\n</think>"


# --- LM output -----------------------------------------------------------------------------

_CODE = re.compile(r"<\|audio_code_(\d+)\|>")


def parse_lm_output(text: str) -> tuple[dict, str]:
    """LM output -> (metadata, audio-code string), as the reference ``parse_lm_output``.

    The metadata lines are read inside ``<think>..</think>`` (else before the first code):
    ``key: value`` starts a field, indented lines continue it. bpm/duration become int when
    they parse; the caption's continuation lines are joined with single spaces; genres,
    keyscale, language and timesignature are stripped strings; other keys are ignored. The
    code string is every ``<|audio_code_N|>`` token, concatenated.
    """
    codes = "".join(m.group(0) for m in _CODE.finditer(text))
    match = re.search(r"<think>(.*?)</think>", text, re.DOTALL) or \
        re.search(r"<reasoning>(.*?)</reasoning>", text, re.DOTALL)
    reasoning = match.group(1).strip() if match else ""
    if not reasoning:
        reasoning = text.split("<|audio_code_")[0].strip()
    fields: list[tuple[str, list[str]]] = []
    for line in reasoning.split("\n") if reasoning else []:
        if line.strip().startswith("<"):
            continue
        if line and not line[0].isspace() and ":" in line:
            key, first = line.split(":", 1)
            fields.append((key.strip().lower(), [first] if first.strip() else []))
        elif line.startswith((" ", "\t")) and fields:
            fields[-1][1].append(line)
    metadata: dict[str, Any] = {}
    for key, lines in fields:
        if not lines:
            continue
        value = "\n".join(lines)
        if key in ("bpm", "duration"):
            try:
                metadata[key] = int(value.strip())
            except ValueError:
                metadata[key] = value.strip()
        elif key == "caption":
            metadata[key] = " ".join(s.strip() for s in value.split("\n") if s.strip())
        elif key in ("genres", "keyscale", "language", "timesignature"):
            metadata[key] = value.strip()
    return metadata, codes


def audio_code_values(codes: str) -> list[int]:
    """The integers N of every ``<|audio_code_N|>`` in ``codes``, clamped to 0..MAX_AUDIO_CODE."""
    return [min(int(m.group(1)), MAX_AUDIO_CODE) for m in _CODE.finditer(codes)]
