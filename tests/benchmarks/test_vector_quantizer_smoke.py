"""Smoke test of benchmarks/quantizer/vector_quantizer.py: it runs and writes well-formed results.

No timing is asserted: only that both sides were measured, that the numbers
are positive and finite, that the ratio and the target follow from the
reported medians, and that the two sides computed the same diversity loss.
"""

import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _reject_constant(name):
    raise ValueError(f"non-finite number {name} in the JSON")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("vector_quantizer")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.quantizer.vector_quantizer",
            "--smoke",
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = (out / "vector_quantizer.json").read_text()
    return json.loads(text, parse_constant=_reject_constant), (
        out / "vector_quantizer.md"
    ).read_text()


def _positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_structure(results):
    data, _ = results
    assert data["smoke"] is True
    assert data["command"] == "python -m benchmarks.quantizer.vector_quantizer --smoke"
    for key in ("settings", "sides", "ratio", "target", "machine", "threads", "load_average"):
        assert key in data
    assert data["threads"]["tensorflow_intra_op"] == 2
    assert data["machine"]["cores"] >= 1 and data["memory_method"]
    assert _positive(data["wall_s"])
    assert set(data["sides"]) == {"keras_gumbel", "tf_floor"}


def test_sides_and_ratio(results):
    data, _ = results
    reps = data["settings"]["reps"]
    for side in data["sides"].values():
        assert side["status"] == "ok" and side["reference"] == "tf_floor"
        assert len(side["times_s"]) == reps and all(_positive(t) for t in side["times_s"])
        assert side["median_s"] == pytest.approx(statistics.median(side["times_s"]))
        assert _positive(side["peak_rss_mib"]) and side["peak_over_start_mib"] >= 0
        assert len(side["cpu_times_s"]) == reps and all(_positive(t) for t in side["cpu_times_s"])
        assert side["cpu_median_s"] == pytest.approx(statistics.median(side["cpu_times_s"]))
    layer, floor = data["sides"]["keras_gumbel"], data["sides"]["tf_floor"]
    assert data["ratio"] == pytest.approx(layer["median_s"] / floor["median_s"])
    assert layer["cpu_ratio"] == pytest.approx(layer["cpu_median_s"] / floor["cpu_median_s"])
    assert layer["ratio"] == data["ratio"] and floor["ratio"] == 1.0
    target = data["target"]
    assert target["threshold"] == 1.10
    assert target["met"] == (data["ratio"] <= 1.10)


def test_both_sides_compute_the_same_diversity_loss(results):
    data, _ = results
    check = data["diversity_loss_check"]
    assert set(check["values"]) == {"keras_gumbel", "tf_floor"}
    assert 0 < check["values"]["keras_gumbel"] < data["settings"]["diversity_weight"]
    assert check["abs_diff"] <= 1e-5


def test_markdown(results):
    data, text = results
    assert data["command"] in text
    assert "| keras_gumbel |" in text and "| tf_floor |" in text
    assert "Threads: TensorFlow intra-op 2" in text and data["target"]["measured"] in text
