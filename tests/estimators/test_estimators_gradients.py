"""Gradient estimators against exact gradients on enumerable problems.

Each problem is one example with a few latent variables (2 categorical
variables of 3 classes: 9 configurations; 4 binary units: 16), so that the
gradient of E_q[f(z)] with respect to the logits is exact by enumeration.
Every estimate below is the mean of 20,000 single-sample gradients.

Unbiased estimators pass a Bonferroni-corrected z-test: every coordinate's
|mean - exact| / standard error stays below the two-sided bound for a
family-wise level of 1e-3 (3.76 for 6 coordinates). The same test
rejects each biased estimator, so it has power. Seeds are fixed, so the
outcomes are deterministic; the level says how unlikely a failure of a
correct implementation would be for an arbitrary seed.
"""

import numpy as np
import pytest
from testing import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "tensorflow", reason="gradients via tf.GradientTape")

if BACKEND == "tensorflow":
    import keras
    import tensorflow as tf

    from keras_gumbel import estimators
    from keras_gumbel.diagnostics import bonferroni_bound
    from keras_gumbel.diagnostics import gradient_bias_variance

SAMPLES = 20000
ALPHA = 1e-3


def _problem(kind, quadratic, seed=0):
    """Logits of one example and a smooth objective of its latents.

    The objective maps `z` through a fixed affine layer `h = W vec(z) + b`
    to either a quadratic `||h - t||^2` or a tiny decoder's Bernoulli NLL
    of a fixed binary target (not quadratic). Both accept relaxed samples.
    """
    rng = np.random.default_rng(seed)
    shape = (2, 3) if kind == "categorical" else (4,)
    size = int(np.prod(shape))
    weights = (0.7 * rng.normal(size=(size, 5))).astype("float32")
    bias = rng.normal(size=5).astype("float32")
    target = (rng.uniform(size=5) > 0.5).astype("float32")
    logits = rng.normal(size=shape).astype("float32")

    def objective(z):
        h = tf.reshape(tf.cast(z, tf.float32), [tf.shape(z)[0], size]) @ weights + bias
        if quadratic:
            return tf.reduce_sum((h - target) ** 2, axis=-1)
        labels = tf.broadcast_to(target, tf.shape(h))
        return tf.reduce_sum(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=2.0 * h), axis=-1
        )

    return logits, objective


def _measure(estimator, kind, quadratic, temperatures=(1.0,), **kwargs):
    logits, objective = _problem(kind, quadratic)
    return gradient_bias_variance(
        estimator,
        logits,
        objective,
        temperatures=temperatures,
        num_samples=SAMPLES,
        kind=kind,
        **kwargs,
    )


def _max_z(result):
    return float(np.max(np.abs(result.z_scores())))


def _bound(result):
    return bonferroni_bound(result.exact.size, ALPHA)


UNBIASED = [
    {"class_name": "score_function", "config": {"baseline": False, "normalize": False}},
    {"class_name": "score_function", "config": {"baseline": True, "normalize": False}},
    {"class_name": "muprop", "config": {"normalize": False}},
]


@pytest.mark.parametrize("kind", ["categorical", "bernoulli"])
@pytest.mark.parametrize("estimator", UNBIASED, ids=lambda e: f"{e['class_name']}-{e['config']}")
def test_unbiased_estimators_match_the_exact_gradient(estimator, kind):
    # A non-quadratic objective, where no Taylor expansion is exact.
    result = _measure(estimator, kind, quadratic=False)
    assert _max_z(result) < _bound(result), result.z_scores()
    # The test resolves the gradient: its standard error is small next to it.
    assert result.noise_floor[0] < 0.05 * np.linalg.norm(result.exact)


@pytest.mark.parametrize("kind", ["categorical", "bernoulli"])
def test_muprop_stays_unbiased_when_it_expands_another_function(kind):
    # A model with several stochastic layers hands MuProp its mean-field
    # network as `mean_field`; the learning signal stays `objective`, so any
    # expanded function that does not depend on the sample keeps the
    # estimate unbiased. Here it is the quadratic problem's objective.
    _, other = _problem(kind, quadratic=True)

    class ExpandsAnother(estimators.MuPropEstimator):
        def surrogate(self, objective, sample, logits, kind, inputs=None, mean_field=None):
            return super().surrogate(objective, sample, logits, kind, inputs, mean_field=other)

    estimator = ExpandsAnother(normalize=False, mean_field=True)
    result = _measure(estimator, kind, quadratic=False)
    assert _max_z(result) < _bound(result), result.z_scores()
    # The option changes the estimate: expanding the objective itself (plain
    # MuProp) gives a far better control variate than an unrelated function.
    plain = _measure(UNBIASED[2], kind, quadratic=False)
    assert plain.total_variance[0] < 0.7 * result.total_variance[0]


@pytest.mark.parametrize("kind", ["categorical", "bernoulli"])
def test_variance_normalization_only_rescales_the_score_function(kind):
    # With normalization the estimate is s * (unbiased estimate) for a
    # positive s <= 1 that depends only on earlier batches: the mean is
    # parallel to the exact gradient, not equal to it.
    result = _measure("score_function", kind, quadratic=False, batch_size=SAMPLES)
    mean, exact = result.mean[0].ravel(), result.exact.ravel()
    scale = mean @ exact / (exact @ exact)
    assert 0.05 < scale < 0.95
    residual = (mean - scale * exact) / result.standard_error[0].ravel()
    assert np.max(np.abs(residual)) < _bound(result)


@pytest.mark.parametrize("kind", ["categorical", "bernoulli"])
def test_muprop_and_baselines_reduce_the_variance_of_the_score_function(kind):
    plain = _measure(UNBIASED[0], kind, quadratic=False)
    baseline = _measure(UNBIASED[1], kind, quadratic=False)
    muprop = _measure(UNBIASED[2], kind, quadratic=False)
    assert baseline.total_variance[0] < 0.7 * plain.total_variance[0]
    assert muprop.total_variance[0] < 0.7 * baseline.total_variance[0]


def test_darn_is_exact_for_quadratic_objectives_of_binary_units():
    # f(1) - f(0) = f'(1/2) for a quadratic: DARN's Taylor signal around
    # 1/2 is then unbiased; for the decoder objective it is not.
    darn = {"class_name": "darn", "config": {"normalize": False}}
    quadratic = _measure(darn, "bernoulli", quadratic=True)
    assert _max_z(quadratic) < _bound(quadratic)
    decoder = _measure(darn, "bernoulli", quadratic=False)
    assert _max_z(decoder) > 3 * _bound(decoder)
    assert 0.02 < decoder.relative_bias[0] < 0.5
    # Categorical variables have no such point: biased even for quadratics.
    categorical = _measure(darn, "categorical", quadratic=True)
    assert _max_z(categorical) > 3 * _bound(categorical)


@pytest.mark.parametrize("kind", ["categorical", "bernoulli"])
def test_reinmax_is_exact_for_quadratic_objectives_at_temperature_one(kind):
    # Heun's method (the trapezoidal rule) integrates a quadratic exactly:
    # ReinMax is unbiased for objectives quadratic in each variable, where
    # straight-through is not.
    reinmax = _measure("reinmax", kind, quadratic=True)
    assert _max_z(reinmax) < _bound(reinmax)
    straight_through = _measure("straight_through", kind, quadratic=True)
    assert _max_z(straight_through) > 3 * _bound(straight_through)
    decoder = _measure("reinmax", kind, quadratic=False)
    assert _max_z(decoder) > 3 * _bound(decoder)


BIASED = [
    ("gumbel_softmax", 1.0),
    ("st_gumbel_softmax", 1.0),
    ("straight_through", 1.0),
    ("annealed_straight_through", 0.5),
    ("darn", 1.0),
    ("reinmax", 1.0),
    ("gumbel_rao", 1.0),
    ("gapped_straight_through", 1.0),
]


@pytest.mark.parametrize("kind", ["categorical", "bernoulli"])
@pytest.mark.parametrize("name, tau", BIASED)
def test_biased_estimators_have_a_measurable_bias_in_a_sane_range(name, tau, kind):
    estimator = estimators.get(name)
    assert estimator.biased
    result = _measure(estimator, kind, quadratic=False, temperatures=[tau])
    # Detectably biased on the non-quadratic objective...
    assert _max_z(result) > 3 * _bound(result)
    # ...but a descent direction, with an error smaller than the gradient.
    assert 0.01 < result.relative_bias[0] < 1.0
    assert result.cosine[0] > 0.9


def test_gumbel_softmax_bias_shrinks_and_variance_grows_as_the_temperature_falls():
    taus = [2.0, 1.0, 0.5, 0.25]
    result = _measure("gumbel_softmax", "categorical", quadratic=False, temperatures=taus)
    bias, floor = result.bias_norm, result.noise_floor
    # Each step down in temperature lowers the bias by far more than the
    # Monte Carlo error of either measurement.
    assert np.all(bias[:-1] - bias[1:] > 3 * (floor[:-1] + floor[1:])), (bias, floor)
    assert bias[-1] < 0.15 * bias[0]
    assert np.all(np.diff(result.total_variance) > 0)


@pytest.mark.parametrize("kind", ["categorical", "bernoulli"])
def test_gumbel_rao_has_the_mean_of_st_gumbel_softmax_with_less_variance(kind):
    # Rao-Blackwellization: same expectation, lower variance (K = 10).
    st = _measure("st_gumbel_softmax", kind, quadratic=False)
    rao = _measure("gumbel_rao", kind, quadratic=False)
    difference = (rao.mean[0] - st.mean[0]) / np.sqrt(
        rao.standard_error[0] ** 2 + st.standard_error[0] ** 2
    )
    assert np.max(np.abs(difference)) < _bound(st)
    assert rao.total_variance[0] < 0.8 * st.total_variance[0]
    one = _measure(estimators.GumbelRaoEstimator(num_samples=1), kind, quadratic=False)
    assert one.total_variance[0] > rao.total_variance[0]


HARD = [
    name
    for name in (
        "st_gumbel_softmax",
        "straight_through",
        "annealed_straight_through",
        "score_function",
        "darn",
        "muprop",
        "reinmax",
        "gumbel_rao",
        "gapped_straight_through",
    )
]


@pytest.mark.parametrize("name", HARD)
def test_forward_samples_are_exact_one_hot_categorical_samples(name):
    logits = tf.constant(np.log([[0.1, 0.2, 0.3, 0.4]] * 20000).astype("float32"))
    z = (
        estimators.get(name)
        .sample(logits, "categorical", 1.0, seed=keras.random.SeedGenerator(3))
        .numpy()
    )
    assert set(np.unique(z)) == {0.0, 1.0}
    np.testing.assert_array_equal(z.sum(axis=-1), 1.0)
    # Frequencies match softmax(logits): chi-square with 3 degrees of
    # freedom, below its 0.999 quantile (16.27).
    counts = z.sum(axis=0)
    expected = 20000 * np.array([0.1, 0.2, 0.3, 0.4])
    assert np.sum((counts - expected) ** 2 / expected) < 16.27


@pytest.mark.parametrize("name", HARD)
def test_forward_samples_are_exact_bernoulli_samples(name):
    p = np.array([0.1, 0.5, 0.8], "float32")
    logits = tf.constant(np.broadcast_to(np.log(p / (1 - p)), (20000, 3)).astype("float32"))
    z = (
        estimators.get(name)
        .sample(logits, "bernoulli", 1.0, seed=keras.random.SeedGenerator(4))
        .numpy()
    )
    assert set(np.unique(z)) <= {0.0, 1.0}
    # Each unit's frequency within 4.5 binomial standard errors.
    np.testing.assert_array_less(np.abs(z.mean(axis=0) - p), 4.5 * np.sqrt(p * (1 - p) / 20000))


def test_st_gumbel_softmax_forward_is_the_gumbel_max_sample():
    logits = tf.constant(np.random.default_rng(0).normal(size=(64, 5, 7)).astype("float32"))
    z = estimators.get("st_gumbel_softmax").sample(logits, "categorical", 0.7, seed=11).numpy()
    reference = estimators.exact_sample(logits, "categorical", seed=11).numpy()
    np.testing.assert_array_equal(z, reference)


def test_annealed_straight_through_is_straight_through_at_temperature_one():
    logits = tf.Variable(np.random.default_rng(1).normal(size=(32, 4, 5)).astype("float32"))
    weights = tf.constant(np.random.default_rng(2).normal(size=(4, 5)).astype("float32"))

    def gradient(name, tau):
        with tf.GradientTape() as tape:
            z = estimators.get(name).sample(logits, "categorical", tau, seed=5)
            loss = tf.reduce_sum(tf.sin(z * weights))
        return z.numpy(), tape.gradient(loss, logits).numpy()

    z_st, g_st = gradient("straight_through", 1.0)
    z_annealed, g_annealed = gradient("annealed_straight_through", 1.0)
    np.testing.assert_array_equal(z_annealed, z_st)
    np.testing.assert_allclose(g_annealed, g_st, rtol=1e-6, atol=1e-7)
    # A slope of 1 / tau: at tau = 0.5 the gradient changes.
    z_half, g_half = gradient("annealed_straight_through", 0.5)
    np.testing.assert_array_equal(z_half, z_st)
    assert not np.allclose(g_half, g_st)
