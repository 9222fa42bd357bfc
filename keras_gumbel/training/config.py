"""The settings of a training run, validated and stored as JSON."""

import dataclasses
import json
import math

from keras_gumbel import estimators

MODELS = ("categorical-vae", "bernoulli-vae", "sbn-bernoulli", "sbn-categorical", "semi-supervised")
# How the semi-supervised model takes the expectation over the class.
Y_ESTIMATORS = ("marginalize", "gumbel_softmax", "st_gumbel_softmax")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("exponential", "constant", "geometric", "linear", "cosine")
STRATEGIES = ("one", "mirrored", "multi-worker")
BINARIZATIONS = ("static", "dynamic", "threshold")


class ConfigError(ValueError):
    """A run setting is invalid; the message names the setting and the value."""


@dataclasses.dataclass
class RunConfig:
    """Everything needed to rebuild a run: model, data, optimization, annealing.

    Attributes:
        model: One of `MODELS`.
        data: A `keras_gumbel.datasets.load` source: "mnist-sample",
            "mnist", "fashion_mnist" or a directory of IDX files.
        binarization: "static", "dynamic" or "threshold".
        epochs: Total number of epochs (a resumed run trains up to this).
        batch_size: Examples per step.
        optimizer: "adam" or "sgd" (with momentum 0.9, as in the paper).
        learning_rate: Initial learning rate.
        lr_decay: Factor applied to the learning rate every `lr_decay_steps`
            steps (staircase); 1 keeps it constant.
        lr_decay_steps: Steps between learning-rate decays.
        estimator: Gradient estimator name (`keras_gumbel.estimators`); for
            the semi-supervised model, one of `Y_ESTIMATORS`.
        estimator_options: None, or the estimator's constructor arguments
            (for example `{"normalize": False}` for `score_function`, `darn`
            or `muprop`); not for the semi-supervised model.
        schedule: Temperature schedule name (`keras_gumbel.schedules.get`).
        tau0: Initial temperature.
        tau_min: Floor of the temperature (exponential and geometric) or its
            final value (linear and cosine).
        anneal_rate: `r` of `exp(-r t)` (exponential) or the per-step decay
            of the geometric schedule.
        anneal_interval: Steps between recomputations (exponential).
        anneal_steps: Length of a linear or cosine schedule in steps.
        num_vars: Latent variables (or units) per layer; None for the
            model's default (20 categorical, 200 Bernoulli, 64 Gaussian
            dimensions for the semi-supervised model).
        num_classes: Classes per categorical variable (semi-supervised: the
            dataset's classes).
        prior: "uniform" or "learned" (VAEs).
        eval_samples: m of the multi-sample bound.
        num_labels: Labelled training examples of the semi-supervised
            model, balanced over the classes.
        alpha: Weight of the labelled cross-entropy (semi-supervised).
        strategy: "one", "mirrored" or "multi-worker" (`TF_CONFIG`).
        restore_best: Whether the run's final model, metrics and export use
            the weights of the epoch with the lowest validation loss (the
            convention of Keras's `EarlyStopping(restore_best_weights=True)`)
            instead of the last epoch's. Training itself always continues
            from the last epoch.
        seed: Seed of the initial weights, data order, binarization and sampling.
        data_seed: Seed of the static binarization (and of the fixed
            validation and test bits of a dynamic run) when it must stay the
            same across runs of different `seed`s; None: `seed`.
    """

    model: str = "categorical-vae"
    data: str = "mnist-sample"
    binarization: str = "static"
    epochs: int = 10
    batch_size: int = 100
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    lr_decay: float = 1.0
    lr_decay_steps: int = 1000
    estimator: str = "gumbel_softmax"
    estimator_options: dict | None = None
    schedule: str = "exponential"
    tau0: float = 1.0
    tau_min: float = 0.5
    anneal_rate: float = 3e-5
    anneal_interval: int = 1000
    anneal_steps: int = 10000
    num_vars: int | None = None
    num_classes: int = 10
    prior: str = "uniform"
    eval_samples: int = 1000
    num_labels: int = 100
    alpha: float = 1.0
    strategy: str = "one"
    restore_best: bool = False
    seed: int = 0
    data_seed: int | None = None

    def __post_init__(self):
        self.validate()

    def validate(self):
        _choice("model", self.model, MODELS)
        _choice("binarization", self.binarization, BINARIZATIONS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("strategy", self.strategy, STRATEGIES)
        _choice("prior", self.prior, ("uniform", "learned"))
        if self.model == "semi-supervised":
            _choice("estimator", self.estimator, Y_ESTIMATORS)
        else:
            _choice("estimator", self.estimator, tuple(sorted(estimators.ESTIMATORS)))
        self._validate_estimator_options()
        for name in (
            "epochs",
            "batch_size",
            "lr_decay_steps",
            "anneal_interval",
            "anneal_steps",
            "eval_samples",
            "num_labels",
        ):
            _positive_int(name, getattr(self, name))
        _positive_int("num_classes", self.num_classes, minimum=2)
        if self.num_vars is not None:
            _positive_int("num_vars", self.num_vars)
        if not isinstance(self.restore_best, bool):
            raise ConfigError(f"`restore_best` must be true or false, got {self.restore_best!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"`seed` must be an integer, got {self.seed!r}")
        if self.data_seed is not None and (
            isinstance(self.data_seed, bool)
            or not isinstance(self.data_seed, int)
            or self.data_seed < 0
        ):
            raise ConfigError(
                f"`data_seed` must be None or an integer >= 0, got {self.data_seed!r}"
            )
        for name in ("learning_rate", "tau0", "tau_min", "alpha"):
            _positive_float(name, getattr(self, name))
        _positive_float("lr_decay", self.lr_decay)
        if self.lr_decay > 1:
            raise ConfigError(f"`lr_decay` must be in (0, 1], got {self.lr_decay!r}")
        if self.schedule == "geometric":
            if not 0 < self.anneal_rate <= 1:
                raise ConfigError(
                    "`anneal_rate` is the per-step decay factor of the geometric "
                    f"schedule and must be in (0, 1], got {self.anneal_rate!r}"
                )
        elif not (
            _is_number(self.anneal_rate)
            and math.isfinite(self.anneal_rate)
            and self.anneal_rate >= 0
        ):
            raise ConfigError(
                f"`anneal_rate` must be a finite number >= 0, got {self.anneal_rate!r}"
            )

    def _validate_estimator_options(self):
        options = self.estimator_options
        if options is None:
            return
        if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
            raise ConfigError(
                f"`estimator_options` must be None or a dict of argument names, got {options!r}"
            )
        if self.model == "semi-supervised":
            raise ConfigError("`estimator_options` does not apply to the semi-supervised model")
        try:
            estimators.get(estimator_identifier(self))
        except (TypeError, ValueError) as error:
            raise ConfigError(f"`estimator_options` of {self.estimator}: {error}") from None

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown run settings: {unknown}")
        return cls(**values)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def estimator_identifier(config):
    """What the model's `estimator` argument gets: the name, or a config dict with options."""
    if not config.estimator_options:
        return config.estimator
    return {"class_name": config.estimator, "config": dict(config.estimator_options)}


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _choice(name, value, choices):
    if value not in choices:
        raise ConfigError(f"`{name}` must be one of {', '.join(choices)}; got {value!r}")


def _positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"`{name}` must be an integer >= {minimum}, got {value!r}")


def _positive_float(name, value):
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"`{name}` must be a finite number > 0, got {value!r}")
