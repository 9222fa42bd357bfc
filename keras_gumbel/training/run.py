"""Training and evaluating a run: the library behind `keras-gumbel train`.

`train(config, run_dir)` trains a model, checkpoints it every epoch, resumes
from the newest checkpoint with `resume=True`, and finishes with
`evaluate(run_dir)`, which writes `metrics.json` and the figures. A notebook
or a test calls these functions directly; the command line only parses
arguments.
"""

import json
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_gumbel import plots
from keras_gumbel.callbacks import TemperatureScheduler
from keras_gumbel.callbacks import temperature_layers
from keras_gumbel.models import importance_bound
from keras_gumbel.models import independent_pixels_nll
from keras_gumbel.training import builders
from keras_gumbel.training.checkpoints import WEIGHTS
from keras_gumbel.training.checkpoints import RunCheckpoint
from keras_gumbel.training.checkpoints import best_checkpoint
from keras_gumbel.training.checkpoints import latest_checkpoint
from keras_gumbel.training.checkpoints import read_state
from keras_gumbel.training.checkpoints import write_history
from keras_gumbel.training.checkpoints import write_text_atomic
from keras_gumbel.training.config import RunConfig

CONFIG = "config.json"


class RunError(Exception):
    """A run cannot start or continue; the message says why and what to do."""


def _prepare_new_run_dir(run_dir, overwrite):
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise RunError(
                f"run directory {run_dir} already exists and is not empty; pass "
                "--resume to continue it or --overwrite to replace it"
            )
        shutil.rmtree(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise RunError(
            f"cannot write to run directory {run_dir}: {error.strerror or error}"
        ) from error


def load_config(run_dir):
    """Reads the `RunConfig` that `train` saved in a run directory.

    Args:
        run_dir: str or os.PathLike. A run directory written by `train`.

    Returns:
        The run's `RunConfig`.

    Raises:
        RunError: If `run_dir` holds no run configuration file.
    """
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise RunError(f"{run_dir} is not a run directory: {CONFIG} is missing")
    return RunConfig.from_dict(json.loads(path.read_text()))


def _is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


def _build(config, data):
    """Model and optimizer, built on one batch so that weights can be restored."""
    model = builders.build_model(config, data.image_shape)
    model.compile(optimizer=builders.build_optimizer(config))
    sample = next(iter(data.validation))
    if builders.is_sbn(config):
        model.output_dim = int(sample[1].shape[-1])
    model.build(tuple((sample[0] if isinstance(sample, tuple) else sample).shape))
    model.optimizer.build(model.trainable_variables)
    return model


def _check_data_matches(run_dir, data):
    path = Path(run_dir) / "data.json"
    if not path.is_file():
        return
    expected = json.loads(path.read_text())["image_shape"]
    if tuple(expected) != tuple(data.image_shape):
        raise RunError(
            f"the data's images are {tuple(data.image_shape)} but the run's model was trained "
            f"on {tuple(expected)} images"
        )


def _load_best(model, run_dir, state):
    """Loads the best-validation weights into `model`; returns the updated state.

    The state keeps the newest checkpoint's history and adds
    `restored_epoch`, the epoch whose weights the model now holds.
    """
    found = best_checkpoint(run_dir)
    if found is None:
        raise RunError(
            f"run {run_dir} has no best-validation checkpoint (it has no validation loss, "
            "or was trained before best epochs were recorded); evaluate its last epoch "
            "with restore_best off"
        )
    directory, best = found
    model.load_weights(directory / WEIGHTS)
    return {**state, "restored_epoch": best["epoch"], "best": best}


def restore(run_dir, config=None, data=None, strategy=None, best=None):
    """Rebuilds a run's model from its config and newest checkpoint.

    Args:
        best: Whether to load the weights of the best-validation epoch
            instead of the newest; None follows the run's `restore_best`.

    Returns:
        `(model, state)`: the model with weights, optimizer state and
        temperature restored, and the checkpoint's state dict (None when
        the run has no checkpoint yet; with the best epoch, its
        `restored_epoch` says which epoch the weights are from).
    """
    config = config or load_config(run_dir)
    data = data or builders.build_data(config)
    _check_data_matches(run_dir, data)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = _build(config, data)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        return model, None
    model.load_weights(checkpoint / WEIGHTS)
    state = read_state(checkpoint)
    if config.restore_best if best is None else best:
        state = _load_best(model, run_dir, state)
    return model, state


def train(config, run_dir, *, resume=False, overwrite=False, evaluate_after=True, verbose="auto"):
    """Trains `config` into `run_dir`; with `resume=True` continues from its
    newest checkpoint (same global step, temperature and history).

    Returns:
        The metrics dict written to `metrics.json` (or the history when
        `evaluate_after` is False).
    """
    run_dir = Path(run_dir)
    if resume:
        saved = load_config(run_dir)
        # A resumed run keeps its settings; only the epoch budget may grow.
        config = saved.replace(epochs=config.epochs) if config is not None else saved
    # Multi-worker strategies must exist before other TensorFlow work.
    strategy = builders.build_strategy(config.strategy)
    # The seed fixes the initial weights too, so that a run can be repeated.
    keras.utils.set_random_seed(config.seed)
    # Every worker trains; only the chief writes the run directory.
    chief = _is_chief(strategy)
    if not resume and chief:
        _prepare_new_run_dir(run_dir, overwrite)
    data = builders.build_data(config)
    # Training continues from the newest epoch, whatever `restore_best` says.
    model, state = restore(run_dir, config, data, strategy, best=False) if resume else (None, None)
    if model is None:
        with strategy.scope():
            model = _build(config, data)
        if chief:
            write_text_atomic(run_dir / CONFIG, config.to_json())
            data_info = {"image_shape": list(data.image_shape), "description": data.description}
            write_text_atomic(run_dir / "data.json", json.dumps(data_info))
    initial_epoch = state["epoch"] if state else 0
    history = state["history"] if state else {}
    callbacks = []
    if temperature_layers(model):
        callbacks.append(TemperatureScheduler(builders.build_schedule(config)))
    checkpoint = RunCheckpoint(
        run_dir,
        history,
        state["train_seconds"] if state else 0.0,
        write=chief,
        best=state.get("best") if state else None,
    )
    callbacks.append(checkpoint)
    if chief:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs")))
    if initial_epoch < config.epochs:
        model.fit(
            data.train,
            validation_data=data.validation,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            shuffle=False,  # the tf.data pipeline shuffles, seeded
            callbacks=callbacks,
            verbose=verbose,
        )
    if config.restore_best:
        # Every worker holds the same weights after this, chief or not.
        _load_best(model, run_dir, {})
    if chief:
        write_history(run_dir, checkpoint.history)
        model.save(run_dir / "model.keras")
    if not evaluate_after or not chief:
        return checkpoint.history
    if config.strategy == "multi-worker":
        # The other workers have finished: evaluate a single-process copy of
        # the trained model, whose steps need no collective with them.
        model = None
    return evaluate(run_dir, model=model, data=data, config=config)


def evaluate(run_dir, *, num_samples=None, model=None, data=None, config=None, figures=True):
    """Evaluates a run on its test split and writes `metrics.json` and figures.

    Reports, in nats per example (lower is better), the single-sample
    negative ELBO (VAEs) or NLL (SBNs) with exact discrete samples, and the
    m-sample bound (m = `num_samples`, default the run's `eval_samples`).
    """
    run_dir = Path(run_dir)
    config = config or load_config(run_dir)
    data = data or builders.build_data(config)
    if model is None:
        model, state = restore(run_dir, config, data)
        if state is None:
            raise RunError(f"run {run_dir} has no checkpoint to evaluate yet")
    started = time.perf_counter()
    if builders.is_semi_supervised(config):
        test_metrics = _semi_supervised_test_metrics(model, data)
    else:
        test_metrics = _bound_test_metrics(model, data, num_samples or config.eval_samples)
    eval_seconds = time.perf_counter() - started
    checkpoint = latest_checkpoint(run_dir)
    state = read_state(checkpoint) if checkpoint else {}
    best = best_checkpoint(run_dir) if config.restore_best else None
    sampler = temperature_layers(model)
    metrics = {
        "model": config.model,
        "estimator": config.estimator,
        "data": data.description,
        "epochs": state.get("epoch"),
        # The epoch whose weights were evaluated: the best-validation one
        # with restore_best, else the last.
        "evaluated_epoch": best[1]["epoch"] if best else state.get("epoch"),
        "restore_best": config.restore_best,
        "steps": int(model.optimizer.iterations.numpy()),
        "temperature": float(sampler[0].temperature_variable.numpy()) if sampler else None,
        **test_metrics,
        "train_seconds": state.get("train_seconds"),
        "eval_seconds": eval_seconds,
    }
    write_text_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    if figures:
        metrics["figures"] = write_figures(run_dir, model, config, data, state.get("history", {}))
    return metrics


def _bound_test_metrics(model, data, num_samples):
    """Single-sample loss and the m-sample bound of a VAE or SBN, in nats."""
    single = model.evaluate(data.test, verbose=0, return_dict=True)
    bound = importance_bound(model, data.test, num_samples=num_samples)
    return {
        "test_single_sample_loss": float(single["loss"]),
        "test_bound_samples": num_samples,
        "test_negative_bound": float(np.mean(bound)),
        "test_negative_bound_stderr": float(np.std(bound) / np.sqrt(len(bound))),
        "test_examples": int(len(bound)),
        # What the model must beat: every predicted pixel independent.
        "test_independent_pixels_nll": float(
            np.mean(independent_pixels_nll(data.train_targets, data.test_arrays[-1]))
        ),
    }


def _semi_supervised_test_metrics(model, data):
    """Test accuracy of q(y|x) and the unlabelled bound (y marginalized)."""
    results = model.evaluate(data.test, verbose=0, return_dict=True)
    return {
        "test_accuracy": float(results["accuracy"]),
        "test_error_percent": 100.0 * (1.0 - float(results["accuracy"])),
        "test_cross_entropy": float(results["cross_entropy"]),
        "test_negative_elbo_unlabelled": float(results["unlabelled"]),
        "test_negative_elbo_labelled": float(results["labelled"]),
        "test_examples": int(len(data.test_arrays[1])),
        "test_independent_pixels_nll": float(
            np.mean(independent_pixels_nll(data.train_targets, data.test_arrays[0]))
        ),
    }


def write_figures(run_dir, model, config, data, history):
    """Training curves, reconstructions, samples and code usage as PNGs."""
    out = Path(run_dir) / "figures"
    out.mkdir(exist_ok=True)
    title = f"{config.model}, {config.estimator}"
    if builders.is_semi_supervised(config):
        # The loss of M2 adds labelled, unlabelled and classification terms;
        # its unlabelled bound compares training (sampled y) with validation
        # (y marginalized) per image.
        history = {
            **history,
            "loss": history.get("unlabelled", []),
            "val_loss": history.get("val_unlabelled", []),
        }
    paths = {"training": plots.plot_training(history, out / "training.png", title)}
    shape = data.image_shape
    n = 10
    if builders.is_semi_supervised(config):
        paths.update(_semi_supervised_figures(model, config, data, out))
        return paths
    if builders.is_sbn(config):
        upper, lower = (a[:n] for a in data.test_arrays)
        half_shape = (shape[0] - (shape[0] // 2), shape[1])
        lower_shape = (shape[0] // 2, shape[1])
        predicted = model.reconstruct(upper).numpy()
        sampled = model.sample(upper, seed=config.seed).numpy()

        def whole(bottom):
            return np.concatenate(
                [upper.reshape(n, *half_shape), bottom.reshape(n, *lower_shape)], axis=1
            )

        paths["reconstructions"] = plots.plot_image_rows(
            [whole(lower), whole(predicted), whole(sampled)],
            ["truth", "mode", "sample"],
            shape,
            out / "reconstructions.png",
            "Lower halves predicted from upper halves",
        )
        codes = model.encode(data.test_arrays[0]).numpy()
    else:
        images = data.test_arrays[0]
        paths["reconstructions"] = plots.plot_image_rows(
            [images[:n], model.reconstruct(images[:n]).numpy()],
            ["input", "decode(encode)"],
            shape,
            out / "reconstructions.png",
            "Test images and their reconstructions from discrete codes",
        )
        paths["samples"] = plots.plot_image_grid(
            model.sample(40, seed=config.seed).numpy(),
            shape,
            out / "samples.png",
            "Bernoulli means of images drawn from the prior",
        )
        codes = model.encode(images).numpy()
    paths["code_usage"] = plots.plot_code_usage(
        codes, model.latent.num_classes, out / "code_usage.png", "Code usage on the test set"
    )
    return paths


def _semi_supervised_figures(model, config, data, out):
    images, labels = data.test_arrays
    shape = data.image_shape
    k = model.num_classes
    per_class = np.repeat(np.arange(k), 10)
    samples = model.sample(per_class, seed=config.seed).numpy().reshape(k, 10, -1)
    return {
        "reconstructions": plots.plot_image_rows(
            [images[:10], model.reconstruct(images[:10]).numpy()],
            ["input", "reconstruction"],
            shape,
            out / "reconstructions.png",
            "Test images and their reconstructions (predicted class, mean z)",
        ),
        "samples": plots.plot_image_rows(
            list(samples),
            [f"y = {c}" for c in range(k)],
            shape,
            out / "samples.png",
            "Images drawn from p(x | y, z), z ~ N(0, I): one row per class",
        ),
        "confusion": plots.plot_confusion(
            labels,
            model.predict_labels(images).numpy(),
            k,
            out / "confusion.png",
            "Test confusion matrix of q(y | x)",
        ),
    }


def run_exists(run_dir):
    return (Path(run_dir) / CONFIG).is_file()


def export_run(run_dir, base_path, name=None, version=None, verify_with_cli=True):
    """Exports a run's newest checkpoint to `base_path/name/<version>`.

    `name` defaults to the run directory's name. The export is verified
    against the model on 64 test inputs before it is published (see
    `keras_gumbel.export.export_model`).
    """
    from keras_gumbel.export import export_model

    config = load_config(run_dir)
    if builders.is_semi_supervised(config):
        raise RunError(
            "export serves discrete codes of the VAEs and SBNs; a semi-supervised run "
            "has none (save its classifier with keras instead: model.keras in the run)"
        )
    data = builders.build_data(config)
    model, state = restore(run_dir, config, data)
    if state is None:
        raise RunError(f"run {run_dir} has no checkpoint to export yet")
    return export_model(
        model,
        base_path,
        name or Path(run_dir).resolve().name,
        data.test_arrays[0][:64],
        version=version,
        verify_with_cli=verify_with_cli,
    )
