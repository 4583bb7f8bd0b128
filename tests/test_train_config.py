"""speechlm.train.config: YAML -> frozen dataclass, unknown keys, overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import pytest

from speechlm.errors import SpeechLMError
from speechlm.train.config import config_to_dict, load_config, parse_overrides
from speechlm.train.loop import TrainConfig


@dataclass(frozen=True)
class Recipe:
    name: str = "tiny"
    dim: int = 16
    lr: float = 1e-3
    strides: tuple[int, ...] = (2, 4)
    mode: Literal["a", "b"] = "a"
    warmup: int | None = None
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_steps=7, log_every=1))


def test_yaml_file_and_defaults(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("dim: 32\nlr: 1e-4\nstrides: [3, 5]\ntrain:\n  grad_accum: 2\n")
    cfg = load_config(p, Recipe)
    assert dataclasses.is_dataclass(cfg) and cfg.dim == 32 and cfg.strides == (3, 5)
    assert cfg.lr == pytest.approx(1e-4) and isinstance(cfg.lr, float)  # YAML 1.1 reads "1e-4" as a string
    # a partial section keeps the recipe's preset for the other fields, not TrainConfig's class defaults
    assert cfg.train.grad_accum == 2 and cfg.train.max_steps == 7 and cfg.train.log_every == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.dim = 3  # type: ignore[misc]
    assert load_config(None, Recipe) == Recipe()


def test_unknown_keys_are_named():
    with pytest.raises(SpeechLMError, match=r"unknown config key\(s\) dimm, lrr for Recipe"):
        load_config({"dimm": 3, "lrr": 1.0}, Recipe)
    with pytest.raises(SpeechLMError, match=r"train\.max_stepz"):
        load_config({"train": {"max_stepz": 3}}, Recipe)
    with pytest.raises(SpeechLMError, match="unknown config key"):
        load_config(None, Recipe, ["nope=1"])


def test_overrides():
    cfg = load_config({"dim": 8}, Recipe, ["dim=12", "train.max_steps=99", "strides=[1, 1, 2]", "warmup=null",
                                           "mode=b", "train.clip_grad_norm=null", "name=big"])
    assert (cfg.dim, cfg.train.max_steps, cfg.strides, cfg.warmup, cfg.mode) == (12, 99, (1, 1, 2), None, "b")
    assert cfg.train.clip_grad_norm is None and cfg.name == "big"
    assert load_config(None, Recipe, ["warmup=5"]).warmup == 5
    assert parse_overrides(["a.b=1", "a.c=x", "d=[1, 2]"]) == {"a": {"b": 1, "c": "x"}, "d": [1, 2]}
    with pytest.raises(SpeechLMError, match="key=value"):
        parse_overrides(["dim"])


def test_type_errors_and_missing():
    with pytest.raises(SpeechLMError, match="config key dim must be int"):
        load_config({"dim": "wide"}, Recipe)
    with pytest.raises(SpeechLMError, match="mode must be one of"):
        load_config({"mode": "c"}, Recipe)
    with pytest.raises(SpeechLMError, match=r"strides\[1\]"):
        load_config({"strides": [1, "x"]}, Recipe)

    @dataclass(frozen=True)
    class Needs:
        size: int

    with pytest.raises(SpeechLMError, match="missing config key"):
        load_config({}, Needs)


def test_bad_yaml(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("dim: [1, 2\n")
    with pytest.raises(SpeechLMError, match="not valid YAML"):
        load_config(p, Recipe)
    p.write_text("- 1\n- 2\n")
    with pytest.raises(SpeechLMError, match="mapping"):
        load_config(p, Recipe)
    with pytest.raises(SpeechLMError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", Recipe)


def test_config_to_dict_round_trip():
    cfg = load_config(None, Recipe, ["dim=5", "train.seed=3"])
    d = config_to_dict(cfg)
    assert d["strides"] == [2, 4] and d["train"]["seed"] == 3
    assert load_config(d, Recipe) == cfg


def test_recipe_defaults_name_the_models_the_shipped_ones_use():
    """The LM recipe encodes with the shipped LM's codec, the bridge recipe pairs the shipped bridge's tokenizers,
    the unit-hybrid preset takes its units from the shipped hybrid's teacher: in the dataclass defaults and in the
    presets (a recipe default naming another model would train something the shipped model is not)."""
    import json
    from pathlib import Path

    import yaml

    from speechlm.lm.train import LMTrainConfig
    from speechlm.tokenizers.codec.api import ASSETS, Codec
    from speechlm.tokenizers.semantic.api import SemanticTokenizer
    from speechlm.tokenizers.semantic.bridge_regress_train import RegressRecipeConfig

    configs = Path(__file__).resolve().parents[1] / "configs"

    def shipped(name: str) -> dict:
        return json.loads((ASSETS / name / "config.json").read_text())

    def preset(path: str) -> dict:
        return yaml.safe_load((configs / path).read_text())

    lm_codec = shipped("lm_default")["data_summary"]["tokenizer"]
    for name in (LMTrainConfig().codec, preset("lm/default.yaml")["lm"]["codec"]):
        assert Codec.load(name).tokenizer_id == lm_codec, name
    bridge = shipped("bridge_default")["extra"]  # the regression bridge's recipe
    for cfg in (RegressRecipeConfig().bridge.__dict__, preset("semantic/bridge_regress.yaml")["bridge"]):
        assert Codec.load(cfg["codec_model"]).tokenizer_id == bridge["codec_id"]
        assert SemanticTokenizer.load(cfg["semantic_model"]).tokenizer_id == bridge["semantic_id"]
    teacher = preset("hybrid/units.yaml")["hybrid"]["teacher"]
    assert SemanticTokenizer.load(teacher).tokenizer_id == shipped("codec_hybrid")["data_summary"]["teacher"]
