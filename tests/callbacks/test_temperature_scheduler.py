"""Tests of the TemperatureScheduler callback."""

import csv

import keras
import numpy as np
import pytest
from testing import BACKEND
from testing import SLOW_ON_TORCH
from testing import to_numpy

from keras_gumbel import schedules
from keras_gumbel.callbacks import TemperatureScheduler
from keras_gumbel.callbacks import temperature_layers
from keras_gumbel.layers import GumbelSigmoid
from keras_gumbel.layers import GumbelSoftmax
from keras_gumbel.layers import TemperatureLayer

SCHEDULE = schedules.ExponentialDecay(initial=1.0, rate=0.05, minimum=0.3, interval=3)
X = np.random.default_rng(0).normal(size=(40, 6)).astype("float32")


def _model(jit_compile="auto"):
    model = keras.Sequential(
        [
            keras.Input(shape=(6,)),
            keras.layers.Dense(8),
            GumbelSoftmax(hard=True, seed=0),
            keras.layers.Dense(6),
        ]
    )
    model.compile(optimizer="adam", loss="mse", jit_compile=jit_compile)
    return model


class _Recorder(keras.callbacks.Callback):
    """Records the temperature each training step actually runs with."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        self.values = []

    def on_train_batch_begin(self, batch, logs=None):
        self.model  # noqa: B018 -- on JAX, writes the train state back first
        self.values.append(float(to_numpy(self.layer.temperature_variable)))


def _temperature(model):
    return float(to_numpy(temperature_layers(model)[0].temperature_variable))


@pytest.mark.parametrize("jit_compile", [False, pytest.param(True, marks=SLOW_ON_TORCH)])
def test_temperature_follows_the_global_step(jit_compile):
    model = _model(jit_compile)
    recorder = _Recorder(model.layers[1])
    history = model.fit(
        X,
        X,
        batch_size=8,
        epochs=3,
        verbose=0,
        callbacks=[TemperatureScheduler(SCHEDULE), recorder],
    )
    steps = int(to_numpy(model.optimizer.iterations))
    assert steps == 15
    expected = [np.float32(SCHEDULE(t)) for t in range(15)]
    assert recorder.values == expected
    assert _temperature(model) == np.float32(SCHEDULE(15))
    assert history.history["temperature"] == [SCHEDULE(5), SCHEDULE(10), SCHEDULE(15)]


class _BatchLogs(keras.callbacks.Callback):
    """Records the batch logs' temperature; safe for Keras's callback threads.

    Keras may run batch-end hooks on several worker threads at once, so they
    can finish out of order: values are keyed by (epoch, batch). The epoch
    only changes after Keras has waited for the previous epoch's hooks.
    """

    async_safe = True

    def __init__(self):
        super().__init__()
        self.epoch = None
        self.by_step = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.by_step[self.epoch, batch] = logs["temperature"]

    @property
    def values(self):
        return [self.by_step[key] for key in sorted(self.by_step)]


@pytest.mark.parametrize(
    "steps_per_execution",
    [
        1,
        pytest.param(
            3,
            marks=pytest.mark.skipif(
                BACKEND == "torch", reason="Keras on PyTorch requires steps_per_execution=1"
            ),
        ),
    ],
)
def test_batch_logs_carry_the_temperature_each_step_ran_with(steps_per_execution):
    # Both callbacks are async-safe, so Keras dispatches their batch-end
    # hooks to a worker thread while the next step runs: the logged value
    # must still be the one the step used, not the scheduler's latest.
    model = _model()
    model.compile(optimizer="adam", loss="mse", steps_per_execution=steps_per_execution)
    logged = _BatchLogs()
    recorder = _Recorder(model.layers[1])
    model.fit(
        X,
        X,
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[TemperatureScheduler(SCHEDULE), logged, recorder],
    )
    assert TemperatureScheduler.async_safe
    # One entry per execution; an execution of k steps runs at the
    # temperature of its first step (epochs of 5 steps: executions start at
    # 0, 3 and 5, 8 for k = 3).
    assert logged.values == pytest.approx(recorder.values, rel=1e-6)
    starts = [0, 1, 2, 3, 4] if steps_per_execution == 1 else [0, 3]
    expected = [SCHEDULE(epoch * 5 + s) for epoch in range(2) for s in starts]
    assert logged.values == pytest.approx(expected, rel=1e-6)


def test_resumed_training_continues_the_schedule(tmp_path):
    model = _model()
    model.fit(X, X, batch_size=8, epochs=2, verbose=0, callbacks=[TemperatureScheduler(SCHEDULE)])
    model.save(tmp_path / "run.keras")
    resumed = keras.saving.load_model(tmp_path / "run.keras")
    assert _temperature(resumed) == np.float32(SCHEDULE(10))
    recorder = _Recorder(resumed.layers[1])
    resumed.fit(
        X,
        X,
        batch_size=8,
        epochs=1,
        verbose=0,
        callbacks=[TemperatureScheduler(SCHEDULE), recorder],
    )
    assert recorder.values == [np.float32(SCHEDULE(t)) for t in range(10, 15)]
    assert _temperature(resumed) == np.float32(SCHEDULE(15))


def test_csv_logger_and_history_see_the_temperature(tmp_path):
    model = _model()
    path = tmp_path / "log.csv"
    model.fit(
        X,
        X,
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[TemperatureScheduler(SCHEDULE), keras.callbacks.CSVLogger(str(path))],
    )
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert [float(r["temperature"]) for r in rows] == pytest.approx([SCHEDULE(5), SCHEDULE(10)])


class _TemperatureProbe(TemperatureLayer):
    """Outputs its temperature, and counts how often its call is traced."""

    traces = 0

    def sample(self, logits, temperature, mask):
        # torch.compile would guard on the count and compile again for each
        # new value; it counts its own graphs (`_traces_so_far`).
        if BACKEND != "torch":
            _TemperatureProbe.traces += 1
        return 0.0 * logits + temperature

    deterministic = sample


@pytest.mark.parametrize("jit_compile", [False, pytest.param(True, marks=SLOW_ON_TORCH)])
def test_compiled_train_step_sees_each_new_temperature_without_retracing(jit_compile):
    # The loss is the mean output, i.e. the temperature the compiled step
    # read; with a zero learning rate nothing else changes. Each epoch's loss
    # is then the mean of the schedule over that epoch's steps.
    model = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Dense(6), _TemperatureProbe()])
    model.compile(
        optimizer=keras.optimizers.SGD(0.0),
        loss=lambda y, p: keras.ops.mean(p, axis=-1),
        jit_compile=jit_compile,
    )
    traces = []
    count = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: traces.append(_traces_so_far(jit_compile))
    )
    history = model.fit(
        X, X, batch_size=8, epochs=3, verbose=0, callbacks=[TemperatureScheduler(SCHEDULE), count]
    )
    expected = [np.mean([SCHEDULE(t) for t in range(5 * e, 5 * e + 5)]) for e in range(3)]
    np.testing.assert_allclose(history.history["loss"], expected, rtol=1e-6)
    # Un-jitted JAX and uncompiled PyTorch run the Python of every step.
    if BACKEND == "tensorflow" or jit_compile:
        # The temperature changed 5 times; nothing was traced after step 1
        # (after step 2 under torch.compile, which makes its second graph when
        # the gradients it zeroes first exist).
        first = 2 if BACKEND == "torch" else 1
        assert len(traces) == 15 and len(set(traces[first - 1 :])) == 1, traces


def _traces_so_far(jit_compile):
    """How often the step has been traced: the probe's count, or torch.compile's graphs.

    A count the probe kept would be part of what torch.compile traces (it
    replays the increment on every call and compiles again for every new
    value), so on PyTorch its own count of the graphs it made
    (`torch._dynamo`'s counters, not public API) counts the traces.
    """
    if BACKEND == "torch" and jit_compile:
        from torch._dynamo.utils import counters

        return counters["stats"]["unique_graphs"]
    return _TemperatureProbe.traces


def test_finds_nested_layers_and_accepts_learning_rate_schedules():
    class Quantizer(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.sampler = GumbelSigmoid(hard=True, seed=1)

        def call(self, x, training=None):
            return self.sampler(x, training=training)

    inner = keras.Sequential(
        [keras.Input(shape=(6,)), keras.layers.Dense(6), GumbelSoftmax(seed=2)]
    )
    model = keras.Sequential([keras.Input(shape=(6,)), inner, Quantizer(), keras.layers.Dense(6)])
    model.compile(optimizer="sgd", loss="mse")
    layers = temperature_layers(model)
    assert len(layers) == 2
    schedule = keras.optimizers.schedules.ExponentialDecay(1.0, decay_steps=5, decay_rate=0.5)
    model.fit(X, X, batch_size=8, epochs=2, verbose=0, callbacks=[TemperatureScheduler(schedule)])
    for layer in layers:
        assert float(to_numpy(layer.temperature_variable)) == pytest.approx(0.25)


def test_explicit_layers_leave_the_others_alone():
    model = _model()
    layer = model.layers[1]
    callback = TemperatureScheduler(schedules.Constant(0.4), layers=[layer])
    model.fit(X, X, batch_size=8, epochs=1, verbose=0, callbacks=[callback])
    assert _temperature(model) == np.float32(0.4)


def test_clear_errors():
    plain = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Dense(6)])
    plain.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="found no layer with a temperature"):
        plain.fit(X, X, epochs=1, verbose=0, callbacks=[TemperatureScheduler(SCHEDULE)])

    learned = keras.Sequential(
        [keras.Input(shape=(6,)), GumbelSoftmax(learn_temperature=True, name="gs")]
    )
    learned.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"cannot anneal a learned temperature.*'gs'"):
        learned.fit(X, X, epochs=1, verbose=0, callbacks=[TemperatureScheduler(SCHEDULE)])

    model = _model()
    with pytest.raises(ValueError, match=r"finite float > 0.*schedule\(0\)=0.0"):
        model.fit(X, X, epochs=1, verbose=0, callbacks=[TemperatureScheduler(lambda step: 0.0)])
    with pytest.raises(ValueError, match="without a temperature"):
        model.fit(
            X,
            X,
            epochs=1,
            verbose=0,
            callbacks=[TemperatureScheduler(SCHEDULE, layers=[model.layers[0]])],
        )


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute")
def test_mirrored_strategy_on_two_logical_cpus():
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = _model()
    model.fit(X, X, batch_size=8, epochs=2, verbose=0, callbacks=[TemperatureScheduler(SCHEDULE)])
    variable = temperature_layers(model)[0].temperature_variable
    replicas = [float(v.numpy()) for v in variable.value.values]
    assert replicas == [np.float32(SCHEDULE(10))] * 2
