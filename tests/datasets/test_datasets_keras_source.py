"""Loading "mnist" and "fashion_mnist" through keras.datasets (faked here)."""

import keras
import numpy as np
import pytest

from keras_gumbel.datasets import DatasetError
from keras_gumbel.datasets import load


def _fake_arrays(n_train=12, n_test=4, shape=(7, 5)):
    rng = np.random.default_rng(7)
    x_train = rng.integers(0, 256, (n_train, *shape), dtype=np.uint8)
    x_train[0] = 255  # one all-white image to check the scaling
    x_test = rng.integers(0, 256, (n_test, *shape), dtype=np.uint8)
    y_train = (np.arange(n_train) % 10).astype(np.uint8)
    y_test = (np.arange(n_test) % 3).astype(np.uint8)
    return (x_train, y_train), (x_test, y_test)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_keras_dataset_success(monkeypatch, name):
    arrays = _fake_arrays()
    monkeypatch.setattr(getattr(keras.datasets, name), "load_data", lambda: arrays)

    data = load(name, binarization="none")

    (x_train, y_train), (x_test, y_test) = arrays
    assert data.name == name
    assert f"keras.datasets.{name}" in data.source
    assert data.image_shape == (7, 5)
    assert data.num_classes == 10
    # 12 train images: a sixth (2) are held out as the last ones.
    assert data.x_train.shape == (10, 7, 5) and data.x_val.shape == (2, 7, 5)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert np.all(data.x_train[0] == 1.0)
    np.testing.assert_allclose(data.x_val, x_train[10:] / 255.0)
    np.testing.assert_array_equal(data.y_val, y_train[10:])
    np.testing.assert_allclose(data.x_test, x_test / 255.0)
    np.testing.assert_array_equal(data.y_test, y_test)


def test_keras_dataset_static_binarization(monkeypatch):
    arrays = _fake_arrays()
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda: arrays)

    data = load("mnist", seed=1)

    assert set(np.unique(data.x_train)) == {0.0, 1.0}
    np.testing.assert_array_equal(data.x_train, load("mnist", seed=1).x_train)
    assert np.all(data.x_train[0] == 1.0)


@pytest.mark.parametrize("n_train", [60_000, 72_000])
def test_full_size_train_split_holds_out_10000(monkeypatch, n_train):
    # The paper's 50,000 / 10,000 / 10,000 split; 10,000 also for larger
    # train splits (not a sixth). Tiny 1x2 images keep it cheap.
    x_train = np.zeros((n_train, 1, 2), np.uint8)
    y_train = np.zeros(n_train, np.uint8)
    x_test, y_test = np.zeros((10_000, 1, 2), np.uint8), np.zeros(10_000, np.uint8)
    monkeypatch.setattr(
        keras.datasets.mnist,
        "load_data",
        lambda: ((x_train, y_train), (x_test, y_test)),
    )

    data = load("mnist", binarization="threshold")

    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (
        n_train - 10_000,
        10_000,
        10_000,
    )


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_keras_dataset_failure_suggests_the_sample(monkeypatch, name):
    def offline():
        raise OSError("URL fetch failure on https://example.invalid: no network")

    monkeypatch.setattr(getattr(keras.datasets, name), "load_data", offline)

    with pytest.raises(DatasetError, match="'mnist-sample'") as info:
        load(name)
    message = str(info.value)
    assert f"'{name}'" in message
    assert "URL fetch failure" in message
    assert "IDX" in message
    assert isinstance(info.value.__cause__, OSError)


def test_keras_dataset_with_mismatched_counts(monkeypatch):
    (x_train, y_train), test = _fake_arrays()
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda: ((x_train, y_train[:-1]), test))

    with pytest.raises(DatasetError, match="12 train images but 11 train labels"):
        load("mnist")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"binarization": "bits"}, r"Expected one of \('static', 'threshold'"),
        ({"seed": -1}, r"Received: seed=-1"),
        ({"seed": 1.5}, r"Received: seed=1.5"),
        ({"validation_size": "10"}, r"Received: validation_size='10'"),
    ],
)
def test_load_rejects_bad_arguments_before_any_download(monkeypatch, kwargs, message):
    def must_not_run():
        raise AssertionError("load_data should not be called")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", must_not_run)

    with pytest.raises(DatasetError, match=message):
        load("mnist", **kwargs)
