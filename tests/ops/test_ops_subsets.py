"""Tests of keras_gumbel.ops.subsets: Gumbel-top-k samples, exact and relaxed.

Statistical tests use fixed seeds, so each is deterministic; their level is
ALPHA = 0.0027 (the 3-sigma level): a correct sampler would fail them with
that probability for a fresh seed, while the errors they guard against
(sampling with replacement, a wrong order, a biased noise) move the
statistics far beyond them, which each test shows on the same counts.
"""

import itertools

import keras
import numpy as np
import pytest
import scipy.special
import scipy.stats
from testing import BACKEND
from testing import grad
from testing import to_numpy

from keras_gumbel import ops as G

ALPHA = 0.0027


def _noise(shape, seed):
    """The Gumbel noise that an op called with the int `seed` draws."""
    return to_numpy(G.gumbel_noise(shape, seed=seed)).astype("float64")


def _reference(logits, noise, k, tau):
    """Xie & Ermon's k successive softmaxes in float64, from the paper's formula."""
    z = (logits.astype("float64") + noise) / tau
    total = np.zeros_like(z)
    classes = z.shape[-1]
    for _ in range(k):
        total += scipy.special.softmax(z, axis=-1)
        # log(1 - a_i): the log-sum-exp of the other scores minus that of all,
        # exact in float64 even where a_i rounds to 1.
        others = np.stack(
            [scipy.special.logsumexp(np.delete(z, i, axis=-1), axis=-1) for i in range(classes)],
            axis=-1,
        )
        z = z + (others - scipy.special.logsumexp(z, axis=-1, keepdims=True)) / tau
    return total


def _compiled(fn, xla=True):
    """`fn` compiled by the backend (XLA where there is a choice)."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=xla, autograph=False)
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    # torch.compile works, but compiles for minutes on a CPU; the compiled
    # path of these ops is checked on TensorFlow and JAX.
    pytest.skip(f"no compiled mode tested on {BACKEND}: torch.compile is too slow on CPU")


# gumbel_top_k: exact samples without replacement.


def test_ordered_pairs_follow_sequential_sampling_without_replacement():
    # K = 4, k = 2: the 12 ordered pairs (i, j) have probability
    # p_i p_j / (1 - p_i). 100,000 draws in one vectorized call; a
    # chi-square test with 11 degrees of freedom at level ALPHA.
    logits = np.array([1.0, 0.2, -0.5, -1.2], "float32")
    p = scipy.special.softmax(logits.astype("float64"))
    draws = 100_000
    indices, k_hot = G.gumbel_top_k(np.broadcast_to(logits, (draws, 4)), 2, seed=12)
    indices, k_hot = to_numpy(indices), to_numpy(k_hot)
    assert indices.shape == (draws, 2) and k_hot.shape == (draws, 4)
    pairs = list(itertools.permutations(range(4), 2))
    codes = indices[:, 0] * 4 + indices[:, 1]
    counts = np.array([np.sum(codes == i * 4 + j) for i, j in pairs])
    assert counts.sum() == draws  # every draw is an ordered pair of distinct classes
    expected = draws * np.array([p[i] * p[j] / (1 - p[i]) for i, j in pairs])
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert scipy.stats.chi2.sf(chi2, len(pairs) - 1) > ALPHA, chi2
    # The same counts reject the nearest wrong sampler: two independent draws
    # conditioned on being distinct, p_i p_j / (1 - sum p^2).
    wrong = draws * np.array([p[i] * p[j] for i, j in pairs]) / (1 - np.sum(p**2))
    assert scipy.stats.chi2.sf(np.sum((counts - wrong) ** 2 / wrong), len(pairs) - 1) < 1e-12


def test_large_k_never_repeats_and_is_sorted_by_perturbed_score():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(2_000, 1_000)).astype("float32")
    logits[:500] = 0.0  # equal logits: only the noise decides
    indices, k_hot = G.gumbel_top_k(logits, 10, seed=5)
    indices, k_hot = to_numpy(indices), to_numpy(k_hot)
    assert indices.dtype == np.int32 and indices.shape == (2_000, 10)
    assert all(len(set(row)) == 10 for row in indices)
    assert np.all((indices >= 0) & (indices < 1_000))
    np.testing.assert_array_equal(k_hot.sum(axis=-1), 10.0)
    np.testing.assert_array_equal(np.take_along_axis(k_hot, indices, axis=-1), 1.0)
    scores = logits + _noise(logits.shape, 5)
    expected = np.argsort(-scores, axis=-1, kind="stable")[:, :10]
    np.testing.assert_array_equal(indices, expected)


def test_k_hot_top_k_is_the_noise_free_mode():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(300, 12)).astype("float32")
    indices, k_hot = G.k_hot_top_k(logits, 4)
    expected = np.argsort(-logits, axis=-1, kind="stable")[:, :4]
    np.testing.assert_array_equal(to_numpy(indices), expected)
    np.testing.assert_array_equal(to_numpy(k_hot).sum(axis=-1), 4.0)
    ties, _ = G.k_hot_top_k(np.zeros((2, 6), "float32"), 3)
    np.testing.assert_array_equal(to_numpy(ties), [[0, 1, 2], [0, 1, 2]])


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_k_hot_top_k_ties_zero_with_negative_zero(compiled):
    # XLA's sort puts -0.0 before 0.0: a sort of the negated logits chose
    # [2, 1, 3] under TensorFlow's XLA.
    fn = lambda t: G.k_hot_top_k(t, 3)[0]  # noqa: E731
    indices = (_compiled(fn) if compiled else fn)(np.array([[-0.0, 0.0, 1.0, 0.0]], "float32"))
    np.testing.assert_array_equal(to_numpy(indices), [[2, 0, 1]])


# relaxed_top_k: the relaxation.


@pytest.mark.parametrize(
    "scale, tau", [(2.0, 0.3), (2.0, 1.0), (2.0, 5.0), (40.0, 0.5), (40.0, 3.0)]
)
def test_relaxed_sample_matches_float64_reference_with_the_same_noise(scale, tau):
    # At scale 40 a leading class often takes all but e^-87 of a softmax in
    # float32, where log(1 - a) is taken from the score gap; float64 still
    # resolves it.
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=scale, size=(500, 9)).astype("float32")
    got = to_numpy(G.relaxed_top_k(logits, 4, tau, seed=7))
    expected = _reference(logits, _noise(logits.shape, 7), 4, tau)
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("tau", [1e-3, 0.1, 1.0, 10.0, 1e3])
def test_relaxed_sample_is_nonnegative_and_sums_to_k(tau):
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=3.0, size=(2_000, 20)).astype("float32")
    y = to_numpy(G.relaxed_top_k(logits, 5, tau, seed=1))
    assert np.all(y >= 0)
    np.testing.assert_allclose(y.sum(axis=-1), 5.0, rtol=1e-5)


def test_an_entry_may_exceed_one_at_moderate_temperature():
    # The relaxation, not an error: a dominant class keeps part of its
    # weight after being chosen. The float64 reference agrees.
    logits = np.array([[6.0, 0.0, 0.0, 0.0]], "float32")
    y = to_numpy(G.relaxed_top_k(logits, 2, 2.0, seed=0))
    assert y.max() > 1.05
    np.testing.assert_allclose(y, _reference(logits, _noise((1, 4), 0), 2, 2.0), rtol=1e-5)


@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_cold_relaxed_sample_is_the_k_hot_of_the_same_noise(scale):
    # At tau = 1e-5 the relaxed sample equals the k-hot of gumbel_top_k with
    # the same seed, except in rows where two of the k + 1 largest perturbed
    # scores lie within 2e-3 of each other (at scale 1e4 float32 spacing is
    # about 1e-3, so such ties are exact there): the softmaxes at that
    # temperature still split the weight. Those rows are counted and must be
    # rare; at 2e-3 / tau = 200 every other row is decided to within e^-200.
    rng = np.random.default_rng(4)
    logits = (rng.normal(size=(20_000, 10)) * scale).astype("float32")
    if scale > 1:
        logits[:, :5] = 1e4 + rng.normal(size=(20_000, 5)).astype("float32")
    y = to_numpy(G.relaxed_top_k(logits, 3, 1e-5, seed=9))
    _, k_hot = G.gumbel_top_k(logits, 3, seed=9)
    scores = np.sort(logits + _noise(logits.shape, 9).astype("float32"), axis=-1)[:, ::-1]
    gaps = np.abs(np.diff(scores[:, :4], axis=-1)).min(axis=-1)
    near_tie = gaps < 2e-3
    assert near_tie.mean() < 0.01, near_tie.mean()
    np.testing.assert_allclose(y[~near_tie], to_numpy(k_hot)[~near_tie], atol=1e-5)
    np.testing.assert_allclose(y.sum(axis=-1), 3.0, rtol=1e-5)


def test_hard_sample_is_exactly_k_hot_with_the_relaxed_gradient():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(64, 12)).astype("float32")
    w = rng.normal(size=(64, 12)).astype("float32")
    hard = to_numpy(G.relaxed_top_k(logits, 4, 0.5, hard=True, seed=3))
    _, k_hot = G.gumbel_top_k(logits, 4, seed=3)
    np.testing.assert_array_equal(hard, to_numpy(k_hot))
    assert set(np.unique(hard)) == {0.0, 1.0}

    def loss(is_hard):
        return lambda x: keras.ops.sum(
            keras.ops.multiply(w, G.relaxed_top_k(x, 4, 0.5, hard=is_hard, seed=3))
        )

    g_hard, g_soft = grad(loss(True), logits), grad(loss(False), logits)
    np.testing.assert_array_equal(g_hard, g_soft)
    assert np.abs(g_soft).max() > 1e-2


def test_relaxed_gradient_matches_finite_differences():
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(4, 6)).astype("float32")
    w = rng.normal(size=(4, 6))
    tau, k, seed = 0.7, 3, 11
    noise = _noise(logits.shape, seed)
    got = grad(
        lambda x: keras.ops.sum(
            keras.ops.multiply(w.astype("float32"), G.relaxed_top_k(x, k, tau, seed=seed))
        ),
        logits,
    )
    expected = np.zeros(logits.shape)
    h = 1e-6
    for index in np.ndindex(logits.shape):
        step = np.zeros(logits.shape)
        step[index] = h
        up = np.sum(w * _reference(logits + step, noise, k, tau))
        down = np.sum(w * _reference(logits - step, noise, k, tau))
        expected[index] = (up - down) / (2 * h)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
    assert np.abs(expected).max() > 0.1


def test_minus_inf_logits_are_never_chosen_and_exactly_zero():
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(5_000, 8)).astype("float32")
    logits[:, [1, 6]] = -np.inf
    indices, k_hot = G.gumbel_top_k(logits, 3, seed=2)
    assert not np.isin(to_numpy(indices), [1, 6]).any()
    assert np.all(to_numpy(k_hot)[:, [1, 6]] == 0)
    for hard in (False, True):
        y = to_numpy(G.relaxed_top_k(logits, 3, 0.5, hard=hard, seed=2))
        assert np.all(y[:, [1, 6]] == 0)
        np.testing.assert_allclose(y.sum(axis=-1), 3.0, rtol=1e-5)
    g = grad(lambda x: keras.ops.sum(G.relaxed_top_k(x, 3, 0.5, seed=2) ** 2), logits)
    assert np.all(np.isfinite(g)) and np.all(g[:, [1, 6]] == 0)
    # The last candidate classes are all chosen when exactly k remain.
    _, k_hot = G.gumbel_top_k(logits[:, [0, 1, 2, 6]], 2, seed=1)
    np.testing.assert_array_equal(to_numpy(k_hot), np.tile([1.0, 0.0, 1.0, 0.0], (5_000, 1)))


def test_mask_removes_classes():
    rng = np.random.default_rng(8)
    logits = rng.normal(size=(2_000, 7)).astype("float32")
    mask = rng.uniform(size=(2_000, 7)) > 0.3
    mask[:, :3] = True  # at least k = 3 candidates per row
    indices, k_hot = G.gumbel_top_k(logits, 3, mask=mask, seed=4)
    assert np.all(np.take_along_axis(mask, to_numpy(indices), axis=-1))
    assert np.all(to_numpy(k_hot)[~mask] == 0)
    for hard in (False, True):
        y = to_numpy(G.relaxed_top_k(logits, 3, 0.3, hard=hard, mask=mask, seed=4))
        assert np.all(y[~mask] == 0)
        np.testing.assert_allclose(y.sum(axis=-1), 3.0, rtol=1e-5)
    mode, _ = G.k_hot_top_k(logits, 3, mask=mask)
    assert np.all(np.take_along_axis(mask, to_numpy(mode), axis=-1))


def test_no_nan_for_extreme_logits_and_low_precision():
    rng = np.random.default_rng(9)
    n, k_classes = 20_000, 10
    logits = rng.choice([-1e4, -30.0, 0.0, 30.0, 1e4], size=(n, k_classes)).astype("float32")
    logits[rng.uniform(size=(n, k_classes)) < 0.25] = -np.inf
    logits[:, :3] = rng.choice([-1e4, 1e4], size=(n, 3))  # k = 3 finite classes per row
    for dtype in ("float32", "float16", "bfloat16"):
        x = keras.ops.cast(logits, dtype)
        for tau in (1e-5, 1.0, 100.0):
            for hard in (False, True):
                y = keras.ops.cast(G.relaxed_top_k(x, 3, tau, hard=hard, seed=1), "float32")
                y = to_numpy(y)
                assert np.all(np.isfinite(y)) and np.all(y >= 0), (dtype, tau, hard)
                np.testing.assert_allclose(y.sum(axis=-1), 3.0, atol=0.05)
                assert np.all(y[np.isneginf(logits)] == 0)
        w = rng.normal(size=(1_000, k_classes)).astype("float32")
        for tau in (1e-5, 1.0):
            g = grad(
                lambda v, w=w, tau=tau: keras.ops.sum(
                    keras.ops.multiply(
                        w, keras.ops.cast(G.relaxed_top_k(v, 3, tau, seed=2), "float32")
                    )
                ),
                keras.ops.cast(logits[:1_000], dtype),
            )
            assert np.all(np.isfinite(g.astype("float32"))), (dtype, tau)


def test_low_precision_inputs_give_low_precision_outputs():
    for dtype in ("float16", "bfloat16"):
        x = keras.ops.cast(np.zeros((3, 5)), dtype)
        y = G.relaxed_top_k(x, 2, 0.5, seed=0)
        assert keras.backend.standardize_dtype(y.dtype) == dtype
        indices, k_hot = G.gumbel_top_k(x, 2, seed=0)
        assert keras.backend.standardize_dtype(k_hot.dtype) == dtype
        assert keras.backend.standardize_dtype(indices.dtype) == "int32"


def test_fewer_than_k_candidates_raise_when_values_are_known():
    logits = np.zeros((3, 5), "float32")
    logits[1, 2:] = -np.inf  # two finite classes
    pattern = r"at least k=3 candidate classes.*Received: a row with 2"
    with pytest.raises(ValueError, match=pattern):
        G.gumbel_top_k(logits, 3, seed=0)
    with pytest.raises(ValueError, match=pattern):
        G.relaxed_top_k(logits, 3, 0.5, seed=0)
    mask = np.ones((3, 5), bool)
    mask[2, 1:] = False
    with pytest.raises(ValueError, match=r"`k_hot_top_k`.*a row with 1"):
        G.k_hot_top_k(np.zeros((3, 5), "float32"), 3, mask=mask)


def test_fewer_than_k_candidates_in_compiled_code_choose_all_of_them():
    # Inside a compiled function the check cannot run; the documented
    # result is all the row's candidates, -1 for the missing indices.
    logits = np.zeros((2, 5), "float32")
    logits[1, 2:] = -np.inf
    top_k = _compiled(lambda x: G.gumbel_top_k(x, 3, seed=0))
    indices, k_hot = (to_numpy(t) for t in top_k(logits))
    assert sorted(indices[1][:2]) == [0, 1] and indices[1][2] == -1
    np.testing.assert_array_equal(k_hot[1], [1, 1, 0, 0, 0])
    assert len(set(indices[0])) == 3
    relaxed = _compiled(lambda x: G.relaxed_top_k(x, 3, 0.1, seed=0))
    y = to_numpy(relaxed(logits))
    assert np.all(np.isfinite(y)) and np.all(y[1, 2:] == 0)
    np.testing.assert_allclose(y[0].sum(), 3.0, rtol=1e-5)


def test_compiled_sample_equals_eager_sample_with_the_same_seed():
    logits = np.random.default_rng(10).normal(size=(256, 50)).astype("float32")
    eager = to_numpy(G.relaxed_top_k(logits, 5, 0.4, seed=21))
    compiled = to_numpy(_compiled(lambda x: G.relaxed_top_k(x, 5, 0.4, seed=21))(logits))
    np.testing.assert_allclose(compiled, eager, rtol=1e-4, atol=1e-6)
    hard = _compiled(lambda x: G.relaxed_top_k(x, 5, 0.4, hard=True, seed=21))
    np.testing.assert_array_equal(
        to_numpy(hard(logits)), to_numpy(G.gumbel_top_k(logits, 5, seed=21)[1])
    )


def test_axis_other_than_last():
    logits = np.random.default_rng(11).normal(size=(3, 7, 4)).astype("float32")
    indices, k_hot = G.gumbel_top_k(logits, 2, axis=1, seed=0)
    indices, k_hot = to_numpy(indices), to_numpy(k_hot)
    assert indices.shape == (3, 2, 4) and k_hot.shape == (3, 7, 4)
    np.testing.assert_array_equal(k_hot.sum(axis=1), 2.0)
    np.testing.assert_array_equal(np.take_along_axis(k_hot, indices, axis=1), 1.0)
    hard = to_numpy(G.relaxed_top_k(logits, 2, 0.5, hard=True, axis=1, seed=0))
    np.testing.assert_array_equal(hard, k_hot)
    soft = to_numpy(G.relaxed_top_k(logits, 2, 0.5, axis=1, seed=0))
    np.testing.assert_allclose(soft.sum(axis=1), 2.0, rtol=1e-5)
    mode, _ = G.k_hot_top_k(logits, 2, axis=-3)
    assert tuple(mode.shape) == (2, 7, 4)


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "2"])
def test_bad_k_is_rejected(k):
    pattern = r"`k`\. Expected an integer >= 1\. Received: k="
    with pytest.raises(ValueError, match=pattern):
        G.gumbel_top_k(np.zeros((2, 4), "float32"), k)
    with pytest.raises(ValueError, match=pattern):
        G.relaxed_top_k(np.zeros((2, 4), "float32"), k, 1.0)


def test_k_larger_than_the_number_of_classes_is_rejected():
    pattern = r"`k`\. Expected an integer <= the number of classes, 4\. Received: k=5"
    for fn in (
        lambda x: G.gumbel_top_k(x, 5),
        lambda x: G.relaxed_top_k(x, 5, 1.0),
        lambda x: G.k_hot_top_k(x, 5),
    ):
        with pytest.raises(ValueError, match=pattern):
            fn(np.zeros((2, 4), "float32"))


def test_other_bad_arguments_are_rejected():
    x = np.zeros((2, 4), "float32")
    with pytest.raises(ValueError, match=r"`temperature`.*Received: temperature=0"):
        G.relaxed_top_k(x, 2, 0)
    with pytest.raises(TypeError, match=r"`hard`.*Received: hard='yes'"):
        G.relaxed_top_k(x, 2, 1.0, hard="yes")
    with pytest.raises(TypeError, match=r"`logits`.*int32"):
        G.gumbel_top_k(np.zeros((2, 4), "int32"), 2)
    with pytest.raises(ValueError, match=r"`axis`.*Received: axis=2"):
        G.relaxed_top_k(x, 2, 1.0, axis=2)
