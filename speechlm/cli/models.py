"""``speechlm models [--json] [--card NAME]``: every shipped model, its kind, size, id, use and measured quality;
one model's card."""

from __future__ import annotations

import argparse

from speechlm.cli._common import add_command


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "models", "list the shipped models (name, kind, size, id, what each is for, measured quality)", _models,
        description="List every model shipped in speechlm/assets. NAME is what --model NAME and .load(NAME) take; "
        "'default' marks what the name 'default' loads for that kind.\n\n"
        "  speechlm models\n"
        "  speechlm models --json\n"
        "  speechlm models --card codec_sf          # its model card: data, training, metrics with commands, limits")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list of objects: name, kind, id, size_mb, default, description, quality "
                   "(with --card: the card as JSON)")
    p.add_argument("--card", metavar="NAME", default=None,
                   help="print the model card of NAME (every card: docs/models.md)")


def _models(args: argparse.Namespace) -> int:
    import json

    from speechlm.models import card_text, model_card, shipped_models

    if args.card is not None:
        info, card = model_card(args.card)  # an unknown name: one line, exit 2
        if args.json:
            print(json.dumps({**info.to_dict(), "card": card}, indent=2, ensure_ascii=False))
        else:
            print(card_text(info, card))
        return 0
    models = shipped_models()
    if args.json:
        print(json.dumps([m.to_dict() for m in models], indent=2, ensure_ascii=False))
        return 0
    w = max((len(m.name) for m in models), default=4)
    print(f"{'NAME':<{w}}  {'KIND':<8}  {'SIZE':>9}  ID")
    for m in models:
        print(f"{m.name:<{w}}  {m.kind:<8}  {m.size_mb:>6.2f} MB  {m.id}{'  (default)' if m.default else ''}")
        if m.description:
            print(f"{'':<{w}}  for: {m.description}")
        if m.quality:
            print(f"{'':<{w}}  quality: {m.quality}")
    return 0
