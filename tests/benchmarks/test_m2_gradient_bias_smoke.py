"""Smoke test of benchmarks/paper/m2_gradient_bias.py on a small untrained M2."""

import numpy as np
import pytest
from testing import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "tensorflow", reason="M2 trains with TensorFlow")


def test_every_gradient_is_shift_invariant_in_the_class_logits():
    """q(y|x) is unchanged by adding a constant to every logit, so each
    gradient's classes sum to zero: exact and sampled alike."""
    from benchmarks.paper.m2_gradient_bias import gradients
    from keras_gumbel.models import SemiSupervisedVAE

    model = SemiSupervisedVAE(num_classes=4, latent_dim=3, filters=(4, 4, 4), hidden_units=8)
    model.build()
    images = (np.random.default_rng(0).random((6, 784)) < 0.3).astype("float32")
    grads = gradients(model, images, temperature=0.5, draws=3)
    assert set(grads) == {"exact", "gumbel_softmax", "st_gumbel_softmax"}
    for name, g in grads.items():
        assert g.shape == (3, 6, 4) and np.all(np.isfinite(g)), name
        assert np.abs(g).max() > 0, name
        # float32 sums of terms of a few hundred nats: 1e-3 of the largest entry.
        np.testing.assert_allclose(g.sum(-1), 0.0, atol=1e-3 * np.abs(g).max(), err_msg=name)


def test_the_summary_tells_an_unbiased_estimate_from_a_biased_one():
    from benchmarks.paper.m2_gradient_bias import summarize

    rng = np.random.default_rng(0)
    exact = rng.normal(size=(200, 10))
    draws = 400
    noise = rng.normal(size=(draws, 200, 10))
    grads = {
        "exact": np.broadcast_to(exact, (draws, 200, 10)),
        # Unbiased: its bias is what the draws explain, within a factor 1.5
        # (the norm of a mean of 400 draws of 10 unit-variance coordinates).
        "gumbel_softmax": exact + noise,
        # Biased: pointing the other way.
        "st_gumbel_softmax": -exact + noise,
    }
    rows = summarize(grads)["estimators"]
    unbiased, biased = rows["gumbel_softmax"], rows["st_gumbel_softmax"]
    assert unbiased["median_cosine"] > 0.95 and unbiased["fraction_cosine_positive"] == 1.0
    ratio = unbiased["median_relative_bias"] / unbiased["median_relative_standard_error"]
    assert 1 / 1.5 < ratio < 1.5
    assert biased["median_cosine"] < -0.95 and biased["fraction_cosine_positive"] == 0.0
    assert biased["median_relative_bias"] > 1.9
