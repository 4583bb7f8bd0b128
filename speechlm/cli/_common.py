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
