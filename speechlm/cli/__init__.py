"""The ``speechlm`` command: one entry point, a sub-command group per area.

Each group lives in its own module under ``speechlm/cli/`` and exposes ``register(subparsers)``, which adds its
parser and sets ``func`` on every leaf command. Group modules import nothing heavy at module level (torch, models):
they import inside the command functions, so ``speechlm --help`` stays fast.

Errors: a :class:`~speechlm.errors.SpeechLMError` (bad input) is printed as one line ``speechlm: error: ...`` with
exit status 2; any other exception is printed the same way with status 1. ``--debug`` re-raises to show the
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from speechlm import __version__

# Group name -> module. Order is the order shown in --help.
GROUPS: dict[str, str] = {
    "demo": "speechlm.cli.demo",
    "audio": "speechlm.cli.audio",
    "text": "speechlm.cli.text",
    "data": "speechlm.cli.data",
    "codec": "speechlm.cli.codec",
    "eval": "speechlm.cli.eval",
    "asr": "speechlm.cli.asr",
    "semantic": "speechlm.cli.semantic",
    "tokens": "speechlm.cli.tokens",
    "lm": "speechlm.cli.lm",
    "acoustic": "speechlm.cli.acoustic",
    "tts": "speechlm.cli.tts",
    "edit": "speechlm.cli.edit",
    "vc": "speechlm.cli.vc",
    "models": "speechlm.cli.models",
    "serve": "speechlm.cli.serve",
    "provenance": "speechlm.cli.provenance",
    "watermark": "speechlm.cli.watermark",
    "detect": "speechlm.cli.detect",
    "detector": "speechlm.cli.detector",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speechlm",
        description="speechlm: speech as discrete tokens — tokenizers, generators, data and evaluation.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"speechlm {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="group", metavar="COMMAND")
    for module_name in GROUPS.values():
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from speechlm.errors import SpeechLMError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        # A group without a sub-command: print that group's help.
        (getattr(args, "group_parser", None) or parser).print_help()
        return 0 if args.group is None else 2
    debug = args.debug or os.environ.get("SPEECHLM_DEBUG") == "1"
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("speechlm: interrupted", file=sys.stderr)
        return 130
    except SpeechLMError as exc:
        if debug:
            raise
        print(f"speechlm: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the CLI boundary: one line unless --debug
        if debug:
            raise
        print(f"speechlm: error: {type(exc).__name__}: {_one_line(exc)} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1
    return int(rc or 0)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
