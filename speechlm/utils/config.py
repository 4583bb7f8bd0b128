"""Configs: one level of YAML into a frozen dataclass, with ``key=value`` overrides (used by training recipes
and by every loader that rebuilds a model from its saved config).

A recipe declares ``@dataclass(frozen=True) class XConfig`` whose fields are plain values (int, float, str,
bool, tuples/lists of them, ``X | None``, ``Literal``) or one level of nested dataclasses (e.g. ``train:
TrainConfig``). ``load_config`` builds it from a YAML file or a dict, rejecting unknown keys by name, so a
typo never silently falls back to a default. The resolved config is saved next to every checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from speechlm.errors import SpeechLMError

T = TypeVar("T")


def load_config(source: str | os.PathLike | Mapping[str, Any] | None, cls: type[T],
                overrides: Sequence[str] = ()) -> T:
    """Build ``cls`` (a dataclass) from a YAML file or a mapping, then apply ``key=value`` overrides.

    Args:
        source: path to a YAML file holding one mapping, a mapping, or None (all defaults).
        cls: the dataclass type; nested dataclass fields take a nested mapping (``train: {max_steps: 10}``).
        overrides: strings ``key=value`` or ``section.key=value``; the value is parsed as YAML (``[1, 2]``,
            ``null``, ``true``, ``1e-3``).

    Raises:
        SpeechLMError: unreadable YAML, unknown keys (all named), missing required keys, or a value of the
            wrong type.
    """
    if source is None:
        data: dict[str, Any] = {}
    elif isinstance(source, Mapping):
        data = _deep_copy(source)
    else:
        path = Path(source)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise SpeechLMError(f"cannot read config {path}: {e.strerror or e}") from None
        except yaml.YAMLError as e:
            raise SpeechLMError(f"config {path} is not valid YAML: {str(e).splitlines()[0]}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, Mapping):
            raise SpeechLMError(f"config {path} must hold a mapping of keys to values, "
                                f"not {type(loaded).__name__}")
        data = _deep_copy(loaded)
    _merge(data, parse_overrides(overrides))
    return _build(cls, data, prefix="")


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Turn ``["a=1", "train.lr=1e-3"]`` into ``{"a": 1, "train": {"lr": "1e-3"}}`` (values read as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpeechLMError(f"override {item!r} must look like key=value (or section.key=value)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise SpeechLMError(f"override {item!r} conflicts with another override of {p!r}")
        node[leaf] = value
    return out


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a dataclass config (tuples become lists); mappings copied; None gives {}."""
    if config is None:
        return {}
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return _jsonable(dataclasses.asdict(config))
    if isinstance(config, Mapping):
        return _jsonable(dict(config))
    raise SpeechLMError(f"a config must be a dataclass or a mapping, not {type(config).__name__}")


# --- internals --------------------------------------------------------------------------------

def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    return x


def _deep_copy(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in m.items()}


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), Mapping):
            _merge(base[k], v)
        else:
            base[k] = v


def _build(cls: type[T], data: Mapping[str, Any], prefix: str) -> T:
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"{cls!r} is not a dataclass type")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        names = ", ".join(prefix + str(k) for k in unknown)
        raise SpeechLMError(f"unknown config key(s) {names} for {cls.__name__} "
                            f"(known: {', '.join(prefix + k for k in fields)})")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        tp, f = hints[name], fields[name]
        if dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
            # a partial section overrides the field's own default (e.g. a recipe's TrainConfig preset),
            # not the section class's defaults
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            if default is not None:
                value = {**{g.name: getattr(default, g.name) for g in dataclasses.fields(default)}, **value}
        kwargs[name] = _coerce(value, tp, prefix + name)
    missing = [prefix + n for n, f in fields.items() if n not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise SpeechLMError(f"missing config key(s) {', '.join(missing)} for {cls.__name__}")
    return cls(**kwargs)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``, converting only where it is lossless and obvious."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if dataclasses.is_dataclass(value) and isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise SpeechLMError(f"config key {key} must be a mapping of {tp.__name__} fields, got {value!r}")
        return _build(tp, value, prefix=key + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except SpeechLMError:
                pass
        raise SpeechLMError(f"config key {key}: {value!r} does not fit {tp}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise SpeechLMError(f"config key {key} must be one of {', '.join(map(repr, args))}, got {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise SpeechLMError(f"config key {key} must be a list, got {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            items = [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
        elif origin is tuple and args:
            if len(args) != len(value):
                raise SpeechLMError(f"config key {key} needs {len(args)} values, got {len(value)}")
            items = [_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            items = [_coerce(v, args[0], f"{key}[{i}]") if args else v for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise SpeechLMError(f"config key {key} must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads "1e-3" as a string (YAML 1.1): accept it for float fields
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    elif isinstance(tp, type):
        if isinstance(value, tp):
            return value
    else:
        return value
    raise SpeechLMError(f"config key {key} must be {getattr(tp, '__name__', tp)}, got {value!r}")
