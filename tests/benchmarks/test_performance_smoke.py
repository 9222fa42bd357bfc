"""Smoke test of `benchmarks.performance.performance`: it runs and writes well-formed results.

No timing is asserted: only that every sub-benchmark ran, that the numbers
are positive and finite, and that the reported ratios follow from the
reported times. Optional sides (PyTorch, JAX) must be measured when the
library is installed and marked "not installed" when it is not.
"""

import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = "benchmarks.performance.performance"
LAYER_SIDES = ("keras_gumbel", "tf_floor", "keras_gumbel_xla", "tf_floor_xla", "tfp", "torch")
TRAINING_SIDES = (
    "keras_gumbel_fit",
    "keras_gumbel_fit_xla",
    "keras_gumbel_fit_no_xla",
    "tf_hand_loop",
    "tf_hand_loop_xla_update",
    "tf_hand_loop_xla",
    "keras_gumbel_train_step",
    "torch",
)
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_JAX = importlib.util.find_spec("jax") is not None


def _reject_constant(name):
    raise ValueError(f"non-finite number {name} in the JSON")


def _run(*args):
    """Runs the script with `args`; returns its JSON and markdown from `--out`."""
    out = Path(args[args.index("--out") + 1])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", MODULE, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = (out / "performance.json").read_text()
    return json.loads(text, parse_constant=_reject_constant), (out / "performance.md").read_text()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return _run("--smoke", "--out", str(tmp_path_factory.mktemp("performance")))


def _positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _check_measured(side):
    assert side["status"] == "ok"
    assert side["times_s"] and all(_positive(t) for t in side["times_s"])
    assert side["median_s"] == pytest.approx(statistics.median(side["times_s"]))
    assert _positive(side["peak_rss_mib"]) and _positive(side["rss_start_mib"])
    assert side["peak_over_start_mib"] >= 0


def _check_optional(side, installed):
    if installed:
        _check_measured(side)
    else:
        assert side["status"] == "not installed"


def _check_ratios(sides, reference):
    ref = sides[reference]["median_s"]
    for side in sides.values():
        if side["status"] == "ok":
            assert side["reference"] == reference
            assert side["ratio"] == pytest.approx(side["median_s"] / ref)


def test_top_level_structure(results):
    data, _ = results
    assert data["smoke"] is True
    assert "--smoke" in data["command"]
    assert "--out" not in data["command"]  # where results go is not part of them
    for key in ("layer", "training", "evaluation", "machine", "threads", "targets"):
        assert key in data
    assert data["machine"]["cores"] >= 1
    assert data["threads"]["tensorflow_intra_op"] >= 1
    assert data["memory_method"]
    assert _positive(data["wall_s"])
    for target in data["targets"]:
        assert target["met"] in (True, False, None) and target["name"] and target["measured"]


def test_layer_rows(results):
    data, _ = results
    layer = data["layer"]
    ks = data["settings"]["layer_ks"]
    assert [(r["classes"], r["mode"]) for r in layer["rows"]] == [
        (k, mode) for k in ks for mode in ("soft", "hard")
    ]
    for row in layer["rows"]:
        sides = row["sides"]
        assert set(sides) == set(LAYER_SIDES)
        for name in LAYER_SIDES[:-1]:
            _check_measured(sides[name])
        _check_optional(sides["torch"], HAS_TORCH)
        _check_ratios(sides, "tf_floor")
        xla = sides["keras_gumbel_xla"]
        assert xla["ratio_to_tf_floor_xla"] == pytest.approx(
            xla["median_s"] / sides["tf_floor_xla"]["median_s"]
        )


def test_layer_jax(results):
    data, _ = results
    jax = data["layer"]["jax"]
    if not HAS_JAX:
        assert jax["status"] == "not installed"
        return
    assert jax["status"] == "ok", jax.get("reason")
    assert len(jax["rows"]) == 2 * len(data["settings"]["layer_ks"])
    for row in jax["rows"]:
        assert set(row["sides"]) == {"keras_gumbel", "jax_floor"}
        for side in row["sides"].values():
            _check_measured(side)
        _check_ratios(row["sides"], "jax_floor")


def test_training_rows(results):
    data, _ = results
    rows = data["training"]["rows"]
    assert [r["batch"] for r in rows] == data["settings"]["train_batches"]
    for row in rows:
        sides = row["sides"]
        assert set(sides) == set(TRAINING_SIDES)
        for name in TRAINING_SIDES[:-1]:
            _check_measured(sides[name])
        _check_optional(sides["torch"], HAS_TORCH)
        _check_ratios(sides, "tf_hand_loop")
        for side in sides.values():
            if side["status"] == "ok":
                assert side["steps_per_s"] == pytest.approx(1 / side["median_s"])
        fit, hand = sides["keras_gumbel_fit"], sides["tf_hand_loop"]
        assert row["fit_speed_vs_hand"] == pytest.approx(hand["median_s"] / fit["median_s"])
        if HAS_TORCH:
            torch_time = sides["torch"]["median_s"]
            assert row["fit_speed_vs_torch"] == pytest.approx(torch_time / fit["median_s"])
        else:
            assert row["fit_speed_vs_torch"] is None
        hand_update = sides["tf_hand_loop_xla_update"]
        assert row["fit_speed_vs_hand_xla_update"] == pytest.approx(
            hand_update["median_s"] / fit["median_s"]
        )
        xla = sides["keras_gumbel_fit_xla"]
        assert row["fit_xla_speed_vs_hand"] == pytest.approx(hand["median_s"] / xla["median_s"])
        hand_xla = sides["tf_hand_loop_xla"]
        assert row["fit_xla_speed_vs_hand_xla"] == pytest.approx(
            hand_xla["median_s"] / xla["median_s"]
        )
        no_xla = sides["keras_gumbel_fit_no_xla"]
        assert row["fit_no_xla_speed_vs_hand"] == pytest.approx(
            hand["median_s"] / no_xla["median_s"]
        )


def test_evaluation(results):
    data, _ = results
    evaluation = data["evaluation"]
    throughput = evaluation["throughput"]
    _check_measured(throughput)
    assert throughput["images_per_s"] == pytest.approx(1 / throughput["median_s"])
    assert throughput["extrapolated_10000_s"] == pytest.approx(10000 * throughput["median_s"])
    assert evaluation["full_run"]["status"] == "skipped"
    memory = evaluation["memory"]
    assert [row["num_samples"] for row in memory] == data["settings"]["eval_memory_samples"]
    for row in memory:
        _check_measured(row)


def test_markdown(results):
    data, text = results
    assert data["command"] in text
    for heading in ("## Targets", "## Layer", "## Training", "## Evaluation"):
        assert heading in text
    assert "Threads:" in text and "Peak RSS:" in text


def test_merge_reruns_one_part(results, tmp_path):
    data, _ = results
    previous = json.loads(json.dumps(data))
    del previous["layer"]["run"]  # as results written before parts recorded their run
    (tmp_path / "performance.json").write_text(json.dumps(previous))
    # An absolute data directory is recorded by its placeholder (smoke runs
    # time random bits, so it need not exist).
    eval_data = str(tmp_path / "fashion-mnist")
    argv = ["--smoke", "--only", "evaluation", "--merge", "--eval-data", eval_data]
    merged, text = _run(*argv, "--out", str(tmp_path))
    rerun = f"python -m {MODULE} --smoke --only evaluation --merge --eval-data FASHION_MNIST_DIR"
    assert merged["command"] == rerun
    first_run = {key: data[key] for key in ("command", "load_average", "wall_s")}
    assert merged["layer"] == {**previous["layer"], "run": first_run}
    assert merged["training"] == data["training"]
    assert merged["training"]["run"]["command"] == data["command"]
    assert merged["evaluation"]["run"]["command"] == rerun
    assert merged["evaluation"]["throughput"] != data["evaluation"]["throughput"]
    assert [t["name"] for t in merged["targets"]] == [t["name"] for t in data["targets"]]
    assert merged["threads"]["jax"] == data["threads"]["jax"]
    assert f"- layer, training: `{data['command']}`" in text
    assert f"- evaluation: `{rerun}`" in text


def test_merge_refuses_other_machines_and_modes(results):
    from benchmarks.performance.performance import merge_problem

    data, _ = results
    assert merge_problem(data, True, data["machine"]) is None
    assert "smoke" in merge_problem(data, False, data["machine"])
    other = {**data["machine"], "cpu": "another CPU"}
    assert "different machines" in merge_problem(data, True, other)
