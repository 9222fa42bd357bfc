"""Tests of the GumbelSoftmax layer."""

import keras
import numpy as np
import pytest
from testing import BACKEND
from testing import SLOW_ON_TORCH
from testing import check_layer
from testing import to_numpy

from keras_gumbel.layers import GumbelSoftmax


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": 0.7, "seed": 1},
        {"temperature": 1.5, "hard": True, "seed": 2},
        {"hard": True, "axis": 1, "sample_at_inference": True, "seed": 3},
        {"learn_temperature": True, "min_temperature": 0.05, "seed": 4},
    ],
)
def test_layer_harness(kwargs, tmp_path):
    check_layer(GumbelSoftmax, kwargs, input_shape=(5, 6), tmp_path=tmp_path)


def test_temperature_is_a_float32_scalar_weight():
    layer = GumbelSoftmax(temperature=0.8, dtype="mixed_float16")
    variable = layer.temperature_variable
    assert "temperature" in variable.path
    assert tuple(variable.shape) == ()
    assert keras.backend.standardize_dtype(variable.dtype) == "float32"
    assert not variable.trainable
    assert float(to_numpy(variable)) == np.float32(0.8)
    assert variable in layer.non_trainable_weights
    assert GumbelSoftmax(learn_temperature=True).temperature_variable.trainable


def test_inference_is_deterministic_and_training_samples():
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    soft, hard = GumbelSoftmax(temperature=0.5), GumbelSoftmax(hard=True)
    expected = np.exp(2 * x) / np.exp(2 * x).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(to_numpy(soft(x)), expected, rtol=1e-5)
    np.testing.assert_array_equal(to_numpy(hard(x)), np.eye(8)[x.argmax(axis=-1)])
    a, b = to_numpy(soft(x, training=True)), to_numpy(soft(x, training=True))
    assert not np.allclose(a, b)  # a fresh draw per call
    always = GumbelSoftmax(hard=True, sample_at_inference=True, seed=0)
    assert not np.array_equal(to_numpy(always(x)), to_numpy(always(x)))


def test_seed_makes_layers_reproducible():
    x = np.zeros((16, 10), "float32")
    a = to_numpy(GumbelSoftmax(seed=7)(x, training=True))
    b = to_numpy(GumbelSoftmax(seed=7)(x, training=True))
    c = to_numpy(GumbelSoftmax(seed=8)(x, training=True))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_keras_mask_removes_classes():
    x = np.random.default_rng(0).normal(size=(500, 6)).astype("float32")
    mask = np.random.default_rng(1).uniform(size=(500, 6)) > 0.4
    mask[:, 2] = True
    for hard in (False, True):
        layer = GumbelSoftmax(hard=hard, seed=0)
        for training in (False, True):
            y = to_numpy(layer(x, training=training, mask=mask))
            assert np.all(y[~mask] == 0)
            np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-5)


def test_time_step_mask_passes_through():
    inputs = keras.Input(shape=(None,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(inputs)
    codes = GumbelSoftmax(hard=True)(embedded)
    assert codes._keras_mask is not None
    model = keras.Model(inputs, codes)
    y = to_numpy(model(np.array([[1, 2, 0]])))
    np.testing.assert_array_equal(y.sum(axis=-1), 1.0)


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"temperature": 0}, ValueError, r"`temperature`.*Received: temperature=0"),
        ({"temperature": -2.0}, ValueError, r"Received: temperature=-2.0"),
        ({"temperature": float("nan")}, ValueError, r"Received: temperature=nan"),
        ({"temperature": "1"}, ValueError, r"Received: temperature='1'"),
        ({"hard": "yes"}, TypeError, r"`hard`.*Received: hard='yes'"),
        ({"axis": 1.5}, TypeError, r"`axis`.*Received: axis=1.5"),
        ({"seed": "x"}, TypeError, r"`seed`.*Received: seed='x'"),
        ({"min_temperature": 0.0}, ValueError, r"`min_temperature`"),
        (
            {"learn_temperature": True, "temperature": 0.001},
            ValueError,
            r"temperature >= min_temperature",
        ),
        ({"temprature": 1.0}, ValueError, r"Unrecognized keyword arguments.*temprature"),
    ],
)
def test_bad_arguments_raise(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        GumbelSoftmax(**kwargs)


def test_bad_axis_for_input_rank_raises_at_build():
    with pytest.raises(ValueError, match=r"`axis`.*rank 2.*Received: axis=2"):
        GumbelSoftmax(axis=2)(keras.Input(shape=(4,)))
    with pytest.raises(ValueError, match=r"known number of classes"):
        GumbelSoftmax()(keras.Input(shape=(None,)))


def test_integer_inputs_raise():
    with pytest.raises(TypeError, match=r"`inputs`.*int32"):
        GumbelSoftmax()(np.zeros((2, 3), "int32"))


def test_learned_temperature_trains_and_stays_above_floor():
    # A loss that rewards peaked outputs drives tau down; a huge learning rate
    # would make it negative without the floor constraint.
    layer = GumbelSoftmax(temperature=1.0, learn_temperature=True, min_temperature=0.2, seed=0)
    model = keras.Sequential([keras.Input(shape=(6,)), layer])
    model.compile(
        optimizer=keras.optimizers.SGD(100.0), loss=lambda y, p: -keras.ops.max(p, axis=-1)
    )
    x = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")
    x[:, 3] = -np.inf  # the tau gradient must stay finite with -inf logits
    model.fit(x, np.zeros((64,)), epochs=2, batch_size=16, verbose=0)
    tau = float(to_numpy(layer.temperature_variable))
    assert tau == pytest.approx(0.2)


@pytest.mark.parametrize("mode", ["eager", "graph", pytest.param("xla", marks=SLOW_ON_TORCH)])
def test_fit_with_hard_samples_trains_the_layers_before(mode):
    if BACKEND == "jax" and mode == "graph":
        pytest.skip("JAX has no non-XLA graph mode")
    keras.utils.set_random_seed(0)
    encoder = keras.layers.Dense(10)
    model = keras.Sequential(
        [keras.Input(shape=(8,)), encoder, GumbelSoftmax(hard=True, seed=1), keras.layers.Dense(8)]
    )
    model.compile(
        optimizer="adam",
        loss="mse",
        run_eagerly=mode == "eager",
        jit_compile=mode == "xla",
    )
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    before = to_numpy(encoder.kernel).copy()
    model.fit(x, x, epochs=2, batch_size=16, verbose=0)
    assert np.abs(to_numpy(encoder.kernel) - before).max() > 1e-4
