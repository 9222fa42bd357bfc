"""Fixtures for the dataset tests: a small IDX writer and IDX directories."""

import numpy as np
import pytest
from testing import write_idx_file


@pytest.fixture
def write_idx():
    """`write_idx(path, array, compress=False)` writes an IDX file."""
    return write_idx_file


@pytest.fixture
def make_idx_dir(tmp_path):
    """Builds an MNIST-style IDX directory of random images; returns it and the arrays.

    `make_idx_dir(n_train=12, n_test=6, height=6, width=8, compress=True,
    dotted=False)`; `dotted` uses names like `train-images.idx3-ubyte`.
    """

    def make(n_train=12, n_test=6, height=6, width=8, compress=True, dotted=False):
        rng = np.random.default_rng(123)
        directory = tmp_path / f"idx_{n_train}_{n_test}_{height}x{width}"
        directory.mkdir()
        arrays = {
            "train-images": rng.integers(0, 256, (n_train, height, width), np.uint8),
            "train-labels": np.arange(n_train, dtype=np.uint8) % 10,
            "t10k-images": rng.integers(0, 256, (n_test, height, width), np.uint8),
            "t10k-labels": np.arange(n_test, dtype=np.uint8) % 10,
        }
        for stem, array in arrays.items():
            kind = "idx3-ubyte" if stem.endswith("images") else "idx1-ubyte"
            name = f"{stem}{'.' if dotted else '-'}{kind}" + (".gz" if compress else "")
            write_idx_file(directory / name, array, compress=compress)
        return directory, arrays

    return make
