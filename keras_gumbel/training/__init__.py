"""Training runs of the paper's models: config, checkpoints, train, evaluate."""

from keras_gumbel._extras import require_extra

require_extra("keras_gumbel.training", "paper")

from keras_gumbel.training.checkpoints import RunCheckpoint
from keras_gumbel.training.checkpoints import latest_checkpoint
from keras_gumbel.training.config import ConfigError
from keras_gumbel.training.config import RunConfig
from keras_gumbel.training.run import RunError
from keras_gumbel.training.run import evaluate
from keras_gumbel.training.run import export_run
from keras_gumbel.training.run import load_config
from keras_gumbel.training.run import restore
from keras_gumbel.training.run import train

__all__ = [
    "ConfigError",
    "RunCheckpoint",
    "RunConfig",
    "RunError",
    "evaluate",
    "export_run",
    "latest_checkpoint",
    "load_config",
    "restore",
    "train",
]
