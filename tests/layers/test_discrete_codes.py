"""The discrete-codes protocol of GumbelSoftmax and GumbelSigmoid."""

import keras
import numpy as np
import pytest
from testing import to_numpy

from keras_gumbel.layers import GumbelSigmoid
from keras_gumbel.layers import GumbelSoftmax
from keras_gumbel.layers import TemperatureLayer
from keras_gumbel.layers.temperature_layer import codes_dtype

# int64, or int32 on JAX without 64-bit integers.
CODES_DTYPE = np.dtype(codes_dtype())


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _seed_state(layer):
    return to_numpy(layer.seed_generator.state).copy()


@pytest.mark.parametrize("axis", [-1, 1])
def test_softmax_codes_are_the_argmax_with_the_class_axis_last(axis):
    logits = np.random.default_rng(0).normal(size=(4, 5, 3)).astype("float32")
    layer = GumbelSoftmax(temperature=0.3, hard=True, axis=axis, seed=1)
    before = _seed_state(layer)
    out = layer.discrete_codes(keras.ops.convert_to_tensor(logits))
    codes, one_hot, probs = (to_numpy(out[k]) for k in ("codes", "one_hot", "probs"))
    moved = np.moveaxis(logits, axis, -1)
    k = moved.shape[-1]
    assert codes.dtype == CODES_DTYPE and one_hot.dtype == probs.dtype == np.float32
    assert codes.shape == moved.shape[:-1] and one_hot.shape == probs.shape == moved.shape
    np.testing.assert_array_equal(codes, moved.argmax(-1))
    np.testing.assert_array_equal(one_hot, np.eye(k, dtype="float32")[codes])
    # Temperature-free: softmax of the logits, although tau = 0.3.
    np.testing.assert_allclose(probs, _softmax(moved), rtol=1e-6, atol=1e-7)
    # The same choice as the layer's own deterministic hard output.
    hard = to_numpy(layer(logits))
    np.testing.assert_array_equal(np.moveaxis(hard, axis, -1), one_hot)
    # No random numbers: the seed generator has not advanced.
    np.testing.assert_array_equal(_seed_state(layer), before)


def test_softmax_codes_honour_a_class_mask_and_ignore_a_time_step_mask():
    logits = np.array([[[3.0, 2.0, 1.0], [0.0, 5.0, -1.0]]], "float32")  # [1, 2, 3]
    mask = np.array([[[False, True, True], [True, False, True]]])
    layer = GumbelSoftmax(hard=True)
    out = layer.discrete_codes(keras.ops.convert_to_tensor(logits), mask=mask)
    np.testing.assert_array_equal(to_numpy(out["codes"]), [[1, 0]])
    probs = to_numpy(out["probs"])
    assert probs[0, 0, 0] == 0.0 and probs[0, 1, 1] == 0.0
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
    # A time-step mask (lower rank) passes through `call`; the codes ignore it too.
    steps = layer.discrete_codes(
        keras.ops.convert_to_tensor(logits), mask=np.array([[True, False]])
    )
    np.testing.assert_array_equal(to_numpy(steps["codes"]), [[0, 1]])
    # -inf logits are never chosen.
    blocked = logits.copy()
    blocked[0, 0, 0] = -np.inf
    out = GumbelSoftmax().discrete_codes(keras.ops.convert_to_tensor(blocked))
    np.testing.assert_array_equal(to_numpy(out["codes"]), [[1, 1]])


def test_softmax_codes_of_half_precision_logits_are_float32():
    logits = np.random.default_rng(1).normal(size=(6, 4)).astype("float16")
    out = GumbelSoftmax().discrete_codes(keras.ops.convert_to_tensor(logits))
    assert to_numpy(out["probs"]).dtype == np.float32
    np.testing.assert_array_equal(to_numpy(out["codes"]), logits.astype("float32").argmax(-1))


def test_sigmoid_codes_are_the_sign_of_the_logits():
    logits = np.random.default_rng(2).normal(size=(5, 7)).astype("float32")
    layer = GumbelSigmoid(temperature=0.2, hard=True, seed=0)
    before = _seed_state(layer)
    out = layer.discrete_codes(keras.ops.convert_to_tensor(logits))
    codes, one_hot, probs = (to_numpy(out[k]) for k in ("codes", "one_hot", "probs"))
    bits = (logits > 0).astype("int64")
    assert codes.dtype == CODES_DTYPE and codes.shape == (5, 7)
    np.testing.assert_array_equal(codes, bits)
    np.testing.assert_array_equal(one_hot, np.stack([1 - bits, bits], -1).astype("float32"))
    p = 1.0 / (1.0 + np.exp(-logits))
    np.testing.assert_allclose(probs, np.stack([1 - p, p], -1), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(to_numpy(layer(logits)), bits.astype("float32"))
    np.testing.assert_array_equal(_seed_state(layer), before)
    masked = layer.discrete_codes(
        keras.ops.convert_to_tensor(np.ones((1, 2), "float32")), mask=np.array([[True, False]])
    )
    np.testing.assert_array_equal(to_numpy(masked["codes"]), [[1, 0]])


def test_codes_descriptions_and_the_protocol_declaration():
    assert GumbelSoftmax.codes_description and GumbelSigmoid.codes_description
    with pytest.raises(NotImplementedError, match="does not implement `discrete_codes`"):
        TemperatureLayer().discrete_codes(keras.ops.zeros((1, 2)))
    with pytest.raises(TypeError, match="Expected a floating-point tensor"):
        GumbelSoftmax().discrete_codes(keras.ops.zeros((1, 2), dtype="int32"))
