"""Helpers shared by the CLI group modules."""

from __future__ import annotations

import argparse


def add_group(sub: argparse._SubParsersAction, name: str, help: str, description: str | None = None
              ) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """Add a command group ``speechlm NAME ...`` and return (its parser, its sub-command adder)."""
    parser = sub.add_parser(name, help=help, description=description or help,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(group_parser=parser)
    return parser, parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND")


def add_command(sub: argparse._SubParsersAction, name: str, help: str, func, description: str | None = None
                ) -> argparse.ArgumentParser:
    """Add a leaf command whose ``func(args) -> int | None`` runs it."""
    parser = sub.add_parser(name, help=help, description=description or help,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(func=func)
    return parser


# ---- checks that run before any model loads -------------------------------------------------------------------

# What each kind of output file may be: audio through save_audio (every format it writes), audio decoded
# block by block to 16-bit PCM (lossless formats only), codec/semantic tokens.
OUTPUT_KINDS = ("audio", "pcm16", "tokens", "codec_tokens", "json")


def check_output_file(path: str, kind: str) -> None:
    """Refuse an output file that cannot be written, before any work: an extension the writer does not know,
    a folder in its place, a parent folder that does not exist (it is not created) or is not writable.

    Raises:
        SpeechLMError: one line (the CLI exits 2).
    """
    import os
    from pathlib import Path

    from speechlm.errors import SpeechLMError

    p = Path(path)
    ext = p.suffix.lower()
    if kind in ("audio", "pcm16"):
        from speechlm.audio.io import SAVE_FORMATS

        allowed = sorted(e for e, (_, sub) in SAVE_FORMATS.items() if kind == "audio" or sub == "PCM_16")
    elif kind == "tokens":
        allowed = [".npz"]
    elif kind == "codec_tokens":  # a codec's tokens: .npz, or packed (entropy-coded) .slc
        allowed = [".npz", ".slc"]
    elif kind == "json":
        allowed = []
    else:
        raise ValueError(f"unknown output kind {kind!r}; one of {OUTPUT_KINDS}")
    if allowed and ext not in allowed:
        raise SpeechLMError(f"{path}: cannot write {ext or 'a file without extension'!r} here; use one of "
                            f"{', '.join(allowed)}")
    if p.is_dir():
        raise SpeechLMError(f"{path} is a folder; give a file name")
    parent = p.parent
    if not parent.is_dir():
        raise SpeechLMError(f"{path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SpeechLMError(f"{path}: folder {parent} is not writable")


def check_input_file(path: str, what: str = "input") -> None:
    """Refuse a missing input file before any model loads."""
    from pathlib import Path

    from speechlm.errors import SpeechLMError

    p = Path(path)
    if not p.exists():
        raise SpeechLMError(f"{path}: no such file ({what})")
    if not p.is_file():
        raise SpeechLMError(f"{path}: not a regular file ({what})")


def add_force_arg(p: argparse.ArgumentParser) -> None:
    """``--force`` for commands that write a checkpoint folder."""
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty folder that holds no speechlm checkpoint: the model files go "
                   "beside what is there (nothing in it is ever deleted)")


def check_checkpoint_output(path: str, force: bool) -> None:
    """Refuse a checkpoint destination holding files speechlm did not write (unless ``--force``), before any
    work (:func:`speechlm.train.checkpoint.check_destination`)."""
    from speechlm.train.checkpoint import check_destination

    check_destination(path, force=force)


def _finite(name: str, value: float) -> float:
    import math

    from speechlm.errors import SpeechLMError

    if not math.isfinite(value):
        raise SpeechLMError(f"{name} must be a finite number, got {value}")
    return value


def check_sampling_args(args: argparse.Namespace) -> None:
    """Validate the sampling options of ``speechlm tts`` / ``edit`` (those it has) before any model loads.

    Raises:
        SpeechLMError: one line naming the option and the allowed range (the CLI exits 2).
    """
    from speechlm.errors import SpeechLMError

    def bad(flag: str, rule: str, value: object) -> SpeechLMError:
        return SpeechLMError(f"{flag} must be {rule}, got {value}")

    if getattr(args, "temperature", None) is not None and not _finite("--temperature", args.temperature) >= 0:
        raise bad("--temperature", ">= 0 (0: greedy)", args.temperature)
    if getattr(args, "top_p", None) is not None and not 0 < _finite("--top-p", args.top_p) <= 1:
        raise bad("--top-p", "in (0, 1] (1: off)", args.top_p)
    if getattr(args, "top_k", None) is not None and args.top_k < 0:
        raise bad("--top-k", ">= 0 (0: off)", args.top_k)
    if getattr(args, "retries", None) is not None and args.retries < 0:
        raise bad("--retries", ">= 0", args.retries)
    if getattr(args, "draws", None) is not None and args.draws < 1:
        raise bad("--draws", "at least 1", args.draws)
    if getattr(args, "threads", None) is not None and args.threads < 1:
        raise bad("--threads", "at least 1", args.threads)
    if getattr(args, "seed", None) is not None and not -(2**63) <= args.seed < 2**64:
        raise bad("--seed", "a 64-bit integer", args.seed)
    if getattr(args, "max_chars", None) is not None and args.max_chars < 1:
        raise bad("--max-chars", "at least 1", args.max_chars)
    if getattr(args, "min_length", None) is not None and not 0 <= _finite("--min-length", args.min_length) <= 2:
        raise bad("--min-length", "within 0-2", args.min_length)
