"""speechlm.train.checkpoint: safetensors + JSON round trip, no pickle, resume state, errors."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import safetensors
import torch
from torch import nn

from speechlm.errors import CheckpointError
from speechlm.train.checkpoint import (
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_train_state,
    load_weights,
    prune_checkpoints,
    save_checkpoint,
    weights_sha256,
)
from speechlm.train.seed import rng_state, seed_everything, set_rng_state


class Tied(nn.Module):
    """Embedding tied to the output projection, plus a buffer: ids [B, T] -> logits [B, T, V]."""

    def __init__(self, vocab: int = 11, dim: int = 6):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.mid = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, vocab, bias=False)
        self.out.weight = self.emb.weight
        self.register_buffer("scale", torch.tensor([0.5, 2.0]))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.mid(self.emb(ids))) * self.scale[0])


def _trained(steps: int = 3) -> tuple[Tied, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    torch.manual_seed(0)
    m = Tied()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, betas=(0.8, 0.95))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(steps):
        ids = torch.randint(0, 11, (2, 5))
        nn.functional.cross_entropy(m(ids).flatten(0, 1), ids.flatten()).backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    return m, opt, sched


def test_round_trip_no_pickle(tmp_path):
    m, opt, sched = _trained()
    disc = nn.Linear(3, 1)
    ck = save_checkpoint(tmp_path / "ck", model=m, config={"vocab": 11, "dims": (6, 6)}, step=3,
                         optimizer=opt, scheduler=sched, extra={"name": "tied"}, data_summary={"hours": 0.5},
                         aux_modules={"disc": disc}, train_meta={"epoch": 1})
    files = sorted(p.name for p in ck.iterdir())
    assert files == ["config.json", "model.safetensors", "train_state.json", "train_state.safetensors"]
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("*.pkl"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left
    # readable by safetensors itself; the tied weight is stored once
    with safetensors.safe_open(str(ck / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    assert "scale" in keys and len({"emb.weight", "out.weight"} & keys) == 1
    meta = json.loads((ck / "config.json").read_text())
    assert meta["step"] == 3 and meta["config"] == {"vocab": 11, "dims": [6, 6]}
    assert meta["data_summary"] == {"hours": 0.5} and meta["extra"] == {"name": "tied"}
    assert "git_revision" in meta and meta["speechlm_version"]
    assert meta["weights_sha256"] == weights_sha256(m.state_dict())

    c = load_checkpoint(ck)
    assert c.step == 3 and c.config["vocab"] == 11 and c.weights_sha256 == meta["weights_sha256"]
    assert set(c.state_dict) == set(m.state_dict())
    m2 = Tied()
    load_weights(m2, ck)
    assert m2.out.weight is m2.emb.weight  # tying survives loading
    for k, v in m.state_dict().items():
        assert torch.equal(m2.state_dict()[k], v)

    # optimizer, scheduler and aux module restore exactly
    opt2 = torch.optim.AdamW(m2.parameters(), lr=1e-2, betas=(0.8, 0.95))
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.5)
    disc2 = nn.Linear(3, 1)
    st = load_train_state(ck, optimizer=opt2, scheduler=sched2, aux_modules={"disc": disc2})
    assert st.step == 3 and st.meta == {"epoch": 1} and len(st.rng_states) == 1
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for pid, s in a["state"].items():
        for k, v in s.items():
            assert torch.equal(v, b["state"][pid][k])
    assert sched2.state_dict() == sched.state_dict()
    assert torch.equal(disc2.weight, disc.weight)
    # the restored optimizer takes the same next step
    ids = torch.randint(0, 11, (2, 5))
    for model, o in ((m, opt), (m2, opt2)):
        nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten()).backward()
        o.step()
    assert weights_sha256(m.state_dict()) == weights_sha256(m2.state_dict())


def test_rng_state_round_trip():
    seed_everything(5)
    state = json.loads(json.dumps(rng_state()))  # survives JSON
    a = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(state)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    assert seed_everything(5, rank=1) != seed_everything(5, rank=0) == 5


def test_errors_are_one_line(tmp_path):
    m, opt, _ = _trained(1)
    ck = save_checkpoint(tmp_path / "ck", model=m, step=1)
    assert not (ck / "train_state.json").exists()
    with pytest.raises(CheckpointError, match="no training state"):
        load_train_state(ck, optimizer=opt)
    with pytest.raises(CheckpointError, match="missing config.json"):
        load_checkpoint(tmp_path / "nowhere")

    cfg = ck / "config.json"
    good = cfg.read_text()
    cfg.write_text(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="corrupt JSON") as e:
        load_checkpoint(ck)
    assert "\n" not in str(e.value)
    cfg.write_text(good)

    st = ck / "model.safetensors"
    raw = st.read_bytes()
    st.write_bytes(raw[: len(raw) - 10])
    with pytest.raises(CheckpointError, match="corrupt safetensors") as e:
        load_checkpoint(ck)
    assert "\n" not in str(e.value)

    sd = {k: v.clone() for k, v in m.state_dict().items()}
    sd["mid.bias"] += 1
    import safetensors.torch

    safetensors.torch.save_file({k: v for k, v in sd.items() if k != "out.weight"}, str(st))
    with pytest.raises(CheckpointError, match="do not match the hash"):
        load_checkpoint(ck)

    save_checkpoint(ck, model=m, step=1)  # replacing an existing checkpoint works
    with pytest.raises(CheckpointError, match="do not fit this model"):
        load_weights(nn.Linear(2, 2), ck)


def test_failed_save_leaves_nothing(tmp_path):
    m, opt, _ = _trained(1)
    with pytest.raises(CheckpointError, match="without pickle"):
        save_checkpoint(tmp_path / "ck", model=m, step=1, train_meta={"x": 1}, optimizer=opt,
                        scheduler={"bad": _Unserialisable()})
    assert list(tmp_path.iterdir()) == []


class _Unserialisable:
    def state_dict(self):
        return {"fn": object()}


def test_latest_and_prune(tmp_path):
    m = nn.Linear(2, 2)
    for step in (5, 10, 15, 20):
        save_checkpoint(checkpoint_path(tmp_path, step), model=m, step=step)
    (tmp_path / "checkpoints" / "step_00000099").mkdir()  # incomplete: no config.json
    assert latest_checkpoint(tmp_path).name == "step_00000020"
    prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000015", "step_00000020"]
    assert latest_checkpoint(tmp_path / "empty") is None


def test_atomic_writes_get_umask_modes(tmp_path) -> None:
    import os

    from speechlm.utils.atomic import atomic_dir, atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        with atomic_dir(tmp_path / "d") as d:
            (d / "f").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_files_written_privately_into_a_checkpoint_get_the_usual_mode(tmp_path):
    import os
    import stat

    from speechlm.utils.atomic import atomic_dir

    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "ckpt") as tmp:
            fd = os.open(tmp / "model.safetensors", os.O_WRONLY | os.O_CREAT, 0o600)  # as safetensors does
            os.close(fd)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "ckpt" / "model.safetensors").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "ckpt").st_mode) == 0o755
