"""Training machinery shared by every recipe: configs, checkpoints, DDP, logging, seeding, the step loop.

Import what you need from the submodules (``speechlm.train.loop``, ``.checkpoint``, ``.config``,
``.distributed``, ``.metrics``, ``.seed``); the common names are re-exported here.
"""

from speechlm.train.checkpoint import (
                                       Checkpoint,
                                       TrainState,
                                       latest_checkpoint,
                                       load_checkpoint,
                                       load_train_state,
                                       load_weights,
                                       save_checkpoint,
                                       weights_sha256,
)
from speechlm.train.config import add_override_argument, config_to_dict, load_config
from speechlm.train.distributed import (
                                       DistInfo,
                                       ShardedBatchSampler,
                                       all_reduce_mean,
                                       barrier,
                                       cleanup,
                                       init_distributed,
                                       wrap_ddp,
)
from speechlm.train.loop import TrainConfig, Trainer, TrainResult
from speechlm.train.metrics import MetricLogger, read_metrics
from speechlm.train.seed import seed_everything

__all__ = [
    "Checkpoint", "DistInfo", "MetricLogger", "ShardedBatchSampler", "TrainConfig", "TrainResult",
    "TrainState", "Trainer", "add_override_argument", "all_reduce_mean", "barrier", "cleanup",
    "config_to_dict",
    "init_distributed", "latest_checkpoint", "load_checkpoint", "load_config", "load_train_state",
    "load_weights", "read_metrics", "save_checkpoint", "seed_everything", "weights_sha256", "wrap_ddp",
]
