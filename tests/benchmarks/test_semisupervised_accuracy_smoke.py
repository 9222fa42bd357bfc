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


def test_speedups_are_against_marginalization_of_the_same_seed():
    from semisupervised_accuracy import speedups

    rows = [
        {"estimator": "marginalize", "seed": 0, "train_seconds": 600.0},
        {"estimator": "gumbel_softmax", "seed": 0, "train_seconds": 150.0},
        {"estimator": "gumbel_softmax", "seed": 1, "train_seconds": 100.0},
    ]
    assert speedups(rows) == [1.0, 4.0, None]
