"""Checkpoints as safetensors + JSON, with everything needed to resume training. No pickle anywhere.

A checkpoint is a folder, written to a temporary sibling and moved into place complete (readers never see half
of one; see :func:`speechlm.utils.atomic.atomic_dir`)::

    step_00001000/
      model.safetensors       the weights to ship (tied tensors stored once, aliases in the header metadata)
      config.json             format, config, step, git revision, data summary, speechlm/torch versions,
                              weights_sha256 (a content hash of the weights), extra
      train_state.safetensors optimizer / scheduler tensors, auxiliary modules (e.g. a GAN discriminator)
      train_state.json        the non-tensor parts of those states, per-rank RNG states, trainer position

The last two exist only when training state was saved; ``config.json["files"]`` lists the files the checkpoint
consists of. Writing onto an existing folder replaces only those files: anything else in it (a model card, a
user's notes) is kept, never deleted. Commands that write a checkpoint folder refuse a non-empty folder that
holds no checkpoint unless ``--force`` (:func:`check_destination`, called before the work starts).

Runs keep theirs under ``RUN_DIR/checkpoints/``;
:func:`latest_checkpoint` finds the newest complete one and :func:`prune_checkpoints` keeps the last few.
The reading side (loading, verifying, resolving names and run folders, ids) is
:mod:`speechlm.utils.checkpoint`, which inference uses without importing training code; its names are
re-exported here for training code.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

import speechlm
from speechlm.errors import CheckpointError
from speechlm.train.config import config_to_dict
from speechlm.train.seed import rng_state
from speechlm.utils.atomic import atomic_dir
from speechlm.utils.checkpoint import (  # noqa: F401 (re-exported for training code)
    _ALIASES_KEY,
    _LEGACY_PROMPT,
    ASSETS,
    CONFIG_FILE,
    FORMAT,
    MODEL_FILE,
    STATE_FILE,
    STATE_JSON,
    Checkpoint,
    _load_into,
    _read_json,
    _read_safetensors,
    checkpoint_files,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_weights,
    model_id,
    resolve_model_dir,
    unwrap,
    weights_sha256,
)


@dataclass(frozen=True)
class TrainState:
    """What :func:`load_train_state` restored besides the objects passed to it."""

    step: int
    rng_states: list[dict[str, Any]]  # one per rank of the run that saved it
    meta: dict[str, Any]  # the trainer's own position (epoch, batch in epoch, ...)


Stateful = Any  # an object with state_dict() / load_state_dict() (optimizer, LR scheduler, GradScaler)


def save_checkpoint(ckpt_dir: str | os.PathLike, *, model: nn.Module | Mapping[str, torch.Tensor],
                    config: Any = None, step: int, optimizer: Stateful | Mapping[str, Stateful] | None = None,
                    scheduler: Stateful | Mapping[str, Stateful] | None = None,
                    extra: Mapping[str, Any] | None = None, data_summary: Mapping[str, Any] | None = None,
                    aux_modules: Mapping[str, nn.Module] | None = None,
                    rng_states: list[dict[str, Any]] | None = None,
                    train_meta: Mapping[str, Any] | None = None,
                    write_extra: Callable[[Path], None] | None = None) -> Path:
    """Write a checkpoint folder atomically and return its path.

    Args:
        ckpt_dir: the folder to write. If it holds a checkpoint, that checkpoint's files are replaced (the old
            ones stay complete until the new ones are); other entries of the folder are kept. A name the new
            checkpoint writes that exists there but is not part of an old checkpoint raises CheckpointError.
        model: the module (DDP wrapper allowed) or state dict whose weights go to ``model.safetensors``.
        config: a dataclass or mapping saved as ``config.json["config"]``.
        step: optimizer steps taken.
        optimizer, scheduler: one object or a name->object mapping (e.g. ``{"gen": g, "disc": d}``).
        extra: more JSON for ``config.json`` (model name, sample rate, ...).
        data_summary: JSON describing the training data (manifest paths, hours, hash, ...).
        aux_modules: modules needed to resume but not to use the model (a discriminator, an EMA copy).
        rng_states: per-rank RNG states; default: this process's state, as rank 0.
        train_meta: JSON the trainer needs to resume (data position, ...).
        write_extra: called with the temporary folder to add more files to the checkpoint (a default voice
            prompt, ...) before it is moved into place; they become part of it (``config.json["files"]``).

    Training state (``train_state.*``) is written when any of optimizer, scheduler, aux_modules, rng_states,
    train_meta is given.
    """
    weights = _state_dict(model)
    tensors, aliases = _dedupe(weights)
    meta = {
        "format": FORMAT,
        "step": int(step),
        "config": config_to_dict(config),
        "git_revision": git_revision(),
        "data_summary": dict(data_summary) if data_summary is not None else None,
        "speechlm_version": speechlm.__version__,
        "torch_version": torch.__version__,
        "weights_sha256": weights_sha256(weights),
        "extra": dict(extra) if extra is not None else {},
    }
    with_state = any(x is not None for x in (optimizer, scheduler, aux_modules, rng_states, train_meta))
    owned = checkpoint_files(ckpt_dir) or set()
    try:
        # config.json names every file of the checkpoint: written last, and moved into place last
        with atomic_dir(ckpt_dir, owned=owned, last=(CONFIG_FILE,)) as tmp:
            header = {_ALIASES_KEY: json.dumps(aliases)}
            safetensors.torch.save_file(tensors, str(tmp / MODEL_FILE), metadata=header)
            if with_state:
                flat: dict[str, torch.Tensor] = {}
                state = {
                    "step": int(step),
                    "optimizers": {n: _tree_out(o.state_dict(), flat, f"optim.{n}")
                                   for n, o in _named(optimizer, "optimizer").items()},
                    "schedulers": {n: _tree_out(s.state_dict(), flat, f"sched.{n}")
                                   for n, s in _named(scheduler, "scheduler").items()},
                    "aux_modules": sorted((aux_modules or {}).keys()),
                    "rng_states": rng_states if rng_states is not None else [rng_state()],
                    "meta": dict(train_meta or {}),
                }
                for name, mod in (aux_modules or {}).items():
                    for k, v in _state_dict(mod).items():
                        flat[f"aux.{name}.{k}"] = v
                flat, _ = _dedupe(flat, clone_aliases=True)
                safetensors.torch.save_file(flat, str(tmp / STATE_FILE))
                (tmp / STATE_JSON).write_text(json.dumps(state) + "\n", encoding="utf-8")
            if write_extra is not None:
                write_extra(tmp)
            meta = {**meta, "files": sorted({*os.listdir(tmp), CONFIG_FILE})}
            (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    except FileExistsError as e:
        raise CheckpointError(str(e)) from None
    return Path(ckpt_dir)



def check_destination(path: str | os.PathLike, force: bool = False) -> None:
    """Refuse, before any work, a checkpoint destination whose contents speechlm did not write.

    Fine: a missing or empty folder, or one holding a speechlm checkpoint (its files are replaced, nothing else
    in it is touched). A non-empty folder without a checkpoint is refused unless ``force``; even then a file
    named like a checkpoint file (``config.json``, ...) is never overwritten.

    Raises:
        CheckpointError: one line saying why (the CLI exits 2).
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        if not path.parent.is_dir():
            parent = path.parent
            while not parent.exists() and parent != parent.parent:
                parent = parent.parent
            if not parent.is_dir():
                raise CheckpointError(f"{path}: {parent} is not a folder")
        return
    if not path.is_dir():
        raise CheckpointError(f"{path} exists and is not a folder")
    present = set(os.listdir(path))
    if not present or checkpoint_files(path) is not None:
        return
    if not force:
        raise CheckpointError(f"{path} is not empty and holds no speechlm checkpoint; choose an empty or new folder, "
                              "or pass --force to write the model files beside what is there (nothing is deleted)")
    clash = sorted(present & {MODEL_FILE, CONFIG_FILE, STATE_FILE, STATE_JSON, *_LEGACY_PROMPT})
    if clash:
        raise CheckpointError(f"{path} holds {', '.join(clash)}, which speechlm did not write; refusing to overwrite "
                              "it, even with --force")


def load_train_state(ckpt_dir: str | os.PathLike, *,
                     optimizer: Stateful | Mapping[str, Stateful] | None = None,
                     scheduler: Stateful | Mapping[str, Stateful] | None = None,
                     aux_modules: Mapping[str, nn.Module] | None = None) -> TrainState:
    """Restore optimizer(s), scheduler(s) and auxiliary modules in place; return RNG states and trainer meta.

    The names (or single objects) must match what was saved. RNG states are returned, not applied: the caller
    applies its rank's with :func:`speechlm.train.seed.set_rng_state` at the right moment.
    """
    path = Path(ckpt_dir)
    if not (path / STATE_JSON).exists():
        raise CheckpointError(f"{path}: has no training state (saved for inference only), cannot resume")
    state = _read_json(path / STATE_JSON)
    flat = _read_safetensors(path / STATE_FILE)
    try:
        for kind, objs in (("optimizers", _named(optimizer, "optimizer")),
                           ("schedulers", _named(scheduler, "scheduler"))):
            saved = state[kind]
            if set(saved) != set(objs):
                raise CheckpointError(f"{path}: saved {kind} {sorted(saved)} but got {sorted(objs)}")
            for name, obj in objs.items():
                obj.load_state_dict(_tree_in(saved[name], flat))
        aux = dict(aux_modules or {})
        if sorted(aux) != state["aux_modules"]:
            raise CheckpointError(f"{path}: saved aux modules {state['aux_modules']} but got {sorted(aux)}")
        for name, mod in aux.items():
            prefix = f"aux.{name}."
            _load_into(unwrap(mod), {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix)},
                       True, f"{path} aux module {name!r}")
        return TrainState(int(state["step"]), list(state["rng_states"]), dict(state["meta"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: training state does not fit ({type(e).__name__}: {e})") from None


def prune_checkpoints(run_dir: str | os.PathLike, keep: int = 3) -> None:
    """Delete all but the newest ``keep`` checkpoints of a run (keep <= 0 keeps all)."""
    if keep > 0:
        for p in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(p, ignore_errors=True)


@functools.lru_cache(maxsize=1)
def git_revision() -> str | None:
    """``git rev-parse HEAD`` of the speechlm source tree, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# --- internals --------------------------------------------------------------------------------

def _state_dict(model: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if isinstance(model, nn.Module):
        return dict(unwrap(model).state_dict())
    return dict(model)


def _named(obj: Any, default_name: str) -> dict[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    return {default_name: obj}


def _dedupe(tensors: Mapping[str, torch.Tensor], clone_aliases: bool = False
            ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """CPU, contiguous tensors safetensors can store. Identical views of one storage (tied weights) are kept
    once and returned as {alias: kept}; other overlaps are copied, since safetensors refuses shared memory."""
    out: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    storages: set[int] = set()
    for name in sorted(tensors):
        t = tensors[name].detach()
        if t.numel() == 0:
            out[name] = t.cpu().contiguous().clone()
            continue
        ptr = t.untyped_storage().data_ptr()
        key = (t.device, ptr, t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        if key in seen and not clone_aliases:
            aliases[name] = seen[key]
            continue
        seen.setdefault(key, name)
        c = t.cpu().contiguous()
        if (t.device, ptr) in storages or c.untyped_storage().nbytes() != c.numel() * c.element_size():
            c = c.clone()  # shares or over-spans a storage: give it its own
        storages.add((t.device, ptr))
        out[name] = c
    return out, aliases


def _tree_out(obj: Any, flat: dict[str, torch.Tensor], key: str) -> Any:
    """JSON for a state_dict-like tree; tensors move to ``flat`` under dotted keys and leave a reference."""
    if isinstance(obj, torch.Tensor):
        flat[key] = obj.detach()
        return {"__tensor__": key}
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj):
            return {k: _tree_out(v, flat, f"{key}.{k}") for k, v in obj.items()}
        # optimizer state is keyed by int parameter ids: keep the key types
        return {"__items__": [[_tree_out(k, flat, f"{key}.k{i}"), _tree_out(v, flat, f"{key}.{i}")]
                              for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_tree_out(v, flat, f"{key}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_tree_out(v, flat, f"{key}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise CheckpointError(f"cannot store {type(obj).__name__} at {key} without pickle; keep state_dict() "
                          "values to tensors, numbers, strings, lists and dicts")


def _tree_in(obj: Any, flat: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return flat[obj["__tensor__"]]
        if "__items__" in obj:
            return {_tree_in(k, flat): _tree_in(v, flat) for k, v in obj["__items__"]}
        if "__tuple__" in obj:
            return tuple(_tree_in(v, flat) for v in obj["__tuple__"])
        return {k: _tree_in(v, flat) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_tree_in(v, flat) for v in obj]
    return obj
