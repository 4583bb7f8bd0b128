"""Metric logging: ``metrics.jsonl`` always, TensorBoard when installed, a tqdm bar on stderr.

Keys are namespaced by the recipe (``mel/loss``, ``adv/disc``, ``eval/wer``); the trainer adds ``loss``,
``train/grad_norm`` and ``train/lr``. Only the main rank writes anything; on other ranks every method is a
no-op, so recipes call it unconditionally.

``metrics.jsonl`` is an append-only log (one JSON object a line: ``step``, ``time`` (unix seconds),
``elapsed`` (seconds since the logger started), then the metrics); a resumed run appends to it, so steps after
the last checkpoint can appear twice, the later line being the one that counts. Non-finite values are written
as ``null`` so the file stays strict JSON.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm


class MetricLogger:
    """Write metrics of a run under ``run_dir``.

    Args:
        run_dir: the run folder; ``metrics.jsonl`` and ``tb/`` (TensorBoard) go there.
        is_main: False on ranks other than 0 (then nothing is written or shown).
        tensorboard: True to require TensorBoard, False to skip it, None to use it when importable.
        total_steps: length of the progress bar (None: no bar).
        initial_step: where the bar starts (a resumed run).
    """

    def __init__(self, run_dir: str | os.PathLike, *, is_main: bool = True, tensorboard: bool | None = None,
                 total_steps: int | None = None, initial_step: int = 0):
        self.run_dir, self.is_main = Path(run_dir), is_main
        self._start = time.time()
        self._file = None
        self._tb = None
        self._bar = None
        if not is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115 (kept open)
        if tensorboard is not False:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                if tensorboard:
                    from speechlm.errors import MissingDependencyError

                    raise MissingDependencyError("TensorBoard logging needs tensorboard") from None
            else:
                self._tb = SummaryWriter(log_dir=str(self.run_dir / "tb"))
        if total_steps is not None:
            self._bar = tqdm(total=total_steps, initial=initial_step, file=sys.stderr, dynamic_ncols=True,
                             desc="train", unit="step")

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Record ``metrics`` (floats, ints, 0-d tensors) at ``step``."""
        if not self.is_main:
            return
        values = {k: _to_float(v) for k, v in metrics.items()}
        now = time.time()
        record = {"step": int(step), "time": round(now, 3), "elapsed": round(now - self._start, 3)}
        record.update({k: (v if math.isfinite(v) else None) for k, v in values.items()})
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(k, v, global_step=step)
        if self._bar is not None:
            shown = {k: f"{v:.4g}" for k, v in values.items() if k == "loss" or k.endswith("/loss")}
            if shown:
                self._bar.set_postfix(shown, refresh=False)

    def progress(self, step: int) -> None:
        """Move the progress bar to ``step``."""
        if self._bar is not None and step > self._bar.n:
            self._bar.update(step - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _to_float(v: Any) -> float:
    if hasattr(v, "item"):
        v = v.item()
    return float(v)


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of ``run_dir/metrics.jsonl`` with later lines replacing earlier ones of the same step."""
    by_step: dict[int, dict[str, Any]] = {}
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            # eval and train records of one step merge; a re-run step (after resume) overwrites its keys
            by_step.setdefault(rec["step"], {}).update(rec)
    return [by_step[s] for s in sorted(by_step)]
