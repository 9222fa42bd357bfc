"""Smoke tests of the permutation experiments (benchmarks/permutations).

Each runner trains a unit of a few steps on tiny sizes (the shipped MNIST
sample for the image tasks) and writes its result JSON; the tests check the
JSON's contents, that a unit resumes from its checkpoint with the
optimizer's state (its step count continues), that a finished unit is not
run again, and that the report assembles the tables and figures. The data
helpers are checked against NumPy on known cases.
"""

import json

import numpy as np
import pytest
from testing import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "tensorflow", reason="the runners use TensorFlow")

TINY = ["--steps", "4", "--chunk-steps", "2", "--batch-size", "4"]


def run(module, tmp_path, *args):
    module.main(
        ["unit", *args, *TINY, "--runs-dir", str(tmp_path / "runs"), "--results", str(tmp_path)]
    )


def unit_json(tmp_path, experiment, name):
    path = tmp_path / experiment / "units" / f"{name}.json"
    text = path.read_text(encoding="utf-8")
    # Results name data and run folders portably, never by this machine's paths.
    assert str(tmp_path) not in text
    return json.loads(text), path


def check_common(result, experiment, unit, module):
    assert result["experiment"] == experiment
    assert result["unit"] == unit
    assert result["steps"] == 4
    assert result["optimizer_steps"] == 4
    assert len(result["loss_per_chunk"]) == 2
    assert all(np.isfinite(result["loss_per_chunk"]))
    assert result["train_seconds"] > 0
    assert result["command"].startswith(f"python -m benchmarks.permutations.{module} unit ")
    assert "--runs-dir RUNS_DIR" in result["command"]
    assert result["environment"]["backend"] == "tensorflow"


def test_sort_numbers_unit_resumes_and_is_not_rerun(tmp_path):
    from benchmarks.permutations import sort_numbers

    # A unit killed after its first chunk: the same run with only that chunk.
    sort_numbers.main(
        ["unit", "--n", "4", "--steps", "2", "--chunk-steps", "2", "--batch-size", "4"]
        + ["--num-test", "20", "--runs-dir", str(tmp_path / "runs"), "--results", str(tmp_path)]
    )
    first, path = unit_json(tmp_path, "sort_numbers", "n004")
    assert first["optimizer_steps"] == 2 and first["resumed_after_chunks"] == []
    path.unlink()

    run(sort_numbers, tmp_path, "--n", "4", "--num-test", "20")
    result, path = unit_json(tmp_path, "sort_numbers", "n004")
    check_common(result, "sort_numbers", "n004", "sort_numbers")
    # It resumed after chunk 1 and continued the optimizer's count (2 + 2 steps).
    assert result["resumed_after_chunks"] == [1]
    assert result["loss_per_chunk"][0] == first["loss_per_chunk"][0]
    assert result["config"]["n"] == 4
    m = result["metrics"]
    assert m["num_test"] == 20
    assert 0.0 <= m["exact"] <= m["elementwise"] <= 1.0
    assert m["prop_any_wrong"] == pytest.approx(1.0 - m["exact"])
    assert m["prop_wrong"] == pytest.approx(1.0 - m["elementwise"])
    assert "--n 4 --steps 4" in result["command"]

    # A finished unit is not run again.
    before = path.stat().st_mtime_ns
    run(sort_numbers, tmp_path, "--n", "4", "--num-test", "20")
    assert path.stat().st_mtime_ns == before

    from benchmarks.permutations import report

    report.report("sort_numbers", tmp_path)
    text = (tmp_path / "sort_numbers.md").read_text(encoding="utf-8")
    assert "| 4 | 4 |" in text and "Mena" in text
    assert (tmp_path / "sort_numbers.png").stat().st_size > 1000
    assembled = json.loads((tmp_path / "sort_numbers.json").read_text(encoding="utf-8"))
    assert [u["unit"] for u in assembled["units"]] == ["n004"]


def test_jigsaw_unit(tmp_path):
    from benchmarks.permutations import jigsaw

    run(jigsaw, tmp_path, "--k", "3", "--data", "mnist-sample", "--num-test", "10")
    result, path = unit_json(tmp_path, "jigsaw", "k3")
    check_common(result, "jigsaw", "k3", "jigsaw")
    assert result["config"]["data"] == "mnist-sample"
    m = result["metrics"]
    assert 0.0 <= m["puzzles_solved"] <= m["pieces_in_place"] <= 1.0
    assert m["pieces_at_own_index"] <= m["pieces_in_place"]
    assert m["l1"] >= 0 and m["rmse"] >= 0
    examples = np.load(path.with_suffix(".examples.npz"))
    assert examples["scrambled"].shape == examples["recovered"].shape == (8, 27, 27)

    from benchmarks.permutations import report

    report.report("jigsaw", tmp_path)
    assert "| 3x3 | 4 |" in (tmp_path / "jigsaw.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("method", ["neuralsort", "gumbel_sinkhorn"])
def test_mnist_sort_unit(tmp_path, method):
    from benchmarks.permutations import mnist_sort

    args = ["--n", "3", "--method", method, "--data", "mnist-sample", "--num-test", "10"]
    run(mnist_sort, tmp_path, *args)
    result, _ = unit_json(tmp_path, "mnist_sort", f"{method}__n03")
    check_common(result, "mnist_sort", f"{method}__n03", "mnist_sort")
    assert result["config"]["method"] == method
    m = result["metrics"]
    assert 0.0 <= m["exact"] <= m["elementwise"] <= 1.0 and m["num_test"] == 10

    from benchmarks.permutations import report

    report.report("mnist_sort", tmp_path)
    text = (tmp_path / "mnist_sort.md").read_text(encoding="utf-8")
    # Our row sits beside the paper's number for the same method and n.
    if method == "neuralsort":
        assert "| Deterministic NeuralSort | 3 |" in text and "0.930 (0.951)" in text
    else:
        assert "| Gumbel-Sinkhorn | 3 |" in text and "0.484 (0.575)" in text


def test_jigsaw_pieces_round_trip_and_scramble():
    from benchmarks.permutations import jigsaw

    images = np.arange(2 * 28 * 28, dtype="float32").reshape(2, 28, 28)
    pieces = jigsaw.to_pieces(images, 2)
    assert pieces.shape == (2, 4, 196)
    np.testing.assert_array_equal(pieces[0, 1].reshape(14, 14), images[0, :14, 14:])
    np.testing.assert_array_equal(jigsaw.from_pieces(pieces, 2), images)
    assert jigsaw.to_pieces(images, 3).shape == (2, 9, 81)  # cropped to 27 x 27

    shuffled, positions = jigsaw.scramble(np.random.default_rng(0), pieces)
    # Putting each shuffled piece at its position gives the digit back.
    restored = np.zeros_like(pieces)
    for b in range(2):
        restored[b, positions[b]] = shuffled[b]
    np.testing.assert_array_equal(restored, pieces)


def test_mnist_sort_targets_and_numbers():
    from benchmarks.permutations import mnist_sort

    labels = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 0])
    images = np.stack([np.full((28, 28), d, "uint8") for d in range(10)])
    x, values = mnist_sort.make_sequences(np.random.default_rng(0), images, labels, 5, 3)
    assert x.shape == (5, 3, 28, 112)
    # Each number reads its four digits from left to right.
    digits = x[:, :, 0, ::28].astype("int64")
    np.testing.assert_array_equal(values, (labels[digits] * [1000, 100, 10, 1]).sum(-1))

    v = np.array([[30, 10, 20]])
    rows = mnist_sort.target_matrices(v, "neuralsort")[0]
    np.testing.assert_array_equal(rows @ v[0], [30, 20, 10])  # rank rows, largest first
    cols = mnist_sort.target_matrices(v, "gumbel_sinkhorn")[0]
    np.testing.assert_array_equal(cols.T, rows)  # [item, rank] for Sinkhorn


def test_sort_numbers_true_positions():
    from benchmarks.permutations import sort_numbers

    x = np.array([[0.3, 0.1, 0.9, 0.5]])
    np.testing.assert_array_equal(sort_numbers.true_positions(x), [[1, 0, 3, 2]])
