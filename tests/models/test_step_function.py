"""Tests of the one-step train function that the models' `fit` uses."""

import keras
import numpy as np
import pytest
from testing import BACKEND

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="the one-step function replaces Keras's TF train function"
)

if BACKEND == "tensorflow":
    import tensorflow as tf

    from keras_gumbel import models
    from keras_gumbel import schedules
    from keras_gumbel.callbacks import TemperatureScheduler
    from keras_gumbel.datasets import make_dataset
    from keras_gumbel.models import CategoricalVAE
    from keras_gumbel.models import StochasticBinaryNetwork
    from keras_gumbel.models.step_function import OneStepFit
    from keras_gumbel.models.step_function import one_step_applies

IMAGES = (np.random.default_rng(0).random((300, 784)) < 0.3).astype("float32")


def _vae(keras_function):
    keras.utils.set_random_seed(0)
    model = CategoricalVAE(seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    if keras_function:  # Keras's own multi-step function, as without the mixin.
        model.make_train_function = lambda force=False: keras.Model.make_train_function(
            model, force
        )
    return model


def test_fit_takes_the_same_steps_as_with_keras_own_function():
    # A finite dataset of 3 batches and no steps_per_epoch: each epoch ends
    # when the iterator runs out, as with Keras's function.
    histories, models = [], []
    for keras_function in (True, False):
        model = _vae(keras_function)
        history = model.fit(
            make_dataset(IMAGES, batch_size=100, seed=0),
            epochs=3,
            verbose=0,
            shuffle=False,
            callbacks=[TemperatureScheduler(schedules.ExponentialDecay(1.0, 0.1, 0.5, interval=2))],
        )
        histories.append(history.history)
        models.append(model)
    stock, one_step = models
    assert not hasattr(stock.train_function, "step")
    assert hasattr(one_step.train_function, "step")
    for model in models:
        assert int(model.optimizer.iterations.numpy()) == 9
    # Same batches, same noise, same updates: equal up to float rounding
    # (the two graphs may order floating-point work differently).
    np.testing.assert_allclose(histories[1]["loss"], histories[0]["loss"], rtol=1e-5)
    for a, b in zip(one_step.weights, stock.weights, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "compile_kwargs",
    [{"steps_per_execution": 2}, {"run_eagerly": True}],
    ids=["steps_per_execution", "run_eagerly"],
)
def test_keras_function_is_kept_where_one_step_does_not_apply(compile_kwargs):
    model = CategoricalVAE(seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), **compile_kwargs)
    assert not one_step_applies(model)
    model.fit(make_dataset(IMAGES, batch_size=100, seed=0), epochs=1, verbose=0, shuffle=False)
    assert not hasattr(model.train_function, "step")
    assert int(model.optimizer.iterations.numpy()) == 3


def test_not_under_a_distribution_strategy():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = CategoricalVAE(seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        assert not one_step_applies(model)
    # Built under the strategy, so still not outside its scope.
    assert not one_step_applies(model)


@pytest.mark.parametrize(
    "model_class",
    ["CategoricalVAE", "BernoulliVAE", "StochasticBinaryNetwork", "SemiSupervisedVAE"],
)
def test_every_model_has_it(model_class):
    assert issubclass(getattr(models, model_class), OneStepFit)


def test_fit_on_arrays_uses_it():
    # NumPy inputs: Keras wraps them in its own tf.data pipeline.
    sbn = StochasticBinaryNetwork(seed=0)
    sbn.compile(optimizer=keras.optimizers.Adam(1e-3))
    sbn.fit(IMAGES[:100, :392], IMAGES[:100, 392:], batch_size=50, epochs=2, verbose=0)
    assert hasattr(sbn.train_function, "step")
    assert int(sbn.optimizer.iterations.numpy()) == 4
