"""Fixtures for the dataset tests: a small IDX writer and IDX directories."""

import gzip
import struct

import numpy as np
import pytest

IDX_CODES = {
    np.dtype("u1"): 0x08,
    np.dtype("i1"): 0x09,
    np.dtype("i2"): 0x0B,
    np.dtype("i4"): 0x0C,
    np.dtype("f4"): 0x0D,
    np.dtype("f8"): 0x0E,
}


def idx_bytes(array):
    """Encodes `array` as an IDX file: magic, big-endian sizes, big-endian data."""
    array = np.asarray(array)
    code = IDX_CODES[array.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx_file(path, array, compress=False):
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


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
