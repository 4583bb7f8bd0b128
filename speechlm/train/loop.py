"""The step machinery every recipe shares: loop, accumulation, clipping, logging, checkpoints, resume, DDP.

A recipe builds its modules, optimizers and data, then hands them to :class:`Trainer`. Two ways to write a
step:

* ``loss_fn(model, batch) -> {"mel/loss": t, ...}``: the trainer weights and sums the losses
  (``loss_weights``, default 1 each; weight 0 logs a term without training on it), does gradient
  accumulation, clipping, the optimizer and scheduler steps.
* ``train_step(trainer, batch) -> {"adv/disc": x, ...}``: the recipe does its own backward and optimizer steps
  (a GAN's two optimizers), using ``trainer.modules``, ``trainer.autocast()``, ``trainer.clip_and_step(...)``.
  Every module's gradients are zeroed before each step, so none leak across steps or checkpoints.

Either way the trainer owns the loop, device placement, DDP wrapping, logging (means over the logging window,
averaged over ranks), eval every ``eval_every`` steps, checkpoints every ``ckpt_every`` steps and at the end,
and resume from the newest checkpoint in ``run_dir`` (weights, optimizers, schedulers, RNG of every rank, data
position), so a resumed run continues exactly as the uninterrupted one would have.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from speechlm.errors import SpeechLMError
from speechlm.train.checkpoint import (
    checkpoint_path,
    latest_checkpoint,
    load_train_state,
    load_weights,
    prune_checkpoints,
    save_checkpoint,
)
from speechlm.train.config import config_to_dict
from speechlm.train.distributed import (
    DistInfo,
    EpochBatches,
    all_gather_json,
    all_reduce_mean,
    barrier,
    init_distributed,
    wrap_ddp,
)
from speechlm.train.metrics import MetricLogger
from speechlm.train.seed import rng_state, set_rng_state


@dataclass(frozen=True)
class TrainConfig:
    """Loop settings shared by all recipes (a recipe config nests it as ``train:``)."""

    max_steps: int = 1000
    grad_accum: int = 1  # micro-batches per optimizer step (loss_fn mode)
    clip_grad_norm: float | None = 1.0  # None: no clipping (the norm is still logged)
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16 autocast on CUDA only; CPU always runs fp32
    log_every: int = 10
    eval_every: int = 0  # 0: never
    ckpt_every: int = 1000  # 0: only at the end
    keep: int = 3  # checkpoints kept in run_dir/checkpoints
    seed: int = 0  # the recipe calls seed_everything(cfg.seed, dist.rank) before building its model
    resume: bool = True  # continue from the newest checkpoint in run_dir
    tensorboard: bool | None = None  # None: when installed

    def __post_init__(self) -> None:
        for name in ("max_steps", "grad_accum", "log_every"):
            if getattr(self, name) < 1:
                raise SpeechLMError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("eval_every", "ckpt_every", "keep"):
            if getattr(self, name) < 0:
                raise SpeechLMError(f"train.{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class TrainResult:
    step: int
    metrics: dict[str, float]  # the last logged training metrics
    checkpoint: Path | None


class Trainer:
    """Runs training for a recipe (see the module docstring). ``model`` is one module or a name->module dict
    (``export`` names the one saved as ``model.safetensors``; the others are saved for resume only)."""

    def __init__(self, run_dir: str | os.PathLike, cfg: TrainConfig, *,
                 model: nn.Module | Mapping[str, nn.Module],
                 optimizer: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer],
                 scheduler: Any = None,
                 loss_fn: Callable[[Any, Any], Mapping[str, torch.Tensor]] | None = None,
                 loss_weights: Mapping[str, float] | None = None,
                 train_step: Callable[[Trainer, Any], Mapping[str, Any]] | None = None,
                 eval_fn: Callable[[Trainer], Mapping[str, float]] | None = None, export: str | None = None,
                 model_config: Any = None, data_summary: Mapping[str, Any] | None = None,
                 dist: DistInfo | None = None):
        if (loss_fn is None) == (train_step is None):
            raise SpeechLMError("give the Trainer exactly one of loss_fn and train_step")
        self.run_dir, self.cfg = Path(run_dir), cfg
        self.dist = dist or init_distributed()
        self.single = isinstance(model, nn.Module)
        mods = {"model": model} if self.single else dict(model)
        self.export = export or next(iter(mods))
        self.raw = {n: m.to(self.dist.device) for n, m in mods.items()}  # in place: optimizers keep params
        self.modules = {n: wrap_ddp(m, self.dist) for n, m in self.raw.items()}
        self.model = self.modules[self.export]
        single_opt = isinstance(optimizer, torch.optim.Optimizer)
        self.optimizers = {"optimizer": optimizer} if single_opt else dict(optimizer)
        self.schedulers = ({} if scheduler is None else dict(scheduler) if isinstance(scheduler, Mapping)
                           else {next(iter(self.optimizers)): scheduler})  # paired with optimizers by name
        self.loss_fn, self.loss_weights = loss_fn, dict(loss_weights or {})
        self.train_step, self.eval_fn = train_step, eval_fn
        self.model_config, self.data_summary = model_config, data_summary
        self.step = 0
        self._batches: EpochBatches | None = None
        self.logger: MetricLogger | None = None

    # --- helpers for recipes ----------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        if self.cfg.precision == "bf16" and self.dist.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def no_sync(self, *names: str) -> contextlib.ExitStack:
        """Skip DDP's gradient all-reduce in the named modules (all if none) for a non-final micro-batch."""
        stack = contextlib.ExitStack()
        for n in names or tuple(self.modules):
            if hasattr(self.modules[n], "no_sync"):
                stack.enter_context(self.modules[n].no_sync())
        return stack

    def clip_and_step(self, optimizer: str | None = None, modules: Iterable[str] | None = None) -> float:
        """Clip the gradients of ``modules`` (default all), step ``optimizer`` (default all) and its
        scheduler, zero the gradients; return the gradient norm before clipping."""
        params = [p for n in (modules or self.raw) for p in self.raw[n].parameters() if p.grad is not None]
        limit = self.cfg.clip_grad_norm if self.cfg.clip_grad_norm is not None else math.inf
        norm = float(torch.nn.utils.clip_grad_norm_(params, limit)) if params else 0.0
        for n in [optimizer] if optimizer else list(self.optimizers):
            self.optimizers[n].step()
            self.optimizers[n].zero_grad(set_to_none=True)
            if n in self.schedulers:
                self.schedulers[n].step()
        return norm

    def to_device(self, batch: Any) -> Any:
        if isinstance(batch, torch.Tensor) or hasattr(batch, "to") and not isinstance(batch, type):
            return batch.to(self.dist.device, non_blocking=True)
        if isinstance(batch, Mapping):
            return {k: self.to_device(v) for k, v in batch.items()}
        if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
            return type(batch)(*(self.to_device(v) for v in batch))
        if isinstance(batch, list | tuple):
            return type(batch)(self.to_device(v) for v in batch)
        return batch

    # --- the loop --------------------------------------------------------------------------------
    def fit(self, data: Iterable) -> TrainResult:
        """Train until ``cfg.max_steps`` on ``data`` (a DataLoader or any re-iterable of batches)."""
        resumed = self._resume()
        start = (resumed.meta["epoch"], resumed.meta["position"]) if resumed else (0, 0)
        self._batches = batches = EpochBatches(data, *start)
        if resumed:  # after the data iterator exists: creating one draws from the torch RNG
            states = resumed.rng_states
            if len(states) == self.dist.world_size:
                set_rng_state(states[self.dist.rank])
            elif self.dist.is_main:
                print(f"resuming with {self.dist.world_size} ranks from a run with {len(states)}: RNG "
                      "streams and data position differ from an uninterrupted run", flush=True)
        self.logger = MetricLogger(self.run_dir, is_main=self.dist.is_main, tensorboard=self.cfg.tensorboard,
                                   total_steps=self.cfg.max_steps, initial_step=self.step)
        window: dict[str, float] = {}
        count, last, saved = 0, {}, None
        try:
            for m in self.modules.values():
                m.train()
            while self.step < self.cfg.max_steps:
                for m in self.raw.values():  # no stale gradients (e.g. a GAN's D after G's backward)
                    m.zero_grad(set_to_none=True)
                metrics = self._loss_step(batches) if self.loss_fn else self._custom_step(batches)
                self.step += 1
                count += 1
                for k, v in metrics.items():
                    window[k] = window.get(k, 0.0) + float(v)
                saved = None
                if self.step % self.cfg.log_every == 0 or self.step == self.cfg.max_steps:
                    last = self._reduce({k: v / count for k, v in window.items()})
                    many = len(self.optimizers) > 1
                    last.update({f"train/lr/{n}" if many else "train/lr": o.param_groups[0]["lr"]
                                 for n, o in self.optimizers.items()})
                    self.logger.log(self.step, last)
                    window, count = {}, 0
                if self.eval_fn and self.cfg.eval_every and self.step % self.cfg.eval_every == 0:
                    self.evaluate()
                every = self.cfg.ckpt_every
                if (every and self.step % every == 0) or self.step == self.cfg.max_steps:
                    saved = self.save()
                self.logger.progress(self.step)
        finally:
            self.logger.close()
        return TrainResult(self.step, last, saved or latest_checkpoint(self.run_dir))

    def evaluate(self) -> dict[str, float]:
        """Run ``eval_fn`` on every rank (eval mode, no gradients); log its metrics averaged over ranks
        (every rank must return the same keys, e.g. ``eval/loss`` over its shard of the eval data)."""
        for m in self.modules.values():
            m.eval()
        with torch.no_grad():
            out = self._reduce({k: float(v) for k, v in self.eval_fn(self).items()})
        for m in self.modules.values():
            m.train()
        if self.logger is not None:
            self.logger.log(self.step, out)
        return out

    def _loss_step(self, batches: EpochBatches) -> dict[str, float]:
        acc = self.cfg.grad_accum
        sums: dict[str, float] = {}
        for micro in range(acc):
            batch = self.to_device(next(batches))
            with self.no_sync() if micro < acc - 1 else contextlib.nullcontext(), self.autocast():
                losses = self.loss_fn(self.model if self.single else self.modules, batch)
                unknown = set(self.loss_weights) - set(losses)
                if unknown:
                    raise SpeechLMError(f"loss_weights name losses the step lacks: {sorted(unknown)}")
                total = sum(self.loss_weights.get(k, 1.0) * v for k, v in losses.items())
            if not torch.isfinite(total):
                raise SpeechLMError(f"step {self.step + 1}: loss is {float(total.detach())}; lower the "
                                    "learning rate or check the data")
            (total / acc).backward()
            for k, v in {**losses, "loss": total}.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) / acc
        sums["train/grad_norm"] = self.clip_and_step()
        return sums

    def _custom_step(self, batches: EpochBatches) -> dict[str, float]:
        out = self.train_step(self, self.to_device(next(batches)))
        return {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in out.items()}

    def _reduce(self, metrics: dict[str, float]) -> dict[str, float]:
        """Average over ranks (every rank must report the same keys)."""
        if not self.dist.distributed or not metrics:
            return metrics
        keys = sorted(metrics)
        vals = all_reduce_mean(torch.tensor([metrics[k] for k in keys], dtype=torch.float64))
        return dict(zip(keys, vals.tolist()))

    def save(self) -> Path:
        """Checkpoint now, during :meth:`fit` (every rank must call it: RNG states are gathered from all)."""
        batches = self._batches
        rngs = all_gather_json(rng_state())
        path = checkpoint_path(self.run_dir, self.step)
        if self.dist.is_main:
            save_checkpoint(path, model=self.raw[self.export], config=self.model_config, step=self.step,
                            optimizer=self.optimizers, scheduler=self.schedulers,
                            aux_modules={n: m for n, m in self.raw.items() if n != self.export},
                            data_summary=self.data_summary, rng_states=rngs,
                            train_meta={"epoch": batches.epoch, "position": batches.position,
                                        "world_size": self.dist.world_size,
                                        "train": config_to_dict(self.cfg)})
            prune_checkpoints(self.run_dir, self.cfg.keep)
        barrier()
        return path

    def _resume(self) -> Any:
        path = latest_checkpoint(self.run_dir) if self.cfg.resume else None
        if path is None:
            return None
        ckpt = load_weights(self.raw[self.export], path)
        state = load_train_state(path, optimizer=self.optimizers, scheduler=self.schedulers,
                                 aux_modules={n: m for n, m in self.raw.items() if n != self.export})
        self.step = ckpt.step
        return state

