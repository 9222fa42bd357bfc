"""Smoke test of the M2 accuracy benchmark: one real row, kept as a unit, and the speed-ups."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from testing import BACKEND

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="training runs use the TensorFlow backend"
)


def test_a_row_lands_as_a_unit_and_is_never_run_again(tmp_path):
    command = [
        sys.executable, str(BENCHMARKS / "semisupervised_accuracy.py"), "--data", "mnist-sample",
        "--name", "m2_smoke", "--epochs", "1", "--estimators", "gumbel_softmax",
        "--results", str(tmp_path / "results"), "--runs-dir", str(tmp_path / "runs"),
    ]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    unit = tmp_path / "results" / "m2_smoke" / "gumbel_softmax-seed0.json"
    row = json.loads(unit.read_text())
    assert row["estimator"] == "gumbel_softmax" and row["seed"] == 0
    assert 0 <= row["test_accuracy"] <= 1 and row["train_seconds"] > 0
    text = (tmp_path / "results" / "m2_smoke.md").read_text()
    assert "| gumbel_softmax |" in text and "92.4%, 109.6" in text

    # Without its run directory (a fresh machine) the committed unit still stands.
    shutil.rmtree(tmp_path / "runs")
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert not (tmp_path / "runs").exists()
    assert json.loads(unit.read_text()) == row

    # A row trained for another budget is never mixed into the table.
    other = subprocess.run(
        [*command[:7], "2", *command[8:]], capture_output=True, text=True, env=env, timeout=600
    )
    assert other.returncode != 0 and "trained for 1 epochs, not 2" in other.stderr


def test_an_unfinished_row_is_carried_to_a_fresh_machine_and_resumes(tmp_path):
    """`--save-progress` copies the newest checkpoint; a fresh clone resumes from it."""
    name, estimator = "m2_carry", "gumbel_softmax"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    # A 2-epoch row interrupted after its first epoch: a run directory with a
    # checkpoint and no metrics (the budget of a resumed run may grow).
    first_machine = tmp_path / "runs-a"
    run_dir = first_machine / name / f"{estimator}-seed0"
    train = [
        sys.executable, "-m", "keras_gumbel.cli", "train", "semi-supervised", "--data",
        "mnist-sample", "--epochs", "1", "--estimator", estimator, "--num-labels", "100",
        "--seed", "0", "--quiet", "--output", str(run_dir),
    ]  # fmt: skip
    done = subprocess.run(train, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir / "metrics.json").unlink()
    carried_history = json.loads((run_dir / "history.json").read_text())
    command = [
        sys.executable, str(BENCHMARKS / "semisupervised_accuracy.py"), "--data", "mnist-sample",
        "--name", name, "--epochs", "2", "--estimators", estimator,
        "--results", str(tmp_path / "results"),
    ]  # fmt: skip
    save = subprocess.run(
        [*command, "--runs-dir", str(first_machine), "--save-progress"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert save.returncode == 0, save.stderr[-2000:]
    progress = tmp_path / "results" / name / f"{estimator}-seed0.progress"
    assert f"epoch 1 saved in {progress}" in save.stdout
    assert (progress / "checkpoints" / "epoch-0001" / "model.weights.h5").is_file()
    assert not (tmp_path / "results" / name / f"{estimator}-seed0.json").exists()

    # The fresh machine has only what git carries.
    shutil.rmtree(first_machine)
    resumed = subprocess.run(
        [*command, "--runs-dir", str(tmp_path / "runs-b")],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from the progress carried in" in resumed.stdout
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
    again = subprocess.run(
        [*command, "--runs-dir", str(tmp_path / "runs-b"), "--save-progress"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert f"{estimator}: nothing to carry" in again.stdout and not progress.exists()


def test_speedups_are_against_marginalization_of_the_same_seed():
    from semisupervised_accuracy import speedups

    rows = [
        {"estimator": "marginalize", "seed": 0, "train_seconds": 600.0},
        {"estimator": "gumbel_softmax", "seed": 0, "train_seconds": 150.0},
        {"estimator": "gumbel_softmax", "seed": 1, "train_seconds": 100.0},
    ]
    assert speedups(rows) == [1.0, 4.0, None]
