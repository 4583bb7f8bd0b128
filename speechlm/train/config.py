"""Recipe configs: the command-line side (``--config``, ``--data``, ``--out``, ``--set key=value``).

Building a config dataclass from YAML or a mapping is :mod:`speechlm.utils.config` (loaders use it without
importing training code); its names are re-exported here for recipes.
"""

from __future__ import annotations

import argparse

from speechlm.utils.config import config_to_dict, load_config, parse_overrides  # noqa: F401 (re-exported)


def add_override_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--set KEY=VALUE`` (repeatable) to a CLI parser; pass ``args.set`` to :func:`load_config`."""
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set train.max_steps=100 (repeatable)")


def recipe_parser(description: str, config_required: bool = True, many_data: bool = True) -> argparse.ArgumentParser:
    """The ``python -m`` / ``torchrun`` entry point every recipe shares: ``--config``, ``--data``, ``--out``,
    ``--set``. Parse it and call the recipe's ``train(args.config, args.data, args.out, args.set)``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", required=config_required, default=None)
    if many_data:
        p.add_argument("--data", action="append", required=True, help="a manifest (repeatable)")
    else:
        p.add_argument("--data", required=True)
    p.add_argument("--out", required=True, help="run folder (resumes from its newest checkpoint)")
    add_override_argument(p)
    return p
