"""Tests of the XLA-compiled optimizer update that the models' train steps use."""

import keras
import numpy as np
import pytest
from testing import BACKEND

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="the models and their compiled update are TensorFlow's"
)

if BACKEND == "tensorflow":
    import tensorflow as tf

    from keras_gumbel import models
    from keras_gumbel.datasets import make_dataset
    from keras_gumbel.models import CategoricalVAE
    from keras_gumbel.models import StochasticBinaryNetwork
    from keras_gumbel.models.compiled_update import CompiledUpdate
    from keras_gumbel.models.compiled_update import requested_jit_compile

IMAGES = (np.random.default_rng(0).random((300, 784)) < 0.3).astype("float32")
CPU_ONLY = BACKEND == "tensorflow" and not any(
    d.device_type != "CPU" for d in tf.config.list_physical_devices()
)


def _update_of(model):
    """The model's XLA-compiled update function, or None before one was made."""
    return getattr(model, "_compiled_update", None)


def _fit_vae(optimizer, **compile_kwargs):
    keras.utils.set_random_seed(0)
    model = CategoricalVAE(seed=0)
    model.compile(optimizer=optimizer, **compile_kwargs)
    history = model.fit(
        make_dataset(IMAGES, batch_size=100, seed=0), epochs=2, verbose=0, shuffle=False
    )
    return model, history.history["loss"]


@pytest.mark.skipif(not CPU_ONLY, reason='Keras\'s "auto" compiles the whole step off CPUs')
@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda: keras.optimizers.Adam(1e-3),
        # A schedule read from the step counter and a global clipping norm:
        # both run inside the compiled update.
        lambda: keras.optimizers.Adam(
            keras.optimizers.schedules.ExponentialDecay(1e-3, decay_steps=2, decay_rate=0.5),
            global_clipnorm=1.0,
        ),
        lambda: keras.optimizers.SGD(1e-2, momentum=0.9, nesterov=True),
    ],
    ids=["adam", "adam_schedule_clipnorm", "sgd_nesterov"],
)
def test_default_compile_updates_with_xla_and_takes_the_same_steps(make_optimizer):
    compiled, compiled_losses = _fit_vae(make_optimizer())
    plain, plain_losses = _fit_vae(make_optimizer(), jit_compile=False)
    assert _update_of(compiled) is not None
    assert _update_of(plain) is None
    assert int(compiled.optimizer.iterations.numpy()) == 6
    # Same batches, same noise, same update rule; XLA may round the fused
    # arithmetic differently (a few float32 ulps per step), hence the
    # tolerances, which are far below the size of one update (lr 1e-3).
    np.testing.assert_allclose(compiled_losses, plain_losses, rtol=1e-5)
    for a, b in zip(compiled.weights, plain.weights, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_jit_compile_true_compiles_the_whole_step_instead():
    model, _ = _fit_vae(keras.optimizers.Adam(1e-3), jit_compile=True)
    assert model.jit_compile
    assert _update_of(model) is None


def test_eager_steps_use_the_plain_update():
    model, _ = _fit_vae(keras.optimizers.Adam(1e-3), run_eagerly=True)
    assert _update_of(model) is None
    assert int(model.optimizer.iterations.numpy()) == 6


def test_not_under_a_distribution_strategy():
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        model, _ = _fit_vae(keras.optimizers.Adam(1e-3))
    assert _update_of(model) is None
    assert int(model.optimizer.iterations.numpy()) == 6


@pytest.mark.skipif(not CPU_ONLY, reason='Keras\'s "auto" compiles the whole step off CPUs')
def test_recompiling_with_a_new_optimizer_updates_with_it():
    model, _ = _fit_vae(keras.optimizers.Adam(1e-3))
    first = _update_of(model)
    optimizer = keras.optimizers.SGD(1e-2)
    model.compile(optimizer=optimizer)
    model.fit(make_dataset(IMAGES, batch_size=100, seed=0), epochs=1, verbose=0, shuffle=False)
    assert _update_of(model) is not first
    assert _update_of(model).optimizer is optimizer
    assert int(optimizer.iterations.numpy()) == 3


@pytest.mark.skipif(not CPU_ONLY, reason='Keras\'s "auto" compiles the whole step off CPUs')
def test_fit_on_arrays_uses_it():
    # The structured-output network on arrays, through Keras's own pipeline.
    sbn = StochasticBinaryNetwork(seed=0)
    sbn.compile(optimizer=keras.optimizers.Adam(1e-3))
    sbn.fit(IMAGES[:100, :392], IMAGES[:100, 392:], batch_size=50, epochs=1, verbose=0)
    before = [np.asarray(w) for w in sbn.trainable_weights]
    sbn.fit(IMAGES[:100, :392], IMAGES[:100, 392:], batch_size=50, epochs=1, verbose=0)
    assert _update_of(sbn) is not None
    assert int(sbn.optimizer.iterations.numpy()) == 4
    for a, w in zip(before, sbn.trainable_weights, strict=True):
        assert not np.array_equal(a, np.asarray(w)), w.path


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ((), {}, True),
        ((), {"optimizer": "adam", "jit_compile": False}, False),
        (("adam", None, None, None, None, False, 1, True), {}, False),
    ],
    ids=["default", "keyword", "positional"],
)
def test_requested_jit_compile_reads_the_compile_arguments(args, kwargs, expected):
    assert (requested_jit_compile(args, kwargs) == "auto") is expected


@pytest.mark.skipif(not CPU_ONLY, reason='Keras\'s "auto" compiles the whole step off CPUs')
def test_a_loaded_model_keeps_it(tmp_path):
    model, _ = _fit_vae(keras.optimizers.Adam(1e-3))
    model.save(tmp_path / "vae.keras")
    loaded = keras.saving.load_model(tmp_path / "vae.keras")
    assert loaded.get_compile_config()["jit_compile"] == "auto"
    loaded.fit(make_dataset(IMAGES, batch_size=100, seed=0), epochs=1, verbose=0, shuffle=False)
    assert _update_of(loaded) is not None
    assert int(loaded.optimizer.iterations.numpy()) == 9


@pytest.mark.parametrize(
    "model_class",
    ["CategoricalVAE", "BernoulliVAE", "StochasticBinaryNetwork", "SemiSupervisedVAE"],
)
def test_every_model_has_it(model_class):
    assert issubclass(getattr(models, model_class), CompiledUpdate)
