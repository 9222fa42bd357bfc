"""Tests of model M2: its bounds, its estimators, training, saving and errors."""

import math

import numpy as np
import pytest
from testing import BACKEND

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="the models' training steps use the TensorFlow backend"
)

if BACKEND == "tensorflow":
    import keras
    import tensorflow as tf

    from keras_gumbel import datasets
    from keras_gumbel.callbacks import temperature_layers
    from keras_gumbel.models import SemiSupervisedVAE
    from keras_gumbel.models import semi_supervised_vae

SMALL = dict(image_shape=(8, 8), filters=(4, 8, 8), hidden_units=16, latent_dim=3)


def _model(y_estimator="marginalize", num_classes=3, **kwargs):
    model = SemiSupervisedVAE(
        num_classes=num_classes, y_estimator=y_estimator, seed=1, **{**SMALL, **kwargs}
    )
    model.build()
    return model


def _bits(n, seed=0):
    return (np.random.default_rng(seed).random((n, 64)) < 0.4).astype("float32")


@pytest.fixture
def zero_z_noise(monkeypatch):
    """Makes z = mean of q(z|x,y), so the bounds are deterministic functions."""
    monkeypatch.setattr(
        semi_supervised_vae.keras.random,
        "normal",
        lambda shape, seed=None, **kwargs: tf.zeros(shape),
    )


def test_marginal_bound_sums_the_labelled_bound_over_classes(zero_z_noise):
    model = _model()
    x = _bits(5)
    logits = model(x)
    q = tf.nn.softmax(logits).numpy()
    per_class = np.stack(
        [model.labelled_bound(x, np.full(5, c)).numpy() for c in range(model.num_classes)], -1
    )
    # U(x) = sum_y q(y|x) L(x, y) - H(q(y|x)), where L includes -log p(y) = log K.
    entropy = -np.sum(q * np.log(q), axis=-1)
    expected = np.sum(q * per_class, axis=-1) - entropy
    np.testing.assert_allclose(model.unlabelled_bound(x).numpy(), expected, rtol=1e-5)


def test_a_given_class_draw_replaces_the_sum_over_classes(zero_z_noise):
    model = _model("gumbel_softmax")
    x = _bits(5)
    logits = model(x)
    kl = semi_supervised_vae.categorical_kl_to_uniform(logits).numpy()
    for c in range(model.num_classes):
        # L(x, y) includes -log p(y) = log K, which U(x) counts in its KL term instead.
        expected = model.labelled_bound(x, np.full(5, c)).numpy() - math.log(3) + kl
        y = tf.one_hot(np.full(5, c), 3)
        got = model.unlabelled_bound(x, logits, training=True, y=y).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    # A draw that does not come from the logits passes no gradient to them but the KL's.
    logits = tf.constant(logits)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        bound = tf.reduce_sum(model.unlabelled_bound(x, logits, y=tf.one_hot([0] * 5, 3)))
        kl_only = tf.reduce_sum(semi_supervised_vae.categorical_kl_to_uniform(logits))
    np.testing.assert_allclose(tape.gradient(bound, logits), tape.gradient(kl_only, logits))
    with pytest.raises(ValueError, match=r"`y` must be .*\[batch, 3\].*\(5, 4\)"):
        model.unlabelled_bound(x, y=tf.zeros((5, 4)))


def test_the_closed_form_kls():
    logits = np.array([[2.0, 0.0, -1.0], [0.3, 0.2, -4.0]], "float32")
    kl = semi_supervised_vae.categorical_kl_to_uniform(tf.constant(logits)).numpy()
    q = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(kl, np.sum(q * np.log(q * 3), -1), rtol=1e-5)
    kl_z = semi_supervised_vae.gaussian_kl(tf.constant([[0.5, -1.0]]), tf.constant([[0.2, -0.3]]))
    expected = 0.5 * sum(m**2 + math.exp(v) - 1 - v for m, v in ((0.5, 0.2), (-1.0, -0.3)))
    assert float(kl_z[0]) == pytest.approx(expected, rel=1e-6)


def test_straight_through_sample_estimates_the_marginal_bound(zero_z_noise):
    """E over y ~ q(y|x) of the one-sample bound equals the marginal bound.

    With z fixed at its mean, the one-sample ST-GS bound of an example takes
    the value T_c + KL(q || uniform) with probability q_c. Its mean over n
    draws is within 4 standard errors of the marginal bound, for each of the
    4 examples, except with probability about 4 * 6e-5.
    """
    model = _model("st_gumbel_softmax")
    x = _bits(4)
    logits = model(x)
    n = 4000
    repeated = np.repeat(x, n, axis=0)
    samples = model.unlabelled_bound(repeated, tf.repeat(logits, n, axis=0), training=True)
    samples = samples.numpy().reshape(4, n)
    exact = model.unlabelled_bound(x).numpy()
    q = tf.nn.softmax(logits).numpy()
    per_class = np.stack(
        [model.labelled_bound(x, np.full(4, c)).numpy() for c in range(model.num_classes)], -1
    )
    std = np.sqrt(np.sum(q * (per_class - np.sum(q * per_class, -1, keepdims=True)) ** 2, -1))
    assert np.all(np.abs(samples.mean(axis=1) - exact) <= 4 * std / math.sqrt(n) + 1e-4)
    # And the samples really vary with y: one class per draw, not the mean.
    assert np.all(samples.std(axis=1) > 0.5 * std)


@pytest.mark.parametrize("y_estimator", ["marginalize", "gumbel_softmax", "st_gumbel_softmax"])
def test_the_unlabelled_bound_trains_the_classifier(y_estimator):
    model = _model(y_estimator)
    x = _bits(6)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model.unlabelled_bound(x, model(x), training=True))
    classifier = model.classifier.trainable_variables + model.class_logits.trainable_variables
    gradients = tape.gradient(loss, classifier)
    assert all(g is not None for g in gradients)
    assert sum(float(tf.reduce_sum(tf.abs(g))) for g in gradients) > 0


def _two_class_problem(n, seed):
    """Class 0: the top half of the image is on; class 1: the bottom half."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = np.zeros((n, 8, 8), "float32")
    images[labels == 0, :4] = 1.0
    images[labels == 1, 4:] = 1.0
    noise = rng.random(images.shape) < 0.05
    return np.abs(images - noise).reshape(n, 64).astype("float32"), labels


@pytest.mark.parametrize("y_estimator", ["marginalize", "gumbel_softmax", "st_gumbel_softmax"])
def test_fit_learns_to_classify_from_four_labels(y_estimator):
    keras.utils.set_random_seed(0)
    images, labels = _two_class_problem(400, seed=0)
    labelled, unlabelled = datasets.labelled_subset(labels, 4, seed=0)
    train = datasets.make_semi_supervised_dataset(
        images[labelled], labels[labelled], images[unlabelled], batch_size=50
    )
    test_x, test_y = _two_class_problem(200, seed=1)
    test = datasets.make_dataset(test_x, test_y, batch_size=100, shuffle=False)
    model = SemiSupervisedVAE(num_classes=2, y_estimator=y_estimator, seed=0, **SMALL)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = model.evaluate(test, verbose=0, return_dict=True)
    history = model.fit(train, epochs=12, shuffle=False, verbose=0)
    after = model.evaluate(test, verbose=0, return_dict=True)
    assert after["accuracy"] >= 0.95
    assert after["unlabelled"] < before["unlabelled"] - 5.0
    assert set(history.history) == {"loss", "labelled", "unlabelled", "cross_entropy", "accuracy"}
    np.testing.assert_array_equal(model.predict_labels(test_x[:5]).numpy(), test_y[:5])


def test_only_sampling_estimators_have_an_annealed_temperature():
    assert temperature_layers(_model("marginalize")) == []
    (sampler,) = temperature_layers(_model("gumbel_softmax", temperature=2.0))
    assert float(sampler.temperature_variable.numpy()) == 2.0


def test_saved_and_loaded_model_predicts_the_same(tmp_path):
    model = _model("st_gumbel_softmax", alpha=0.5)
    x = _bits(3)
    path = tmp_path / "m2.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded.classify(x).numpy(), model.classify(x).numpy(), rtol=1e-6)
    assert loaded.sample([0, 1, 2], seed=3).shape == (3, 64)
    assert loaded.reconstruct(x).shape == (3, 64)


def test_images_of_any_size_build_a_decoder_of_that_size():
    model = _model(image_shape=(7, 5))
    x = _bits(2)[:, :35]
    assert model.reconstruct(x).shape == (2, 35)
    assert model.unlabelled_bound(x).shape == (2,)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"y_estimator": "score_function"}, "y_estimator"),
        ({"num_classes": 1}, "num_classes"),
        ({"alpha": 0.0}, "alpha"),
        ({"filters": (4, 8)}, "filters"),
        ({"image_shape": (28,)}, "image_shape"),
    ],
)
def test_bad_arguments_are_named(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        SemiSupervisedVAE(**{**SMALL, **kwargs})


def test_inputs_of_the_wrong_size_and_bad_batches_are_named():
    model = _model()
    with pytest.raises(ValueError, match="8x8 = 64 pixels.*shape \\(2, 784\\)"):
        model(np.zeros((2, 784), "float32"))
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="dicts with keys 'x'.*make_semi_supervised_dataset"):
        model.fit(_bits(4), epochs=1, shuffle=False, verbose=0)
