"""Render the model cards (speechlm/assets/<name>/card.json) into docs/models.md and the README's models table,
and check every number in them against where it says it comes from.

    .venv/bin/python benchmarks/render_cards.py            # rewrite docs/models.md and the README table
    .venv/bin/python benchmarks/render_cards.py --check    # exit 1 if either is out of date or a fact is wrong

``benchmarks/render_tables.py`` runs this too (one command renders every generated table). The README table lives
between ``<!-- cards: models -->`` and ``<!-- /cards -->``; docs/models.md is generated whole.

A fact (``speechlm.models`` describes them) is checked against its origin: a ``result`` value must equal the
benchmark JSON's number at ``key`` printed with the same number of decimals (times ``scale`` if given), and the
fact's ``command`` must be the JSON's own ``command``; a ``config`` value likewise against the model's
``config.json``; a ``source`` value must appear word for word in the named file, or in the section under the
``#anchor`` heading (whitespace-normalised); ``git:REV:PATH`` sources are read with ``git show`` when that commit is
there (not in a tarball or a shallow clone). A fact without an origin must say "not recorded".
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from speechlm.models import (  # noqa: E402
    ASSETS,
    CARD_FIELDS,
    NOT_RECORDED,
    TRAINING_FIELDS,
    ModelInfo,
    commands_of,
    corpora,
    fact_text,
    fill,
    model_names,
    read_card,
    shipped_models,
    status_line,
)

MODELS_MD = ROOT / "docs" / "models.md"
README = ROOT / "README.md"
README_MARK = re.compile(r"(<!-- cards: models -->\n)(?P<body>.*?)(<!-- /cards -->)", re.S)
HELD_OUT = re.compile(r"^(asterisk_core_\w+|pocketsphinx_testdata|codec2_examples)$")
KIND_NAMES = {"codec": "codec", "semantic": "semantic tokenizer", "lm": "codec LM", "tts": "TTS model",
              "asr": "ASR", "bridge": "bridge", "detector": "detector"}


# ---- checking facts -----------------------------------------------------------------------------------------------

def slug(heading: str) -> str:
    """GitHub's anchor for a markdown heading: ``## The unit hybrid: `codec_hybrid``` ->
    ``the-unit-hybrid-codec_hybrid``."""
    text = heading.strip().lstrip("#").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def section(text: str, anchor: str | None) -> str | None:
    """The markdown under the heading whose anchor is ``anchor`` (to the next heading of its level or higher);
    the whole text when ``anchor`` is None; None when no heading has that anchor."""
    if not anchor:
        return text
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(#+) ", line)
        if m and slug(line) == anchor:
            level, end = len(m.group(1)), len(lines)
            for j in range(i + 1, len(lines)):
                n = re.match(r"^(#+) ", lines[j])
                if n and len(n.group(1)) <= level:
                    end = j
                    break
            return "\n".join(lines[i:end])
    return None


def _norm(text: str) -> str:
    """Whitespace collapsed, shell line continuations and comment markers (``#`` at a line's start) removed, so a
    command wrapped over lines in a doc or a YAML comment matches its one-line spelling."""
    text = re.sub(r"^[ \t]*#+[ \t]?", "", text, flags=re.M).replace("\\\n", " ")
    return re.sub(r"\s+", " ", text)


def read_source(source: str) -> str | None:
    """The text a ``source`` names (``PATH``, ``PATH#anchor``, ``git:REV:PATH[#anchor]``); None if it cannot be read
    (a git source without git history: the caller skips it). Raises ValueError for a missing file or anchor."""
    path, _, anchor = source.partition("#")
    if path.startswith("git:"):
        _, rev, rel = path.split(":", 2)
        have = subprocess.run(["git", "cat-file", "-e", f"{rev}^{{commit}}"], cwd=ROOT, capture_output=True)
        if have.returncode != 0:  # no git, or a shallow clone without that commit: nothing to check against
            return None
        r = subprocess.run(["git", "show", f"{rev}:{rel}"], cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            raise ValueError(f"{source}: not in commit {rev} ({r.stderr.strip()[:120]})")
        text = r.stdout
    else:
        if not (ROOT / path).is_file():
            raise ValueError(f"{source}: no such file")
        text = (ROOT / path).read_text()
    body = section(text, anchor or None)
    if body is None:
        raise ValueError(f"{source}: no heading with that anchor")
    return body


def _at(data: Any, key: list[Any]) -> Any:
    for k in key:
        if isinstance(k, dict):  # select the list item whose fields match
            (data,) = [x for x in data if all(x.get(a) == b for a, b in k.items())]
        else:
            data = data[k]
    return data


def _same_number(value: str, actual: Any, scale: float = 1.0) -> bool:
    if isinstance(actual, bool) or not isinstance(actual, int | float):
        return str(actual) == value
    decimals = len(value.split(".")[1]) if "." in value else 0
    return f"{actual * scale:.{decimals}f}" == value


def check_fact(fact: Any, where: str, folder: Path) -> list[str]:
    """What is wrong with one fact (empty when it holds)."""
    if not isinstance(fact, dict) or "value" not in fact:
        return [f"{where}: not a fact object with a value"]
    value = str(fact["value"])
    origins = [k for k in ("result", "config", "source") if k in fact]
    if not origins:
        return [] if value == NOT_RECORDED else [f"{where}: {value!r} has no origin (result, config or source)"]
    if len(origins) > 1:
        return [f"{where}: more than one origin {origins}"]
    try:
        if "result" in fact:
            data = json.loads((ROOT / fact["result"]).read_text())
            actual = _at(data, fact["key"])
            if not _same_number(value, actual, fact.get("scale", 1.0)):
                return [f"{where}: {value} but {fact['result']} says {actual}"]
            if fact.get("command") != data.get("command"):
                return [f"{where}: command differs from {fact['result']}'s ({data.get('command')!r})"]
        elif "config" in fact:
            actual = _at(json.loads((folder / "config.json").read_text()), fact["config"])
            if not _same_number(value, actual, fact.get("scale", 1.0)):
                return [f"{where}: {value} but config.json says {actual}"]
        else:
            text = read_source(fact["source"])
            if text is not None and _norm(value) not in _norm(text):
                return [f"{where}: {value!r} does not appear in {fact['source']}"]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        return [f"{where}: {type(exc).__name__}: {exc}"]
    return []


# A measured-looking number typed into a template instead of taken from a metric (a condition such as "2.85 kbps"
# is fine).
TYPED_NUMBER = re.compile(r"(?<![\w.])\d+\.\d{2,}(?! ?kbps)")


def check_card(name: str, card: dict[str, Any] | None, info: ModelInfo | None = None,
               assets: Path = ASSETS) -> list[str]:
    """Every problem with one model's card: missing fields, a held-out or unknown corpus, a wrong fact, a status
    template with a typed number or an unknown metric, a card written for another model id."""
    if card is None:
        return [f"{name}: no model card (speechlm/assets/{name}/card.json)"]
    folder = assets / name
    problems = [f"{name}: missing field {f!r}" for f in CARD_FIELDS if not card.get(f)]
    training = card.get("training") or {}
    problems += [f"{name}: training lacks {f!r}" for f in TRAINING_FIELDS if not training.get(f)]
    if problems:
        return problems
    if info is not None and card["describes"] != info.id:
        problems.append(f"{name}: the card describes {card['describes']}, the shipped model is {info.id} "
                        "(a re-exported model needs its card redone)")
    known = corpora(assets)
    for key in training["data"]:
        if HELD_OUT.match(key):
            problems.append(f"{name}: trained on the held-out set {key}?")
        elif key not in known:
            problems.append(f"{name}: corpus {key!r} is not in the corpora table of speechlm/assets/cards.json")
    problems += check_fact(card["parameters"], f"{name}.parameters", folder)
    for key, fact in training.items():
        if key != "data":
            problems += check_fact(fact, f"{name}.training.{key}", folder)
    ids = [m.get("id") for m in card["metrics"] if m.get("id")]
    if len(ids) != len(set(ids)):
        problems.append(f"{name}: metric ids repeat")
    for i, m in enumerate(card["metrics"]):
        if not m.get("label"):
            problems.append(f"{name}.metrics[{i}]: no label")
        problems += check_fact(m, f"{name}.metrics[{i}] ({m.get('label', '?')})", folder)
    for where, template in [("status", card["status"]), *((f"limits[{i}]", t) for i, t in enumerate(card["limits"]))]:
        fields = set(re.findall(r"\{(\w+)\}", template))
        problems += [f"{name}.{where}: no metric {f!r}" for f in sorted(fields - set(ids))]
        if TYPED_NUMBER.search(re.sub(r"\{\w+\}", "", template)):
            problems.append(f"{name}.{where}: a number typed in the text; make it a metric")
    return problems


def all_problems(assets: Path = ASSETS) -> list[str]:
    """Every problem with every shipped model's card."""
    infos = {m.name: m for m in shipped_models(assets)}
    return [p for name in model_names(assets) for p in check_card(name, read_card(assets / name), infos[name], assets)]


# ---- rendering ----------------------------------------------------------------------------------------------------

def _link(target: str, text: str | None = None, from_docs: bool = False) -> str:
    """A markdown link to a repository file (``docs/x.md#a``), relative to README.md or to docs/."""
    if target.startswith("git:"):
        _, rev, rel = target.split(":", 2)
        return f"`git show {rev}:{rel.split('#')[0]}`"
    href = target[len("docs/"):] if from_docs and target.startswith("docs/") else (
        f"../{target}" if from_docs else target)
    return f"[{text or target}]({href})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _origin_md(fact: dict[str, Any]) -> str:
    if fact.get("value") == NOT_RECORDED:
        return ""
    if "result" in fact:
        return f"{_link(fact['result'], from_docs=True)}: {' / '.join(_key_md(k) for k in fact['key'])}"
    if "config" in fact:
        return f"`config.json`: {' / '.join(_key_md(k) for k in fact['config'])}"
    return _link(fact["source"], from_docs=True)


def _training_md(key: str, fact: dict[str, Any]) -> str:
    """A training fact as markdown: the recipe as code."""
    if key != "recipe" or fact.get("value") == NOT_RECORDED:
        return fact_text(fact)
    return f"`{fact['value']}`" + (f" ({fact['note']})" if fact.get("note") else "")


def _cmd(fact: dict[str, Any], commands: list[str]) -> str:
    """A fact's command as its number in the card's command list (``[2]``), or nothing."""
    return f"[{commands.index(fact['command']) + 1}]" if fact.get("command") else ""


def _paren(text: str) -> str:
    return f"({text})" if text else ""


def _key_md(k: Any) -> str:
    return "`" + (", ".join(f"{a}={b}" for a, b in k.items()) if isinstance(k, dict) else str(k)) + "`"


def _status(card: dict[str, Any]) -> str:
    return _cell(status_line(card))


def readme_table(models: list[ModelInfo], cards: dict[str, dict[str, Any] | None]) -> str:
    """The README's models table: one row per shipped model, its numbers filled from its card's metrics."""
    lines = ["| model | what it is | for | measured status (from its card; details behind the link) |",
             "|---|---|---|---|"]
    for m in _ordered(models, cards):
        card = cards.get(m.name)
        name = f"`{m.name}`" + (f" (default {KIND_NAMES.get(m.kind, m.kind)})" if m.default else "")
        if card is None:
            lines.append(f"| {name} | {_cell(m.description) or '–'} | – | no model card yet |")
            continue
        params = card["parameters"]
        what = card["summary"] + ("" if params.get("value") == NOT_RECORDED else f", {fact_text(params, note=False)}")
        lines.append(f"| {name} | {_cell(what)} | {_cell(card['used_by'])} | {_status(card)} "
                     f"([card](docs/models.md#{slug(m.name)}); {_link(card['doc'], _doc_name(card['doc']))}) |")
    return "\n".join(lines) + "\n"


def _doc_name(target: str) -> str:
    return Path(target.split("#")[0]).stem if not target.startswith("git:") else "git"


def _ordered(models: list[ModelInfo], cards: dict[str, dict[str, Any] | None]) -> list[ModelInfo]:
    """Defaults first within a kind, in the order a user meets them (codec, tts, semantic, ...)."""
    order = {k: i for i, k in enumerate(["tts", "codec", "semantic", "bridge", "lm", "asr"])}
    return sorted(models, key=lambda m: (order.get(m.kind, len(order)), not m.default, m.name))


def models_md(models: list[ModelInfo], cards: dict[str, dict[str, Any] | None], assets: Path = ASSETS) -> str:
    """docs/models.md: an index, the training corpora and their licenses, then one card per model."""
    known = corpora(assets)
    out = ["# Shipped models", "",
           "<!-- Generated from speechlm/assets/*/card.json by `.venv/bin/python benchmarks/render_tables.py`; "
           "edit the cards, not this file. -->", "",
           "One model card per folder of `speechlm/assets/`: what it is for, how it was trained (data, hours, steps, "
           "hardware, wall time), what it measures (each number with the benchmark JSON or doc section it comes "
           "from, and the command that made it) and its known limits. `speechlm models --card NAME` prints the same "
           "card; `speechlm models --json` lists them. Facts nobody recorded say *not recorded*; "
           "`tests/test_model_cards.py` checks every number against its origin.", "",
           "| model | kind | id | size MB | default |", "|---|---|---|---|---|"]
    out += [f"| [`{m.name}`](#{slug(m.name)}) | {m.kind} | `{m.id}` | {m.size_mb:.2f} | {'yes' if m.default else ''} |"
            for m in _ordered(models, cards)]
    used = sorted({k for c in cards.values() if c for k in c["training"].get("data", [])})
    out += ["", "## Training corpora", "",
            "Every corpus a card names (the held-out sets, `data/real/asterisk_core_*`, `pocketsphinx_testdata` and "
            "`codec2_examples`, are never trained on). Licenses as the Debian package's "
            "`/usr/share/doc/PACKAGE/copyright` or the model's own documentation states them.", "",
            "| corpus | what | from | license |", "|---|---|---|---|"]
    out += [f"| `{k}` | {_cell(known.get(k, {}).get('what', '?'))} | {_cell(known.get(k, {}).get('source', '?'))} | "
            f"{_cell(known.get(k, {}).get('license', NOT_RECORDED))} |" for k in used]
    for m in _ordered(models, cards):
        out += ["", f"## `{m.name}`", ""]
        card = cards.get(m.name)
        head = f"`{m.id}` · {m.kind}{' · default' if m.default else ''} · {m.size_mb:.2f} MB"
        if card is None:
            out += [head, "", f"{m.description or ''} **No model card yet** (`speechlm/assets/{m.name}/card.json`)."]
            continue
        commands = commands_of(card)
        data = ", ".join(f"`{k}`" for k in card["training"]["data"])
        out += [head, "", card["description"], "",
                f"- **Measured status:** {status_line(card)}",
                f"- **Intended use:** {card['intended_use']}",
                f"- **Architecture:** {card['architecture']}",
                f"- **Parameters:** {fact_text(card['parameters'])} {_paren(_origin_md(card['parameters']))}",
                f"- **Guide:** {_link(card['doc'], from_docs=True)}", "",
                "### Training", "", "| | | from | command |", "|---|---|---|---|",
                f"| data | {data} | [corpora](#training-corpora) | |"]
        out += [f"| {key.replace('_', ' ')} | {_cell(_training_md(key, f))} | {_cell(_origin_md(f))} | "
                f"{_cmd(f, commands)} |" for key, f in card["training"].items() if key != "data"]
        out += ["", "### Metrics", "", "| metric | value | from | command |", "|---|---|---|---|"]
        out += [f"| {_cell(x['label'])} | {_cell(fact_text(x))} | {_cell(_origin_md(x))} | {_cmd(x, commands)} |"
                for x in card["metrics"]]
        out += ["", "### Known limits", ""] + [f"- {fill(card, lim)}" for lim in card["limits"]]
        if commands:
            out += ["", "### Commands", ""] + [f"{i + 1}. `{c}`" for i, c in enumerate(commands)]
    return "\n".join(out) + "\n"


def render(assets: Path = ASSETS) -> dict[Path, str]:
    """The new text of docs/models.md and README.md."""
    models = shipped_models(assets)
    cards = {m.name: read_card(assets / m.name) for m in models}
    readme = README.read_text()
    if not README_MARK.search(readme):
        raise SystemExit(f"{README}: no '<!-- cards: models -->' ... '<!-- /cards -->' block")
    new_readme = README_MARK.sub(lambda x: x.group(1) + readme_table(models, cards) + x.group(3), readme)
    return {MODELS_MD: models_md(models, cards, assets), README: new_readme}


def update(check: bool) -> list[str]:
    """Write (or with ``check``, compare) the rendered files; the stale ones and any card problem, as messages."""
    msgs = []
    for path, text in render().items():
        if not path.is_file() or path.read_text() != text:
            msgs.append(("out of date: " if check else "rendered: ") + str(path.relative_to(ROOT)))
            if not check:
                path.write_text(text)
    return msgs + [f"card: {p}" for p in all_problems()]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    msgs = update(args.check)
    for m in msgs:
        print(m)
    return 1 if any(m.startswith(("out of date", "card:")) for m in msgs) else 0


if __name__ == "__main__":
    sys.exit(main())
