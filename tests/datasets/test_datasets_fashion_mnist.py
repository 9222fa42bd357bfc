"""The full Fashion-MNIST as installed by Debian's dataset-fashion-mnist package."""

import os

import numpy as np
import pytest

from keras_gumbel.datasets import load
from keras_gumbel.datasets import make_dataset

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.isdir(FASHION_MNIST),
    reason="install Debian's dataset-fashion-mnist package for this test",
)
def test_full_fashion_mnist_from_idx_directory():
    data = load(FASHION_MNIST, binarization="static", seed=0)

    assert data.x_train.shape == (50_000, 28, 28)
    assert data.x_val.shape == (10_000, 28, 28)
    assert data.x_test.shape == (10_000, 28, 28)
    assert data.num_classes == 10
    np.testing.assert_array_equal(np.bincount(data.y_test), [1000] * 10)
    assert set(np.unique(data.x_test[:100])) == {0.0, 1.0}
    # Fashion-MNIST's mean intensity is about 0.286.
    assert 0.27 < data.x_test.mean() < 0.30
    batch = next(iter(make_dataset(data.x_train, data.y_train, batch_size=100)))
    assert batch[0].shape == (100, 784)
