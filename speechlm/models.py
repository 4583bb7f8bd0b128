"""The shipped models: every folder under ``speechlm/assets`` that holds a ``config.json`` (``speechlm models``).

Everything is read from the folder, not from a list kept here, so a newly exported model is listed as soon as its
folder exists:

- ``kind`` is the folder name's prefix (``codec_pitch`` is a codec), the rule every loader resolves names by;
- ``id`` is the ``NAME@HASH`` the loaded model reports, computed without building the model: for a codec its
  tokenizer id (a hash of the tensors that fix its tokens, read from the file), for the others the weights hash
  recorded in ``config.json``;
- ``default`` is whether that kind's loader resolves ``default`` to this folder;
- what it is for and its measured quality, one line each, come from the folder's model card, ``card.json``
  (falling back to an entry in ``assets/cards.json``; a ``card`` object in ``config.json`` overrides both).

A model card (``speechlm models --card NAME``; every card rendered in docs/models.md by
``benchmarks/render_tables.py``) records what a model is for, its architecture, its training (data, hours, steps,
hardware, wall time, recipe), its metrics and its known limits. Each number in it is a *fact*: a ``value`` and
where it comes from, exactly one of ``result`` (a benchmark JSON under docs/results/ and a ``key`` path into it),
``config`` (a key path into the model's own ``config.json``) or ``source`` (a doc or config file, ``#anchor`` for a
section, ``git:REV:PATH`` for a file in git history) that the value appears in; a fact nobody recorded says
``"not recorded"``. tests/test_model_cards.py checks every value against where it says it comes from. The card's
``status`` line (the ``quality`` of ``speechlm models`` and the README's models table) is a template whose
``{id}`` fields are filled with the card's metrics, so no number in it is typed by hand.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from speechlm.errors import SpeechLMError

ASSETS = Path(__file__).resolve().parent / "assets"
CARDS = "cards.json"  # the corpora table shared by the cards, and one-line entries for folders without a card
CARD = "card.json"  # a model folder's card
# What every card must give (tests/test_model_cards.py); each training entry is a fact (see the module docstring).
CARD_FIELDS = ("describes", "description", "summary", "used_by", "intended_use", "architecture", "parameters",
               "training", "metrics", "status", "limits", "doc")
TRAINING_FIELDS = ("data", "hours", "steps", "hardware", "wall_time", "recipe")
NOT_RECORDED = "not recorded"

# kind -> its loader's name resolver ("module:function"); called with None, i.e. "default"
RESOLVERS: dict[str, str] = {
    "codec": "speechlm.tokenizers.codec.api:resolve_model_dir",
    "semantic": "speechlm.tokenizers.semantic.api:resolve_model_dir",
    "lm": "speechlm.lm.api:resolve_lm_dir",
    "tts": "speechlm.lm.acoustic_api:resolve_acoustic_dir",
    "asr": "speechlm.asr.transcriber:resolve_model_dir",
    "bridge": "speechlm.tokenizers.semantic.bridge:resolve_bridge_dir",
    "gender": "speechlm.pipeline.gender:resolve_model_dir",
    "denoise": "speechlm.pipeline.enhancer:resolve_model_dir",
    "detector": "speechlm.safety.detector:resolve_model_dir",
}


@dataclass(frozen=True)
class ModelInfo:
    """One shipped model. ``name`` is its folder's name, which ``.load(NAME)`` and ``--model NAME`` accept."""

    name: str
    kind: str
    id: str
    size_mb: float
    default: bool
    description: str = ""
    quality: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shipped_models(assets: str | Path = ASSETS, names: list[str] | None = None) -> list[ModelInfo]:
    """Every model folder under ``assets`` (or only those in ``names``), sorted by kind then name."""
    assets = Path(assets)
    cards = _read_json(assets / CARDS) if (assets / CARDS).is_file() else {}
    folders = sorted(d for d in assets.iterdir()
                     if (d / "config.json").is_file() and (names is None or d.name in names))
    defaults = {kind: default_dir(kind) for kind in {kind_of(d.name) for d in folders}}
    out = []
    for d in folders:
        meta = _read_json(d / "config.json")
        kind = kind_of(d.name)
        full = read_card(d)
        card = {**(cards.get(d.name) or {}), **(full or {}), **(meta.get("card") or {})}
        quality = status_line(full) if full and "quality" not in (meta.get("card") or {}) else card.get("quality", "")
        size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file() and f.name != CARD)  # the model, not its card
        out.append(ModelInfo(
            name=d.name, kind=kind, id=model_id(d, kind, meta), size_mb=round(size / 1e6, 2),
            default=defaults[kind] is not None and d.resolve() == defaults[kind],
            description=str(card.get("description", "")), quality=str(quality),
        ))
    return sorted(out, key=lambda m: (m.kind, m.name))


def model_names(assets: str | Path = ASSETS) -> list[str]:
    """The shipped models' names (their folders), cheaply: nothing is loaded."""
    return sorted(d.name for d in Path(assets).iterdir() if (d / "config.json").is_file())


def read_card(folder: str | Path) -> dict[str, Any] | None:
    """The model card in ``folder`` (its ``card.json``), or None when it has none."""
    path = Path(folder) / CARD
    return _read_json(path) if path.is_file() else None


def model_card(name: str, assets: str | Path = ASSETS) -> tuple[ModelInfo, dict[str, Any]]:
    """A shipped model's listing and its card, by name.

    Raises:
        SpeechLMError: an unknown name, or a model without a card (one line each).
    """
    names = model_names(assets)
    if name not in names:
        raise SpeechLMError(f"unknown model {name!r}; shipped: {', '.join(names)}")
    card = read_card(Path(assets) / name)
    if card is None:
        raise SpeechLMError(f"{name} has no model card (speechlm/assets/{name}/{CARD})")
    (info,) = shipped_models(assets, names=[name])
    return info, card


def fact_text(fact: Any, note: bool = True) -> str:
    """A fact (``{"value": ..., "unit": ..., "note": ...}``, or plain text) as one line of text."""
    if not isinstance(fact, dict):
        return str(fact)
    unit = fact.get("unit", "")
    text = f"{fact['value']}{' ' if unit and not unit.startswith(('%', '×')) else ''}{unit}"
    return f"{text} ({fact['note']})" if note and fact.get("note") else text


def fact_origin(fact: dict[str, Any]) -> str:
    """Where a fact comes from, in words: ``docs/results/X.json: rows / ours / wer``, ``config.json: step``, ..."""
    if "result" in fact:
        return f"{fact['result']}: {' / '.join(_key_text(k) for k in fact['key'])}"
    if "config" in fact:
        return f"config.json: {' / '.join(_key_text(k) for k in fact['config'])}"
    return str(fact.get("source", NOT_RECORDED))


def _key_text(k: Any) -> str:
    return ", ".join(f"{a}={b}" for a, b in k.items()) if isinstance(k, dict) else str(k)


def fill(card: dict[str, Any], template: str) -> str:
    """``template`` (the card's status or a limit) with each ``{metric id}`` replaced by that metric's value."""
    values = {m["id"]: fact_text(m) for m in card.get("metrics", []) if "id" in m}
    return template.format_map(values)


def status_line(card: dict[str, Any]) -> str:
    """The card's one-line measured status: its ``status`` template with its metrics filled in."""
    return fill(card, str(card.get("status", "")))


def corpora(assets: str | Path = ASSETS) -> dict[str, dict[str, Any]]:
    """The training corpora the cards name: ``{key: {"what", "source", "license"}}`` (from ``cards.json``)."""
    path = Path(assets) / CARDS
    return dict(_read_json(path).get("corpora") or {}) if path.is_file() else {}


def commands_of(card: dict[str, Any]) -> list[str]:
    """The distinct commands a card's facts name, in order of first use (the text and docs number them)."""
    facts = [card.get("parameters"), *(card.get("training") or {}).values(), *card.get("metrics", [])]
    out: list[str] = []
    for f in facts:
        if isinstance(f, dict) and f.get("command") and f["command"] not in out:
            out.append(f["command"])
    return out


def card_text(info: ModelInfo, card: dict[str, Any], assets: str | Path = ASSETS, width: int = 100) -> str:
    """A model card as readable text (``speechlm models --card NAME``)."""
    import textwrap

    commands = commands_of(card)

    def para(label: str, text: str, indent: str = "  ") -> list[str]:
        return textwrap.wrap(f"{label}{text}", width, initial_indent=indent, subsequent_indent=indent + "    ",
                             break_on_hyphens=False)

    def fact_lines(label: str, fact: Any, indent: str = "  ") -> list[str]:
        if not isinstance(fact, dict) or fact.get("value") == NOT_RECORDED:
            return para(f"{label}: ", fact_text(fact), indent)
        cmd = f", command [{commands.index(fact['command']) + 1}]" if fact.get("command") else ""
        return para(f"{label}: ", f"{fact_text(fact)}   [{fact_origin(fact)}{cmd}]", indent)

    known = corpora(assets)
    flags = ", default" if info.default else ""
    out = [f"{info.name}  ({info.kind}{flags})  {info.id}  {info.size_mb:.2f} MB"]
    out += para("", card["description"]) + [""]
    out += para("Measured status: ", status_line(card), "") + [""]
    out += para("Intended use: ", card["intended_use"], "") + para("Architecture: ", card["architecture"], "")
    out += fact_lines("Parameters", card["parameters"], "")
    tr = card["training"]
    out += ["", "Training"]
    for key in tr.get("data", []):
        c = known.get(key, {})
        out += para("data: ", f"{key}: {c.get('what', '?')} (license: {c.get('license', NOT_RECORDED)})")
    for key, fact in tr.items():
        if key != "data":
            out += fact_lines(key.replace("_", " "), fact)
    out += ["", "Metrics"]
    for m in card["metrics"]:
        out += fact_lines(m["label"], m)
    out += ["", "Known limits"] + [line for lim in card["limits"] for line in para("- ", fill(card, lim))]
    if commands:
        out += ["", "Commands"] + [line for i, c in enumerate(commands) for line in para(f"[{i + 1}] ", c)]
    out += ["", f"More: {card['doc']}; every card: docs/models.md"]
    return "\n".join(out)


def kind_of(folder_name: str) -> str:
    """``codec_pitch`` -> ``codec``: the prefix the loaders add to a model name."""
    return folder_name.split("_", 1)[0]


def default_dir(kind: str) -> Path | None:
    """The folder ``default`` names for ``kind``, as its loader resolves it (None: no such model, or kind unknown)."""
    spec = RESOLVERS.get(kind)
    if spec is None:
        return None
    module, func = spec.split(":")
    try:
        return Path(getattr(importlib.import_module(module), func)(None)).resolve()
    except SpeechLMError:  # e.g. the default's folder is missing: then nothing is the default
        return None


def model_id(folder: Path, kind: str, meta: dict[str, Any]) -> str:
    """The ``NAME@HASH`` the loaded model reports, without building it."""
    from speechlm.utils.checkpoint import model_id as checkpoint_id

    if kind != "codec":
        return checkpoint_id(meta, folder)
    # A codec's id hashes only what fixes its tokens (a decoder fine-tuned on frozen tokens keeps the id).
    from speechlm.tokenizers.codec.api import token_space_sha256
    from speechlm.utils.checkpoint import load_checkpoint

    name = (meta.get("extra") or {}).get("name") or folder.name
    return f"{name}@{token_space_sha256(load_checkpoint(folder, verify=False).state_dict)[:16]}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SpeechLMError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise SpeechLMError(f"{path}: expected a JSON object")
    return data
