"""Smoke test of benchmarks/subsets/subsets.py: it runs and writes well-formed results.

No timing is asserted: only that every side was measured, that the numbers
are positive and finite, that the ratios and targets follow from the
reported times, and that the floor computes the op's values.
"""

import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from testing import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "tensorflow", reason="the benchmark uses TensorFlow")

ROOT = Path(__file__).resolve().parents[2]
SIDES = ("keras_gumbel", "tf_floor", "tf_clipped")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("subsets")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.subsets.subsets", "--smoke", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((out / "subsets.json").read_text())
    return data, (out / "subsets.md").read_text()


def _positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_structure(results):
    data, _ = results
    assert data["smoke"] is True
    assert data["command"] == "python -m benchmarks.subsets.subsets --smoke"
    assert data["threads"]["tensorflow_intra_op"] == data["settings"]["threads"] == 2
    assert data["machine"]["cores"] >= 1 and _positive(data["wall_s"])
    assert [row["mode"] for row in data["rows"]] == ["soft", "hard"]


def test_every_side_is_measured_and_ratios_follow(results):
    data, _ = results
    for row in data["rows"]:
        sides = row["sides"]
        assert set(sides) == set(SIDES)
        floor = sides["tf_floor"]["median_s"]
        for side in sides.values():
            assert side["status"] == "ok"
            assert len(side["times_s"]) == data["settings"]["reps"]
            assert all(_positive(t) for t in side["times_s"])
            assert side["median_s"] == pytest.approx(statistics.median(side["times_s"]))
            assert side["ratio"] == pytest.approx(side["median_s"] / floor)
            assert side["reference"] == "tf_floor"
            ref = sides["tf_floor"]["times_s"]
            paired = statistics.median(t / r for t, r in zip(side["times_s"], ref, strict=True))
            assert side["paired_ratio"] == pytest.approx(paired)
            fastest = np.percentile(side["times_s"], 10) / np.percentile(ref, 10)
            assert side["fastest_ratio"] == pytest.approx(fastest)


def test_targets_follow_from_the_ratios(results):
    data, _ = results
    assert len(data["targets"]) == 2
    for target, row in zip(data["targets"], data["rows"], strict=True):
        ratio = row["sides"]["keras_gumbel"]["ratio"]
        assert target["measured"] == pytest.approx(ratio, abs=5e-4)
        assert target["met"] == (ratio <= 1.10)
        assert target["paired"] == pytest.approx(
            row["sides"]["keras_gumbel"]["paired_ratio"], abs=5e-4
        )


def test_the_floor_computes_the_op(results):
    data, _ = results
    assert data["agreement_max_abs_difference"]["soft"] < 1e-5
    assert data["agreement_max_abs_difference"]["hard"] == 0.0


def test_markdown(results):
    data, text = results
    assert f"`{data['command']}`" in text
    assert "## Targets" in text and "| soft |" in text and "| hard |" in text
