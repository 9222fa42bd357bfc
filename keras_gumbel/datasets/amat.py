"""The binarized MNIST of Larochelle & Murray (2011), in its `.amat` files.

This is the fixed static binarization that most papers after 2011 report
on: `binarized_mnist_train.amat`, `binarized_mnist_valid.amat` and
`binarized_mnist_test.amat`, one 28x28 image a line as 784 values 0 or 1
separated by spaces; 50,000 / 10,000 / 10,000 images. The files carry no
labels.

Reference:
    - H. Larochelle, I. Murray, "The Neural Autoregressive Distribution
      Estimator", AISTATS 2011.
"""

import gzip
import os

import numpy as np

from keras_gumbel.datasets.errors import DatasetError

SPLITS = ("train", "valid", "test")
IMAGE_SHAPE = (28, 28)
# Marks "no label": the files have none, and a model that needs labels
# (semi-supervised M2) refuses such data with a clear error.
NO_LABEL = -1


def amat_path(directory, split):
    """The path of a split's file in `directory` (raw or `.gz`), or None."""
    stem = os.path.join(directory, f"binarized_mnist_{split}.amat")
    for path in (stem, stem + ".gz"):
        if os.path.isfile(path):
            return path
    return None


def is_amat_directory(directory):
    """Whether `directory` holds at least one binarized-MNIST `.amat` file."""
    return any(amat_path(directory, split) for split in SPLITS)


def read_amat(path):
    """Reads one `.amat` file into a float32 array `(N, 28, 28)` of 0 and 1.

    Raises:
        DatasetError: If a line does not hold 784 values, or a value is not
            0 or 1.
    """
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt") as f:
            rows = [line.split() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError, EOFError) as error:
        raise DatasetError(f"cannot read '{path}': {error}") from error
    size = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
    for number, row in enumerate(rows, start=1):
        if len(row) != size:
            raise DatasetError(
                f"'{path}', image {number}: {len(row)} values; expected {size} "
                "(one 28x28 binarized image a line)"
            )
    try:
        values = np.asarray(rows, dtype=np.float32).reshape(-1, *IMAGE_SHAPE)
    except ValueError as error:
        raise DatasetError(f"'{path}': a value is not a number ({error})") from error
    flat = values.reshape(len(values), -1)
    bad = (flat != 0) & (flat != 1)
    rows_with_bad = np.flatnonzero(bad.any(axis=1))
    if rows_with_bad.size:
        row = rows_with_bad[0]
        raise DatasetError(
            f"'{path}', image {row + 1}: values must be 0 or 1; found {flat[row][bad[row]][0]:g}"
        )
    return values


def read_amat_directory(directory):
    """Reads the three `.amat` splits of `directory`.

    Returns:
        A dict with `train`, `valid` and `test` float32 arrays `(N, 28, 28)`.

    Raises:
        DatasetError: If a split's file is missing or invalid.
    """
    paths = {split: amat_path(directory, split) for split in SPLITS}
    missing = [f"binarized_mnist_{split}.amat[.gz]" for split, path in paths.items() if not path]
    if missing:
        raise DatasetError(
            f"binarized MNIST directory '{directory}' lacks {', '.join(missing)}; it needs "
            "the train, valid and test files of Larochelle & Murray (2011)"
        )
    return {split: read_amat(path) for split, path in paths.items()}
