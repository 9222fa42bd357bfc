"""Selecting, configuring and validating estimators; estimator state."""

import json

import keras
import numpy as np
import pytest
from testing import BACKEND

from keras_gumbel import estimators

TF_ONLY = pytest.mark.skipif(BACKEND != "tensorflow", reason="uses tf.function and TF models")


def test_every_estimator_is_selectable_and_documented():
    assert set(estimators.ESTIMATORS) == {
        "gumbel_softmax",
        "st_gumbel_softmax",
        "straight_through",
        "annealed_straight_through",
        "score_function",
        "darn",
        "muprop",
        "reinmax",
        "gumbel_rao",
        "gapped_straight_through",
    }
    for name, cls in estimators.ESTIMATORS.items():
        estimator = estimators.get(name)
        assert type(estimator) is cls and estimator.name == name
        assert estimators.get(name) is not estimator  # one estimator per sampler
        assert estimators.get(estimator) is estimator
        # The docstring states the formula, the bias and the cost.
        doc = cls.__doc__
        assert "```" in doc and "iased" in doc, name
        assert "evaluation" in doc or "Cost" in doc, name
        assert isinstance(cls.biased, bool) and cls.evaluations in (1, 2)
        assert set(cls.kinds) == {"categorical", "bernoulli"}
    unbiased = {n for n, c in estimators.ESTIMATORS.items() if not c.biased}
    assert unbiased == {"score_function", "muprop"}


@pytest.mark.parametrize(
    "config",
    [
        {"class_name": "gumbel_rao", "config": {"num_samples": 100}},
        {"class_name": "gapped_straight_through", "config": {"gap": 2.0}},
        {
            "class_name": "score_function",
            "config": {"baseline": False, "normalize": True, "decay": 0.5},
        },
        {
            "class_name": "darn",
            "config": {"center": "mean", "baseline": True, "normalize": False, "decay": 0.9},
        },
        {"class_name": "muprop", "config": {"baseline": True, "normalize": True, "decay": 0.99}},
        {"class_name": "reinmax", "config": {}},
    ],
)
def test_config_round_trip(config):
    estimator = estimators.get(config)
    serialized = json.loads(json.dumps(estimators.serialize(estimator)))
    assert serialized["class_name"] == config["class_name"]
    for key, value in config["config"].items():
        assert serialized["config"][key] == value
    assert estimators.serialize(estimators.get(serialized)) == serialized


@pytest.mark.parametrize(
    "factory, error, pattern",
    [
        (
            lambda: estimators.get("reinforce"),
            ValueError,
            r"`estimator`.*score_function.*Received: estimator='reinforce'",
        ),
        (lambda: estimators.get({"class_name": "nope"}), ValueError, r"`estimator`"),
        (
            lambda: estimators.get({"class_name": "gumbel_rao", "config": {"k": 3}}),
            ValueError,
            r"gumbel_rao",
        ),
        (
            lambda: estimators.GumbelRaoEstimator(num_samples=0),
            ValueError,
            r"`num_samples`.*Received: num_samples=0",
        ),
        (lambda: estimators.GappedStraightThroughEstimator(gap=-1.0), ValueError, r"`gap`"),
        (lambda: estimators.ScoreFunctionEstimator(decay=1.0), ValueError, r"`decay`.*\[0, 1\)"),
        (lambda: estimators.ScoreFunctionEstimator(normalize="yes"), TypeError, r"`normalize`"),
        (lambda: estimators.DARNEstimator(center="origin"), ValueError, r"`center`.*'origin'"),
    ],
)
def test_bad_arguments(factory, error, pattern):
    with pytest.raises(error, match=pattern):
        factory()


@pytest.mark.parametrize("name", sorted(estimators.ESTIMATORS))
def test_bad_kind_is_rejected(name):
    with pytest.raises(ValueError, match=r"`kind`.*Received: kind='gaussian'"):
        estimators.get(name).sample(keras.ops.zeros((2, 3)), "gaussian", 1.0, seed=0)


@pytest.mark.parametrize("tau", [0.5, 0.999, 0])
def test_reinmax_rejects_temperatures_below_one(tau):
    with pytest.raises(ValueError, match=r"`temperature`.*>= 1"):
        estimators.get("reinmax").sample(keras.ops.zeros((2, 3)), "categorical", tau, seed=0)


def test_reinmax_accepts_temperatures_from_one():
    for tau in (1, 1.0, 2.5):
        z = estimators.get("reinmax").sample(keras.ops.zeros((2, 3)), "categorical", tau, seed=0)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(keras.ops.sum(z, -1)), [1.0, 1.0])


@TF_ONLY
def test_reinmax_checks_a_temperature_variable_eagerly_and_when_traced():
    import tensorflow as tf

    estimator = estimators.get("reinmax")
    tau = keras.Variable(0.5, dtype="float32")
    with pytest.raises(ValueError, match=r"`temperature`.*Received: temperature=0.5"):
        estimator.sample(tf.zeros((2, 3)), "categorical", tau, seed=0)

    @tf.function
    def sample(logits):
        return estimator.sample(logits, "categorical", tau, seed=0)

    with pytest.raises(ValueError, match=r"`temperature`"):
        sample(tf.zeros((2, 3)))
    # Lowered below 1 after the trace: no retrace, so no exception; the
    # sample becomes NaN and training stops visibly.
    tau.assign(1.0)
    assert np.all(np.isfinite(sample(tf.zeros((2, 3))).numpy()))
    tau.assign(0.5)
    assert np.all(np.isnan(sample(tf.zeros((2, 3))).numpy()))


@TF_ONLY
def test_a_reinmax_model_with_a_temperature_below_one_fails_with_a_clear_error():
    from keras_gumbel.models import CategoricalVAE

    model = CategoricalVAE(
        num_vars=2,
        num_classes=3,
        encoder_units=(4,),
        decoder_units=(4,),
        estimator="reinmax",
        temperature=0.5,
    )
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"ReinMax.*`temperature`|`temperature`.*ReinMax"):
        model.fit(np.zeros((4, 6), "float32"), epochs=1, verbose=0)


@TF_ONLY
@pytest.mark.parametrize("name", sorted(estimators.ESTIMATORS))
def test_surrogate_is_per_example_or_none(name):
    import tensorflow as tf

    estimator = estimators.get(name)
    logits = tf.random.stateless_normal((5, 3, 4), seed=(1, 2))
    z = estimator.sample(logits, "categorical", 1.0, seed=0)
    surrogate = estimator.surrogate(
        lambda v: tf.reduce_sum(v**2, axis=[1, 2]), z, logits, "categorical"
    )
    if estimator.uses_surrogate:
        assert tuple(surrogate.shape) == (5,)
        # The sample itself carries no gradient: the surrogate is all of it.
        with tf.GradientTape() as tape:
            tape.watch(logits)
            z = estimator.sample(logits, "categorical", 1.0, seed=0)
        assert tape.gradient(z, logits) is None
    else:
        assert surrogate is None


@TF_ONLY
def test_running_statistics_are_moving_averages_of_earlier_steps():
    import tensorflow as tf

    estimator = estimators.ScoreFunctionEstimator(decay=0.5)
    signal = tf.Variable([2.0, 4.0])
    logits = tf.zeros((2, 3))
    z = estimator.sample(logits, "categorical", 1.0, seed=0)
    # Step 1 uses its own batch: mean 3, variance 1.
    centered, scale = estimator.standardize(signal)
    np.testing.assert_allclose(centered.numpy(), [-1.0, 1.0])
    assert float(scale) == 1.0
    assert float(estimator.signal_mean.numpy()) == 3.0
    assert float(estimator.signal_variance.numpy()) == 1.0
    # Step 2 is centered and scaled by step 1's statistics only.
    signal.assign([10.0, 14.0])
    centered, scale = estimator.standardize(signal)
    np.testing.assert_allclose(centered.numpy(), [7.0, 11.0])
    assert float(scale) == 1.0
    assert float(estimator.signal_mean.numpy()) == pytest.approx(0.5 * 3 + 0.5 * 12)
    # E[(signal - 3)^2] = (49 + 121) / 2 = 85.
    assert float(estimator.signal_variance.numpy()) == pytest.approx(0.5 * 1 + 0.5 * 85)
    assert float(estimator.num_updates.numpy()) == 2.0
    _, scale = estimator.standardize(signal)
    assert float(scale) == pytest.approx(1 / np.sqrt(43.0))
    assert estimator.surrogate(
        lambda v: tf.constant([1.0, 1.0]), z, logits, "categorical"
    ).shape == (2,)


@TF_ONLY
def test_estimator_state_belongs_to_the_sampler_and_is_saved(tmp_path):
    import tensorflow as tf

    from keras_gumbel.models import LatentSampler

    sampler = LatentSampler(kind="categorical", estimator="muprop", seed=1)
    names = sorted(v.name for v in sampler.non_trainable_weights)
    assert names == ["num_updates", "signal_mean", "signal_scale", "signal_variance", "temperature"]
    assert not any("signal" in v.name for v in sampler.trainable_weights)
    sampler._estimator.standardize(tf.constant([1.0, 5.0]))
    model = keras.Sequential([keras.Input((3, 4)), sampler])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras").layers[-1]
    assert float(loaded._estimator.signal_mean.numpy()) == 3.0
    assert float(loaded._estimator.num_updates.numpy()) == 1.0
    # A config holding a parameterized estimator is plain JSON.
    sampler = LatentSampler(estimator={"class_name": "gumbel_rao", "config": {"num_samples": 4}})
    config = json.loads(json.dumps(sampler.get_config()))
    assert LatentSampler.from_config(config)._estimator.num_samples == 4
