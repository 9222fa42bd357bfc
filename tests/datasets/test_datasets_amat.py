"""The binarized MNIST of Larochelle & Murray (2011) as `.amat` files."""

import gzip

import numpy as np
import pytest

from keras_gumbel.datasets import DatasetError
from keras_gumbel.datasets import load
from keras_gumbel.datasets.amat import read_amat


def _write_amat(path, bits, compress=False):
    text = "".join(" ".join(str(int(v)) for v in row) + "\n" for row in bits.reshape(len(bits), -1))
    if compress:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def amat_dir(tmp_path):
    """A directory with small train / valid / test splits of random bits."""
    rng = np.random.default_rng(7)
    splits = {
        "train": rng.integers(0, 2, (9, 28, 28)).astype(np.float32),
        "valid": rng.integers(0, 2, (4, 28, 28)).astype(np.float32),
        "test": rng.integers(0, 2, (5, 28, 28)).astype(np.float32),
    }
    for split, bits in splits.items():
        # One split gzipped: both forms are read.
        name = f"binarized_mnist_{split}.amat" + (".gz" if split == "valid" else "")
        _write_amat(tmp_path / name, bits, compress=split == "valid")
    return tmp_path, splits


def test_read_amat_round_trips_the_bits(tmp_path):
    bits = np.random.default_rng(0).integers(0, 2, (3, 28, 28)).astype(np.float32)
    result = read_amat(str(_write_amat(tmp_path / "x.amat", bits)))
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, bits)


@pytest.mark.parametrize("binarization", ["static", "threshold", "dynamic", "none"])
def test_load_keeps_the_fixed_split_and_bits(amat_dir, binarization):
    directory, splits = amat_dir
    data = load(str(directory), binarization=binarization, seed=3)

    # The valid file is the validation split; no binarization changes a bit.
    np.testing.assert_array_equal(data.x_train, splits["train"])
    np.testing.assert_array_equal(data.x_val, splits["valid"])
    np.testing.assert_array_equal(data.x_test, splits["test"])
    assert data.image_shape == (28, 28)
    assert data.name == "binarized_mnist"
    assert data.num_classes == 0
    assert (data.y_train == -1).all() and (data.y_test == -1).all()


def test_a_missing_split_is_named(amat_dir):
    directory, _ = amat_dir
    (directory / "binarized_mnist_test.amat").unlink()
    with pytest.raises(DatasetError, match=r"lacks binarized_mnist_test\.amat"):
        load(str(directory))


@pytest.mark.parametrize(
    "line, message",
    [
        ("0 1 " * 10, r"image 2: 20 values; expected 784"),
        (" ".join(["1"] * 783 + ["0.5"]), r"image 2: values must be 0 or 1; found 0.5"),
        (" ".join(["1"] * 783 + ["x"]), r"a value is not a number"),
    ],
)
def test_bad_lines_are_reported_with_their_image(tmp_path, line, message):
    good = " ".join(["0"] * 784)
    path = tmp_path / "bad.amat"
    path.write_text(f"{good}\n{line}\n")
    with pytest.raises(DatasetError, match=message):
        read_amat(str(path))


def test_unlabelled_data_cannot_pick_labelled_subsets(amat_dir):
    from keras_gumbel.datasets import labelled_subset

    directory, _ = amat_dir
    data = load(str(directory))
    with pytest.raises(DatasetError, match="found -1"):
        labelled_subset(data.y_train, 10)
