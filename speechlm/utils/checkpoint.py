"""Reading checkpoints: the on-disk format every loader shares (safetensors + JSON, no pickle anywhere).

A checkpoint is a folder::

    step_00001000/
      model.safetensors       the weights to ship (tied tensors stored once, aliases in the header metadata)
      config.json             format, config, step, git revision, data summary, speechlm/torch versions,
                              weights_sha256 (a content hash of the weights), extra, files
      train_state.*           (training runs only) what resuming needs; read by :mod:`speechlm.train.checkpoint`

This module is what inference needs — load and verify weights, resolve a model name or run folder to a checkpoint,
compute a model's id — and imports nothing from training. Writing checkpoints and training state lives in
:mod:`speechlm.train.checkpoint`, which builds on this one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors
import torch
from torch import nn

import speechlm
from speechlm.errors import CheckpointError

FORMAT = "speechlm-checkpoint/1"
MODEL_FILE, CONFIG_FILE = "model.safetensors", "config.json"
STATE_FILE, STATE_JSON = "train_state.safetensors", "train_state.json"
_ALIASES_KEY = "speechlm.aliases"
_LEGACY_PROMPT = ("prompt.npz", "prompt.json")


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint. ``config`` is the saved config dict (rebuild: ``load_config(c.config, Cls)``);
    ``meta`` is the whole ``config.json`` (git_revision, data_summary, weights_sha256, extra, ...)."""

    path: Path
    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any]
    step: int
    meta: dict[str, Any] = field(repr=False)

    @property
    def weights_sha256(self) -> str:
        return self.meta["weights_sha256"]

    @property
    def model_id(self) -> str:
        """``NAME@HASH``: see :func:`model_id`."""
        return model_id(self.meta, self.path)



def checkpoint_files(path: str | os.PathLike) -> set[str] | None:
    """The names of the files the speechlm checkpoint in ``path`` consists of; None when ``path`` holds none.

    From ``config.json["files"]``; for checkpoints written before that list existed, the standard files that
    are present (and ``prompt.npz`` + ``prompt.json``, an LM export's default voice, when both are)."""
    path = Path(path)
    try:
        meta = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return None
    files = meta.get("files")
    if isinstance(files, list) and all(isinstance(f, str) and _plain_name(f) for f in files):
        return {*files, CONFIG_FILE}
    found = {n for n in (MODEL_FILE, CONFIG_FILE, STATE_FILE, STATE_JSON) if (path / n).exists()}
    if all((path / n).is_file() for n in _LEGACY_PROMPT):
        found.update(_LEGACY_PROMPT)
    return found



def load_checkpoint(ckpt_dir: str | os.PathLike, verify: bool = True) -> Checkpoint:
    """Load weights and metadata (on CPU). ``verify`` checks the weights against their saved hash.

    Raises:
        CheckpointError: missing folder or files, corrupt JSON or safetensors, or a hash mismatch.
    """
    path = Path(ckpt_dir)
    meta = _read_json(path / CONFIG_FILE)
    if meta.get("format") != FORMAT or not isinstance(meta.get("step"), int):
        raise CheckpointError(f"{path / CONFIG_FILE}: not a speechlm checkpoint "
                              f"(format {meta.get('format')!r})")
    sd = _read_safetensors(path / MODEL_FILE)
    if verify and weights_sha256(sd) != meta.get("weights_sha256"):
        raise CheckpointError(f"{path / MODEL_FILE}: weights do not match the hash in config.json "
                              "(corrupt or edited)")
    return Checkpoint(path, sd, meta.get("config") or {}, meta["step"], meta)


def load_weights(module: nn.Module, ckpt_dir: str | os.PathLike, strict: bool = True) -> Checkpoint:
    """Load a checkpoint's weights into ``module`` (DDP wrapper allowed); key mismatch -> CheckpointError."""
    ckpt = load_checkpoint(ckpt_dir)
    _load_into(unwrap(module), ckpt.state_dict, strict, f"{ckpt.path}")
    return ckpt



def checkpoint_path(run_dir: str | os.PathLike, step: int) -> Path:
    """Where a run keeps its checkpoint of ``step``: ``RUN_DIR/checkpoints/step_XXXXXXXX``."""
    return Path(run_dir) / "checkpoints" / f"step_{step:08d}"


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints of a run (those with config.json), oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        if p.is_dir() and p.name.startswith("step_") and p.name[5:].isdigit() and (p / CONFIG_FILE).exists():
            found.append((int(p.name[5:]), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None



ASSETS = Path(speechlm.__file__).resolve().parent / "assets"


def resolve_model_dir(name_or_dir: str | os.PathLike | None, prefix: str, default: str, what: str) -> Path:
    """A model name or folder -> its checkpoint folder. ``None``/``"default"`` -> ``assets/<default>``; ``NAME`` ->
    ``assets/NAME`` or ``assets/<prefix>_NAME``; anything else is a checkpoint folder, or a run folder (its newest
    checkpoint). ``what`` names the kind in errors."""
    name = str(name_or_dir) if name_or_dir not in (None, "default") else default
    p = Path(name)
    if not p.exists() and "/" not in name:
        for cand in (ASSETS / name, ASSETS / f"{prefix}_{name.removeprefix(prefix + '_')}"):
            if cand.is_dir():
                p = cand
                break
    if not p.is_dir():
        raise CheckpointError(f"{what} {name!r} not found (a name under speechlm/assets or a folder)")
    if not (p / MODEL_FILE).exists():
        latest = latest_checkpoint(p) if (p / "checkpoints").is_dir() else None
        if latest is None:
            raise CheckpointError(f"{p}: no {what} checkpoint there")
        p = latest
    return p


def checkpoint_kind(path: str | os.PathLike) -> str | None:
    """The ``extra.kind`` a checkpoint folder declares (reads ``config.json`` only); ``None`` if unreadable."""
    try:
        return (_read_json(Path(path) / CONFIG_FILE).get("extra") or {}).get("kind")
    except CheckpointError:
        return None


def model_id(meta: Mapping[str, Any], path: str | os.PathLike) -> str:
    """``NAME@HASH`` of a checkpoint from its ``config.json`` alone (``meta``): its exported name (``extra.name``,
    else the folder's name) and the first 16 hex digits of its weights hash."""
    name = (meta.get("extra") or {}).get("name") or Path(path).name
    return f"{name}@{str(meta.get('weights_sha256', ''))[:16]}"


def weights_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """A content hash of named tensors: names, dtypes, shapes and bytes, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()



# --- internals --------------------------------------------------------------------------------

def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path.parent}: not a checkpoint (missing {path.name})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable ({e})") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: corrupt JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: corrupt (expected a JSON object)")
    return data


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise CheckpointError(f"{path.parent}: not a complete checkpoint (missing {path.name})")
    try:
        with safetensors.safe_open(str(path), framework="pt", device="cpu") as f:
            sd = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
            aliases = json.loads((f.metadata() or {}).get(_ALIASES_KEY, "{}"))
    except Exception as e:  # safetensors raises its own error types, and OSError for truncated files
        why = str(e).splitlines()[0] if str(e) else repr(e)
        raise CheckpointError(f"{path}: corrupt safetensors file ({why})") from None
    for alias, kept in aliases.items():
        sd[alias] = sd[kept]
    return sd


def _load_into(module: nn.Module, sd: Mapping[str, torch.Tensor], strict: bool, what: str) -> None:
    result = module.load_state_dict(sd, strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")
        raise CheckpointError(f"{what}: weights do not fit this model "
                              f"(missing: {few(result.missing_keys) or '-'}; "
                              f"unexpected: {few(result.unexpected_keys) or '-'})")



def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP (or torch.compile) wrapper."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model
