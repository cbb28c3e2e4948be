"""Command-line parts of the 5 Hz LM: ``generate --lm PATH`` and ``python -m ace_core write``.

``generate --lm``: the LM plans the song (the user's bpm / key / time signature / language and
the requested length are kept) and writes its audio codes; the DiT renders them as upstream's
``thinking`` path. ``write``: simple mode (``--description``) or format (``--tags`` + lyrics),
printed as text (or written as JSON with ``--out x.json``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ...errors import InputError
from ...progress import ConsoleProgress
from .. import prompts as P
from ..pipeline import SongFields
from .loader import load_lm
from .sampling import LMSampling
from .think import ThinkOptions, think
from .write import format_song, write_song

__all__ = ["add_lm_options", "add_write_parser", "plan_with_lm", "write_main"]


def add_lm_options(parser) -> None:
    """``--lm`` and its sampling options (the ``generate`` command)."""
    g = parser.add_argument_group("1.5: the 5 Hz LM (thinking: metadata, caption, audio codes)")
    g.add_argument("--lm", metavar="PATH", default=None,
                   help="a 5 Hz LM: acestep-5Hz-lm-* folder, qwen_1.7b_ace15 / qwen_4b_ace15 file, or 'checkpoint' "
                        "for the LM inside the all-in-one --checkpoint")
    g.add_argument("--lm-device", default=None, help="where the LM runs (default: --device)")
    g.add_argument("--lm-temperature", type=float, default=0.85, help="LM temperature (default 0.85; 0 = greedy)")
    g.add_argument("--lm-top-p", type=float, default=0.9, help="LM top-p (default 0.9; 1 = off)")
    g.add_argument("--lm-top-k", type=int, default=0, help="LM top-k (default 0 = off)")
    g.add_argument("--lm-min-p", type=float, default=0.0, help="LM min-p (default 0 = off)")
    g.add_argument("--lm-cfg-scale", type=float, default=2.0, help="LM CFG on the audio codes (default 2.0)")
    g.add_argument("--lm-negative", default=P.NO_USER_INPUT, help="the codes' CFG negative prompt")
    g.add_argument("--no-think-caption", dest="think_caption", action="store_false",
                   help="keep the caption as given (no LM rewrite)")
    g.add_argument("--no-think-language", dest="think_language", action="store_false",
                   help="do not let the LM detect the vocal language")
    g.add_argument("--no-think-metadata", dest="think_metadata", action="store_false",
                   help="do not let the LM fill the missing bpm / key / time signature")
    g.add_argument("--lm-legacy-prompt", action="store_true",
                   help="the legacy (closed-turn) codes prompt instead of current upstream's")


def _sampling(args) -> LMSampling:
    return LMSampling(temperature=args.lm_temperature, top_p=args.lm_top_p, top_k=args.lm_top_k,
                      min_p=args.lm_min_p, cfg_scale=getattr(args, "lm_cfg_scale", 1.0),
                      negative_prompt=getattr(args, "lm_negative", P.NO_USER_INPUT)).checked()


def _load(args, bundle, device, dtype):
    source = bundle if args.lm == "checkpoint" else Path(args.lm)
    return load_lm(source, dtype=dtype, device=getattr(args, "lm_device", None) or device,
                   progress=None if args.quiet else ConsoleProgress("loading LM "))


def plan_with_lm(bundle, args, tags: str, lyrics: str, text_options: dict, batch: int, device, dtype) -> tuple:
    """Think for ``generate``: -> (tags, lyrics, text options, codes (B, N)). The requested
    length is kept (``text_options["duration"]``), so the codes fill the latent exactly."""
    sampling = _sampling(args)
    lm = _load(args, bundle, device, dtype)
    options = ThinkOptions(metadata=args.think_metadata, caption=args.think_caption, language=args.think_language,
                           style="closed_turn" if args.lm_legacy_prompt else "open_turn")
    keep = {k: text_options.get(k) for k in ("bpm", "keyscale", "timesignature", "duration")}
    language = text_options.get("language")
    result = think(lm, bundle.text_tokenizer, tags, lyrics, options=options, sampling=sampling, seed=args.seed,
                   batch_size=batch, language=language, progress=None if args.quiet else ConsoleProgress("LM tokens "),
                   **keep)
    if not args.quiet:
        print(f"LM plan: {result.metadata} ({result.stats.tokens} tokens, {result.stats.tokens_per_second:.1f} "
              "tokens/s)", file=sys.stderr)
    fields = result.song_fields(SongFields(caption=tags, lyrics=lyrics, bpm=keep["bpm"], keyscale=keep["keyscale"],
                                           timesignature=keep["timesignature"], language=language or "unknown",
                                           duration=keep["duration"]))
    options_out = dict(text_options, bpm=fields.bpm, keyscale=fields.keyscale, timesignature=fields.timesignature,
                       language=fields.language, duration=fields.duration, task=fields.task)
    return fields.caption, fields.lyrics, options_out, result.codes


def add_write_parser(sub) -> None:
    w = sub.add_parser("write", help="1.5: write a caption, lyrics and metadata with the 5 Hz LM",
                       description="Simple mode (--description) or format (--tags and --lyrics/--lyrics-text), as the "
                                   "official API. Prints the result, or writes JSON with --out x.json.")
    w.add_argument("--lm", required=True, metavar="PATH", help="a 5 Hz LM folder or file")
    w.add_argument("--description", default=None, help="simple mode: what the song should be")
    w.add_argument("--instrumental", action="store_true", help="simple mode: no vocals")
    w.add_argument("--tags", "--caption", dest="tags", default="", help="format mode: your caption")
    w.add_argument("--lyrics-text", default="", help="format mode: your lyrics (\\n for new lines)")
    w.add_argument("--lyrics", metavar="FILE", default=None, help="format mode: a lyrics file")
    w.add_argument("--language", default=None, help="vocal language code to keep (default: the LM chooses)")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--device", default="cpu")
    w.add_argument("--out", default=None, help="write JSON here (default: print)")
    w.add_argument("--quiet", action="store_true")
    w.add_argument("--lm-temperature", type=float, default=0.85)
    w.add_argument("--lm-top-p", type=float, default=0.9)
    w.add_argument("--lm-top-k", type=int, default=0)
    w.add_argument("--lm-min-p", type=float, default=0.0)
    w.add_argument("--max-lyrics-tokens", type=int, default=2048, help="longest lyrics, in tokens (default 2048)")
    w.add_argument("--max-caption-tokens", type=int, default=512, help="longest caption, in tokens (default 512)")


def write_main(args) -> int:
    """Run ``write``; prints the song (or writes JSON)."""
    import torch

    from ..text_tokenizer import load_tokenizer

    if args.lm == "checkpoint":
        raise InputError("--lm: give the LM file or folder (write loads no checkpoint)")
    lyrics = Path(args.lyrics).read_text(encoding="utf-8") if args.lyrics else args.lyrics_text.replace("\\n", "\n")
    sampling = _sampling(args)
    lm = load_lm(Path(args.lm), dtype=torch.float32 if args.device == "cpu" else None, device=args.device)
    common = dict(sampling=sampling, seed=args.seed, max_lyrics_tokens=args.max_lyrics_tokens,
                  caption_tokens=args.max_caption_tokens,
                  progress=None if args.quiet else ConsoleProgress("LM tokens "))
    if args.description is not None:
        song = write_song(lm, load_tokenizer(), args.description, instrumental=args.instrumental,
                          language=args.language, **common)
    elif args.tags.strip() or lyrics.strip():
        song = format_song(lm, load_tokenizer(), args.tags, lyrics, language=args.language, **common)
    else:
        raise InputError("write: give --description (simple mode) or --tags / --lyrics (format)")
    data = {k: getattr(song, k) for k in ("caption", "lyrics", "bpm", "duration", "keyscale", "language",
                                          "timesignature", "genres")}
    if args.out:
        Path(args.out).write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    else:
        for key, value in data.items():
            if key != "lyrics" and value is not None:
                print(f"{key}: {value}")
        print(f"\n{data['lyrics']}")
    return 0
