"""Tests of the GumbelSinkhorn layer."""

import itertools

import keras
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.stats import chi2_contingency
from testing import BACKEND
from testing import check_layer
from testing import grad
from testing import to_numpy

from keras_gumbel.callbacks import TemperatureScheduler
from keras_gumbel.layers import GumbelSinkhorn
from keras_gumbel.layers.temperature_layer import codes_dtype
from keras_gumbel.schedules import ExponentialDecay

PERMS = np.array(list(itertools.permutations(range(3))))
SCORES = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.5]], "float32")


def _matrix_index(y):
    """Index into PERMS of each permutation matrix in `y [N, 3, 3]`."""
    perm = y.argmax(-1)
    return (perm[:, None, :] == PERMS[None]).all(-1).argmax(-1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": 0.7, "seed": 1},
        {"temperature": 1.5, "hard": True, "num_iters": 5, "seed": 2},
        {"hard": True, "sample_at_inference": True, "noise_factor": 0.5, "seed": 3},
        {"learn_temperature": True, "min_temperature": 0.05, "seed": 4},
    ],
)
def test_layer_harness(kwargs, tmp_path):
    check_layer(GumbelSinkhorn, kwargs, input_shape=(4, 4), tmp_path=tmp_path)


def test_hard_samples_follow_the_gumbel_matching_distribution_not_the_gibbs_one():
    # Reference: NumPy's own Gumbel noise, brute force over the 6
    # permutations of the perturbed 3 x 3 scores, 20 times the layer's sample.
    rng = np.random.default_rng(0)
    perturbed = SCORES + rng.gumbel(size=(400_000, 3, 3))
    totals = perturbed[:, np.arange(3), PERMS].sum(-1)
    reference = np.bincount(totals.argmax(-1), minlength=6)
    n = 20_000
    layer = GumbelSinkhorn(temperature=0.5, hard=True, seed=0)
    y = to_numpy(layer(np.broadcast_to(SCORES, (n, 3, 3)), training=True))
    np.testing.assert_array_equal(np.sort(y.argmax(-1), axis=-1), np.tile(np.arange(3), (n, 1)))
    observed = np.bincount(_matrix_index(y), minlength=6)
    # Two-sample chi-square test of homogeneity (5 degrees of freedom) at
    # level 1e-3: a correct sampler fails it with probability 1e-3 (the
    # seeds are fixed, so the outcome is reproducible).
    assert chi2_contingency(np.stack([observed, reference])).pvalue > 1e-3
    # Power: the Gibbs distribution over permutations, softmax of the total
    # scores, puts 0.71 on the identity where Gumbel matching puts 0.56; the
    # noncentrality of the same test at these sizes is about 1,900, so it
    # rejects with probability indistinguishable from 1. Check that it does.
    gibbs = np.exp(SCORES[np.arange(3), PERMS].sum(-1))
    wrong = rng.multinomial(n, gibbs / gibbs.sum())
    assert chi2_contingency(np.stack([wrong, reference])).pvalue < 1e-3


def test_inference_is_deterministic_sinkhorn_or_the_exact_matching():
    x = np.random.default_rng(0).normal(size=(16, 5, 5)).astype("float32")
    soft = GumbelSinkhorn(temperature=2.0, seed=0)
    y = to_numpy(soft(x))
    np.testing.assert_array_equal(y, to_numpy(soft(x)))
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(y.sum(-2), 1.0, atol=1e-4)
    from keras_gumbel.ops import sinkhorn

    np.testing.assert_allclose(y, to_numpy(sinkhorn(x / 2.0)), rtol=1e-6)
    hard = GumbelSinkhorn(hard=True, seed=0)
    before = to_numpy(hard.seed_generator.state).copy()
    y = to_numpy(hard(x))
    np.testing.assert_array_equal(to_numpy(hard.seed_generator.state), before)
    for scores, matrix in zip(x, y, strict=True):
        _, perm = linear_sum_assignment(scores, maximize=True)
        np.testing.assert_array_equal(matrix, np.eye(5)[perm])
    # Training draws fresh noise on every call.
    a, b = to_numpy(soft(x, training=True)), to_numpy(soft(x, training=True))
    assert not np.allclose(a, b)


def test_seed_makes_layers_reproducible():
    x = np.zeros((8, 4, 4), "float32")
    a = to_numpy(GumbelSinkhorn(seed=7)(x, training=True))
    b = to_numpy(GumbelSinkhorn(seed=7)(x, training=True))
    c = to_numpy(GumbelSinkhorn(seed=8)(x, training=True))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_straight_through_gradient_is_the_soft_samples_and_finite_at_extremes():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 5, 5)).astype("float32")
    for scale in (1.0, 1e4):
        x = (rng.normal(size=(4, 5, 5)) * scale).astype("float32")
        grads = {}
        for hard in (False, True):
            layer = GumbelSinkhorn(temperature=0.5, hard=hard, seed=3)
            grads[hard] = grad(
                lambda t, layer=layer: keras.ops.sum(
                    layer(t, training=True) * keras.ops.convert_to_tensor(w)
                ),
                x,
            )
            assert np.all(np.isfinite(grads[hard]))
        np.testing.assert_array_equal(grads[True], grads[False])
        if scale == 1.0:
            assert np.abs(grads[True]).max() > 1e-2


def test_temperature_gradient_when_learned():
    layer = GumbelSinkhorn(temperature=1.0, learn_temperature=True, seed=0)
    x = keras.ops.convert_to_tensor(np.random.default_rng(0).normal(size=(4, 4, 4)), "float32")
    w = np.random.default_rng(1).normal(size=(4, 4, 4)).astype("float32")
    layer.build(x.shape)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = keras.ops.sum(layer(x, training=True) * keras.ops.convert_to_tensor(w))
        g = tape.gradient(loss, layer.temperature_variable.value)
        assert np.isfinite(float(g)) and float(g) != 0.0
    assert layer.trainable_weights == [layer.temperature_variable]


def test_discrete_codes_are_the_exact_matching():
    x = np.random.default_rng(2).normal(size=(6, 5, 5)).astype("float32")
    layer = GumbelSinkhorn(temperature=0.3, hard=True, seed=1)
    before = to_numpy(layer.seed_generator.state).copy()
    out = layer.discrete_codes(keras.ops.convert_to_tensor(x))
    codes, one_hot, probs = (to_numpy(out[k]) for k in ("codes", "one_hot", "probs"))
    assert codes.dtype == np.dtype(codes_dtype())
    assert one_hot.dtype == probs.dtype == np.float32
    assert codes.shape == (6, 5) and one_hot.shape == probs.shape == (6, 5, 5)
    for scores, perm in zip(x, codes, strict=True):
        np.testing.assert_array_equal(perm, linear_sum_assignment(scores, maximize=True)[1])
    np.testing.assert_array_equal(one_hot, np.eye(5, dtype="float32")[codes])
    np.testing.assert_array_equal(one_hot, to_numpy(layer(x)))
    # Temperature-free: the Sinkhorn matrix of the scores, although tau = 0.3.
    from keras_gumbel.ops import sinkhorn

    np.testing.assert_allclose(probs, to_numpy(sinkhorn(x)), rtol=1e-6)
    np.testing.assert_array_equal(to_numpy(layer.seed_generator.state), before)
    assert GumbelSinkhorn.codes_description


def test_mask_passes_through():
    x = np.random.default_rng(0).normal(size=(2, 4, 4)).astype("float32")
    mask = np.ones((2, 4), bool)
    layer = GumbelSinkhorn()
    np.testing.assert_array_equal(to_numpy(layer(x, mask=mask)), to_numpy(layer(x)))
    assert to_numpy(layer.compute_mask(x, mask)).tolist() == mask.tolist()


def test_temperature_scheduler_anneals_the_layer():
    layer = GumbelSinkhorn(temperature=2.0, seed=0)
    model = keras.Sequential([keras.Input(shape=(4, 4)), keras.layers.Dense(4), layer])
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(32, 4, 4)).astype("float32")
    schedule = ExponentialDecay(initial=2.0, rate=0.1, minimum=0.3, interval=1)
    model.fit(x, x, batch_size=8, epochs=2, verbose=0, callbacks=[TemperatureScheduler(schedule)])
    assert float(to_numpy(layer.temperature_variable)) == pytest.approx(schedule(8), rel=1e-6)


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_fit_with_hard_samples_trains_the_layers_before(mode):
    if BACKEND == "jax" and mode == "graph":
        pytest.skip("JAX has no non-XLA graph mode")
    keras.utils.set_random_seed(0)
    encoder = keras.layers.Dense(5)
    model = keras.Sequential(
        [keras.Input(shape=(5, 5)), encoder, GumbelSinkhorn(hard=True, seed=1)]
    )
    model.compile(
        optimizer="adam", loss="mse", run_eagerly=mode == "eager", jit_compile=mode == "xla"
    )
    x = np.random.default_rng(0).normal(size=(32, 5, 5)).astype("float32")
    target = np.tile(np.eye(5, dtype="float32"), (32, 1, 1))
    before = to_numpy(encoder.kernel).copy()
    model.fit(x, target, epochs=2, batch_size=16, verbose=0)
    assert np.abs(to_numpy(encoder.kernel) - before).max() > 1e-4


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"temperature": 0}, ValueError, r"`temperature`.*Received: temperature=0"),
        ({"num_iters": 0}, ValueError, r"`num_iters`\. Expected an integer >= 1\. .*=0"),
        ({"num_iters": 2.5}, ValueError, r"Received: num_iters=2\.5"),
        ({"noise_factor": -0.5}, ValueError, r"`noise_factor`.*>= 0\. .*noise_factor=-0\.5"),
        ({"noise_factor": "1"}, ValueError, r"Received: noise_factor='1'"),
        ({"hard": "yes"}, TypeError, r"`hard`.*Received: hard='yes'"),
        ({"seed": "x"}, TypeError, r"`seed`.*Received: seed='x'"),
    ],
)
def test_bad_arguments_raise(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        GumbelSinkhorn(**kwargs)


def test_inputs_that_are_not_square_matrices_raise_at_build():
    with pytest.raises(ValueError, match=r"\[batch, \.\.\., n, n\].*input_shape=\(None, 4, 3\)"):
        GumbelSinkhorn()(keras.Input(shape=(4, 3)))
    with pytest.raises(ValueError, match=r"input_shape=\(None, 4\)"):
        GumbelSinkhorn()(keras.Input(shape=(4,)))
    with pytest.raises(TypeError, match=r"floating-point.*inputs\.dtype=int32"):
        GumbelSinkhorn()(np.zeros((1, 3, 3), "int32"))
