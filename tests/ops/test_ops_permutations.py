"""Tests of the permutation ops: Sinkhorn, matching and relaxed sorting."""

import itertools

import keras
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from testing import BACKEND
from testing import grad
from testing import to_numpy

from keras_gumbel import ops as gumbel_ops


def _np_sinkhorn(x, num_iters=20):
    """Float64 reference: the same column-then-row log-domain iterations."""
    from scipy.special import logsumexp

    z = np.asarray(x, np.float64)
    for _ in range(num_iters):
        z = z - logsumexp(z, axis=-2, keepdims=True)
        z = z - logsumexp(z, axis=-1, keepdims=True)
    return np.exp(z)


def _np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _np_neural_sort(s, tau):
    n = s.shape[-1]
    row_sums = np.abs(s[..., :, None] - s[..., None, :]).sum(-1)
    scale = n + 1 - 2 * np.arange(1, n + 1)
    return _np_softmax((scale[:, None] * s[..., None, :] - row_sums[..., None, :]) / tau)


def _np_soft_sort(s, tau):
    ordered = -np.sort(-s, axis=-1)
    return _np_softmax(-np.abs(ordered[..., :, None] - s[..., None, :]) / tau)


def _grad(fn, x):
    """`testing.grad`, compiled on JAX (op-by-op dispatch of many Sinkhorn steps is slow)."""
    if BACKEND == "jax":
        import jax

        return np.asarray(jax.jit(jax.grad(fn))(keras.ops.convert_to_tensor(x)))
    return grad(fn, x)


def _compiled(fn):
    """`fn` compiled: XLA on JAX, a tf.function graph on TensorFlow."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    return fn


# Sinkhorn.


@pytest.mark.parametrize("n, column_tolerance", [(2, 5e-3), (5, 1e-3), (20, 1e-5), (50, 1e-5)])
def test_sinkhorn_is_doubly_stochastic_within_the_stated_tolerance(n, column_tolerance):
    x = np.random.default_rng(n).normal(size=(64, n, n)).astype("float32")
    s = to_numpy(gumbel_ops.sinkhorn(keras.ops.convert_to_tensor(x)))
    assert s.dtype == np.float32 and np.all(s >= 0)
    # The last step normalizes rows: float32 rounding only (n * eps).
    np.testing.assert_allclose(s.sum(-1), 1.0, atol=n * 2.4e-7)
    # Columns: the documented bounds for standard-normal scores after 20
    # iterations (largest errors over 2,000 float64 draws: 3e-3 at n = 2,
    # 8e-5 at n = 5, below float32 rounding from n = 10).
    np.testing.assert_allclose(s.sum(-2), 1.0, atol=column_tolerance)
    np.testing.assert_allclose(s, _np_sinkhorn(x), rtol=1e-4, atol=1e-6)


def test_sinkhorn_is_finite_with_scores_of_magnitude_1e4_and_so_is_its_gradient():
    x = (np.random.default_rng(0).normal(size=(4, 6, 6)) * 1e4).astype("float32")
    s = to_numpy(gumbel_ops.sinkhorn(keras.ops.convert_to_tensor(x)))
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(s.sum(-1), 1.0, atol=1e-5)
    w = np.random.default_rng(1).normal(size=x.shape).astype("float32")
    g = _grad(lambda t: keras.ops.sum(gumbel_ops.sinkhorn(t) * keras.ops.convert_to_tensor(w)), x)
    assert np.all(np.isfinite(g))
    g = _grad(
        lambda t: keras.ops.sum(
            gumbel_ops.gumbel_sinkhorn(t, 0.01, seed=0) * keras.ops.convert_to_tensor(w)
        ),
        x,
    )
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_sinkhorn_of_half_precision_scores_is_computed_in_float32(dtype):
    x = np.random.default_rng(0).normal(size=(8, 7, 7)).astype("float32") * 4
    half = keras.ops.cast(x, dtype)
    s = gumbel_ops.sinkhorn(half)
    assert keras.backend.standardize_dtype(s.dtype) == dtype
    # Exactly the float32 result on the rounded scores, rounded once at the end.
    expected = keras.ops.cast(gumbel_ops.sinkhorn(keras.ops.cast(half, "float32")), dtype)
    np.testing.assert_array_equal(
        to_numpy(keras.ops.cast(s, "float32")), to_numpy(keras.ops.cast(expected, "float32"))
    )


def test_sinkhorn_gradient_matches_finite_differences():
    x = np.random.default_rng(3).normal(size=(3, 3))
    w = np.random.default_rng(4).normal(size=(3, 3))
    g = grad(
        lambda t: keras.ops.sum(gumbel_ops.sinkhorn(t) * keras.ops.convert_to_tensor(w, "float32")),
        x.astype("float32"),
    )
    eps = 1e-5
    numeric = np.zeros_like(x)
    for i, j in itertools.product(range(3), range(3)):
        d = np.zeros_like(x)
        d[i, j] = eps
        numeric[i, j] = ((_np_sinkhorn(x + d) * w).sum() - (_np_sinkhorn(x - d) * w).sum()) / (
            2 * eps
        )
    assert np.abs(numeric).max() > 0.05
    np.testing.assert_allclose(g, numeric, atol=2e-4)


def _unrolled_sinkhorn(z, num_iters):
    """The iterations as plain ops, differentiated by the backend's autodiff."""
    for _ in range(num_iters):
        z = z - keras.ops.logsumexp(z, axis=-2, keepdims=True)
        z = z - keras.ops.logsumexp(z, axis=-1, keepdims=True)
    return keras.ops.exp(z)


@pytest.mark.parametrize("n, scale, num_iters", [(2, 1.0, 1), (5, 3.0, 20), (9, 10.0, 7)])
def test_sinkhorn_hand_written_gradient_equals_autodiff_of_the_iterations(n, scale, num_iters):
    # On TensorFlow and JAX the op's backward pass is written by hand (it
    # keeps only each half-step's output; PyTorch differentiates the loop);
    # the backend's autodiff of the same iterations, unrolled, is the
    # reference. Float32 on both sides, with sums of up to
    # 2 * num_iters rounded terms: agreement to 1e-5 of the largest entry.
    rng = np.random.default_rng(n)
    x = (rng.normal(size=(16, n, n)) * scale).astype("float32")
    w = keras.ops.convert_to_tensor(rng.normal(size=x.shape).astype("float32"))
    want = grad(lambda t: keras.ops.sum(_unrolled_sinkhorn(t, num_iters) * w), x)
    assert np.abs(want).max() > 1e-2
    wraps = [lambda fn: fn, _compiled]  # eagerly (jitted on JAX), and XLA
    if BACKEND == "tensorflow":
        import tensorflow as tf

        wraps.append(tf.function)  # a graph without XLA
    for wrap in wraps:
        got = _grad(wrap(lambda t: keras.ops.sum(gumbel_ops.sinkhorn(t, num_iters) * w)), x)
        np.testing.assert_allclose(got, want, atol=1e-5 * np.abs(want).max())


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's two ways to run the steps")
def test_sinkhorn_loops_under_xla_and_unrolls_its_steps_in_a_plain_graph():
    # `_sinkhorn_loop` asks TensorFlow whether XLA compiles the graph: a
    # loop there (XLA compiles unrolled steps slowly), unrolled steps
    # elsewhere (no stacking copies). A wrong answer is slow, not wrong.
    import tensorflow as tf

    x = tf.zeros((2, 4, 4))
    loops = {"While", "StatelessWhile"}

    def op_types(jit_compile):
        fn = tf.function(lambda t: gumbel_ops.sinkhorn(t, 20), jit_compile=jit_compile)
        return {op.type for op in fn.get_concrete_function(x).graph.get_operations()}

    assert loops & op_types(jit_compile=True)
    assert not loops & op_types(jit_compile=False)


def test_gumbel_sinkhorn_is_sinkhorn_of_the_perturbed_scores():
    x = np.random.default_rng(0).normal(size=(5, 4, 4)).astype("float32")
    noise = to_numpy(gumbel_ops.gumbel_noise((5, 4, 4), seed=3))
    y = to_numpy(gumbel_ops.gumbel_sinkhorn(x, 0.7, seed=3, noise_factor=0.5))
    np.testing.assert_allclose(y, _np_sinkhorn((x + 0.5 * noise) / 0.7), rtol=1e-4, atol=1e-6)
    without = to_numpy(gumbel_ops.gumbel_sinkhorn(x, 0.7, seed=3, noise_factor=0.0))
    np.testing.assert_allclose(without, _np_sinkhorn(x / 0.7), rtol=1e-4, atol=1e-6)


# Matching.


@pytest.fixture(scope="module")
def matched():
    """1,000 random score matrices, n from 3 to 50, matched in compiled code."""
    rng = np.random.default_rng(0)
    compiled = _compiled(gumbel_ops.matching)
    cases = []
    for n, count in ((3, 250), (8, 250), (20, 250), (50, 250)):
        x = rng.normal(size=(count, n, n)).astype("float32")
        cases.append((x, to_numpy(compiled(keras.ops.convert_to_tensor(x)))))
    return cases


def test_matching_equals_scipy_on_1000_random_matrices_in_compiled_code(matched):
    assert sum(len(x) for x, _ in matched) == 1000
    for x, perm in matched:
        n = x.shape[-1]
        assert perm.dtype == np.int32 and perm.shape == x.shape[:-1]
        for scores, got in zip(x, perm, strict=True):
            np.testing.assert_array_equal(np.sort(got), np.arange(n))
            _, expected = linear_sum_assignment(scores.astype(np.float64), maximize=True)
            np.testing.assert_array_equal(got, expected)


def test_matching_eagerly_with_batch_axes_and_large_scores():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(2, 3, 6, 6)) * 1e4).astype("float32")
    perm = to_numpy(gumbel_ops.matching(keras.ops.convert_to_tensor(x)))
    assert perm.shape == (2, 3, 6)
    for index in np.ndindex(2, 3):
        _, expected = linear_sum_assignment(x[index].astype(np.float64), maximize=True)
        np.testing.assert_array_equal(perm[index], expected)
    # A case where the greedy row-by-row choice is wrong.
    scores = np.array([[1.0, 5.0, 0.0], [4.0, 3.0, 0.0], [2.0, 6.0, 1.0]], "float32")
    _, expected = linear_sum_assignment(scores, maximize=True)
    np.testing.assert_array_equal(to_numpy(gumbel_ops.matching(scores)), expected)
    np.testing.assert_array_equal(to_numpy(gumbel_ops.matching(keras.ops.zeros((1, 1, 1)))), [[0]])


def test_permutation_matrix_places_row_i_at_column_perm_i():
    p = to_numpy(gumbel_ops.permutation_matrix(keras.ops.convert_to_tensor([[2, 0, 1]])))
    np.testing.assert_array_equal(p, [[[0, 0, 1], [1, 0, 0], [0, 1, 0]]])


def test_sinkhorn_tends_to_the_matching_as_temperature_falls():
    x = np.random.default_rng(5).normal(size=(32, 5, 5)).astype("float32")
    exact = to_numpy(gumbel_ops.permutation_matrix(gumbel_ops.matching(x)))
    relaxed = _compiled(lambda t: gumbel_ops.sinkhorn(t, num_iters=200))
    errors = [
        np.abs(to_numpy(relaxed(x / tau)) - exact).max(axis=(1, 2)) for tau in (1.0, 0.1, 0.01)
    ]
    assert np.all(np.median(errors, axis=1)[1:] < np.median(errors, axis=1)[:-1])
    assert np.median(errors[-1]) < 0.05


# Relaxed sorting.


@pytest.mark.parametrize(
    "fn, reference",
    [(gumbel_ops.neural_sort, _np_neural_sort), (gumbel_ops.soft_sort, _np_soft_sort)],
)
def test_relaxed_sort_values_and_convergence_to_the_descending_sort(fn, reference):
    s = np.random.default_rng(0).normal(size=(16, 7)).astype("float32")
    y = to_numpy(fn(s, 0.5))
    assert y.shape == (16, 7, 7)
    np.testing.assert_allclose(y, reference(s.astype(np.float64), 0.5), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)
    order = np.argsort(-s, axis=-1, kind="stable")
    exact = np.eye(7, dtype="float32")[order]
    np.testing.assert_array_equal(to_numpy(fn(s, 0.5, hard=True)), exact)
    np.testing.assert_array_equal(to_numpy(gumbel_ops.sort_indices(s)), order)
    errors = [np.abs(to_numpy(fn(s, tau)) - exact).max() for tau in (1.0, 0.1, 1e-2, 1e-4)]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 1e-3  # the closest scores here are 2e-3 apart


@pytest.mark.parametrize("n", [2, 4, 7, 33])
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_sorting_gives_tied_scores_in_index_order(n, compiled):
    # Scores drawn from {0, 1, 2}: 64 rows full of ties. PyTorch's topk orders
    # ties arbitrarily from n = 4 on (it got 50 of these rows wrong at n = 4
    # and all 64 at n = 7); the docstrings promise the lower index first.
    s = np.random.default_rng(n).integers(0, 3, size=(64, n)).astype("float32")
    order = np.argsort(-s, axis=-1, kind="stable")
    exact = np.eye(n, dtype="float32")[order]
    maybe_compiled = _compiled if compiled else (lambda fn: fn)
    np.testing.assert_array_equal(to_numpy(maybe_compiled(gumbel_ops.sort_indices)(s)), order)
    for fn in (gumbel_ops.neural_sort, gumbel_ops.soft_sort):
        hard = maybe_compiled(lambda t, fn=fn: fn(t, 0.5, hard=True))(s)
        np.testing.assert_array_equal(to_numpy(hard), exact)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_sorting_ties_zero_with_negative_zero(compiled):
    # XLA's sort puts -0.0 before 0.0; a negation of the scores alone gave
    # [2, 1, 3, 0, 4] under TensorFlow's XLA.
    s = np.array([-0.0, 0.0, 1.0, 0.0, -0.0], "float32")
    fn = _compiled(gumbel_ops.sort_indices) if compiled else gumbel_ops.sort_indices
    np.testing.assert_array_equal(to_numpy(fn(s)), [2, 0, 1, 3, 4])


@pytest.mark.parametrize("fn", [gumbel_ops.neural_sort, gumbel_ops.soft_sort])
def test_relaxed_sort_gradients_finite_at_extreme_scores_and_straight_through(fn):
    rng = np.random.default_rng(1)
    s = rng.normal(size=(4, 6)).astype("float32")
    w = rng.normal(size=(4, 6, 6)).astype("float32")
    soft = grad(lambda t: keras.ops.sum(fn(t, 0.5) * keras.ops.convert_to_tensor(w)), s)
    hard = grad(lambda t: keras.ops.sum(fn(t, 0.5, hard=True) * keras.ops.convert_to_tensor(w)), s)
    assert np.abs(soft).max() > 1e-2
    np.testing.assert_array_equal(hard, soft)
    for scale in (1e4, 1e-4):
        for tau in (1e-3, 1.0, 1e3):
            g = grad(
                lambda t, tau=tau: keras.ops.sum(fn(t, tau) * keras.ops.convert_to_tensor(w)),
                s * scale,
            )
            assert np.all(np.isfinite(g))
            assert np.all(np.isfinite(to_numpy(fn(s * scale, tau))))


@pytest.mark.parametrize("fn", [gumbel_ops.neural_sort, gumbel_ops.soft_sort])
def test_relaxed_sort_runs_compiled_and_keeps_half_precision(fn):
    s = np.random.default_rng(2).normal(size=(3, 5)).astype("float16")
    y = _compiled(lambda t: fn(t, 0.3, hard=True))(keras.ops.convert_to_tensor(s))
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    order = np.argsort(-s.astype("float32"), axis=-1, kind="stable")
    np.testing.assert_array_equal(to_numpy(y), np.eye(5)[order])


# Validation.


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (lambda x: gumbel_ops.sinkhorn(x, num_iters=0), ValueError, r"`num_iters`.*num_iters=0"),
        (lambda x: gumbel_ops.sinkhorn(x[0, 0]), ValueError, r"\[\.\.\., n, n\].*shape=\(4,\)"),
        (lambda x: gumbel_ops.sinkhorn(x[:, :3]), ValueError, r"shape=\(2, 3, 4\)"),
        (lambda x: gumbel_ops.matching(x[:, :3]), ValueError, r"`log_alpha`.*shape=\(2, 3, 4\)"),
        (
            lambda x: gumbel_ops.sinkhorn(keras.ops.cast(x, "int32")),
            TypeError,
            r"floating-point.*log_alpha\.dtype=int32",
        ),
        (
            lambda x: gumbel_ops.gumbel_sinkhorn(x, 0.0),
            ValueError,
            r"`temperature`.*temperature=0\.0",
        ),
        (
            lambda x: gumbel_ops.gumbel_sinkhorn(x, 1.0, noise_factor=-1),
            ValueError,
            r"`noise_factor`\. Expected a float >= 0\. Received: noise_factor=-1",
        ),
        (lambda x: gumbel_ops.neural_sort(x[0, 0], -1.0), ValueError, r"temperature=-1\.0"),
        (lambda x: gumbel_ops.soft_sort(x[0, 0], 1.0, hard=1), TypeError, r"`hard`.*hard=1"),
    ],
)
def test_bad_arguments_raise(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call(keras.ops.zeros((2, 4, 4)))
