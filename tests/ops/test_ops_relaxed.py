"""Tests of keras_gumbel.ops: exactness, distributions, gradients, numerics.

Statistical tests use fixed seeds, so each is deterministic; the tolerances
are chosen so that a correct implementation would fail them with probability
about 0.3% (the 3-sigma level) or less for a fresh seed, while the errors
they guard against (a wrong noise distribution, a missing temperature, a
biased argmax) move the statistics far beyond them.
"""

import math

import keras
import numpy as np
import pytest
import scipy.stats
from testing import grad
from testing import to_numpy

from keras_gumbel import ops as G

# Family-wise false-alarm rate of each statistical test: the 3-sigma level.
ALPHA = 0.0027
_NEEDS_TFP = "TensorFlow Probability, the reference sampler, is not installed"


def _logits(k, seed=0, scale=1.5):
    return np.random.default_rng(seed).normal(scale=scale, size=k).astype("float32")


@pytest.mark.parametrize("k, draws", [(2, 100_000), (10, 100_000), (1000, 50_000)])
def test_gumbel_max_frequencies_match_softmax(k, draws):
    # The hard sample is one_hot(argmax(logits + g)): an exact categorical
    # draw. Counts are compared with softmax(logits) class by class (each
    # z-score within the Bonferroni bound that keeps the family-wise rate at
    # ALPHA, i.e. 3 standard errors for a single class) and jointly by a
    # chi-square test at level ALPHA.
    logits = _logits(k, seed=k)
    probs = scipy.special.softmax(logits.astype("float64"))
    seed = keras.random.SeedGenerator(k)
    counts = np.zeros(k)
    chunk = 10_000
    for _ in range(draws // chunk):
        batch = np.broadcast_to(logits, (chunk, k))
        y = to_numpy(G.gumbel_softmax(batch, 0.7, hard=True, seed=seed))
        counts += y.sum(axis=0)
    assert counts.sum() == draws
    z = (counts - draws * probs) / np.sqrt(draws * probs * (1 - probs))
    bound = scipy.stats.norm.isf(ALPHA / (2 * k))
    assert np.max(np.abs(z)) < bound, (np.max(np.abs(z)), bound)
    chi2 = np.sum((counts - draws * probs) ** 2 / (draws * probs))
    assert scipy.stats.chi2.sf(chi2, k - 1) > ALPHA


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0, 5.0])
def test_soft_samples_follow_tfp_relaxed_one_hot_categorical(tau):
    # Two-sample Kolmogorov-Smirnov test of every coordinate against TFP's
    # sampler, Bonferroni-corrected over the coordinates.
    tfp = pytest.importorskip("tensorflow_probability", reason=_NEEDS_TFP)
    logits = np.array([1.0, 0.0, -1.0, 0.5], dtype="float32")
    n = 20_000
    ours = to_numpy(G.gumbel_softmax(np.broadcast_to(logits, (n, 4)), tau, seed=int(tau * 100)))
    theirs = (
        tfp.distributions.RelaxedOneHotCategorical(tau, logits=logits).sample(n, seed=7).numpy()
    )
    for i in range(4):
        p = scipy.stats.ks_2samp(ours[:, i], theirs[:, i]).pvalue
        assert p > ALPHA / 4, (i, p)
    # A wrong temperature is caught: samples at 2 * tau differ significantly.
    other = to_numpy(G.gumbel_softmax(np.broadcast_to(logits, (n, 4)), 2 * tau, seed=3))
    assert scipy.stats.ks_2samp(other[:, 0], theirs[:, 0]).pvalue < 1e-6


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0, 5.0])
def test_binary_samples_follow_tfp_relaxed_bernoulli(tau):
    tfp = pytest.importorskip("tensorflow_probability", reason=_NEEDS_TFP)
    n = 20_000
    ours = to_numpy(G.gumbel_sigmoid(np.full((n,), 0.8, "float32"), tau, seed=5))
    theirs = tfp.distributions.RelaxedBernoulli(tau, logits=0.8).sample(n, seed=9).numpy()
    assert scipy.stats.ks_2samp(ours, theirs).pvalue > ALPHA


def test_hard_binary_frequency_is_sigmoid_of_logits():
    logits = np.array([-2.0, -0.3, 0.0, 1.2, 4.0], dtype="float32")
    n = 100_000
    y = to_numpy(G.gumbel_sigmoid(np.broadcast_to(logits, (n, 5)), 0.3, hard=True, seed=2))
    assert set(np.unique(y)) <= {0.0, 1.0}
    p = 1 / (1 + np.exp(-logits.astype("float64")))
    z = (y.mean(axis=0) - p) / np.sqrt(p * (1 - p) / n)
    assert np.max(np.abs(z)) < scipy.stats.norm.isf(ALPHA / 10)


@pytest.mark.parametrize("k", [2, 5, 30])
@pytest.mark.parametrize("tau", [0.1, 0.7, 3.0])
def test_relaxed_one_hot_log_prob_matches_tfp(k, tau):
    tfp = pytest.importorskip("tensorflow_probability", reason=_NEEDS_TFP)
    logits = np.random.default_rng(k).normal(size=(64, k)).astype("float32")
    sample = to_numpy(G.gumbel_softmax(logits, tau, seed=k))
    # Keep the points where float32 does not underflow, so both sides are
    # finite and the comparison is about the formula, not the rounding.
    sample = np.clip(sample, 1e-6, None)
    sample = sample / sample.sum(axis=-1, keepdims=True)
    ours = to_numpy(G.relaxed_one_hot_log_prob(sample, logits, tau))
    theirs = tfp.distributions.RelaxedOneHotCategorical(tau, logits=logits).log_prob(sample)
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=2e-4, atol=2e-3)


@pytest.mark.parametrize("tau", [0.1, 0.7, 3.0])
def test_relaxed_bernoulli_log_prob_matches_tfp(tau):
    tfp = pytest.importorskip("tensorflow_probability", reason=_NEEDS_TFP)
    logits = np.random.default_rng(1).normal(size=(256,)).astype("float32")
    sample = np.clip(to_numpy(G.gumbel_sigmoid(logits, tau, seed=4)), 1e-4, 1 - 1e-4)
    ours = to_numpy(G.relaxed_bernoulli_log_prob(sample, logits, tau))
    theirs = tfp.distributions.RelaxedBernoulli(tau, logits=logits).log_prob(sample)
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=2e-4, atol=2e-3)


def test_log_prob_integrates_to_one_for_two_classes():
    # For k = 2 the density on the segment y = (t, 1 - t) must integrate to 1;
    # a wrong normalizer (lgamma, tau power or Jacobian) breaks this.
    t = np.linspace(1e-6, 1 - 1e-6, 200_001).astype("float64")
    sample = np.stack([t, 1 - t], axis=-1).astype("float32")
    density = np.exp(
        to_numpy(G.relaxed_one_hot_log_prob(sample, np.array([0.3, -0.2], "float32"), 0.8))
    )
    assert abs(np.trapezoid(density, t) - 1) < 1e-3


def test_hard_samples_are_exactly_one_hot():
    rng = np.random.default_rng(3)
    for scale in (1e-3, 1.0, 30.0, 1e4):
        logits = (rng.normal(size=(5_000, 7)) * scale).astype("float32")
        for tau in (1e-3, 0.5, 10.0):
            y = to_numpy(G.gumbel_softmax(logits, tau, hard=True, seed=1))
            assert set(np.unique(y)) <= {0.0, 1.0}
            np.testing.assert_array_equal(y.sum(axis=-1), 1.0)


def test_hard_gradient_equals_soft_gradient_with_same_noise():
    logits = _logits(6, seed=1)[None].repeat(4, axis=0)
    w = np.random.default_rng(2).normal(size=(4, 6)).astype("float32")

    def loss(hard):
        return lambda x: keras.ops.sum(
            keras.ops.multiply(w, G.gumbel_softmax(x, 0.6, hard=hard, seed=11))
        )

    g_hard, g_soft = grad(loss(True), logits), grad(loss(False), logits)
    np.testing.assert_array_equal(g_hard, g_soft)
    assert np.abs(g_soft).max() > 1e-3


def test_soft_gradient_matches_analytic_formula():
    # d/dl_j sum_i w_i y_i = y_j (w_j - sum_i w_i y_i) / tau.
    tau = 0.6
    logits = np.random.default_rng(4).normal(size=(8, 5)).astype("float32")
    w = np.random.default_rng(5).normal(size=(8, 5)).astype("float32")
    y = to_numpy(G.gumbel_softmax(logits, tau, seed=21))
    expected = y * (w - (w * y).sum(axis=-1, keepdims=True)) / tau
    got = grad(
        lambda x: keras.ops.sum(keras.ops.multiply(w, G.gumbel_softmax(x, tau, seed=21))), logits
    )
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_binary_gradient_matches_analytic_formula():
    # d/dl sum w * sigmoid((l + L) / tau) = w * y * (1 - y) / tau.
    tau = 0.4
    logits = np.random.default_rng(6).normal(size=(50,)).astype("float32")
    w = np.random.default_rng(7).normal(size=(50,)).astype("float32")
    y = to_numpy(G.gumbel_sigmoid(logits, tau, seed=8))
    got = grad(
        lambda x: keras.ops.sum(keras.ops.multiply(w, G.gumbel_sigmoid(x, tau, hard=True, seed=8))),
        logits,
    )
    np.testing.assert_allclose(got, w * y * (1 - y) / tau, rtol=1e-4, atol=1e-6)


def test_temperature_limits():
    logits = _logits(10, seed=2)[None].repeat(2_000, axis=0)
    hot = to_numpy(G.gumbel_softmax(logits, 1e4, seed=1))
    np.testing.assert_allclose(hot, 0.1, atol=1e-3)
    cold = to_numpy(G.gumbel_softmax(logits, 1e-3, seed=1))
    assert np.mean(cold.max(axis=-1) > 0.999) > 0.99
    np.testing.assert_allclose(cold.sum(axis=-1), 1.0, rtol=1e-5)


def test_minus_inf_logits_are_never_chosen_and_exactly_zero():
    logits = np.random.default_rng(0).normal(size=(20_000, 6)).astype("float32")
    logits[:, [1, 4]] = -np.inf
    for hard in (False, True):
        y = to_numpy(G.gumbel_softmax(logits, 0.5, hard=hard, seed=3))
        assert np.all(y[:, [1, 4]] == 0)
        np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-5)
    g = grad(lambda x: keras.ops.sum(G.gumbel_softmax(x, 0.5, seed=3) ** 2), logits)
    assert np.all(np.isfinite(g)) and np.all(g[:, [1, 4]] == 0)


def test_mask_removes_classes_and_zeroes_fully_masked_rows():
    logits = np.random.default_rng(0).normal(size=(1_000, 5)).astype("float32")
    mask = np.ones((1_000, 5), bool)
    mask[:, 0] = False
    mask[:10] = False  # rows with no allowed class
    for hard in (False, True):
        y = to_numpy(G.gumbel_softmax(logits, 0.5, hard=hard, mask=mask, seed=3))
        assert np.all(y[~mask] == 0)
        np.testing.assert_allclose(y[10:].sum(axis=-1), 1.0, rtol=1e-5)
        assert np.all(y[:10] == 0)
    g = grad(lambda x: keras.ops.sum(G.gumbel_softmax(x, 0.5, mask=mask, seed=3) ** 2), logits)
    assert np.all(np.isfinite(g)) and np.all(g[~mask] == 0)
    mode = to_numpy(G.one_hot_argmax(logits, mask=mask))
    assert np.all(mode[~mask] == 0) and np.all(mode[10:].sum(axis=-1) == 1)


def test_no_nan_or_inf_for_extreme_inputs():
    # 10^6 categorical samples per configuration: logits up to +-1e4, -inf
    # entries, tau down to 1e-3, float32 / float16 / bfloat16 inputs.
    rng = np.random.default_rng(0)
    n, k = 100_000, 10
    logits = (rng.choice([-1e4, -30.0, 0.0, 30.0, 1e4], size=(n, k))).astype("float32")
    logits[rng.uniform(size=(n, k)) < 0.3] = -np.inf
    logits[:, 0] = rng.choice([-1e4, 1e4], size=n)  # one finite class per row
    for dtype in ("float32", "float16", "bfloat16"):
        x = keras.ops.cast(logits, dtype)
        for tau in (1e-3, 1.0):
            for hard in (False, True):
                y = to_numpy(keras.ops.cast(G.gumbel_softmax(x, tau, hard=hard, seed=1), "float32"))
                assert np.all(np.isfinite(y)), (dtype, tau, hard)
                np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-2)
            b = to_numpy(keras.ops.cast(G.gumbel_sigmoid(x, tau, seed=1), "float32"))
            assert np.all(np.isfinite(b)) and np.all((b >= 0) & (b <= 1))
        w = rng.normal(size=(1_000, k)).astype("float32")
        g = grad(
            lambda v, w=w: keras.ops.sum(
                keras.ops.multiply(w, keras.ops.cast(G.gumbel_softmax(v, 1e-3, seed=2), "float32"))
            ),
            keras.ops.cast(logits[:1_000], dtype),
        )
        assert np.all(np.isfinite(g.astype("float32"))), dtype


def test_noise_is_finite_and_has_gumbel_and_logistic_moments():
    g = to_numpy(G.gumbel_noise((1_000_000,), seed=0)).astype("float64")
    assert np.all(np.isfinite(g))
    # Gumbel(0, 1): mean = Euler's gamma, variance = pi^2 / 6; standard
    # errors of the estimates are about 0.0013 and 0.006.
    assert abs(g.mean() - np.euler_gamma) < 4 * math.sqrt(math.pi**2 / 6 / 1e6)
    assert abs(g.var() - math.pi**2 / 6) < 0.03
    logistic = to_numpy(G.logistic_noise((1_000_000,), seed=0)).astype("float64")
    assert np.all(np.isfinite(logistic))
    assert abs(logistic.mean()) < 4 * math.sqrt(math.pi**2 / 3 / 1e6)
    assert abs(logistic.var() - math.pi**2 / 3) < 0.05


def test_float16_inputs_give_float16_outputs():
    x = keras.ops.cast(np.zeros((3, 4)), "float16")
    assert keras.backend.standardize_dtype(G.gumbel_softmax(x, 0.5, seed=0).dtype) == "float16"
    assert keras.backend.standardize_dtype(G.gumbel_sigmoid(x, 0.5, seed=0).dtype) == "float16"


@pytest.mark.parametrize("tau", [0, -1.0, float("nan"), float("inf"), True])
def test_bad_temperature_is_rejected(tau):
    with pytest.raises(ValueError, match=r"`temperature`.*Received: temperature="):
        G.gumbel_softmax(np.zeros((2, 3), "float32"), tau)
    with pytest.raises(ValueError, match=r"`temperature`"):
        G.gumbel_sigmoid(np.zeros((2, 3), "float32"), tau)


def test_integer_logits_are_rejected():
    with pytest.raises(TypeError, match=r"`logits`.*Received: logits.dtype=int32"):
        G.gumbel_softmax(np.zeros((2, 3), "int32"))
    with pytest.raises(TypeError, match=r"`logits`"):
        G.gumbel_sigmoid(np.zeros((2, 3), "int32"))


@pytest.mark.parametrize("axis", [2, -3, 1.0])
def test_bad_axis_is_rejected(axis):
    with pytest.raises(ValueError, match=r"`axis`.*Received: axis="):
        G.gumbel_softmax(np.zeros((2, 3), "float32"), axis=axis)


def test_axis_other_than_last():
    logits = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")
    y = to_numpy(G.gumbel_softmax(logits, 0.5, axis=1, hard=True, seed=0))
    np.testing.assert_array_equal(y.sum(axis=1), 1.0)
    soft = to_numpy(G.gumbel_softmax(logits, 0.5, axis=1, seed=0))
    np.testing.assert_array_equal(soft.argmax(axis=1), y.argmax(axis=1))
