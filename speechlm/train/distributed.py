"""Data-parallel training through ``torch.distributed``, launched by ``torchrun``.

``init_distributed()`` reads the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, ...) and
starts a process group: NCCL when CUDA is present, gloo on CPU. Run without torchrun it is a no-op and every
helper here works for one process, so a recipe has a single code path::

    dist = init_distributed()
    model = wrap_ddp(model.to(dist.device), dist)
    ...
    cleanup()
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist
from torch import nn

from speechlm.errors import SpeechLMError
from speechlm.utils.checkpoint import unwrap  # noqa: F401 (the plain module inside a DDP or compile wrapper)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job. ``device`` is the one to put the model and batches on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    is_main: bool
    backend: str | None  # None when not distributed

    @property
    def distributed(self) -> bool:
        return self.backend is not None


def init_distributed(device: str | None = None, backend: str | None = None) -> DistInfo:
    """Join the torchrun job if launched by torchrun, otherwise describe the single local process.

    Args:
        device: "cpu" or "cuda" to force one; None picks CUDA when available (one GPU per local rank).
        backend: None picks "nccl" for CUDA and "gloo" for CPU.
    """
    want_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if want_cuda and not torch.cuda.is_available():
        raise SpeechLMError("device 'cuda' was asked for but no CUDA GPU is available")
    launched = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if not launched:
        dev = torch.device("cuda", torch.cuda.current_device()) if want_cuda else torch.device("cpu")
        return DistInfo(0, 1, 0, dev, True, None)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if want_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    backend = backend or ("nccl" if want_cuda else "gloo")
    if not tdist.is_initialized():
        kwargs: dict[str, Any] = {"device_id": dev} if dev.type == "cuda" else {}
        tdist.init_process_group(backend=backend, rank=rank, world_size=world, **kwargs)
    return DistInfo(rank, world, local_rank, dev, rank == 0, tdist.get_backend())


def is_distributed() -> bool:
    return tdist.is_available() and tdist.is_initialized()


def get_rank() -> int:
    return tdist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return tdist.get_world_size() if is_distributed() else 1


def wrap_ddp(model: nn.Module, info: DistInfo | None = None,
             find_unused_parameters: bool = False) -> nn.Module:
    """Wrap in DistributedDataParallel when distributed and the module has trainable parameters."""
    if not is_distributed() or not any(p.requires_grad for p in model.parameters()):
        return model
    device_ids = [info.device.index] if info is not None and info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids,
                                               find_unused_parameters=find_unused_parameters)


def barrier() -> None:
    if is_distributed():
        tdist.barrier()


def _comm_device() -> torch.device:
    if is_distributed() and tdist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """A new tensor holding the mean of ``tensor`` over ranks (a detached copy when not distributed)."""
    out = tensor.detach().clone()
    if not is_distributed():
        return out
    moved = out.to(_comm_device(), dtype=torch.float64 if not out.is_floating_point() else out.dtype)
    tdist.all_reduce(moved, op=tdist.ReduceOp.SUM)
    return (moved / tdist.get_world_size()).to(tensor.device)


def all_gather_json(obj: Any) -> list[Any]:
    """Gather one JSON-able object from every rank, in rank order (no pickle: JSON bytes in a tensor)."""
    if not is_distributed():
        return [obj]
    dev = _comm_device()
    data = json.dumps(obj).encode("utf-8")
    size = torch.tensor([len(data)], dtype=torch.int64, device=dev)
    sizes = [torch.zeros_like(size) for _ in range(tdist.get_world_size())]
    tdist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    buf = torch.zeros(longest, dtype=torch.uint8, device=dev)
    if data:
        buf[: len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(dev)
    bufs = [torch.zeros_like(buf) for _ in sizes]
    tdist.all_gather(bufs, buf)
    return [json.loads(bytes(b[: int(s.item())].cpu().tolist()).decode("utf-8")) for b, s in zip(bufs, sizes)]


def cleanup() -> None:
    """Leave the process group (call once at the end of a distributed run)."""
    if is_distributed():
        tdist.destroy_process_group()


class ShardedBatchSampler:
    """Seeded, sharded, resumable batches of dataset indices for ``DataLoader(batch_sampler=...)``.

    Every epoch draws one permutation from ``seed + epoch`` (the same on every rank, independent of the
    process RNG), then rank ``r`` takes items ``r, r + world, ...``. Every rank gets the same number of
    batches, which DDP needs (``drop_last`` drops the tail; otherwise the permutation wraps around to pad).
    ``set_start(k)`` skips the first ``k`` batches of the current epoch, so a resumed run continues the data
    order exactly.
    """

    def __init__(self, n_items: int, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = True, rank: int | None = None, world_size: int | None = None):
        if n_items <= 0 or batch_size <= 0:
            raise SpeechLMError(f"need n_items > 0 and batch_size > 0, got {n_items} and {batch_size}")
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        self.shuffle, self.drop_last = shuffle, drop_last
        self.rank = get_rank() if rank is None else rank
        self.world_size = get_world_size() if world_size is None else world_size
        self.epoch, self.start = 0, 0
        if len(self) == 0:
            raise SpeechLMError(f"{n_items} items cannot make one batch of {batch_size} on each of "
                                f"{self.world_size} ranks")

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's permutation and rewind to its first batch."""
        self.epoch, self.start = epoch, 0

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` batches of the current epoch (for resume)."""
        self.start = start

    def _per_rank(self) -> int:
        if self.drop_last:
            return self.n_items // self.world_size
        return -(-self.n_items // self.world_size)

    def __len__(self) -> int:
        n = self._per_rank()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n_items, generator=g)
        else:
            order = torch.arange(self.n_items)
        total = self._per_rank() * self.world_size
        if total > self.n_items:  # wrap around so every rank gets the same count
            order = torch.cat([order, order[: total - self.n_items]])
        mine = order[:total][self.rank:: self.world_size].tolist()
        for b in range(self.start, len(self)):
            yield mine[b * self.batch_size: (b + 1) * self.batch_size]


class EpochBatches:
    """Endless batches over epochs that remembers (epoch, position in epoch) and can start mid-epoch.

    Each epoch calls ``set_epoch`` on the DataLoader's sampler / batch_sampler when they have it. Starting
    mid-epoch uses the batch sampler's ``set_start`` when it has one (:class:`ShardedBatchSampler`), otherwise
    draws and discards the batches already seen.
    """

    def __init__(self, data: Iterable, epoch: int, position: int):
        self.data, self.epoch, self.position = data, epoch, position
        self._it = self._start()

    def _start(self) -> Iterator:
        samplers = [getattr(self.data, a, None) for a in ("sampler", "batch_sampler")]
        for s in samplers:
            if hasattr(s, "set_epoch"):
                s.set_epoch(self.epoch)
        bs = samplers[1]
        if self.position and hasattr(bs, "set_start"):
            bs.set_start(self.position)
            return iter(self.data)
        it = iter(self.data)
        for _ in range(self.position):
            next(it, None)
        return it

    def __next__(self) -> Any:
        for _ in range(2):
            try:
                batch = next(self._it)
                self.position += 1
                return batch
            except StopIteration:
                if self.position == 0:
                    break
                self.epoch, self.position = self.epoch + 1, 0
                self._it = self._start()
        raise SpeechLMError("the training data yields no batches")
