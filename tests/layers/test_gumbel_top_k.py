"""Tests of the GumbelTopK layer."""

import keras
import numpy as np
import pytest
from testing import BACKEND
from testing import SLOW_ON_TORCH
from testing import check_layer
from testing import to_numpy

from keras_gumbel.callbacks import TemperatureScheduler
from keras_gumbel.layers import GumbelTopK
from keras_gumbel.layers.temperature_layer import codes_dtype
from keras_gumbel.schedules import ExponentialDecay


def _top_k_hot(x, k):
    order = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    k_hot = np.zeros_like(x)
    np.put_along_axis(k_hot, order, 1.0, axis=-1)
    return order, k_hot


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": 2, "temperature": 0.7, "seed": 1},
        {"k": 3, "temperature": 1.5, "hard": True, "seed": 2},
        {"k": 1, "hard": True, "axis": 1, "sample_at_inference": True, "seed": 3},
        {"k": 2, "learn_temperature": True, "min_temperature": 0.05, "seed": 4},
    ],
)
def test_layer_harness(kwargs, tmp_path):
    check_layer(GumbelTopK, kwargs, input_shape=(5, 6), tmp_path=tmp_path)


def test_inference_is_the_k_hot_of_the_top_k_logits_and_training_samples():
    x = np.random.default_rng(0).normal(size=(64, 9)).astype("float32")
    _, expected = _top_k_hot(x, 3)
    for hard in (False, True):
        layer = GumbelTopK(3, temperature=0.5, hard=hard, seed=0)
        np.testing.assert_array_equal(to_numpy(layer(x)), expected)
        a, b = to_numpy(layer(x, training=True)), to_numpy(layer(x, training=True))
        assert not np.array_equal(a, b)  # a fresh draw per call
        np.testing.assert_allclose(a.sum(axis=-1), 3.0, rtol=1e-5)
        assert np.all(a >= 0)
        if hard:
            assert set(np.unique(a)) == {0.0, 1.0}
    always = GumbelTopK(3, sample_at_inference=True, seed=0)
    assert not np.allclose(to_numpy(always(x)), to_numpy(always(x)))


def test_seed_makes_layers_reproducible():
    x = np.zeros((16, 10), "float32")
    a = to_numpy(GumbelTopK(4, seed=7)(x, training=True))
    b = to_numpy(GumbelTopK(4, seed=7)(x, training=True))
    c = to_numpy(GumbelTopK(4, seed=8)(x, training=True))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_keras_mask_removes_classes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6)).astype("float32")
    mask = rng.uniform(size=(500, 6)) > 0.4
    mask[:, :2] = True  # at least k = 2 allowed classes per row
    for hard in (False, True):
        layer = GumbelTopK(2, hard=hard, seed=0)
        for training in (False, True):
            y = to_numpy(layer(x, training=training, mask=mask))
            assert np.all(y[~mask] == 0)
            np.testing.assert_allclose(y.sum(axis=-1), 2.0, rtol=1e-5)


@pytest.mark.parametrize("axis", [-1, 1])
def test_discrete_codes_are_the_top_k_in_decreasing_order(axis):
    logits = np.random.default_rng(1).normal(size=(4, 6, 3)).astype("float32")
    layer = GumbelTopK(2, temperature=0.3, hard=True, axis=axis, seed=1)
    before = to_numpy(layer.seed_generator.state).copy()
    out = layer.discrete_codes(keras.ops.convert_to_tensor(logits))
    codes, k_hot, probs = (to_numpy(out[key]) for key in ("codes", "one_hot", "probs"))
    moved = np.moveaxis(logits, axis, -1)
    order, expected_k_hot = _top_k_hot(moved, 2)
    assert codes.dtype == np.dtype(codes_dtype())
    assert k_hot.dtype == probs.dtype == np.float32
    assert codes.shape == moved.shape[:-1] + (2,)
    np.testing.assert_array_equal(codes, order)
    np.testing.assert_array_equal(k_hot, expected_k_hot)
    # Temperature-free: softmax of the logits, although tau = 0.3.
    e = np.exp(moved - moved.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(axis=-1, keepdims=True), rtol=1e-6, atol=1e-7)
    # The same choice as the layer's own inference output; no random numbers.
    np.testing.assert_array_equal(np.moveaxis(to_numpy(layer(logits)), axis, -1), k_hot)
    np.testing.assert_array_equal(to_numpy(layer.seed_generator.state), before)
    assert GumbelTopK.codes_description


def test_discrete_codes_honour_a_mask_and_minus_inf():
    logits = np.array([[3.0, 2.0, 1.0, 0.0], [0.0, 5.0, -1.0, 4.0]], "float32")
    mask = np.array([[False, True, True, True], [True, False, True, True]])
    out = GumbelTopK(2).discrete_codes(keras.ops.convert_to_tensor(logits), mask=mask)
    np.testing.assert_array_equal(to_numpy(out["codes"]), [[1, 2], [3, 0]])
    probs = to_numpy(out["probs"])
    assert probs[0, 0] == 0.0 and probs[1, 1] == 0.0
    blocked = logits.copy()
    blocked[:, 0] = -np.inf
    out = GumbelTopK(2).discrete_codes(keras.ops.convert_to_tensor(blocked))
    np.testing.assert_array_equal(to_numpy(out["codes"]), [[1, 2], [1, 3]])


def test_temperature_scheduler_anneals_the_layer():
    layer = GumbelTopK(2, temperature=2.0, seed=0)
    model = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Dense(6), layer])
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")
    schedule = ExponentialDecay(initial=2.0, rate=0.1, minimum=0.3, interval=1)
    model.fit(x, x, batch_size=16, epochs=2, verbose=0, callbacks=[TemperatureScheduler(schedule)])
    assert float(to_numpy(layer.temperature_variable)) == pytest.approx(schedule(8), rel=1e-6)
    assert schedule(8) < 1.0


@pytest.mark.parametrize("mode", ["eager", "graph", pytest.param("xla", marks=SLOW_ON_TORCH)])
def test_fit_with_hard_samples_trains_the_layers_before(mode):
    if BACKEND == "jax" and mode == "graph":
        pytest.skip("JAX has no non-XLA graph mode")
    keras.utils.set_random_seed(0)
    encoder = keras.layers.Dense(10)
    model = keras.Sequential(
        [keras.Input(shape=(8,)), encoder, GumbelTopK(3, hard=True, seed=1), keras.layers.Dense(8)]
    )
    model.compile(
        optimizer="adam", loss="mse", run_eagerly=mode == "eager", jit_compile=mode == "xla"
    )
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    before = to_numpy(encoder.kernel).copy()
    model.fit(x, x, epochs=2, batch_size=16, verbose=0)
    assert np.abs(to_numpy(encoder.kernel) - before).max() > 1e-4


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"k": 0}, ValueError, r"`k`\. Expected an integer >= 1\. Received: k=0"),
        ({"k": -2}, ValueError, r"Received: k=-2"),
        ({"k": 1.5}, ValueError, r"Received: k=1\.5"),
        ({"k": "2"}, ValueError, r"Received: k='2'"),
        ({"k": 2, "temperature": 0}, ValueError, r"`temperature`.*Received: temperature=0"),
        ({"k": 2, "hard": "yes"}, TypeError, r"`hard`.*Received: hard='yes'"),
        ({"k": 2, "axis": 1.5}, TypeError, r"`axis`.*Received: axis=1.5"),
        ({"k": 2, "seed": "x"}, TypeError, r"`seed`.*Received: seed='x'"),
    ],
)
def test_bad_arguments_raise(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        GumbelTopK(**kwargs)


def test_arguments_that_depend_on_the_input_shape_raise_at_build():
    with pytest.raises(ValueError, match=r"`k`.*<= the number of classes, 4\. Received: k=5"):
        GumbelTopK(5)(keras.Input(shape=(4,)))
    with pytest.raises(ValueError, match=r"`axis`.*rank 2.*Received: axis=2"):
        GumbelTopK(1, axis=2)(keras.Input(shape=(4,)))
    with pytest.raises(ValueError, match=r"known number of classes"):
        GumbelTopK(1)(keras.Input(shape=(None,)))
    with pytest.raises(ValueError, match=r"at least k=3 candidate classes.*a row with 2"):
        GumbelTopK(3)(np.array([[0.0, 1.0, -np.inf, -np.inf]], "float32"), training=True)
