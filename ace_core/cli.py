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
import os
import shlex
import signal
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

EXIT_INPUT = 2
EXIT_INTERRUPTED = 130

REAL_WEIGHTS_URL = "https://huggingface.co/Comfy-Org/ACE-Step_ComfyUI_repackaged/blob/main/all_in_one/ace_step_v1_3.5b.safetensors"
REAL_WEIGHTS_V15_URL = ("https://huggingface.co/Comfy-Org/ace_step_1.5_ComfyUI_files/blob/main/checkpoints/"
                        "ace_step_1.5_turbo_aio.safetensors")
DEMO_FAMILIES = {"v1": "ace_v1", "v15": "ace_v15"}
DEMO_TAGS = "pop, piano, upbeat"
DEMO_NOTICE = (
    "DEMO MODE: running the whole pipeline on a tiny RANDOM model written to a temporary folder.\n"
    "The output is untrained noise, not music; it only shows that everything works on this machine."
)


def _bool_flag(parser, name: str, help_text: str) -> None:
    """``--name`` / ``--no-name``; unset (None) means the model family's default."""
    dest = name.replace("-", "_")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(f"--{name}", dest=dest, action="store_true", help=f"{help_text} (default: the family's)")
    group.add_argument(f"--no-{name}", dest=dest, action="store_false", help=f"turn off {name}")
    parser.set_defaults(**{dest: None})


# Options that only one family takes: given for the other, they are refused by name.
V1_SAMPLER_OPTIONS = ("sampler", "omega", "guidance_interval", "guidance_interval_decay", "min_guidance_scale",
                      "guidance_scale_text", "guidance_scale_lyric", "erg_tag", "erg_lyric", "erg_diffusion")
V15_SAMPLER_OPTIONS = ("cfg_interval_start", "cfg_interval_end", "method", "dcw")
SHARED_SAMPLER_OPTIONS = ("steps", "guidance_scale", "guidance_type", "shift")
V1_TEXT_OPTIONS = ("lyrics_strength", "lyrics_vocab")
V15_TEXT_OPTIONS = ("bpm", "keyscale", "timesignature")


def _common(parser: argparse.ArgumentParser) -> None:
    from .v1.pipeline import SAMPLERS

    io = parser.add_argument_group("model and output")
    io.add_argument("--checkpoint", help="the model: ACE-Step 1.5 (ComfyUI's ace_step_1.5_turbo_aio.safetensors, a "
                                         "split diffusion_models/acestep_v1.5_*.safetensors, or the official "
                                         "checkpoints folder) or ACE-Step v1 (ace_step_v1_3.5b.safetensors or the "
                                         "official ACE-Step-v1-3.5B folder); the family is recognised from the file")
    io.add_argument("--demo", nargs="?", const="v1", choices=list(DEMO_FAMILIES), default=None,
                    help="use a tiny random model instead of --checkpoint: '--demo' or '--demo v1' for ACE-Step v1, "
                         "'--demo v15' for ACE-Step 1.5 (no download needed; the output is noise)")
    io.add_argument("--out", required=True, help="output file: .wav, .flac, .mp3 or .ogg")
    io.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp16", "fp32"],
                    help="weight precision (auto: bf16 on a capable GPU, else fp32)")
    io.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps ... (default: auto)")
    io.add_argument("--quiet", action="store_true", help="no progress display")

    text = parser.add_argument_group("prompt")
    text.add_argument("--tags", "--caption", dest="tags", default="",
                      help="the style: comma-separated tags (v1) or a caption (1.5), e.g. 'pop, piano, female vocals'")
    lyr = text.add_mutually_exclusive_group()
    lyr.add_argument("--lyrics", metavar="FILE", help="a UTF-8 text file with the lyrics ([verse], [chorus] ... tags)")
    lyr.add_argument("--lyrics-text", metavar="TEXT", help="the lyrics given inline (use \\n for new lines)")
    text.add_argument("--language", default=None,
                      help="lyric language: v1 'auto' (detected per line, default) or a code; 1.5 one of its 50 "
                           "language codes or 'unknown' (default)")
    text.add_argument("--lyrics-strength", type=float, default=None, help="v1: lyric conditioning strength (default 1.0)")
    text.add_argument("--lyrics-vocab", metavar="FILE",
                      help="v1: the lyric vocabulary vocab.json (default: $ACEFORGE_LYRICS_VOCAB, then ComfyUI's "
                           "comfy/text_encoders/ace_lyrics_tokenizer/vocab.json)")
    text.add_argument("--bpm", type=int, default=None, help="1.5: tempo, 30-300 (default: N/A, the model decides)")
    text.add_argument("--key", dest="keyscale", default=None, help="1.5: key and scale, e.g. 'C major', 'F# minor'")
    text.add_argument("--time-signature", dest="timesignature", default=None, help="1.5: 2, 3, 4 or 6 (e.g. 4 = 4/4)")

    s = parser.add_argument_group("sampler (defaults: the official settings of the loaded model)")
    s.add_argument("--seed", type=int, default=0, help="noise seed; batch item k draws its noise from seed + k")
    s.add_argument("--steps", type=int, default=None, help="diffusion steps (v1 60; 1.5 turbo 8 (1-20), base 32, sft 50)")
    s.add_argument("--guidance-scale", type=float, default=None, help="v1 15; 1.5 base/sft 7 (turbo takes none)")
    s.add_argument("--guidance-type", default=None, help="v1: apg, cfg, cfg_star; 1.5 base/sft: apg, cfg")
    s.add_argument("--shift", type=float, default=None, help="timestep shift (v1 3; 1.5 3)")
    s.add_argument("--sampler", default=None, help=f"v1: one of {', '.join(SAMPLERS)}")
    s.add_argument("--omega", type=float, default=None, help="v1: granularity scale")
    s.add_argument("--guidance-interval", type=float, default=None, help="v1")
    s.add_argument("--guidance-interval-decay", type=float, default=None, help="v1")
    s.add_argument("--min-guidance-scale", type=float, default=None, help="v1")
    s.add_argument("--guidance-scale-text", type=float, default=None, help="v1")
    s.add_argument("--guidance-scale-lyric", type=float, default=None, help="v1")
    _bool_flag(s, "erg-tag", "v1: ERG on the tags")
    _bool_flag(s, "erg-lyric", "v1: ERG on the lyrics")
    _bool_flag(s, "erg-diffusion", "v1: ERG in the diffusion model")
    s.add_argument("--method", default=None, help="1.5: ode (Euler, default) or sde")
    s.add_argument("--cfg-interval-start", type=float, default=None, help="1.5 base/sft: guidance from t (default 0)")
    s.add_argument("--cfg-interval-end", type=float, default=None, help="1.5 base/sft: guidance until t (default 1)")
    _bool_flag(s, "dcw", "1.5: the DCW wavelet correction after each step (on for turbo, off for base/sft)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ace_core",
        description="ACE-Step 1.5 and v1 music generation (AceForge core); the model family follows --checkpoint. "
                    "Output format follows --out's extension.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gen = sub.add_parser("generate", help="text to audio: tags + lyrics -> a song",
                         description="Generate a song from style tags (or a caption) and lyrics.")
    _common(gen)
    gen.add_argument("--seconds", type=float, default=60.0,
                     help="length in seconds: v1 up to 240, 1.5 10-600 (default 60)")
    gen.add_argument("--batch-size", type=int, default=1,
                     help="songs to generate, 1.5 up to 8 (written as NAME_1.ext, NAME_2.ext ...)")
    from .v15.lm.cli import add_lm_options, add_write_parser

    add_lm_options(gen)
    add_write_parser(sub)

    a2a = sub.add_parser("audio2audio", help="audio to audio: re-generate an input song in a new style",
                         description="Re-generate an existing song (wav, flac, mp3, ogg; at most 240 s for v1, 600 s for 1.5).")
    _common(a2a)
    a2a.add_argument("--input", required=True, help="the source audio file")
    a2a.add_argument("--denoise", type=float, default=0.5,
                     help="how much to change, 0 < d <= 1 (official ref_audio_strength = 1 - d; default 0.5)")
    from .cli_edit import add_edit_parsers
    from .comfy_client import add_queue_parser

    add_edit_parsers(sub, _common)

    add_queue_parser(sub)
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
    if path.is_dir():
        raise InputError(f"--out: {str(path)!r} is a folder; give a file name such as {str(path / 'song.flac')!r}")
    format_for(path, "--out")
    if not path.parent.is_dir():
        raise InputError(f"--out: the folder {str(path.parent)!r} does not exist")
    try:  # checked before any compute: a read-only folder would fail only after the whole generation
        fd, probe = tempfile.mkstemp(prefix=".aceforge-probe-", dir=str(path.parent))
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"--out: cannot write into the folder {str(path.parent)!r} ({exc.strerror or exc})") from None
    paths = [path] if batch == 1 else [path.with_name(f"{path.stem}_{k + 1}{path.suffix}") for k in range(batch)]
    for p in paths:
        if p.is_dir():
            raise InputError(f"--out: {str(p)!r} is a folder; give another file name")
    return paths


def _progress(label: str, quiet: bool):
    from .progress import ConsoleProgress

    return None if quiet else ConsoleProgress(label)


def _say(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr)


def _real_command(argv: Sequence[str], family: str = "v1") -> str:
    """The user's command with ``--demo [v1|v15]`` replaced by a --checkpoint for the real weights."""
    out, skip = [], False
    for k, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "--demo":
            skip = k + 1 < len(argv) and argv[k + 1] in DEMO_FAMILIES
            continue
        if arg.startswith("--demo="):
            continue
        if arg == "--checkpoint":
            skip = True
            continue
        if arg.startswith("--checkpoint="):
            continue
        out.append(arg)
    weights = "ace_step_1.5_turbo_aio.safetensors" if family == "v15" else "ace_step_v1_3.5b.safetensors"
    cmd = ["python", "-m", "ace_core", *out, "--checkpoint", f"/path/to/{weights}"]
    return " ".join(shlex.quote(a) for a in cmd)


def _checkpoint(args) -> Optional[Path]:
    """The --checkpoint path (None with --demo), checked to exist."""
    from .errors import InputError

    if args.demo:
        return None
    if not args.checkpoint:
        raise InputError(
            "--checkpoint: no model given. Download ACE-Step 1.5 (ace_step_1.5_turbo_aio.safetensors, "
            f"{REAL_WEIGHTS_V15_URL}) or v1 (ace_step_v1_3.5b.safetensors, {REAL_WEIGHTS_URL}) and pass its "
            "path, or try --demo v15 / --demo (tiny random model, noise output)"
        )
    path = Path(args.checkpoint)
    if not path.exists():
        raise InputError(f"--checkpoint: {str(path)!r} does not exist")
    return path


def _adapter(path: Optional[Path], demo: Optional[str] = None):
    """The family adapter of the checkpoint, from its safetensors headers (or of the demo family)."""
    from .family import adapter_for, adapter_for_path

    return adapter_for(DEMO_FAMILIES[demo or "v1"]) if path is None else adapter_for_path(path)


def _write_demo_checkpoint(family: str, tmp: str) -> Path:
    """A tiny random model of ``family`` in ComfyUI's all-in-one layout (loaded like a real one)."""
    if family == "ace_v15":
        from .v15.bundle import save_v15_all_in_one, tiny_v15_bundle

        path = Path(tmp) / "aceforge_demo_tiny_v15.safetensors"
        save_v15_all_in_one(tiny_v15_bundle(seed=0), path)
        return path
    from .v1.testing import write_tiny_checkpoint

    path = Path(tmp) / "aceforge_demo_tiny.safetensors"
    write_tiny_checkpoint(path, layout="comfy", seed=0)
    return path


def _load(adapter, path: Optional[Path], args, device, dtype, tmp: str):
    if path is None:  # --demo
        path = _write_demo_checkpoint(adapter.family, tmp)
    return adapter.load(path, dtype=dtype, device=device, progress=_progress("loading  ", args.quiet))


def _given(args, names: Sequence[str]) -> dict:
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def _family_options(adapter, args) -> tuple[dict, dict]:
    """(sampler options, text options) the user gave, refused by name where the family has no use for them."""
    from .errors import InputError
    from .loading.recognise import ACE_V1

    v1 = adapter.family == ACE_V1
    foreign = _given(args, V15_SAMPLER_OPTIONS + V15_TEXT_OPTIONS if v1 else V1_SAMPLER_OPTIONS + V1_TEXT_OPTIONS)
    if foreign:
        flags = ", ".join("--" + {"keyscale": "key", "timesignature": "time-signature"}.get(n, n).replace("_", "-")
                          for n in foreign)
        raise InputError(f"{flags}: not an option of {adapter.title} (the loaded model); see --help for which "
                         f"options apply to which family")
    sampler = _given(args, SHARED_SAMPLER_OPTIONS + (V1_SAMPLER_OPTIONS if v1 else V15_SAMPLER_OPTIONS))
    text = _given(args, ("language",) + (("lyrics_strength",) if v1 else V15_TEXT_OPTIONS))
    return sampler, text


def run(args, argv: Sequence[str]) -> list[Path]:
    """Execute a parsed command; returns the files written."""
    from .audio.io import load_audio, save_audio
    from .errors import InputError
    from .loading.recognise import ACE_V1
    from .validation import validate_audio, validate_range, validate_text

    from dataclasses import replace

    from .cli_edit import EDIT_COMMANDS, edit_latent, edit_task
    from .editing.regions import MAX_SOURCE_SECONDS
    from .family import require

    checkpoint = _checkpoint(args)
    adapter = _adapter(checkpoint, args.demo)
    v1 = adapter.family == ACE_V1
    editing = args.command in EDIT_COMMANDS
    if editing:
        require(adapter, edit_task(args))
    sampler_options, text_options = _family_options(adapter, args)
    settings = adapter.sampler_settings(sampler_options)
    lyrics = _read_lyrics(args)
    if args.demo and not args.tags.strip() and not lyrics.strip():
        args.tags = DEMO_TAGS
    validate_text(args.tags, lyrics, "--tags")
    validate_range(args.seed, 0, 2**64 - 1, "--seed", integer=True)
    vocab = _lyrics_vocab(args, lyrics) if v1 else None
    if v1:
        validate_range(text_options.get("lyrics_strength", 1.0), 0.0, 10.0, "--lyrics-strength")
    adapter.check_text(args.tags, lyrics, **text_options)
    source = None
    if args.command == "generate":
        batch = validate_range(args.batch_size, 1, 64, "--batch-size", integer=True)
        latent = adapter.empty_latent(args.seconds, batch, "--seconds")
        if not v1:
            text_options["duration"] = args.seconds  # the metadata states the length asked for
        denoise = 1.0
    else:
        if editing:  # the editors take sources up to 60 minutes (only a window around the edit is encoded)
            spec, denoise = replace(adapter.latent, max_seconds=MAX_SOURCE_SECONDS), 1.0
        else:
            spec, denoise = adapter.latent, args.denoise
            if not 0.0 < validate_range(args.denoise, None, None, "--denoise") <= 1.0:
                raise InputError(f"--denoise: {args.denoise!r} is outside the allowed range (0, 1] "
                                 "(0 would return the input unchanged)")
        waveform, rate = load_audio(args.input, "--input", max_seconds=spec.max_seconds)
        source = validate_audio(waveform, rate, spec, "--input")
        if not v1:
            text_options["duration"] = source.shape[-1] / rate
        batch = 1
    outputs = _outputs(args.out, batch)
    device = _device(args.device)
    dtype = _dtype(args.dtype, device)

    if args.demo:
        _say(DEMO_NOTICE)
    with tempfile.TemporaryDirectory(prefix="aceforge-") as tmp:
        _say(f"loading model ({'demo' if args.demo else args.checkpoint}) on {device}, {str(dtype).replace('torch.', '')}",
             args.quiet)
        model = _load(adapter, checkpoint, args, device, dtype, tmp)
        if v1:
            if args.demo and lyrics and vocab is None:
                _say(DEMO_VOCAB_NOTICE)
                vocab = write_demo_lyrics_vocab(Path(tmp) / "demo_lyrics_vocab.json")
            text_options["lyrics_vocab"] = vocab
        codes = None
        if getattr(args, "lm", None):
            if v1:
                raise InputError("--lm: the 5 Hz LM plans ACE-Step 1.5 songs; this checkpoint is ACE-Step v1")
            from .v15.lm.cli import plan_with_lm

            args.tags, lyrics, text_options, codes = plan_with_lm(model, args, args.tags, lyrics, text_options, batch,
                                                                  device, dtype)
        cond = adapter.encode_text(model, args.tags, lyrics, **text_options)
        if codes is not None:
            cond.audio_codes = codes  # the DiT renders them as its cover hints
        if source is not None:
            latent = adapter.encode_audio(model, {"waveform": source, "sample_rate": rate},
                                          progress=_progress("encoding ", args.quiet))
            if editing:
                latent = edit_latent(adapter, latent, args)
        latent = adapter.sample(model, cond, latent=latent, seed=args.seed, settings=settings, denoise=denoise,
                                progress=_progress("sampling ", args.quiet))
        audio = adapter.decode_audio(model, latent, progress=_progress("decoding ", args.quiet))
    waveform, out_rate = audio["waveform"].cpu(), int(audio["sample_rate"])
    if source is not None and not editing:
        waveform = waveform[..., : int(round(source.shape[-1] * out_rate / rate))]
    written = []
    for k, path in enumerate(outputs):
        written.append(save_audio(path, waveform[k], out_rate, "--out"))
        _say(f"wrote {path} ({waveform.shape[-1] / out_rate:.1f} s, stereo, {out_rate} Hz)", args.quiet)
    if args.demo:
        family = "v1" if v1 else "v15"
        url = REAL_WEIGHTS_URL if v1 else REAL_WEIGHTS_V15_URL
        _say("\n" + DEMO_NOTICE.splitlines()[1] + f"\nFor real music, download {adapter.title} "
             f"({url}) and run:\n  {_real_command(argv, family)}")
    return written


def _terminate_as_interrupt():
    """SIGTERM ends the run like Ctrl-C: temporary files (the --demo checkpoint) are removed.
    Returns the previous handler (None where signals cannot be set: not the main thread)."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:
        return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .errors import AceStepError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = _terminate_as_interrupt()
    try:
        if args.command == "queue":  # a ComfyUI server runs it: nothing to load here
            from .comfy_client import queue_main

            return queue_main(args)
        if args.command == "write":  # the 5 Hz LM alone
            from .v15.lm.cli import write_main

            return write_main(args)
        run(args, argv)
    except AceStepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("\ninterrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
