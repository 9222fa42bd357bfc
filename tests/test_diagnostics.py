"""Tests of the estimator diagnostics: exact gradients, bias and variance, plots."""

import json
from pathlib import Path

import numpy as np
import pytest
from testing import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "tensorflow", reason="diagnostics use tf.GradientTape")

if BACKEND == "tensorflow":
    import tensorflow as tf

    from keras_gumbel import diagnostics
    from keras_gumbel import estimators

PNG = b"\x89PNG\r\n\x1a\n"
WEIGHTS = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]], "float32")


def _linear(z):
    """sum(w * z): categorical latents [n, 2, 3] or Bernoulli latents [n, 3]."""
    weights = WEIGHTS if len(z.shape) == 3 else WEIGHTS[0]
    return tf.reduce_sum(tf.reshape(z * weights, [tf.shape(z)[0], -1]), -1)


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_configurations_enumerate_every_latent_value():
    z = diagnostics.configurations((2, 3), "categorical")
    assert z.shape == (9, 2, 3)
    np.testing.assert_array_equal(z.sum(-1), 1.0)
    assert len({tuple(row) for row in z.reshape(9, -1)}) == 9
    b = diagnostics.configurations((3,), "bernoulli")
    assert b.shape == (8, 3) and len({tuple(row) for row in b}) == 8
    with pytest.raises(ValueError, match="too many"):
        diagnostics.configurations((20, 10), "categorical")


def test_exact_gradient_of_a_linear_objective_is_the_softmax_jacobian():
    logits = np.array([[0.2, -1.0, 0.7], [1.0, 0.0, -2.0]], "float32")
    value, gradient = diagnostics.exact_gradient(logits, _linear, "categorical")
    p = _softmax(logits)
    assert value == pytest.approx(np.sum(p * WEIGHTS), rel=1e-5)
    # d/dl sum_c p_c w_c = p * (w - p . w) for each variable.
    expected = p * (WEIGHTS - np.sum(p * WEIGHTS, -1, keepdims=True))
    np.testing.assert_allclose(gradient, expected, rtol=1e-5, atol=1e-7)

    bits = np.array([0.3, -0.4, 2.0], "float32")
    value, gradient = diagnostics.exact_gradient(bits, _linear, "bernoulli")
    q = 1 / (1 + np.exp(-bits))
    assert value == pytest.approx(np.sum(q * WEIGHTS[0]), rel=1e-5)
    np.testing.assert_allclose(gradient, q * (1 - q) * WEIGHTS[0], rtol=1e-5)


def test_bias_variance_of_an_unbiased_and_a_biased_estimator():
    logits = np.array([[0.2, -1.0, 0.7], [1.0, 0.0, -2.0]], "float32")

    def objective(z):
        return tf.reduce_sum(
            tf.sin(3.0 * tf.reshape(z, [tf.shape(z)[0], -1])) * WEIGHTS.reshape(-1), -1
        )

    unbiased = {"class_name": "score_function", "config": {"normalize": False}}
    sf = diagnostics.gradient_bias_variance(unbiased, logits, objective, num_samples=8000)
    st = diagnostics.gradient_bias_variance("straight_through", logits, objective, num_samples=8000)
    assert sf.consistent_with_unbiased().tolist() == [True]
    assert st.consistent_with_unbiased().tolist() == [False]
    assert st.bias_norm[0] > 10 * st.noise_floor[0]
    assert sf.bias_norm[0] < 3 * sf.noise_floor[0]
    for result in (sf, st):
        assert result.mean.shape == result.variance.shape == (1, 2, 3)
        assert result.exact.shape == (2, 3)
    json.dumps(sf.to_dict())


def test_temperatures_standard_errors_and_state():
    logits = np.array([0.5, -0.5, 1.0], "float32")
    objective = _linear
    taus = [0.5, 1.0, 2.0]
    gs = diagnostics.gradient_bias_variance(
        "gumbel_softmax", logits, objective, taus, 4000, "bernoulli"
    )
    assert gs.temperatures.tolist() == taus and gs.mean.shape == (3, 3)
    # Gumbel-Softmax differs with the temperature; straight-through does
    # not, and is measured once.
    assert len(set(gs.total_variance.round(6))) == 3
    st = diagnostics.gradient_bias_variance(
        "straight_through", logits, objective, taus, 4000, "bernoulli"
    )
    assert np.all(st.mean == st.mean[0]) and np.all(st.variance == st.variance[0])
    # Four times the samples halve the standard error.
    more = diagnostics.gradient_bias_variance(
        "straight_through", logits, objective, [1.0], 16000, "bernoulli"
    )
    np.testing.assert_allclose(more.standard_error[0], st.standard_error[0] / 2, rtol=0.15)
    # A stateful estimator sees one uncounted warm-up batch, then updates
    # its statistics batch after batch, as in training.
    estimator = estimators.ScoreFunctionEstimator()
    diagnostics.gradient_bias_variance(
        estimator, logits, objective, [1.0], 3000, "bernoulli", batch_size=1000
    )
    assert float(estimator.num_updates.numpy()) == 4.0


def test_plot_bias_variance_writes_a_png(tmp_path):
    logits = np.zeros((2, 3), "float32")
    results = [
        diagnostics.gradient_bias_variance(name, logits, _linear, [0.5, 1.0], 1000)
        for name in ("gumbel_softmax", "st_gumbel_softmax")
    ]
    path = diagnostics.plot_bias_variance(results, tmp_path / "bias.png", title="test")
    assert Path(path).read_bytes()[:8] == PNG
    single = diagnostics.plot_bias_variance(results[0], tmp_path / "one.png")
    assert Path(single).read_bytes()[:8] == PNG


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        (dict(logits=np.zeros((2, 3, 4))), ValueError, r"`logits`.*\(num_vars, num_classes\)"),
        (dict(kind="bernoulli"), ValueError, r"`logits`"),
        (dict(num_samples=0), ValueError, r"`num_samples`"),
        (dict(temperatures=[]), ValueError, r"`temperatures`"),
        (dict(estimator="reinmax", temperatures=[0.5]), ValueError, r"`temperature`.*>= 1"),
        (dict(estimator="nope"), ValueError, r"`estimator`"),
    ],
)
def test_bad_arguments(kwargs, error, pattern):
    arguments = dict(estimator="gumbel_softmax", logits=np.zeros((2, 3)), objective=_linear)
    arguments.update(kwargs)
    with pytest.raises(error, match=pattern):
        diagnostics.gradient_bias_variance(**arguments)


def test_bonferroni_bound():
    assert diagnostics.bonferroni_bound(1, 0.05) == pytest.approx(1.959964, rel=1e-5)
    assert diagnostics.bonferroni_bound(6, 1e-3) == pytest.approx(3.7648, rel=1e-3)
