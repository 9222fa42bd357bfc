"""`make_dataset` and `split_halves`."""

import numpy as np
import pytest

from keras_gumbel.datasets import DatasetError
from keras_gumbel.datasets import make_dataset
from keras_gumbel.datasets import split_halves


def _epoch(dataset):
    """One pass over `dataset` as a list of NumPy batches."""
    return [
        tuple(np.asarray(t) for t in batch) if isinstance(batch, tuple) else np.asarray(batch)
        for batch in dataset
    ]


def _indexed_images(n=10, height=3, width=4):
    """Images whose pixels all equal their index / n, to track them."""
    values = np.arange(n, dtype=np.float32) / n
    return np.broadcast_to(values[:, None, None], (n, height, width)).copy()


def test_batch_shapes_with_and_without_flatten():
    images = _indexed_images(10, 3, 4)

    flat = _epoch(make_dataset(images, batch_size=4))
    square = _epoch(make_dataset(images, batch_size=4, flatten=False))
    dropped = _epoch(make_dataset(images, batch_size=4, drop_remainder=True))

    assert [b.shape for b in flat] == [(4, 12), (4, 12), (2, 12)]
    assert [b.shape for b in square] == [(4, 3, 4), (4, 3, 4), (2, 3, 4)]
    assert [b.shape for b in dropped] == [(4, 12), (4, 12)]
    assert all(b.dtype == np.float32 for b in flat)


def test_without_shuffle_order_is_kept():
    images = _indexed_images(10)
    batches = _epoch(make_dataset(images, batch_size=3, shuffle=False))
    np.testing.assert_allclose(np.concatenate(batches), images.reshape(10, -1))


def test_labels_stay_with_their_images_through_shuffling():
    images = _indexed_images(10)
    labels = np.arange(10)

    batches = _epoch(make_dataset(images, labels, batch_size=4, seed=3))

    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    assert y.dtype == np.int64
    assert sorted(y.tolist()) == list(range(10))  # every image once
    assert y.tolist() != list(range(10))  # and shuffled
    np.testing.assert_allclose(x[:, 0], y / 10)


def test_float_targets_are_yielded_as_float32():
    images = _indexed_images(6)
    targets = np.random.default_rng(0).random((6, 5))
    batches = _epoch(make_dataset(images, targets, batch_size=6, shuffle=False))
    assert batches[0][1].dtype == np.float32
    np.testing.assert_allclose(batches[0][1], targets, rtol=1e-6)


def test_shuffle_differs_per_epoch_and_is_reproducible():
    images = _indexed_images(50)

    def orders(dataset):
        return [
            tuple(np.round(np.concatenate(_epoch(dataset))[:, 0] * 50).astype(int))
            for _ in range(2)
        ]

    first = orders(make_dataset(images, batch_size=8, seed=11))
    again = orders(make_dataset(images, batch_size=8, seed=11))
    other = orders(make_dataset(images, batch_size=8, seed=12))

    assert sorted(first[0]) == list(range(50))
    assert first[0] != first[1]
    assert first == again
    assert first != other


def test_dynamic_binarization_statistics():
    # Columns of intensity 0, 0.3 and 1: black never fires, white always does,
    # and 0.3 fires at rate 0.3. 64 images x 300 pixels of 0.3 give a standard
    # error of sqrt(0.21 / 19200) ~ 0.0033; 0.02 is a 6-sigma bound.
    images = np.zeros((64, 10, 30), np.float32)
    images[:, :, 10:20] = 0.3
    images[:, :, 20:] = 1.0

    bits = np.concatenate(
        _epoch(make_dataset(images, batch_size=16, flatten=False, dynamic_binarization=True))
    )

    assert set(np.unique(bits)) == {0.0, 1.0}
    assert np.all(bits[:, :, :10] == 0) and np.all(bits[:, :, 20:] == 1)
    assert abs(bits[:, :, 10:20].mean() - 0.3) < 0.02


def test_dynamic_bits_follow_real_images():
    rng = np.random.default_rng(1)
    images = rng.random((40, 28, 28)).astype(np.float32) ** 3  # sparse, like digits
    bits = np.concatenate(_epoch(make_dataset(images, batch_size=20, dynamic_binarization=True)))
    # Mean over 31,360 pixels; the standard error is below 0.003.
    assert abs(bits.mean() - images.mean()) < 0.015


def test_dynamic_bits_change_per_epoch_and_are_reproducible():
    images = np.full((8, 4, 4), 0.5, np.float32)

    def two_epochs(seed):
        dataset = make_dataset(
            images, batch_size=4, shuffle=False, seed=seed, dynamic_binarization=True
        )
        return [np.concatenate(_epoch(dataset)) for _ in range(2)]

    first = two_epochs(0)
    again = two_epochs(0)
    other = two_epochs(1)

    assert not np.array_equal(first[0], first[1])  # fresh bits each epoch
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])
    # Identical images in different batches of one epoch get different bits.
    assert not np.array_equal(first[0][:4], first[0][4:])


def test_dynamic_binarization_leaves_labels_alone():
    images = np.full((6, 2, 2), 0.5, np.float32)
    labels = np.arange(6)
    ((x, y),) = _epoch(
        make_dataset(images, labels, batch_size=6, shuffle=False, dynamic_binarization=True)
    )
    np.testing.assert_array_equal(y, labels)
    assert set(np.unique(x)) <= {0.0, 1.0}


def test_repeat_goes_on_past_one_epoch():
    images = _indexed_images(5)
    dataset = make_dataset(images, batch_size=2, repeat=True, dynamic_binarization=True)
    batches = list(dataset.take(7).as_numpy_iterator())
    # Each pass is 2 + 2 + 1 images; 7 batches cover two passes and more.
    assert [len(b) for b in batches] == [2, 2, 1, 2, 2, 1, 2]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, r"Received: batch_size=0"),
        ({"batch_size": 2.0}, r"Received: batch_size=2.0"),
        ({"batch_size": 2, "seed": -3}, r"Received: seed=-3"),
        ({"batch_size": 2, "shuffle": "yes"}, r"Received: shuffle='yes'"),
        ({"batch_size": 2, "labels": np.arange(3)}, r"labels of shape \(3,\)"),
    ],
)
def test_make_dataset_rejects_bad_arguments(kwargs, message):
    with pytest.raises(DatasetError, match=message):
        make_dataset(np.zeros((4, 2, 2)), **kwargs)


def test_dynamic_binarization_requires_intensities():
    with pytest.raises(DatasetError, match=r"intensities in \[0, 1\]"):
        make_dataset(np.full((4, 2, 2), 255.0), batch_size=2, dynamic_binarization=True)


def test_split_halves_of_28x28():
    images = np.random.default_rng(0).random((5, 28, 28)).astype(np.float32)

    upper, lower = split_halves(images)

    assert upper.shape == (5, 392) and lower.shape == (5, 392)
    np.testing.assert_array_equal(upper, images[:, :14].reshape(5, -1))
    np.testing.assert_array_equal(
        np.concatenate([upper, lower], axis=1).reshape(images.shape), images
    )


def test_split_halves_of_odd_height_gives_middle_row_to_upper():
    images = np.arange(2 * 7 * 3).reshape(2, 7, 3)

    upper, lower = split_halves(images)

    assert upper.shape == (2, 4 * 3) and lower.shape == (2, 3 * 3)
    np.testing.assert_array_equal(upper[:, -3:], images[:, 3])  # the middle row
    np.testing.assert_array_equal(np.concatenate([upper, lower], axis=1), images.reshape(2, -1))


@pytest.mark.parametrize("shape", [(4, 784), (4, 1, 5), (28, 28, 1, 1)])
def test_split_halves_rejects_other_shapes(shape):
    with pytest.raises(DatasetError, match=r"\(N, H, W\)"):
        split_halves(np.zeros(shape))
