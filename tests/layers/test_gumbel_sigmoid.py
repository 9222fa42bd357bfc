"""Tests of the GumbelSigmoid layer."""

import keras
import numpy as np
import pytest
import scipy.stats
from testing import JIT_COMPILE
from testing import check_layer
from testing import to_numpy

from keras_gumbel.layers import GumbelSigmoid


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": 0.7, "seed": 1},
        {"hard": True, "seed": 2},
        {"hard": True, "sample_at_inference": True, "seed": 3},
        {"learn_temperature": True, "seed": 4},
    ],
)
def test_layer_harness(kwargs, tmp_path):
    check_layer(GumbelSigmoid, kwargs, input_shape=(12,), tmp_path=tmp_path)


def test_inference_is_deterministic():
    x = np.random.default_rng(0).normal(size=(32, 20)).astype("float32")
    np.testing.assert_allclose(
        to_numpy(GumbelSigmoid(temperature=0.5)(x)), 1 / (1 + np.exp(-2 * x)), rtol=1e-5
    )
    np.testing.assert_array_equal(to_numpy(GumbelSigmoid(hard=True)(x)), (x > 0).astype("float32"))


def test_hard_training_samples_are_bernoulli():
    # 200,000 draws of each of 4 units: each frequency within the Bonferroni
    # 3-sigma bound of sigmoid(logit).
    logits = np.array([-1.5, 0.0, 0.4, 2.5], dtype="float32")
    layer = GumbelSigmoid(hard=True, seed=0)
    y = to_numpy(layer(np.broadcast_to(logits, (200_000, 4)), training=True))
    assert set(np.unique(y)) <= {0.0, 1.0}
    p = 1 / (1 + np.exp(-logits.astype("float64")))
    z = (y.mean(axis=0) - p) / np.sqrt(p * (1 - p) / 200_000)
    assert np.abs(z).max() < scipy.stats.norm.isf(0.0027 / 8)


def test_keras_mask_zeroes_units():
    x = np.random.default_rng(0).normal(size=(10, 5)).astype("float32")
    mask = np.random.default_rng(1).uniform(size=(10, 5)) > 0.5
    for training in (False, True):
        y = to_numpy(GumbelSigmoid(seed=0)(x, training=training, mask=mask))
        assert np.all(y[~mask] == 0) and np.all(y[mask] > 0)


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"temperature": 0.0}, ValueError, r"Received: temperature=0.0"),
        ({"hard": 1}, TypeError, r"Received: hard=1"),
        ({"axis": -1}, ValueError, r"Unrecognized keyword arguments.*axis"),
    ],
)
def test_bad_arguments_raise(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        GumbelSigmoid(**kwargs)


def test_fit_with_hard_samples_trains_the_layers_before():
    encoder = keras.layers.Dense(16)
    model = keras.Sequential(
        [keras.Input(shape=(8,)), encoder, GumbelSigmoid(hard=True, seed=1), keras.layers.Dense(8)]
    )
    model.compile(optimizer="adam", loss="mse", jit_compile=JIT_COMPILE)
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    before = to_numpy(encoder.kernel).copy()
    model.fit(x, x, epochs=2, batch_size=16, verbose=0)
    assert np.abs(to_numpy(encoder.kernel) - before).max() > 1e-4
