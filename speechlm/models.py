"""The shipped models: every folder under ``speechlm/assets`` that holds a ``config.json`` (``speechlm models``).

Everything is read from the folder, not from a list kept here, so a newly exported model is listed as soon as its
folder exists:

- ``kind`` is the folder name's prefix (``codec_pitch`` is a codec), the rule every loader resolves names by;
- ``id`` is the ``NAME@HASH`` the loaded model reports, computed without building the model: for a codec its
  tokenizer id (a hash of the tensors that fix its tokens, read from the file), for the others the weights hash
  recorded in ``config.json``;
- ``default`` is whether that kind's loader resolves ``default`` to this folder;
- what it is for and its measured quality, one line each, come from ``assets/cards.json`` (a ``card`` object in
  the folder's ``config.json`` overrides it).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from speechlm.errors import SpeechLMError

ASSETS = Path(__file__).resolve().parent / "assets"
CARDS = "cards.json"

# kind -> its loader's name resolver ("module:function"); called with None, i.e. "default"
RESOLVERS: dict[str, str] = {
    "codec": "speechlm.tokenizers.codec.api:resolve_model_dir",
    "semantic": "speechlm.tokenizers.semantic.api:resolve_model_dir",
    "lm": "speechlm.lm.api:resolve_lm_dir",
    "tts": "speechlm.lm.acoustic_api:resolve_acoustic_dir",
    "asr": "speechlm.asr.transcriber:resolve_model_dir",
    "bridge": "speechlm.tokenizers.semantic.bridge:resolve_bridge_dir",
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


def shipped_models(assets: str | Path = ASSETS) -> list[ModelInfo]:
    """Every model folder under ``assets``, sorted by kind then name."""
    assets = Path(assets)
    cards = _read_json(assets / CARDS) if (assets / CARDS).is_file() else {}
    folders = sorted(d for d in assets.iterdir() if (d / "config.json").is_file())
    defaults = {kind: default_dir(kind) for kind in {kind_of(d.name) for d in folders}}
    out = []
    for d in folders:
        meta = _read_json(d / "config.json")
        kind = kind_of(d.name)
        card = {**(cards.get(d.name) or {}), **(meta.get("card") or {})}
        size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
        out.append(ModelInfo(
            name=d.name, kind=kind, id=model_id(d, kind, meta), size_mb=round(size / 1e6, 2),
            default=defaults[kind] is not None and d.resolve() == defaults[kind],
            description=str(card.get("description", "")), quality=str(card.get("quality", "")),
        ))
    return sorted(out, key=lambda m: (m.kind, m.name))


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
    from speechlm.train.checkpoint import model_id as checkpoint_id

    if kind != "codec":
        return checkpoint_id(meta, folder)
    # A codec's id hashes only what fixes its tokens (a decoder fine-tuned on frozen tokens keeps the id).
    from speechlm.tokenizers.codec.api import token_space_sha256
    from speechlm.train.checkpoint import load_checkpoint

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
