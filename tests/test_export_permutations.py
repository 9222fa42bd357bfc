"""Export of models with a GumbelSinkhorn or RelaxedSort layer: served permutations."""

import keras
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from testing import BACKEND

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="SavedModel export uses the TensorFlow backend"
)

if BACKEND == "tensorflow":
    import tensorflow as tf

    import keras_gumbel as kg
    from keras_gumbel.export import export_model
    from keras_gumbel.export import model_codes


def test_a_gumbel_sinkhorn_model_serves_the_exact_matching(tmp_path):
    n = 5
    inputs = keras.Input(shape=(8,))
    scores = keras.layers.Reshape((n, n))(keras.layers.Dense(n * n, name="scores")(inputs))
    perm = kg.GumbelSinkhorn(temperature=0.5, hard=True, name="perm")(scores)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(perm)))
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    path = export_model(model, tmp_path, "perm", x, verify_with_cli=False)
    out = tf.saved_model.load(str(path)).signatures["encode"](inputs=tf.constant(x))
    assert out["codes"].dtype == tf.int64 and out["codes"].shape == (64, n)
    assert out["one_hot"].shape == out["probs"].shape == (64, n, n)
    expected = model_codes(model, x)
    np.testing.assert_array_equal(out["codes"].numpy(), expected["codes"])
    np.testing.assert_array_equal(out["one_hot"].numpy(), expected["one_hot"])
    np.testing.assert_allclose(out["probs"].numpy(), expected["probs"], rtol=1e-5, atol=1e-6)
    # And those are the exact maximum-weight matchings of the layer's scores.
    s = keras.Model(inputs, scores)(x).numpy()
    for matrix, codes in zip(s, out["codes"].numpy(), strict=True):
        np.testing.assert_array_equal(codes, linear_sum_assignment(matrix, maximize=True)[1])


def test_a_relaxed_sort_model_serves_the_descending_order(tmp_path):
    inputs = keras.Input(shape=(4,))
    scores = keras.layers.Dense(6, name="scores")(inputs)
    ranked = kg.RelaxedSort(method="softsort", hard=True, name="sort")(scores)
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(ranked)))
    x = np.random.default_rng(1).normal(size=(32, 4)).astype("float32")
    path = export_model(model, tmp_path, "sort", x, verify_with_cli=False)
    out = tf.saved_model.load(str(path)).signatures["encode"](inputs=tf.constant(x))
    s = keras.Model(inputs, scores)(x).numpy()
    np.testing.assert_array_equal(out["codes"].numpy(), np.argsort(-s, axis=-1, kind="stable"))
    np.testing.assert_array_equal(out["codes"].numpy(), model_codes(model, x)["codes"])
