"""Smoke test of benchmarks/subsets/concrete_autoencoder.py on a tiny configuration.

Only the structure of the results is asserted: three trained models with
finite test errors, paired differences that follow from them, selections of
the right size, the figure and the markdown.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from testing import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "tensorflow", reason="the benchmark uses TensorFlow")

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("concrete", "top_variance", "random")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("cae")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.subsets.concrete_autoencoder",
            "--smoke",
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((out / "concrete_autoencoder.json").read_text())
    return data, out


def test_structure_and_command(results):
    data, out = results
    assert data["smoke"] is True
    assert data["command"] == "python -m benchmarks.subsets.concrete_autoencoder --smoke"
    config = data["config"]
    assert data["data"]["train_images"] == config["train_images"]
    assert data["data"]["test_images"] == config["test_images"]
    assert data["steps"] == config["epochs"] * math.ceil(
        config["train_images"] / config["batch_size"]
    )
    assert data["final_temperature"] == pytest.approx(config["final_temperature"])
    text = (out / "concrete_autoencoder.md").read_text()
    assert f"`{data['command']}`" in text and "| top_variance - concrete |" in text


def test_errors_and_paired_differences(results):
    data, _ = results
    mse = data["test_mse"]
    assert set(mse) == set(MODELS)
    assert all(math.isfinite(v) and v > 0 for v in mse.values())
    for key, diff in data["paired_differences"].items():
        a, b = key.split("_minus_")
        assert diff["mean"] == pytest.approx(mse[a] - mse[b], rel=1e-4, abs=1e-7)
        assert diff["se"] > 0 and diff["z"] == pytest.approx(diff["mean"] / diff["se"])
    for name in MODELS:
        training = data["training"][name]
        assert len(training["train_loss"]) == data["config"]["epochs"]
        assert training["cpu_s"] > 0 and training["wall_s"] > 0


def test_selections_and_figure(results):
    data, out = results
    k = data["config"]["num_selected"]
    selection = data["selection"]
    for name in MODELS:
        assert len(selection[name]) == k
        assert all(0 <= i < 784 for i in selection[name])
    assert len(set(selection["top_variance"])) == len(set(selection["random"])) == k
    assert 1 <= selection["distinct"] <= k
    assert 0 < selection["mean_max_probability"] <= 1
    assert (out / "concrete_autoencoder.png").read_bytes()[:4] == b"\x89PNG"
