"""Command-line editing: ``repaint``, ``extend``, ``cover`` and ``extract`` on an existing song.

Each command takes the same options as its node (``--start-time`` = RepaintMask's ``start_time``,
...) and runs the family's editor (``adapter.editor``: v1 ``edit_pipeline``, 1.5 ``tasks``) between
the VAE encode of ``--input`` and the sampler. A command the loaded family cannot run is refused
by name before anything loads (e.g. ``cover`` or ``extract`` with ACE-Step v1; ``extract`` with a
turbo or sft model is refused by the 1.5 editor).
"""

from __future__ import annotations

import argparse
import inspect
from typing import Callable

EDIT_COMMANDS = {
    "repaint": ("repaint", "regenerate a time range of a song (the rest stays bit for bit the source)"),
    "extend": ("extend", "add new audio before and/or after a song"),
    "cover": ("cover", "ACE-Step 1.5: a new song in the caption's style from the source's structure"),
    "extract": ("extract", "ACE-Step 1.5 base: extract one track (stems), or lego / complete"),
}
"""command -> (task the adapter must support, help)."""


def add_edit_parsers(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """The four editing subcommands, each with the shared options (``common``) and ``--input``."""
    for command, (_, help_text) in EDIT_COMMANDS.items():
        p = sub.add_parser(command, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        common(p)
        p.add_argument("--input", required=True, help="the source audio file (wav, flac, mp3, ogg)")
        _ADD[command](p)


def _repaint(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start-time", type=float, required=True, help="seconds where the region starts")
    p.add_argument("--end-time", type=float, required=True, help="seconds where the region ends")
    p.add_argument("--start-time-relative-to", choices=["start", "end"], default="start",
                   help="count --start-time from the start (default) or the end of the track")
    p.add_argument("--end-time-relative-to", choices=["start", "end"], default="start",
                   help="count --end-time from the start (default) or the end of the track")
    p.add_argument("--strength", type=float, default=None,
                   help="v1: retake variance (default 1.0); 1.5: repaint strength for the balanced mode (0.5)")
    p.add_argument("--repaint-mode", choices=["conservative", "balanced", "aggressive"], default=None,
                   help="1.5: how strongly the source outside the region is kept (default balanced)")


def _extend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--extend-before-duration", type=float, default=0.0, help="seconds of new audio before (0-240)")
    p.add_argument("--extend-after-duration", type=float, default=30.0, help="seconds of new audio after (0-240)")


def _cover(p: argparse.ArgumentParser) -> None:
    p.add_argument("--audio-cover-strength", type=float, default=1.0,
                   help="share of the steps that follow the source's structure (0-1, default 1)")
    p.add_argument("--cover-noise-strength", type=float, default=0.0,
                   help="start from the source re-noised: 0 = from noise (default), higher keeps more of it")
    p.add_argument("--remix-raw", action="store_true", help="use the raw source latents (upstream 'cover-nofsq')")


def _extract(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", choices=["extract", "lego", "complete"], default="extract",
                   help="extract a track (default), lego: generate one over the source, complete: add tracks")
    p.add_argument("--track-name", default="vocals", help="the track for extract / lego, e.g. vocals, drums, bass")
    p.add_argument("--complete-tracks", default="", help="complete: the tracks to add, e.g. 'drums bass'")


_ADD = {"repaint": _repaint, "extend": _extend, "cover": _cover, "extract": _extract}


def edit_task(args) -> str:
    """The task the command needs the loaded family to support."""
    return args.task if args.command == "extract" else EDIT_COMMANDS[args.command][0]


def _call(fn, *args, **kwargs):
    """Call an editor function with the options it takes (options of the other family left out)."""
    params = inspect.signature(fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return fn(*args, **{k: v for k, v in kwargs.items() if v is not None})


def edit_latent(adapter, source: dict, args) -> dict:
    """The family editor's edit LATENT for the command (the sampler then runs the edit)."""
    editor = adapter.editor
    if args.command == "repaint":
        return _call(editor.repaint_latent, source, args.start_time, args.start_time_relative_to, args.end_time,
                     args.end_time_relative_to, strength=args.strength, repaint_mode=args.repaint_mode)
    if args.command == "extend":
        return _call(editor.outpaint_latent, source, args.extend_before_duration, args.extend_after_duration)
    if args.command == "cover":
        return editor.cover_latent(source, args.audio_cover_strength, args.cover_noise_strength,
                                   "remix raw" if args.remix_raw else "cover")
    return editor.stem_latent(source, args.task, args.track_name, args.complete_tracks)


__all__ = ["EDIT_COMMANDS", "add_edit_parsers", "edit_latent", "edit_task"]
