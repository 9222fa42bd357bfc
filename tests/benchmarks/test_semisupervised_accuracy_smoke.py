"""Smoke test of the M2 accuracy benchmark: one real row, kept as a unit, and the speed-ups.

The benchmark's `main(argv)` runs in this process; only the training it
starts (`train_once`, a `keras-gumbel train` subprocess) runs apart, as it
does for a user.
"""

import json
import shutil

import pytest
from testing import BACKEND
from testing import write_idx_dir

from benchmarks.paper.semisupervised_accuracy import main
from benchmarks.paper.semisupervised_accuracy import speedups

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="training runs use the TensorFlow backend"
)


def test_a_row_lands_as_a_unit_and_is_never_run_again(tmp_path, capsys):
    # Small random digits: what is tested is the unit's life, not the accuracy.
    data = str(write_idx_dir(tmp_path / "idx", n_train=200, n_test=50, height=8, width=8))
    argv = [
        "--data", data, "--name", "m2_smoke", "--epochs", "1",
        "--estimators", "gumbel_softmax",
        "--results", str(tmp_path / "results"), "--runs-dir", str(tmp_path / "runs"),
    ]  # fmt: skip
    main(argv)
    unit = tmp_path / "results" / "m2_smoke" / "gumbel_softmax-seed0.json"
    row = json.loads(unit.read_text())
    assert row["estimator"] == "gumbel_softmax" and row["seed"] == 0
    assert 0 <= row["test_accuracy"] <= 1 and row["train_seconds"] > 0
    text = (tmp_path / "results" / "m2_smoke.md").read_text()
    assert "| gumbel_softmax |" in text and "92.4%, 109.6" in text
    # Where results go is not part of the command they record, and the data
    # is named by its placeholder, not this machine's path.
    assert "Made by `python -m benchmarks.paper.semisupervised_accuracy --data MNIST_DIR" in text
    assert str(tmp_path) not in text

    # Without its run directory (a fresh machine) the committed unit still stands.
    shutil.rmtree(tmp_path / "runs")
    main(argv)
    assert not (tmp_path / "runs").exists()
    assert json.loads(unit.read_text()) == row

    # A row trained for another budget is never mixed into the table.
    with pytest.raises(SystemExit, match="trained for 1 epochs, not 2"):
        main([*argv[:5], "2", *argv[6:]])


def test_an_unfinished_row_is_carried_to_a_fresh_machine_and_resumes(tmp_path, capsys):
    """`--save-progress` copies the newest checkpoint; a fresh clone resumes from it."""
    from keras_gumbel.cli import main as cli

    name, estimator = "m2_carry", "gumbel_softmax"
    # Small random digits: what is tested is the carrying, not the accuracy.
    data = str(write_idx_dir(tmp_path / "idx", n_train=200, n_test=50, height=8, width=8))
    # A 2-epoch row interrupted after its first epoch: a run directory with a
    # checkpoint and no metrics (the budget of a resumed run may grow).
    first_machine = tmp_path / "runs-a"
    run_dir = first_machine / name / f"{estimator}-seed0"
    cli([
        "train", "semi-supervised", "--data", data, "--epochs", "1",
        "--estimator", estimator, "--num-labels", "100", "--seed", "0", "--quiet",
        "--output", str(run_dir),
    ])  # fmt: skip
    (run_dir / "metrics.json").unlink()
    carried_history = json.loads((run_dir / "history.json").read_text())
    argv = [
        "--data", data, "--name", name, "--epochs", "2", "--estimators", estimator,
        "--results", str(tmp_path / "results"),
    ]  # fmt: skip
    capsys.readouterr()
    main([*argv, "--runs-dir", str(first_machine), "--save-progress"])
    progress = tmp_path / "results" / name / f"{estimator}-seed0.progress"
    assert f"epoch 1 saved in {progress}" in capsys.readouterr().out
    assert (progress / "checkpoints" / "epoch-0001" / "model.weights.h5").is_file()
    assert not (tmp_path / "results" / name / f"{estimator}-seed0.json").exists()

    # The fresh machine has only what git carries.
    shutil.rmtree(first_machine)
    main([*argv, "--runs-dir", str(tmp_path / "runs-b")])
    assert "resuming from the progress carried in" in capsys.readouterr().out
    history = json.loads(
        (tmp_path / "runs-b" / name / f"{estimator}-seed0" / "history.json").read_text()
    )
    # Epoch 1 is the carried one, not trained again; epoch 2 was trained after it.
    assert all(values[:1] == carried_history[key] for key, values in history.items())
    assert all(len(values) == 2 for values in history.values())
    row = json.loads((tmp_path / "results" / name / f"{estimator}-seed0.json").read_text())
    assert row["epochs"] == 2 and row["evaluated_epoch"] == 2
    # The copy goes once the row lands, and a finished run has nothing to carry.
    assert not progress.exists()
    main([*argv, "--runs-dir", str(tmp_path / "runs-b"), "--save-progress"])
    assert f"{estimator}: nothing to carry" in capsys.readouterr().out
    assert not progress.exists()


def test_speedups_are_against_marginalization_of_the_same_seed():
    rows = [
        {"estimator": "marginalize", "seed": 0, "train_seconds": 600.0},
        {"estimator": "gumbel_softmax", "seed": 1, "train_seconds": 100.0},
        {"estimator": "gumbel_softmax", "seed": 0, "train_seconds": 150.0},
    ]
    assert speedups(rows) == [1.0, None, 4.0]
