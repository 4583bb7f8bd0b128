"""Model cards (speechlm/assets/<name>/card.json): every shipped model has a complete one, every number in it agrees
with the benchmark JSON, config.json or doc section it names, ``speechlm models --card`` prints it, and
docs/models.md and the README's models table are what benchmarks/render_cards.py makes of them."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from speechlm.cli import main
from speechlm.models import ASSETS, CARD_FIELDS, TRAINING_FIELDS, model_names, read_card, shipped_models, status_line

ROOT = Path(__file__).resolve().parents[1]


def _renderer():
    spec = importlib.util.spec_from_file_location("render_cards", ROOT / "benchmarks" / "render_cards.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("render_cards", module)
    spec.loader.exec_module(module)
    return module


rc = _renderer()


@pytest.fixture(scope="module")
def infos():
    return {m.name: m for m in shipped_models()}


@pytest.mark.parametrize("name", model_names())
def test_every_shipped_model_has_a_complete_card(name, infos) -> None:
    """Fields present, corpora known and none held out, each fact agreeing with its origin, the card written for
    the weights that ship (a re-exported model needs its card redone), no number typed into the status line."""
    card = read_card(ASSETS / name)
    assert card is not None, f"speechlm/assets/{name}/card.json is missing: every shipped model needs a card"
    assert set(CARD_FIELDS) <= set(card) and set(TRAINING_FIELDS) <= set(card["training"])
    assert rc.check_card(name, card, infos[name]) == []


def test_the_checks_catch_a_wrong_card(infos) -> None:
    """Each kind of mistake the completeness test relies on is reported."""
    good = read_card(ASSETS / "codec_sf")
    info = infos["codec_sf"]
    assert rc.check_card("codec_sf", good, info) == []

    def problems(edit) -> list[str]:
        card = copy.deepcopy(good)
        edit(card)
        return rc.check_card("codec_sf", card, info)

    def by_id(card, mid):
        return next(m for m in card["metrics"] if m.get("id") == mid)

    assert problems(lambda c: by_id(c, "wer_285").update(value="0.090"))  # differs from the JSON
    assert problems(lambda c: by_id(c, "wer_285").update(command="another command"))  # not the JSON's command
    assert problems(lambda c: c["training"].update(steps={**c["training"]["steps"], "value": "2999"}))  # config.json
    assert problems(lambda c: c["training"].update(hardware={"value": "8 GPUs", "source": "docs/codec.md"}))  # absent
    assert problems(lambda c: c["training"].update(hardware={"value": "8 GPUs"}))  # no origin
    assert not problems(lambda c: c["training"].update(hardware={"value": "not recorded"}))
    assert problems(lambda c: c["training"].update(data=["asterisk_core_en"]))  # held out
    assert problems(lambda c: c["training"].update(data=["my_corpus"]))  # not in the corpora table
    assert problems(lambda c: c.update(status=c["status"] + "; MOS 4.15"))  # a typed number
    assert problems(lambda c: c.update(status=c["status"] + " {nope}"))  # no such metric
    assert problems(lambda c: c.update(describes="codec_sf@0000000000000000"))  # written for other weights
    assert problems(lambda c: c.pop("limits"))
    assert problems(lambda c: c["training"].pop("wall_time"))


def test_sources_resolve_headings_and_sections() -> None:
    assert rc.slug("## The unit hybrid: `codec_hybrid`") == "the-unit-hybrid-codec_hybrid"
    assert rc.slug("## Source-filter codec (default)") == "source-filter-codec-default"
    text = "# A\nintro\n## B\nin b 0.123\n### C\nin c\n## D\nin d 0.456\n"
    assert "0.123" in rc.section(text, "b") and "in c" in rc.section(text, "b")
    assert "0.456" not in rc.section(text, "b") and rc.section(text, "nope") is None
    with pytest.raises(ValueError):
        rc.read_source("docs/codec.md#no-such-heading")


def test_models_card_command(capsys, infos) -> None:
    assert main(["models", "--card", "tts_duration"]) == 0
    out = capsys.readouterr().out
    card = read_card(ASSETS / "tts_duration")
    assert infos["tts_duration"].id in out and "Known limits" in out and "Training" in out
    assert all(m["value"] in out for m in card["metrics"])
    assert all(c in " ".join(out.split()) for c in ["benchmarks/tts_eval.py --out runs/tts_eval"])
    assert main(["models", "--card", "tts_duration", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "tts_duration" and data["card"] == card and data["id"] == infos["tts_duration"].id


def test_models_card_unknown_name_is_one_line(capsys) -> None:
    assert main(["models", "--card", "no_such_model"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no_such_model" in err and "codec_sf" in err


def test_listing_quality_is_the_cards_status(infos) -> None:
    """``speechlm models --json`` keeps its fields; ``quality`` is the card's status line, numbers filled in."""
    for name, m in infos.items():
        card = read_card(ASSETS / name)
        if card is not None:
            assert m.quality == status_line(card) and m.description == card["description"]
            assert "{" not in m.quality


def test_models_md_and_readme_table_are_rendered_from_the_cards() -> None:
    """A hand edit of docs/models.md or of the README's models table, or a card changed without re-rendering, fails
    here: run `.venv/bin/python benchmarks/render_tables.py`."""
    for path, text in rc.render().items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is out of date"
    readme = (ROOT / "README.md").read_text()
    table = rc.README_MARK.search(readme).group("body")
    assert all(f"`{n}`" in table for n in model_names())  # every shipped folder has a row


def test_a_folder_without_a_card_is_listed_and_reported(tmp_path) -> None:
    """A model folder someone adds without a card still gets its row and section, and the check names it."""
    import shutil

    for name in ("semantic_mfcc", "cards.json"):
        src = ASSETS / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    shutil.copytree(ASSETS / "semantic_mfcc", tmp_path / "detector_x", ignore=shutil.ignore_patterns("card.json"))
    models = shipped_models(tmp_path)
    cards = {m.name: read_card(tmp_path / m.name) for m in models}
    assert [m.name for m in models] == ["detector_x", "semantic_mfcc"] and cards["detector_x"] is None
    doc = rc.models_md(models, cards, tmp_path)
    assert "## `detector_x`" in doc and "No model card yet" in doc and "## `semantic_mfcc`" in doc
    assert "| `detector_x` |" in rc.readme_table(models, cards)
    assert rc.check_card("detector_x", None) == ["detector_x: no model card (speechlm/assets/detector_x/card.json)"]
