"""Tests of the paper's models and their multi-sample bounds (TensorFlow backend)."""

import itertools
import math

import keras
import numpy as np
import pytest
from testing import BACKEND

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="models train as tf.function graphs"
)

if BACKEND == "tensorflow":
    import tensorflow as tf

    from keras_gumbel.datasets import load
    from keras_gumbel.datasets import make_dataset
    from keras_gumbel.datasets import split_halves
    from keras_gumbel.models import BernoulliLatent
    from keras_gumbel.models import BernoulliVAE
    from keras_gumbel.models import CategoricalLatent
    from keras_gumbel.models import CategoricalVAE
    from keras_gumbel.models import StochasticBinaryNetwork
    from keras_gumbel.models import importance_bound
    from keras_gumbel.models import independent_pixels_nll


@pytest.fixture(scope="module")
def digits():
    data = load("mnist-sample")
    return data.x_train[:1000].reshape(1000, -1), data.x_test[:200].reshape(200, -1)


@pytest.mark.parametrize(
    "model_fn",
    [
        lambda: CategoricalVAE(seed=0),
        lambda: CategoricalVAE(estimator="st_gumbel_softmax", prior="learned", seed=0),
        lambda: CategoricalVAE(estimator="straight_through", seed=0),
        lambda: BernoulliVAE(seed=0),
    ],
)
def test_vae_trains_and_has_a_consistent_interface(model_fn, digits, tmp_path):
    train, test = digits
    model = model_fn()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(
        make_dataset(train, batch_size=100, seed=0), epochs=3, shuffle=False, verbose=0
    )
    assert history.history["loss"][-1] < history.history["loss"][0] - 20
    codes = model.encode(test[:8]).numpy()
    assert codes.shape == (8, model.num_vars) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < model.latent.num_classes
    means = model.decode(codes).numpy()
    assert means.shape == (8, 784) and np.all((means >= 0) & (means <= 1))
    np.testing.assert_array_equal(model.reconstruct(test[:8]).numpy(), means)
    assert model.sample(5, seed=1).shape == (5, 784)
    assert model.log_weights(test[:4], 7).shape == (7, 4)
    # A .keras round trip keeps the weights (and the encoder's output).
    model.save(tmp_path / "vae.keras")
    loaded = keras.saving.load_model(tmp_path / "vae.keras")
    np.testing.assert_array_equal(loaded.encode(test[:8]).numpy(), codes)
    assert loaded.get_config() == model.get_config()


def test_importance_bound_converges_to_the_exact_likelihood():
    # 2 categorical variables of 3 classes: 9 configurations, so log p(x) is
    # exact by enumeration. The m-sample bound is below it in expectation
    # and approaches it as m grows; with m = 3000 the gap is a few hundredths
    # of a nat, far below the 1-sample gap (the KL of q from the posterior).
    keras.utils.set_random_seed(3)
    model = CategoricalVAE(
        num_vars=2, num_classes=3, encoder_units=(16,), decoder_units=(16,), seed=0
    )
    x = (np.random.default_rng(0).uniform(size=(16, 12)) > 0.5).astype("float32")
    model(x)
    prior = model.latent.distribution(model.prior_logits)
    configurations = np.array(list(itertools.product(range(3), repeat=2)))
    z = tf.one_hot(configurations, 3)
    log_pz = prior.log_prob(z).numpy()
    pixel_logits = model.pixel_logits(z).numpy()
    log_px_given_z = -np.sum(
        np.logaddexp(0, -pixel_logits[:, None, :]) * x[None]
        + np.logaddexp(0, pixel_logits[:, None, :]) * (1 - x[None]),
        axis=-1,
    )
    exact = -np.logaddexp.reduce(log_pz[:, None] + log_px_given_z, axis=0)
    one = importance_bound(model, [x], num_samples=1)
    many = importance_bound(model, [x], num_samples=3000, chunk_size=500)
    assert np.all(many >= exact - 0.05)
    np.testing.assert_allclose(many, exact, atol=0.1)
    assert np.mean(one - exact) > 10 * np.mean(np.abs(many - exact))


def test_bound_is_chunk_size_independent_in_distribution(digits):
    _, test = digits
    model = CategoricalVAE(seed=0)
    model(test[:1])
    a = importance_bound(model, [test[:50]], num_samples=200, chunk_size=200)
    b = importance_bound(model, [test[:50]], num_samples=200, chunk_size=30)
    # Different draws, same estimator: the means agree to Monte Carlo error.
    assert abs(a.mean() - b.mean()) < 1.0


def test_relaxed_loss_is_the_training_objective(digits):
    # Straight-through trains on exact samples, so its training objective and
    # the discrete loss of `evaluate` have one expectation. Biased latent
    # logits make the KL term tens of nats, so a loss without it fails.
    _, test = digits
    keras.utils.set_random_seed(0)
    model = CategoricalVAE(estimator="straight_through", seed=0)
    model(test[:1])
    bias = np.random.default_rng(0).normal(scale=3.0, size=model.to_logits.bias.shape)
    model.to_logits.bias.assign(bias.astype("float32"))
    x = tf.constant(test)
    logits = model.latent_logits(x)

    def discrete():
        return tf.add_n(model._elbo_terms(x, model.sampler.exact_sample(logits), logits))

    relaxed = np.mean([model.relaxed_loss(x).numpy() for _ in range(20)], axis=0)
    exact = np.mean([discrete().numpy() for _ in range(20)], axis=0)
    assert relaxed.shape == (len(test),)
    assert model._kl(logits).numpy().mean() > 20
    # Per-example means of 20 draws each; their difference over 200 digits is
    # judged against its own standard error (4 s.e.: a two-sided level of 6e-5).
    diff = relaxed - exact
    assert abs(diff.mean()) < 4 * diff.std() / math.sqrt(len(diff))


def test_kl_is_analytic_and_matches_enumeration():
    model = CategoricalVAE(num_vars=3, num_classes=4, prior="learned")
    q = np.random.default_rng(0).normal(size=(5, 3, 4)).astype("float32")
    p = np.random.default_rng(1).normal(size=(3, 4)).astype("float32")
    log_q = q - np.logaddexp.reduce(q, axis=-1, keepdims=True)
    log_p = p - np.logaddexp.reduce(p, axis=-1, keepdims=True)
    expected = np.sum(np.exp(log_q) * (log_q - log_p), axis=(-1, -2))
    np.testing.assert_allclose(model.latent.kl(q, p).numpy(), expected, rtol=1e-5)


def test_independent_pixels_baseline():
    train = np.array([[1, 0], [1, 1], [1, 0]], "float32")
    # p = (3 + 1) / 5 and (1 + 1) / 5.
    nll = independent_pixels_nll(train, np.array([[1, 0]], "float32"))
    assert nll[0] == pytest.approx(-math.log(0.8) - math.log(0.6))


@pytest.mark.parametrize("latent", ["bernoulli", "categorical"])
def test_sbn_trains_and_predicts_lower_halves(latent):
    data = load("mnist-sample")
    upper, lower = split_halves(data.x_train)
    model = StochasticBinaryNetwork(latent, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    ds = tf.data.Dataset.from_tensor_slices((upper, lower)).batch(100)
    history = model.fit(ds, epochs=6, shuffle=False, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    tu, tl = split_halves(data.x_test[:100])
    nll = importance_bound(
        model, tf.data.Dataset.from_tensor_slices((tu, tl)).batch(50), num_samples=100
    )
    baseline = independent_pixels_nll(lower, tl)
    assert nll.shape == (100,) and nll.mean() < baseline.mean()
    assert model.reconstruct(tu[:3]).shape == (3, 392)
    sample = model.sample(tu[:3], seed=0).numpy()
    assert set(np.unique(sample)) <= {0.0, 1.0}
    assert model.encode(tu[:3]).shape == (3, model.num_vars)


@pytest.mark.parametrize(
    "factory, pattern",
    [
        (lambda: CategoricalVAE(estimator="nope"), r"`estimator`.*Received: estimator='nope'"),
        (lambda: CategoricalVAE(num_classes=1), r"`num_classes`"),
        (lambda: CategoricalVAE(prior="gaussian"), r"`prior`"),
        (lambda: CategoricalVAE(encoder_units=(512, -1)), r"`encoder_units`"),
        (lambda: StochasticBinaryNetwork("gaussian"), r"`latent`"),
        (lambda: StochasticBinaryNetwork(num_layers=0), r"`num_layers`"),
    ],
)
def test_bad_model_arguments(factory, pattern):
    with pytest.raises(ValueError, match=pattern):
        factory()


def test_sbn_latent_logits_are_the_last_layers_along_the_mode_path():
    model = StochasticBinaryNetwork("categorical", num_vars=4, num_classes=3, seed=0)
    x = np.random.default_rng(0).random((5, 12)).astype("float32")
    logits = model.latent_logits(x).numpy()
    assert logits.shape == (5, 4, 3)
    # Layer 1's logits, their mode (one-hot), then layer 2's logits of it.
    first = model.to_logits[0](x).numpy().reshape(5, 4, 3)
    mode = np.eye(3, dtype="float32")[first.argmax(-1)].reshape(5, 12)
    np.testing.assert_allclose(logits, model.to_logits[1](mode).numpy().reshape(5, 4, 3), 1e-6)
    np.testing.assert_array_equal(model.encode(x).numpy(), logits.argmax(-1))


def test_latent_probs_are_those_of_the_codes():
    logits = np.array([[[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]]], "float32")
    exp = np.exp(logits)
    np.testing.assert_allclose(
        CategoricalLatent(2, 3).probs(logits).numpy(), exp / exp.sum(-1, keepdims=True), 1e-6
    )
    bits = np.array([[-2.0, 0.0, 3.0]], "float32")
    p = 1.0 / (1.0 + np.exp(-bits))
    probs = BernoulliLatent(3).probs(bits).numpy()
    # The probability of code 0 first, of code 1 second.
    np.testing.assert_allclose(probs, np.stack([1.0 - p, p], -1), 1e-6)
