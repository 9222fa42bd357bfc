"""`binarize`: static, threshold and none."""

import numpy as np
import pytest

from keras_gumbel.datasets import DatasetError
from keras_gumbel.datasets import binarize


def test_static_is_reproducible_and_seed_dependent():
    images = np.random.default_rng(0).random((50, 6, 8))

    first = binarize(images, "static", seed=5)
    again = binarize(images, "static", seed=5)
    other = binarize(images, "static", seed=6)

    assert first.shape == images.shape and first.dtype == np.float32
    assert set(np.unique(first)) == {0.0, 1.0}
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("p", [0.0, 0.05, 0.3, 0.5, 0.9, 1.0])
def test_static_frequency_of_ones_matches_intensity(p):
    # 40,000 draws: the standard error of the frequency is at most
    # sqrt(0.25 / 40000) = 0.0025, so 0.015 is a 6-sigma bound and a correct
    # implementation fails it with probability ~1e-9. A bias such as
    # comparing with 1 - p, or drawing with p = 0.5, is far outside it.
    images = np.full((200, 200), p, np.float32)
    frequency = binarize(images, "static", seed=1).mean()
    assert abs(frequency - p) < 0.015
    if p in (0.0, 1.0):
        assert frequency == p  # black never fires, white always does


def test_static_draws_are_independent_across_pixels():
    # Half-grey image: if the same uniform were reused for every row, all rows
    # would be identical.
    bits = binarize(np.full((100, 64), 0.5), "static", seed=0)
    assert len({row.tobytes() for row in bits}) == 100


def test_threshold_is_exact():
    images = np.array([[0.0, 0.5, np.nextafter(np.float32(0.5), 1), 0.49, 1.0]])
    np.testing.assert_array_equal(binarize(images, "threshold"), [[0, 0, 1, 0, 1]])


def test_none_returns_a_float32_copy():
    images = np.array([[0.25, 0.75]], np.float64)
    result = binarize(images, "none")
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, images)
    result[0, 0] = 1.0
    assert images[0, 0] == 0.25


def test_shapes_are_kept_for_scalars_and_empty_arrays():
    assert binarize(np.float32(1.0), "static").shape == ()
    assert binarize(np.float32(1.0), "static") == 1.0
    assert binarize(np.zeros((0, 3, 3)), "static").shape == (0, 3, 3)


def test_invalid_method_message_is_keras_style():
    with pytest.raises(
        DatasetError,
        match=r"Invalid value received for argument `binarization`\. Expected one "
        r"of \('static', 'threshold', 'dynamic', 'none'\)\. Received: "
        r"binarization='bernoulli'",
    ):
        binarize(np.zeros(3), "bernoulli")


def test_dynamic_points_to_make_dataset():
    with pytest.raises(DatasetError, match="make_dataset"):
        binarize(np.zeros(3), "dynamic")


@pytest.mark.parametrize("bad", [np.array([0.0, 255.0]), np.array([-0.1]), [np.nan]])
def test_rejects_values_outside_unit_interval(bad):
    with pytest.raises(DatasetError, match=r"intensities in \[0, 1\]"):
        binarize(bad, "static")


@pytest.mark.parametrize("seed", [-1, 2.0, True, "0"])
def test_rejects_bad_seeds(seed):
    with pytest.raises(DatasetError, match="non-negative integer"):
        binarize(np.zeros(3), "static", seed=seed)
