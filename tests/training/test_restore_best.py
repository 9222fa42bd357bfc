"""Best-validation weights: tracked every epoch, used when a run asks for them."""

import json

import keras
import numpy as np
import pytest
from testing import BACKEND

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="training runs use the TensorFlow backend"
)

if BACKEND == "tensorflow":
    from keras_gumbel.training import RunConfig
    from keras_gumbel.training import evaluate
    from keras_gumbel.training import restore
    from keras_gumbel.training import train
    from keras_gumbel.training.checkpoints import WEIGHTS
    from keras_gumbel.training.checkpoints import RunCheckpoint
    from keras_gumbel.training.checkpoints import best_checkpoint
    from keras_gumbel.training.checkpoints import latest_checkpoint
    from keras_gumbel.training.checkpoints import read_state

FAST = dict(batch_size=500, eval_samples=20, anneal_rate=2e-2, anneal_interval=4, num_vars=8)


def _tiny_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def _run_epochs(callback, model, first_epoch, val_losses):
    """Fakes epochs whose weights are all equal to the epoch number."""
    for epoch, value in enumerate(val_losses, start=first_epoch):
        model.set_weights([np.full(w.shape, epoch + 1, w.dtype) for w in model.get_weights()])
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {"loss": value, "val_loss": value})


def _saved_kernel(directory):
    model = _tiny_model()
    model.load_weights(directory / WEIGHTS)
    return float(model.get_weights()[0].ravel()[0])


def test_the_best_epoch_is_kept_until_no_checkpoint_names_it(tmp_path):
    model = _tiny_model()
    callback = RunCheckpoint(tmp_path, keep=2)
    callback.set_model(model)
    _run_epochs(callback, model, 0, [3.0, 1.0, 2.0, 4.0])

    directory, best = best_checkpoint(tmp_path)
    assert best == {"epoch": 2, "val_loss": 1.0}
    assert _saved_kernel(directory) == 2.0  # epoch 2's weights, not the last
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["best-0002", "epoch-0003", "epoch-0004"]

    # A resumed run starts from the newest checkpoint's record of the best.
    state = read_state(latest_checkpoint(tmp_path))
    resumed = RunCheckpoint(tmp_path, state["history"], keep=2, best=state["best"])
    resumed.set_model(model)
    _run_epochs(resumed, model, 4, [0.5])
    # epoch-0004 (kept) still names best-0002, so both bests exist.
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["best-0002", "best-0005", "epoch-0004", "epoch-0005"]
    _run_epochs(resumed, model, 5, [0.7])
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["best-0005", "epoch-0005", "epoch-0006"]
    directory, best = best_checkpoint(tmp_path)
    assert best == {"epoch": 5, "val_loss": 0.5} and _saved_kernel(directory) == 5.0


def test_a_non_finite_validation_loss_is_never_the_best(tmp_path):
    model = _tiny_model()
    callback = RunCheckpoint(tmp_path)
    callback.set_model(model)
    _run_epochs(callback, model, 0, [float("nan"), 2.0, float("inf")])
    assert best_checkpoint(tmp_path)[1] == {"epoch": 2, "val_loss": 2.0}


def test_a_run_with_restore_best_evaluates_and_saves_the_best_epoch(tmp_path):
    run = tmp_path / "run"
    # With this large SGD step (and seed 0) the second epoch's validation
    # loss is higher than the first's.
    config = RunConfig(epochs=2, restore_best=True, optimizer="sgd", learning_rate=3.0, **FAST)
    metrics = train(config, run, verbose=0)
    history = json.loads((run / "history.json").read_text())
    best_epoch = int(np.argmin(history["val_loss"])) + 1
    assert best_epoch < 2, "the test needs a run whose last epoch is not its best"

    assert metrics["epochs"] == 2
    assert metrics["restore_best"] is True
    assert metrics["evaluated_epoch"] == best_epoch
    assert metrics["steps"] == 7 * best_epoch  # the optimizer state is the best epoch's too
    best_model, state = restore(run)
    assert state["restored_epoch"] == best_epoch
    saved = keras.saving.load_model(run / "model.keras")
    for got, want in zip(saved.get_weights(), best_model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    last_model, _ = restore(run, best=False)
    assert last_model.optimizer.iterations.numpy() == 14
    assert evaluate(run, num_samples=5, figures=False)["evaluated_epoch"] == best_epoch


def test_without_restore_best_the_last_epoch_is_evaluated(tmp_path):
    run = tmp_path / "run"
    metrics = train(RunConfig(epochs=2, **FAST), run, verbose=0, evaluate_after=True)
    assert metrics["evaluated_epoch"] == 2 and metrics["restore_best"] is False
    # The best epoch is recorded all the same, so a later evaluation can use it.
    assert best_checkpoint(run) is not None


def test_the_command_line_flag_sets_restore_best():
    from keras_gumbel.cli import _config_from_args
    from keras_gumbel.cli import build_parser

    base = ["train", "categorical-vae", "--output", "unused"]
    assert _config_from_args(build_parser().parse_args(base)).restore_best is False
    args = build_parser().parse_args([*base, "--restore-best"])
    assert _config_from_args(args).restore_best is True
