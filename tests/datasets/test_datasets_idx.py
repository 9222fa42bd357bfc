"""IDX reading, and loading whole IDX directories."""

import gzip
import re

import numpy as np
import pytest

from keras_gumbel.datasets import DatasetError
from keras_gumbel.datasets import load
from keras_gumbel.datasets import read_idx


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
def test_read_idx_round_trips_every_type_code(tmp_path, write_idx, compress, dtype):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(3, 6, 8)) * 50).astype(dtype)
    path = write_idx(tmp_path / "x.idx", array, compress=compress)

    result = read_idx(path)

    assert result.shape == (3, 6, 8)
    assert result.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(result, array)
    assert result.flags.writeable


def test_read_idx_handles_one_and_four_dimensions(tmp_path, write_idx):
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    volume = np.arange(2 * 3 * 4 * 5, dtype=np.uint8).reshape(2, 3, 4, 5)

    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "l", labels)), labels)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "v", volume)), volume)


def test_read_idx_detects_gzip_by_content_not_name(tmp_path, write_idx):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    # Gzipped data without a .gz suffix, and raw data with one.
    zipped = write_idx(tmp_path / "images-idx3-ubyte", array, compress=True)
    raw = write_idx(tmp_path / "images-idx3-ubyte.gz", array, compress=False)

    np.testing.assert_array_equal(read_idx(zipped), array)
    np.testing.assert_array_equal(read_idx(raw), array)


def _header(code, *dims):
    return bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x01\x00\x08\x01" + (2).to_bytes(4, "big") + b"ab", "bad magic number"),
        (_header(0x07, 2) + b"ab", "bad magic number"),
        (_header(0x08, 2, 3, 4) + bytes(23), "truncated payload"),
        (_header(0x08, 2, 3, 4) + bytes(25), "trailing bytes"),
        (_header(0x0C, 5) + bytes(5), "truncated payload"),
        (_header(0x08, 2, 3, 4)[:9], "truncated header"),
        (b"\x00\x00", "shorter than the 4-byte header"),
        (bytes([0, 0, 8, 0]), "0 dimensions"),
    ],
)
def test_read_idx_rejects_malformed_files(tmp_path, content, message):
    path = tmp_path / "bad-images-idx3-ubyte"
    path.write_bytes(content)

    with pytest.raises(DatasetError, match=re.escape(str(path))) as info:
        read_idx(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_read_idx_rejects_truncated_gzip_and_chains_the_cause(tmp_path, write_idx):
    path = write_idx(tmp_path / "x.gz", np.zeros((50, 50), np.uint8), compress=True)
    path.write_bytes(path.read_bytes()[:-12])

    with pytest.raises(DatasetError, match="corrupt or truncated gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert info.value.__cause__ is not None


def test_read_idx_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope-idx3-ubyte.gz"
    with pytest.raises(DatasetError, match=re.escape(f"not found: '{path}'")):
        read_idx(path)


@pytest.mark.parametrize("compress", [True, False])
def test_load_reads_an_idx_directory_of_any_image_size(make_idx_dir, compress):
    directory, arrays = make_idx_dir(n_train=12, n_test=6, height=6, width=8, compress=compress)

    data = load(directory, binarization="none")

    # Fewer than 60,000 training images: a sixth is held out for validation.
    assert data.x_train.shape == (10, 6, 8)
    assert data.x_val.shape == (2, 6, 8)
    assert data.x_test.shape == (6, 6, 8)
    assert data.image_shape == (6, 8)
    assert data.num_classes == 10
    assert data.name == directory.name
    assert data.source == str(directory)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    np.testing.assert_allclose(
        np.concatenate([data.x_train, data.x_val]), arrays["train-images"] / 255.0
    )
    np.testing.assert_array_equal(data.y_val, arrays["train-labels"][10:])
    np.testing.assert_allclose(data.x_test, arrays["t10k-images"] / 255.0)


def test_load_idx_directory_static_and_threshold(make_idx_dir):
    directory, arrays = make_idx_dir(n_train=12, n_test=6)
    grey = arrays["train-images"] / 255.0

    first = load(directory, binarization="static", seed=3)
    again = load(directory, binarization="static", seed=3)
    other = load(directory, binarization="static", seed=4)
    threshold = load(directory, binarization="threshold")

    for split in ("x_train", "x_val", "x_test"):
        bits = getattr(first, split)
        assert set(np.unique(bits)) == {0.0, 1.0}
        np.testing.assert_array_equal(bits, getattr(again, split))
        assert not np.array_equal(bits, getattr(other, split))
        assert not np.array_equal(bits, getattr(threshold, split))
    # Black pixels never fire, white ones always do.
    assert np.all(first.x_train[grey[:10] == 0] == 0)
    assert np.all(first.x_train[grey[:10] == 1] == 1)
    np.testing.assert_array_equal(threshold.x_train, grey[:10] > 0.5)
    np.testing.assert_array_equal(threshold.x_test, arrays["t10k-images"] > 127)


def test_load_idx_directory_draws_train_and_test_bits_independently(make_idx_dir, write_idx):
    directory, arrays = make_idx_dir(n_train=12, n_test=6, compress=True)
    # Test images identical to the first train images: reusing one random
    # stream for both splits would give them identical bits.
    write_idx(directory / "t10k-images-idx3-ubyte.gz", arrays["train-images"][:6], True)

    data = load(directory, validation_size=0)

    assert not np.array_equal(data.x_train[:6], data.x_test)


def test_load_idx_directory_accepts_dotted_names(make_idx_dir):
    directory, _ = make_idx_dir(compress=False, dotted=True)
    assert (directory / "train-images.idx3-ubyte").exists()

    data = load(directory, validation_size=0)

    assert data.x_train.shape == (12, 6, 8)
    assert data.x_val.shape == (0, 6, 8)


def test_load_idx_directory_validation_size_bounds(make_idx_dir):
    directory, _ = make_idx_dir(n_train=12)

    assert len(load(directory, validation_size=11).x_train) == 1
    with pytest.raises(DatasetError, match=r"validation_size=12"):
        load(directory, validation_size=12)
    with pytest.raises(DatasetError, match=r"validation_size=-1"):
        load(directory, validation_size=-1)


def test_load_idx_directory_count_mismatch(make_idx_dir, write_idx):
    directory, _ = make_idx_dir(n_train=12, compress=True)
    labels = directory / "train-labels-idx1-ubyte.gz"
    write_idx(labels, np.zeros(11, np.uint8), compress=True)

    with pytest.raises(DatasetError, match="12 train images") as info:
        load(directory)
    assert "11 labels" in str(info.value)
    assert str(labels) in str(info.value)


def test_load_idx_directory_wrong_dimensions(make_idx_dir, write_idx):
    directory, _ = make_idx_dir(n_test=6, compress=True)
    images = directory / "t10k-images-idx3-ubyte.gz"
    # A flat (N, D) array where (N, H, W) images are expected.
    write_idx(images, np.zeros((6, 48), np.uint8), compress=True)

    with pytest.raises(DatasetError, match=re.escape(str(images))) as info:
        load(directory)
    assert "(N, H, W)" in str(info.value)


def test_load_idx_directory_train_and_test_sizes_must_match(make_idx_dir, write_idx):
    directory, _ = make_idx_dir(n_test=6, compress=True)
    write_idx(directory / "t10k-images-idx3-ubyte.gz", np.zeros((6, 8, 6), np.uint8), True)

    with pytest.raises(DatasetError, match=r"\(6, 8\).*\(8, 6\)"):
        load(directory)


def test_load_idx_directory_accepts_float_intensities(make_idx_dir, write_idx):
    directory, arrays = make_idx_dir(n_train=12, compress=False)
    grey = arrays["train-images"].astype(np.float32) / 255
    write_idx(directory / "train-images-idx3-ubyte", grey)

    data = load(directory, binarization="none", validation_size=0)

    np.testing.assert_array_equal(data.x_train, grey)


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((12, 6, 8), np.int16), "dtype int16"),
        (np.full((12, 6, 8), 2.0, np.float32), r"outside \[0, 1\]"),
    ],
)
def test_load_idx_directory_rejects_other_pixel_types(make_idx_dir, write_idx, images, message):
    directory, _ = make_idx_dir(n_train=12, compress=False)
    path = write_idx(directory / "train-images-idx3-ubyte", images)

    with pytest.raises(DatasetError, match=message) as info:
        load(directory)
    assert str(path) in str(info.value)


def test_load_idx_directory_corrupt_file_names_it(make_idx_dir):
    directory, _ = make_idx_dir(compress=True)
    path = directory / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x08\x08\x08\x01garbage"))

    with pytest.raises(DatasetError, match=re.escape(str(path))):
        load(directory)


def test_load_idx_directory_missing_file(make_idx_dir):
    directory, _ = make_idx_dir(compress=True)
    (directory / "t10k-labels-idx1-ubyte.gz").unlink()

    with pytest.raises(DatasetError, match="lacks t10k-labels-idx1-ubyte") as info:
        load(directory)
    message = str(info.value)
    assert str(directory) in message
    assert "train-images-idx3-ubyte.gz" in message  # what was found
    assert "'mnist-sample'" in message  # the alternatives


def test_load_empty_directory(tmp_path):
    with pytest.raises(DatasetError, match="it is empty") as info:
        load(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "train-images-idx3-ubyte[.gz]" in message
    assert "'fashion_mnist'" in message


def test_load_unknown_source_lists_the_alternatives(tmp_path):
    missing = str(tmp_path / "mnist-smaple")
    with pytest.raises(DatasetError, match=re.escape(repr(missing))) as info:
        load(missing)
    message = str(info.value)
    for alternative in ("'mnist-sample'", "'mnist'", "'fashion_mnist'", "IDX"):
        assert alternative in message
    assert "\n" not in message


def test_load_rejects_a_file_as_source(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"")
    with pytest.raises(DatasetError, match="is a file, not a directory"):
        load(path)


def test_load_rejects_non_path_source():
    with pytest.raises(DatasetError, match=r"Received: source=42"):
        load(42)
