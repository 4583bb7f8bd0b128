"""A tiny recipe that exercises the training machinery end to end (used by tests, and a template to copy).

A 2-layer MLP with dropout regresses ``y = tanh(2 x @ w)`` on seeded synthetic data, with Adam, a step LR
schedule and a ShardedBatchSampler, under the shared :class:`Trainer`. Run it alone or under torchrun::

    python -m speechlm.train.toy --run-dir runs/toy --set train.max_steps=20
    python -m torch.distributed.run --standalone --nproc_per_node=2 -m speechlm.train.toy --run-dir runs/toy

Each rank writes ``RUN_DIR/final_rank{R}.json`` holding the content hash of its final weights, so a test can
check that data-parallel ranks ended identical.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field

import torch
from torch import nn

from speechlm.train.checkpoint import weights_sha256
from speechlm.train.config import add_override_argument, load_config
from speechlm.train.distributed import ShardedBatchSampler, cleanup, init_distributed
from speechlm.train.loop import TrainConfig, Trainer
from speechlm.train.seed import seed_everything
from speechlm.utils.atomic import atomic_write_text


@dataclass(frozen=True)
class ToyConfig:
    in_dim: int = 8
    hidden: int = 32
    dropout: float = 0.1
    n_items: int = 512
    batch_size: int = 16
    lr: float = 1e-2
    lr_step: int = 10  # StepLR period (halves the LR)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_steps=20, log_every=1, ckpt_every=0,
                                                                   clip_grad_norm=1.0, tensorboard=False))


def make_data(cfg: ToyConfig) -> torch.utils.data.TensorDataset:
    """Seeded synthetic regression data, identical on every rank: x [N, D], y [N, 1]."""
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(cfg.n_items, cfg.in_dim, generator=g)
    w = torch.randn(cfg.in_dim, 1, generator=g) / cfg.in_dim**0.5
    return torch.utils.data.TensorDataset(x, torch.tanh(2 * x @ w))


def build_model(cfg: ToyConfig) -> nn.Module:
    """x [B, D] -> y [B, 1]."""
    return nn.Sequential(nn.Linear(cfg.in_dim, cfg.hidden), nn.GELU(), nn.Dropout(cfg.dropout),
                         nn.Linear(cfg.hidden, 1))


def mse_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    x, y = batch
    return {"toy/mse": nn.functional.mse_loss(model(x), y)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", required=True)
    p.add_argument("--config", default=None, help="YAML file with ToyConfig fields")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu: the toy is tiny)")
    add_override_argument(p)
    args = p.parse_args(argv)
    cfg = load_config(args.config, ToyConfig, args.set)
    torch.set_num_threads(1)
    dist = init_distributed(device=args.device)
    seed_everything(cfg.train.seed, dist.rank)
    data = make_data(cfg)
    sampler = ShardedBatchSampler(len(data), cfg.batch_size, seed=cfg.train.seed)
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_step, gamma=0.5)
    trainer = Trainer(args.run_dir, cfg.train, model=model, optimizer=opt, scheduler=sched, loss_fn=mse_loss,
                      model_config=cfg, data_summary={"synthetic": "toy", "n_items": cfg.n_items}, dist=dist)
    result = trainer.fit(loader)
    digest = weights_sha256(trainer.raw["model"].state_dict())
    atomic_write_text(trainer.run_dir / f"final_rank{dist.rank}.json",
                      json.dumps({"step": result.step, "weights_sha256": digest}) + "\n")
    cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
