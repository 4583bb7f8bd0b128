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
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import nn

import speechlm
from speechlm.errors import CheckpointError
from speechlm.train.config import config_to_dict
from speechlm.train.distributed import unwrap
from speechlm.train.seed import rng_state
from speechlm.utils.atomic import atomic_dir

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


def prune_checkpoints(run_dir: str | os.PathLike, keep: int = 3) -> None:
    """Delete all but the newest ``keep`` checkpoints of a run (keep <= 0 keeps all)."""
    if keep > 0:
        for p in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(p, ignore_errors=True)


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
