"""How results record paths: as given, or a placeholder for this machine's own."""

from benchmarks.common import placeholder
from benchmarks.common import portable
from benchmarks.common import shown_args


def test_placeholder_keeps_what_travels_and_names_what_does_not():
    assert placeholder("mnist-sample", "--data") == "mnist-sample"
    assert placeholder("data/mnist", "--data") == "data/mnist"
    assert placeholder("/work/data/mnist", "--data") == "MNIST_DIR"
    assert placeholder("/usr/share/datasets/fashion-mnist/", "--eval-data") == "FASHION_MNIST_DIR"
    assert placeholder("/scratch/t1runs", "--runs-dir") == "RUNS_DIR"
    assert placeholder("/scratch/run", None) == "PATH"


def test_shown_args_drops_outputs_and_hides_absolute_paths():
    argv = [
        "unit", "categorical-vae", "--data", "/work/data/mnist", "--out", "/tmp/out",
        "--force", "--runs-dir=/scratch/runs", "--seed", "1", "--notes", "notes.md",
    ]  # fmt: skip
    assert shown_args(argv, {"--out": 1, "--force": 0}) == [
        "unit", "categorical-vae", "--data", "MNIST_DIR", "--runs-dir=RUNS_DIR",
        "--seed", "1", "--notes", "notes.md",
    ]  # fmt: skip
    assert shown_args(["--out=/tmp/x", "--smoke"], {"--out": 1}) == ["--smoke"]
    assert shown_args(["--force", "a"], ("--force",)) == ["a"]


def test_portable_replaces_the_data_path_everywhere_and_nothing_else():
    record = {
        "config": {"data": "/work/data/mnist/", "epochs": 3},
        "runs": [{"command": "keras-gumbel train --data /work/data/mnist --epochs 3"}],
        "data": "50,000 images (from: /work/data/mnist)",
        "steps": 1.5,
    }
    assert portable(record, "/work/data/mnist/") == {
        "config": {"data": "MNIST_DIR/", "epochs": 3},
        "runs": [{"command": "keras-gumbel train --data MNIST_DIR --epochs 3"}],
        "data": "50,000 images (from: MNIST_DIR)",
        "steps": 1.5,
    }
    assert portable(record, "mnist-sample", None) is record
