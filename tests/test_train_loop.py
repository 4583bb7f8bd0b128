"""speechlm.train.loop / distributed / logging: DDP under torchrun, exact resume, GAN-style steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from speechlm.errors import SpeechLMError
from speechlm.train import toy
from speechlm.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from speechlm.train.distributed import ShardedBatchSampler, init_distributed
from speechlm.train.loop import TrainConfig, Trainer
from speechlm.train.metrics import MetricLogger, read_metrics

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run_dir) if "loss" in r}


def _final_hash(run_dir: Path, rank: int = 0) -> str:
    return json.loads((run_dir / f"final_rank{rank}.json").read_text())["weights_sha256"]


def test_ddp_two_ranks_torchrun(tmp_path):
    """2 CPU ranks (gloo) under torchrun: the loss falls and both ranks end with identical weights."""
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "speechlm.train.toy", "--run-dir", str(run), "--set", "train.max_steps=20"]
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    h0, h1 = _final_hash(run, 0), _final_hash(run, 1)
    assert h0 == h1
    losses = list(_losses(run).values())
    assert len(losses) == 20
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses
    ckpt = load_checkpoint(latest_checkpoint(run))
    assert ckpt.step == 20 and ckpt.weights_sha256 == h0
    assert len(json.loads((ckpt.path / "train_state.json").read_text())["rng_states"]) == 2


def test_resume_matches_uninterrupted(tmp_path):
    """10 steps straight vs 5 steps + a fresh process resuming: identical losses at steps 6..10 and weights.

    Small data (4 batches an epoch, 2 micro-batches a step) so the checkpoint lands mid-epoch; dropout and a
    step LR schedule make RNG and scheduler state matter."""
    common = ["--set", "n_items=64", "--set", "lr_step=3", "--set", "dropout=0.2",
              "--set", "train.grad_accum=2"]
    full, part = tmp_path / "full", tmp_path / "part"
    assert toy.main(["--run-dir", str(full), *common, "--set", "train.max_steps=10"]) == 0
    assert toy.main(["--run-dir", str(part), *common, "--set", "train.max_steps=5"]) == 0
    assert latest_checkpoint(part).name == "step_00000005"
    cmd = [sys.executable, "-m", "speechlm.train.toy", "--run-dir", str(part), *common,
           "--set", "train.max_steps=10"]
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = _losses(full), _losses(part)
    assert sorted(b) == list(range(1, 11))
    assert [a[s] for s in range(6, 11)] == [b[s] for s in range(6, 11)]
    assert _final_hash(full) == _final_hash(part)
    # and without resume the next 5 steps would differ (the test can fail)
    assert a[6] != a[1]


class Gen(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.1), nn.Linear(8, 4))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, 4] -> x [B, 4]."""
        return self.net(z)


def _gan_trainer(run_dir: Path, max_steps: int, ckpt_every: int) -> Trainer:
    torch.manual_seed(0)
    gen, disc = Gen(), nn.Sequential(nn.Linear(4, 8), nn.LeakyReLU(), nn.Linear(8, 1))
    opts = {"gen": torch.optim.Adam(gen.parameters(), lr=1e-2),
            "disc": torch.optim.Adam(disc.parameters(), lr=1e-2)}

    def train_step(t: Trainer, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        g, d = t.modules["gen"], t.modules["disc"]
        fake = g(torch.randn_like(batch))
        d_loss = nn.functional.softplus(d(fake.detach())).mean() + nn.functional.softplus(-d(batch)).mean()
        d_loss.backward()
        d_norm = t.clip_and_step("disc", ["disc"])
        g_loss = nn.functional.softplus(-d(fake)).mean()
        g_loss.backward()
        t.clip_and_step("gen", ["gen"])
        return {"adv/disc": d_loss, "adv/gen": g_loss, "disc/grad_norm": d_norm}

    def eval_fn(t: Trainer) -> dict[str, float]:
        return {"eval/fake_mean": t.modules["gen"](torch.ones(2, 4)).mean()}

    cfg = TrainConfig(max_steps=max_steps, log_every=1, ckpt_every=ckpt_every, eval_every=2,
                      tensorboard=False)
    return Trainer(run_dir, cfg, model={"gen": gen, "disc": disc}, optimizer=opts, train_step=train_step,
                   eval_fn=eval_fn, export="gen", model_config={"kind": "toy-gan"},
                   dist=init_distributed("cpu"))


def test_custom_step_gan_resume(tmp_path):
    data = [torch.randn(8, 4, generator=torch.Generator().manual_seed(i)) + 2 for i in range(3)]  # a list
    full = _gan_trainer(tmp_path / "full", 6, 0).fit(data)
    part = _gan_trainer(tmp_path / "part", 6, 3)
    part.cfg = TrainConfig(**{**part.cfg.__dict__, "max_steps": 3})
    part.fit(data)
    torch.manual_seed(123)  # the resumed run must not depend on the process RNG
    resumed = _gan_trainer(tmp_path / "part", 6, 3).fit(data)
    assert resumed.step == 6 and full.metrics == resumed.metrics
    a, b = read_metrics(tmp_path / "full"), read_metrics(tmp_path / "part")
    assert [r["adv/disc"] for r in a] == [r["adv/disc"] for r in b]
    assert [r["eval/fake_mean"] for r in a if "eval/fake_mean" in r] == \
           [r["eval/fake_mean"] for r in b if "eval/fake_mean" in r]
    assert {r["step"] for r in a if "eval/fake_mean" in r} == {2, 4, 6}
    # the generator ships as model.safetensors, the discriminator rides in the training state only
    ck = load_checkpoint(latest_checkpoint(tmp_path / "part"))
    assert all(k.startswith("net.") for k in ck.state_dict) and ck.config == {"kind": "toy-gan"}
    assert [p.name for p in list_checkpoints(tmp_path / "part")] == ["step_00000003", "step_00000006"]


def test_grad_accum_equals_big_batch(tmp_path):
    """Two micro-batches of 8 with accumulation give the same update as one batch of 16 (no dropout)."""
    x, y = torch.randn(16, 3), torch.randn(16, 1)

    def run(batches, accum: int, name: str) -> nn.Module:
        torch.manual_seed(0)
        m = nn.Linear(3, 1)
        cfg = TrainConfig(max_steps=1, grad_accum=accum, log_every=1, clip_grad_norm=None, tensorboard=False)
        Trainer(tmp_path / name, cfg, model=m, optimizer=torch.optim.SGD(m.parameters(), lr=0.1),
                loss_fn=lambda mod, b: {"mse": nn.functional.mse_loss(mod(b[0]), b[1])},
                dist=init_distributed("cpu")).fit(batches)
        return m

    a = run([(x[:8], y[:8]), (x[8:], y[8:])], 2, "acc")
    b = run([(x, y)], 1, "big")
    assert torch.allclose(a.weight, b.weight, atol=1e-6) and torch.allclose(a.bias, b.bias, atol=1e-6)


def test_trainer_errors(tmp_path):
    m = nn.Linear(2, 1)
    opt = torch.optim.SGD(m.parameters(), lr=1.0)
    with pytest.raises(SpeechLMError, match="exactly one"):
        Trainer(tmp_path, TrainConfig(), model=m, optimizer=opt)
    with pytest.raises(SpeechLMError, match="grad_accum must be >= 1"):
        TrainConfig(grad_accum=0)
    cfg = TrainConfig(max_steps=3, tensorboard=False)
    t = Trainer(tmp_path / "e", cfg, model=m, optimizer=opt, dist=init_distributed("cpu"),
                loss_fn=lambda mod, b: {"mse": mod(b).sum()})
    with pytest.raises(SpeechLMError, match="no batches"):
        t.fit([])
    t = Trainer(tmp_path / "n", cfg, model=m, optimizer=opt, dist=init_distributed("cpu"),
                loss_fn=lambda mod, b: {"mse": mod(b).sum() * float("nan")})
    with pytest.raises(SpeechLMError, match="loss is nan"):
        t.fit([torch.ones(1, 2)])


@pytest.mark.slow
def test_ddp_resume_two_ranks(tmp_path):
    """2 ranks: 6 steps straight vs 3 + resume to 6 (per-rank RNG restored) give the same weights."""
    def launch(run: Path, steps: int) -> None:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "speechlm.train.toy", "--run-dir", str(run), "--set", f"train.max_steps={steps}",
               "--set", "n_items=96", "--set", "dropout=0.3"]
        r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=180, cwd=ROOT)
        assert r.returncode == 0, r.stderr[-3000:]

    launch(tmp_path / "full", 6)
    launch(tmp_path / "part", 3)
    launch(tmp_path / "part", 6)
    assert _final_hash(tmp_path / "full") == _final_hash(tmp_path / "part")
    a, b = _losses(tmp_path / "full"), _losses(tmp_path / "part")
    assert [a[s] for s in (4, 5, 6)] == [b[s] for s in (4, 5, 6)]


def test_sharded_batch_sampler():
    kw = dict(seed=3, world_size=2)
    r0, r1 = ShardedBatchSampler(21, 4, rank=0, **kw), ShardedBatchSampler(21, 4, rank=1, **kw)
    b0, b1 = list(r0), list(r1)
    assert len(b0) == len(b1) == len(r0) == 2  # 10 items a rank -> 2 full batches
    flat0, flat1 = sum(b0, []), sum(b1, [])
    assert not set(flat0) & set(flat1)
    assert list(ShardedBatchSampler(21, 4, rank=0, **kw)) == b0  # same seed, same order
    r0.set_epoch(1)
    assert list(r0) != b0
    r0.set_epoch(0)
    r0.set_start(1)
    assert list(r0) == b0[1:]
    padded = ShardedBatchSampler(5, 2, rank=1, world_size=2, drop_last=False, shuffle=False)
    assert list(padded) == [[1, 3], [0]]  # wraps around so both ranks see 3 items
    with pytest.raises(SpeechLMError):
        ShardedBatchSampler(3, 4, world_size=1)


def test_metric_logger(tmp_path):
    with MetricLogger(tmp_path / "run", tensorboard=True, total_steps=2) as log:
        log.log(1, {"mel/loss": torch.tensor(0.5), "adv/disc": 2})
        log.log(2, {"mel/loss": float("inf")})
        log.progress(2)
    lines = [json.loads(s) for s in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["step"] == 1 and lines[0]["mel/loss"] == 0.5 and lines[0]["adv/disc"] == 2.0
    assert lines[1]["mel/loss"] is None and "time" in lines[1]
    assert any((tmp_path / "run" / "tb").iterdir())
    with MetricLogger(tmp_path / "other", is_main=False) as log:
        log.log(1, {"x": 1.0})
    assert not (tmp_path / "other").exists()


def test_single_process_dist_info(monkeypatch):
    for k in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    info = init_distributed("cpu")
    assert (info.rank, info.world_size, info.is_main, info.distributed) == (0, 1, True, False)
