"""Tests of the codebook ops of vector quantizers."""

import keras
import numpy as np
import pytest
from scipy.special import softmax
from scipy.special import xlogy
from testing import grad
from testing import to_numpy

from keras_gumbel.ops import codebook_perplexity
from keras_gumbel.ops import diversity_loss
from keras_gumbel.ops import select_codevectors


def _perplexity(probs, keep):
    p = probs.reshape((-1,) + probs.shape[-2:]).astype("float64")[keep.reshape(-1)]
    marginal = p.mean(axis=0)
    return np.exp(-xlogy(marginal, marginal).sum(axis=-1)).sum()


def test_perplexity_limits_and_diversity_loss():
    uniform = np.full((6, 2, 8), 1 / 8, "float32")
    one_code = np.zeros((6, 2, 8), "float32")
    one_code[..., 3] = 1
    assert float(to_numpy(codebook_perplexity(uniform))) == pytest.approx(16)
    assert float(to_numpy(codebook_perplexity(one_code))) == pytest.approx(2)
    assert float(to_numpy(diversity_loss(16.0, 16))) == 0
    assert float(to_numpy(diversity_loss(2.0, 16))) == pytest.approx(7 / 8)
    # No position left: an all-zero average, exp(0) per group.
    assert float(to_numpy(codebook_perplexity(uniform, np.zeros((6,), bool)))) == 2
    # A NaN at a left-out position stays out of the average.
    noisy = uniform.copy()
    noisy[0] = np.nan
    keep = np.arange(6) > 0
    assert float(to_numpy(codebook_perplexity(noisy, keep))) == pytest.approx(16)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_perplexity_matches_numpy_with_a_mask_of_any_rank(dtype):
    rng = np.random.default_rng(0)
    probs = softmax(2 * rng.normal(size=(3, 4, 5, 3, 7)), axis=-1).astype(dtype)
    keep = rng.uniform(size=(3, 4, 5)) < 0.5
    value = codebook_perplexity(probs, keep)
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    rtol = 1e-5 if dtype == "float32" else 1e-3
    np.testing.assert_allclose(float(to_numpy(value)), _perplexity(probs, keep), rtol=rtol)
    everything = np.ones(keep.shape, bool)
    np.testing.assert_allclose(
        float(to_numpy(codebook_perplexity(probs))), _perplexity(probs, everything), rtol=rtol
    )


def test_perplexity_gradient_is_finite_at_unused_codes():
    probs = np.zeros((4, 1, 3), "float32")
    probs[:, 0, 0] = 1.0  # codes 1 and 2 unused: m log m at m = 0
    g = grad(lambda p: codebook_perplexity(p), probs)
    assert np.all(np.isfinite(g))
    # d/dm_v exp(H) = -exp(H) (log m_v + 1) with H = 0 and m_0 = 1, over 4 rows.
    np.testing.assert_allclose(g[:, 0, 0], -0.25, rtol=1e-6)


def test_select_codevectors_picks_and_mixes_rows():
    rng = np.random.default_rng(1)
    codevectors = rng.normal(size=(2 * 4, 3)).astype("float32")
    codes = rng.integers(0, 4, size=(5, 6, 2))
    one_hot = np.eye(4, dtype="float32")[codes]
    out = to_numpy(select_codevectors(one_hot, codevectors))
    table = codevectors.reshape(2, 4, 3)
    expected = np.concatenate([table[0][codes[..., 0]], table[1][codes[..., 1]]], axis=-1)
    np.testing.assert_array_equal(out, expected)  # exact rows, not approximations
    weights = softmax(rng.normal(size=(5, 6, 2, 4)), axis=-1).astype("float32")
    mixed = to_numpy(select_codevectors(weights, codevectors))
    np.testing.assert_allclose(
        mixed, np.einsum("...gv,gvc->...gc", weights, table).reshape(5, 6, 6), rtol=1e-5, atol=1e-6
    )
    upstream = rng.normal(size=(5, 6, 6)).astype("float32")
    g = grad(
        lambda w: keras.ops.sum(keras.ops.multiply(select_codevectors(w, codevectors), upstream)),
        weights,
    )
    np.testing.assert_allclose(
        g, np.einsum("gvc,...gc->...gv", table, upstream.reshape(5, 6, 2, 3)), rtol=1e-5, atol=1e-6
    )


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"codevectors.*\[10, C_g\]"):
        select_codevectors(np.zeros((3, 2, 5), "float32"), np.zeros((8, 3), "float32"))
    with pytest.raises(ValueError, match=r"`probs` of shape \[\.\.\., num_groups, num_vars\]"):
        codebook_perplexity(np.zeros((5,), "float32"))
    with pytest.raises(TypeError, match=r"`probs`.*int32"):
        codebook_perplexity(np.zeros((2, 2, 3), "int32"))
