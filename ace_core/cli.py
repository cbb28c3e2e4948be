"""Command line: text-to-audio and audio-to-audio without ComfyUI (ACE-Step v1).

The checkpoint's family is recognised from its safetensors headers and every model step goes
through that family's adapter (:mod:`ace_core.family`).

    python -m ace_core generate --tags "pop, piano" --lyrics song.txt --seconds 60 --seed 1 \\
        --out song.flac --checkpoint ace_step_v1_3.5b.safetensors
    python -m ace_core audio2audio --input in.wav --denoise 0.5 --tags "lo-fi" --out out.flac \\
        --checkpoint ace_step_v1_3.5b.safetensors
    python -m ace_core generate --demo --tags "pop" --seconds 5 --out demo.wav

The output format follows the extension (wav, flac, mp3, ogg). Bad input prints one clear error and
exits with status 2 without writing anything.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

EXIT_INPUT = 2
EXIT_INTERRUPTED = 130

REAL_WEIGHTS_URL = "https://huggingface.co/Comfy-Org/ACE-Step_ComfyUI_repackaged/blob/main/all_in_one/ace_step_v1_3.5b.safetensors"
DEMO_TAGS = "pop, piano, upbeat"
DEMO_NOTICE = (
    "DEMO MODE: running the whole pipeline on a tiny RANDOM model written to a temporary folder.\n"
    "The output is untrained noise, not music; it only shows that everything works on this machine."
)


def _bool_flag(parser: argparse.ArgumentParser, name: str, default: bool, help_text: str) -> None:
    dest = name.replace("-", "_")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(f"--{name}", dest=dest, action="store_true", help=f"{help_text} (default: {'on' if default else 'off'})")
    group.add_argument(f"--no-{name}", dest=dest, action="store_false", help=f"turn off {name}")
    parser.set_defaults(**{dest: default})


def _common(parser: argparse.ArgumentParser, default_steps: int = 60) -> None:
    from .v1.pipeline import GUIDANCE_TYPES, LANGUAGES, SAMPLERS, SamplerSettings

    d = SamplerSettings()
    io = parser.add_argument_group("model and output")
    io.add_argument("--checkpoint", help="ACE-Step v1 checkpoint: ComfyUI's ace_step_v1_3.5b.safetensors or the "
                                         "official ACE-Step-v1-3.5B folder")
    io.add_argument("--demo", action="store_true", help="use a tiny random model instead of --checkpoint "
                                                        "(no download needed; the output is noise)")
    io.add_argument("--out", required=True, help="output file: .wav, .flac, .mp3 or .ogg")
    io.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp16", "fp32"],
                    help="weight precision (auto: bf16 on a capable GPU, else fp32)")
    io.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps ... (default: auto)")
    io.add_argument("--quiet", action="store_true", help="no progress display")

    text = parser.add_argument_group("prompt")
    text.add_argument("--tags", default="", help="comma-separated style tags, e.g. 'pop, piano, female vocals'")
    lyr = text.add_mutually_exclusive_group()
    lyr.add_argument("--lyrics", metavar="FILE", help="a UTF-8 text file with the lyrics ([verse], [chorus] ... tags)")
    lyr.add_argument("--lyrics-text", metavar="TEXT", help="the lyrics given inline (use \\n for new lines)")
    text.add_argument("--lyrics-strength", type=float, default=1.0, help="lyric conditioning strength (default 1.0)")
    text.add_argument("--language", default="auto", choices=list(LANGUAGES),
                      help="lyric language (auto: detected per line)")
    text.add_argument("--lyrics-vocab", metavar="FILE",
                      help="the v1 lyric vocabulary vocab.json (default: $ACEFORGE_LYRICS_VOCAB, then ComfyUI's "
                           "comfy/text_encoders/ace_lyrics_tokenizer/vocab.json)")

    s = parser.add_argument_group("sampler (defaults: the official ACE-Step v1 settings)")
    s.add_argument("--seed", type=int, default=0, help="noise seed; batch item k draws its noise from seed + k")
    s.add_argument("--steps", type=int, default=default_steps, help=f"diffusion steps (default {default_steps})")
    s.add_argument("--guidance-scale", type=float, default=d.guidance_scale)
    s.add_argument("--sampler", default=d.sampler, help=f"one of {', '.join(SAMPLERS)}")
    s.add_argument("--guidance-type", default=d.guidance_type, help=f"one of {', '.join(GUIDANCE_TYPES)}")
    s.add_argument("--shift", type=float, default=d.shift)
    s.add_argument("--omega", type=float, default=d.omega, help="granularity scale")
    s.add_argument("--guidance-interval", type=float, default=d.guidance_interval)
    s.add_argument("--guidance-interval-decay", type=float, default=d.guidance_interval_decay)
    s.add_argument("--min-guidance-scale", type=float, default=d.min_guidance_scale)
    s.add_argument("--guidance-scale-text", type=float, default=d.guidance_scale_text)
    s.add_argument("--guidance-scale-lyric", type=float, default=d.guidance_scale_lyric)
    _bool_flag(s, "erg-tag", d.erg_tag, "ERG on the tags")
    _bool_flag(s, "erg-lyric", d.erg_lyric, "ERG on the lyrics")
    _bool_flag(s, "erg-diffusion", d.erg_diffusion, "ERG in the diffusion model")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ace_core",
        description="ACE-Step v1 music generation (AceForge core). Output format follows --out's extension.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gen = sub.add_parser("generate", help="text to audio: tags + lyrics -> a song",
                         description="Generate a song from style tags and lyrics.")
    _common(gen)
    gen.add_argument("--seconds", type=float, default=60.0, help="length in seconds, up to 240 (default 60)")
    gen.add_argument("--batch-size", type=int, default=1, help="songs to generate (written as NAME_1.ext, NAME_2.ext ...)")

    a2a = sub.add_parser("audio2audio", help="audio to audio: re-generate an input song in a new style",
                         description="Re-generate an existing song (wav, flac, mp3, ogg; at most 240 s).")
    _common(a2a)
    a2a.add_argument("--input", required=True, help="the source audio file")
    a2a.add_argument("--denoise", type=float, default=0.5,
                     help="how much to change, 0 < d <= 1 (official ref_audio_strength = 1 - d; default 0.5)")
    return parser


def _device(choice: str):
    import torch

    from .errors import InputError

    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(choice)
    except (RuntimeError, ValueError):
        raise InputError(f"--device: unknown device {choice!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device: CUDA was asked for but is not available here; use --device cpu")
    return device


def _dtype(choice: str, device):
    import torch

    table = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if choice in table:
        return table[choice]
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def _read_lyrics(args) -> str:
    from .errors import InputError

    if args.lyrics_text is not None:
        return args.lyrics_text.replace("\\n", "\n")
    if args.lyrics is None:
        return ""
    path = Path(args.lyrics)
    if not path.is_file():
        raise InputError(f"--lyrics: the file {str(path)!r} does not exist")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"--lyrics: {str(path)!r} is not UTF-8 text ({exc})") from None


def _lyrics_vocab(args, lyrics: str):
    """The lyric vocabulary to use (None: not found). A real run with lyrics needs one."""
    from .errors import InputError
    from .v1.pipeline import PACK_LYRICS_VOCAB, find_lyrics_vocab

    if args.lyrics_vocab and not Path(args.lyrics_vocab).is_file():
        raise InputError(f"--lyrics-vocab: the file {args.lyrics_vocab!r} does not exist")
    path = find_lyrics_vocab(args.lyrics_vocab)
    if path is None and lyrics and not args.demo:
        raise InputError(
            "--lyrics-vocab: the ACE-Step v1 lyric vocabulary was not found; pass --lyrics-vocab FILE or set "
            "ACEFORGE_LYRICS_VOCAB (ComfyUI ships it as comfy/text_encoders/ace_lyrics_tokenizer/vocab.json; "
            f"or put it in models/ace_step/{PACK_LYRICS_VOCAB})"
        )
    return path


DEMO_VOCAB_NOTICE = (
    "note: no lyric vocabulary found (--lyrics-vocab / ACEFORGE_LYRICS_VOCAB), so the demo tokenizes the "
    "lyrics with a small made-up demo vocabulary (letter by letter); real runs need the real vocab.json"
)


def write_demo_lyrics_vocab(path: Path) -> Path:
    """A small stand-in for the v1 lyric vocabulary (``--demo`` only): the real special, language and
    structure token ids ([STOP] 0, [UNK] 1, [SPACE] 2, [START] 261, [en] 259 ..., [verse] 6683 ...)
    and single characters, no merges. Written as a HF ``tokenizers`` JSON file."""
    import json

    from .v1.lyrics import LANGUAGE_TOKEN_IDS, START_ID

    specials = {"[STOP]": 0, "[UNK]": 1, "[SPACE]": 2, "[START]": START_ID}
    specials.update({("[zh-cn]" if lang == "zh" else f"[{lang}]"): i for lang, i in LANGUAGE_TOKEN_IDS.items()})
    structure = ["start", "intro", "verse", "chorus", "bridge", "outro", "end", "inst", "solo", "hook",
                 "pre-chorus", "break"]
    specials.update({f"[{tag}]": 6681 + k for k, tag in enumerate(structure)})
    vocab = dict(specials)
    taken = set(vocab.values())
    chars = [chr(c) for c in range(33, 127)] + [chr(c) for c in range(0x430, 0x450)]  # ASCII, Cyrillic
    free = (i for i in range(3, 6681) if i not in taken)
    for ch in chars:
        vocab.setdefault(ch, next(free))
    added = [{"id": i, "special": True, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False} for t, i in sorted(specials.items(), key=lambda kv: kv[1])]
    doc = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
           "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None, "decoder": None,
           "model": {"type": "BPE", "dropout": None, "unk_token": "[UNK]", "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": False, "vocab": vocab, "merges": []}}
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def _outputs(out: str, batch: int) -> list[Path]:
    from .audio.io import format_for
    from .errors import InputError

    path = Path(out)
    format_for(path, "--out")
    if not path.parent.is_dir():
        raise InputError(f"--out: the folder {str(path.parent)!r} does not exist")
    if batch == 1:
        return [path]
    return [path.with_name(f"{path.stem}_{k + 1}{path.suffix}") for k in range(batch)]


def _progress(label: str, quiet: bool):
    from .progress import ConsoleProgress

    return None if quiet else ConsoleProgress(label)


def _say(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr)


def _real_command(argv: Sequence[str]) -> str:
    """The user's command with --demo replaced by a --checkpoint for the real weights."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--demo":
            continue
        if arg == "--checkpoint":
            skip = True
            continue
        if arg.startswith("--checkpoint="):
            continue
        out.append(arg)
    cmd = ["python", "-m", "ace_core", *out, "--checkpoint", "/path/to/ace_step_v1_3.5b.safetensors"]
    return " ".join(shlex.quote(a) for a in cmd)


def _checkpoint(args) -> Optional[Path]:
    """The --checkpoint path (None with --demo), checked to exist."""
    from .errors import InputError

    if args.demo:
        return None
    if not args.checkpoint:
        raise InputError(
            "--checkpoint: no model given. Download ace_step_v1_3.5b.safetensors "
            f"({REAL_WEIGHTS_URL}) and pass its path, or try --demo (tiny random model, noise output)"
        )
    path = Path(args.checkpoint)
    if not path.exists():
        raise InputError(f"--checkpoint: {str(path)!r} does not exist")
    return path


def _adapter(path: Optional[Path]):
    """The family adapter of the checkpoint, from its safetensors headers (the demo model is a tiny v1)."""
    from .family import adapter_for, adapter_for_path
    from .loading.recognise import ACE_V1

    return adapter_for(ACE_V1) if path is None else adapter_for_path(path)


def _load(adapter, path: Optional[Path], args, device, dtype, tmp: str):
    if path is None:  # --demo
        from .v1.testing import write_tiny_checkpoint

        path = Path(tmp) / "aceforge_demo_tiny.safetensors"
        write_tiny_checkpoint(path, layout="comfy", seed=0)
    return adapter.load(path, dtype=dtype, device=device, progress=_progress("loading  ", args.quiet))


def run(args, argv: Sequence[str]) -> list[Path]:
    """Execute a parsed command; returns the files written."""
    from .audio.io import load_audio, save_audio
    from .validation import validate_audio, validate_range, validate_text

    checkpoint = _checkpoint(args)
    adapter = _adapter(checkpoint)
    settings = adapter.sampler_settings(dict(
        steps=args.steps, guidance_scale=args.guidance_scale, sampler=args.sampler, shift=args.shift,
        omega=args.omega, guidance_type=args.guidance_type, guidance_interval=args.guidance_interval,
        guidance_interval_decay=args.guidance_interval_decay, min_guidance_scale=args.min_guidance_scale,
        guidance_scale_text=args.guidance_scale_text, guidance_scale_lyric=args.guidance_scale_lyric,
        erg_tag=args.erg_tag, erg_lyric=args.erg_lyric, erg_diffusion=args.erg_diffusion,
    ))
    lyrics = _read_lyrics(args)
    if args.demo and not args.tags.strip() and not lyrics.strip():
        args.tags = DEMO_TAGS
    validate_text(args.tags, lyrics)
    vocab = _lyrics_vocab(args, lyrics)
    validate_range(args.lyrics_strength, 0.0, 10.0, "--lyrics-strength")
    source = None
    if args.command == "generate":
        batch = validate_range(args.batch_size, 1, 64, "--batch-size", integer=True)
        latent = adapter.empty_latent(args.seconds, batch, "--seconds")
        denoise = 1.0
    else:
        validate_range(args.denoise, 0.0, 1.0, "--denoise")
        if args.denoise <= 0.0:
            from .errors import InputError

            raise InputError("--denoise: must be above 0 (0 would return the input unchanged); allowed (0, 1]")
        waveform, rate = load_audio(args.input, "--input")
        source = validate_audio(waveform, rate, adapter.latent, "--input")
        batch, denoise = 1, args.denoise
    outputs = _outputs(args.out, batch)
    device = _device(args.device)
    dtype = _dtype(args.dtype, device)

    if args.demo:
        _say(DEMO_NOTICE)
    with tempfile.TemporaryDirectory(prefix="aceforge-") as tmp:
        _say(f"loading model ({'demo' if args.demo else args.checkpoint}) on {device}, {str(dtype).replace('torch.', '')}",
             args.quiet)
        model = _load(adapter, checkpoint, args, device, dtype, tmp)
        if args.demo and lyrics and vocab is None:
            _say(DEMO_VOCAB_NOTICE)
            vocab = write_demo_lyrics_vocab(Path(tmp) / "demo_lyrics_vocab.json")
        cond = adapter.encode_text(model, args.tags, lyrics, lyrics_strength=args.lyrics_strength,
                                   language=args.language, lyrics_vocab=vocab)
        if source is not None:
            latent = adapter.encode_audio(model, {"waveform": source, "sample_rate": rate},
                                          progress=_progress("encoding ", args.quiet))
        latent = adapter.sample(model, cond, latent=latent, seed=args.seed, settings=settings, denoise=denoise,
                                progress=_progress("sampling ", args.quiet))
        audio = adapter.decode_audio(model, latent, progress=_progress("decoding ", args.quiet))
    waveform, out_rate = audio["waveform"].cpu(), int(audio["sample_rate"])
    if source is not None:
        waveform = waveform[..., : int(round(source.shape[-1] * out_rate / rate))]
    written = []
    for k, path in enumerate(outputs):
        written.append(save_audio(path, waveform[k], out_rate, "--out"))
        _say(f"wrote {path} ({waveform.shape[-1] / out_rate:.1f} s, stereo, {out_rate} Hz)", args.quiet)
    if args.demo:
        _say("\n" + DEMO_NOTICE.splitlines()[1] + "\nFor real music, download ACE-Step v1 "
             f"({REAL_WEIGHTS_URL}) and run:\n  {_real_command(argv)}")
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .errors import AceStepError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        run(args, argv)
    except AceStepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("\ninterrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
