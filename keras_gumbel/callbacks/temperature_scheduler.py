"""The TemperatureScheduler callback."""

import math

import keras
import numpy as np

from keras_gumbel import schedules as schedules_lib


def temperature_layers(model):
    """Every layer of `model` that carries a `temperature_variable`.

    Nested models and sublayers of custom layers are included, in a stable
    order (that of Keras's own walk over the model's weights). These are
    the layers `TemperatureScheduler` anneals by default.

    Args:
        model: A Keras model.

    Returns:
        A list of layers.

    Example:

    >>> import keras
    >>> from keras_gumbel.callbacks import temperature_layers
    >>> from keras_gumbel.layers import GumbelSigmoid
    >>> from keras_gumbel.layers import GumbelSoftmax
    >>> inner = keras.Sequential([GumbelSigmoid(name="bits")], name="inner")
    >>> model = keras.Sequential([
    ...     keras.Input((4,)),
    ...     keras.layers.Dense(4),
    ...     GumbelSoftmax(name="codes"),
    ...     inner,
    ... ])
    >>> [layer.name for layer in temperature_layers(model)]
    ['codes', 'bits']
    """
    # `_flatten_layers` is the walk Keras itself uses for weights; it reaches
    # sublayers of custom layers, which `model.layers` does not list.
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(getattr(layer, "temperature_variable", None), keras.Variable)
    ]


class TemperatureScheduler(keras.callbacks.Callback):
    """Anneals the temperature of Gumbel-Softmax layers during `fit`.

    Before every training step the callback sets the temperature of every
    temperature-bearing layer to `schedule(step)`, where `step` is the
    optimizer's global step (`model.optimizer.iterations`). Because the step
    is the optimizer's, training resumed from a checkpoint continues the
    schedule where it stopped instead of restarting it. After training the
    temperature equals `schedule(model.optimizer.iterations)`, the value the
    next step would use.

    The temperature is a variable, so assigning it never retraces the
    compiled train function. The step is read from the device once per
    epoch and counted on the host in between, and the variable is written
    only when the value changes (every `interval` steps for the paper's
    schedule), so there is no per-step host synchronization. With
    `steps_per_execution > 1` the temperature is updated once per execution.
    The batch-end hook only reads the schedule, so the callback is
    `async_safe`: on backends where Keras runs batch-end callbacks on a
    worker thread (JAX; not TensorFlow), the conversion of each step's
    logs to Python numbers then overlaps the next step instead of waiting
    for this one.

    The current temperature is added to the batch logs (the progress bar
    shows it) and to the epoch logs as `temperature`, where `History`,
    `CSVLogger` and `TensorBoard` see it: put this callback before
    `CSVLogger` and `TensorBoard` in the callbacks list, since Keras calls
    callbacks in order and they read the logs when called.

    Args:
        schedule: A `keras_gumbel.schedules` schedule, a schedule name
            (see `keras_gumbel.schedules.get`), a
            `keras.optimizers.schedules.LearningRateSchedule`, or any
            callable mapping the integer step to a temperature > 0.
        layers: Optional list of layers to anneal. Defaults to every layer
            of the model with a non-trainable `temperature_variable`
            (`GumbelSoftmax`, `GumbelSigmoid` and subclasses of
            `keras_gumbel.layers.TemperatureLayer`), nested models included.
        verbose: Integer. 0: quiet, 1: print the temperature when it changes
            at the start of an epoch.

    Example:

    Two epochs of two steps each, with a temperature that falls linearly
    from 1 to 0.5 over the four steps:

    >>> import keras
    >>> import numpy as np
    >>> from keras_gumbel.callbacks import TemperatureScheduler
    >>> from keras_gumbel.layers import GumbelSoftmax
    >>> from keras_gumbel.schedules import LinearDecay
    >>> model = keras.Sequential([
    ...     keras.Input((3,)),
    ...     keras.layers.Dense(5),
    ...     GumbelSoftmax(name="codes", seed=0),
    ... ])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    >>> y = np.full((8, 5), 0.2, dtype="float32")
    >>> scheduler = TemperatureScheduler(LinearDecay(initial=1.0, final=0.5, steps=4))
    >>> history = model.fit(x, y, batch_size=4, epochs=2, callbacks=[scheduler], verbose=0)
    >>> history.history["temperature"]
    [0.75, 0.5]
    >>> float(keras.ops.convert_to_numpy(model.get_layer("codes").temperature_variable))
    0.5

    For the paper's schedule, pass
    `keras_gumbel.schedules.ExponentialDecay(rate=1e-4, interval=500)`.
    """

    # See `on_train_batch_end`.
    async_safe = True

    def __init__(self, schedule, layers=None, verbose=0):
        super().__init__()
        self.schedule = schedules_lib.get(schedule)
        self.layers = None if layers is None else list(layers)
        self.verbose = verbose
        self._variables = []
        self._value = None
        self._epoch_start_step = 0
        self._steps_per_execution = 1

    def _resolve_variables(self):
        if self.layers is not None:
            layers = self.layers
            for layer in layers:
                if not isinstance(getattr(layer, "temperature_variable", None), keras.Variable):
                    raise ValueError(
                        "TemperatureScheduler received a layer without a "
                        f"temperature: {layer.name!r} ({type(layer).__name__})."
                    )
        else:
            layers = temperature_layers(self.model)
            if not layers:
                raise ValueError(
                    "TemperatureScheduler found no layer with a temperature in "
                    f"model {self.model.name!r}. Add a GumbelSoftmax or "
                    "GumbelSigmoid layer, or pass `layers=`."
                )
        learned = [layer.name for layer in layers if layer.temperature_variable.trainable]
        if learned:
            raise ValueError(
                "TemperatureScheduler cannot anneal a learned temperature. "
                f"Layers with learn_temperature=True: {learned}. Pass the "
                "other layers with `layers=`."
            )
        return [layer.temperature_variable for layer in layers]

    def _temperature_at(self, step):
        value = self.schedule(step)
        if not isinstance(value, (int, float)):
            value = keras.ops.convert_to_numpy(value)
        value = float(np.asarray(value))
        if not math.isfinite(value) or value <= 0:
            raise ValueError(
                "The temperature schedule must return a finite float > 0. "
                f"Received: schedule({step})={value}"
            )
        return value

    def _set(self, step):
        value = self._temperature_at(step)
        if value != self._value:
            # On JAX, `self.model` first writes the jitted train state back
            # into the variables, so the assignment is not overwritten.
            self.model  # noqa: B018
            for variable in self._variables:
                variable.assign(value)
            self._value = value
        return value

    def _global_step(self):
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_begin(self, logs=None):
        if getattr(self.model, "optimizer", None) is None:
            raise ValueError(
                "TemperatureScheduler needs a compiled model: the schedule "
                "follows `model.optimizer.iterations`."
            )
        self._variables = self._resolve_variables()
        self._value = None
        self._steps_per_execution = int(getattr(self.model, "steps_per_execution", 1) or 1)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start_step = self._global_step()
        previous = self._value
        value = self._set(self._epoch_start_step)
        if self.verbose and value != previous:
            print(
                f"\nEpoch {epoch + 1}: TemperatureScheduler setting the temperature to {value:.6g}."
            )

    def on_train_batch_begin(self, batch, logs=None):
        self._set(self._epoch_start_step + batch)

    def on_train_batch_end(self, batch, logs=None):
        # May run on Keras's callback thread while the main thread starts the
        # next step: recompute the value this execution used from its first
        # step instead of reading `self._value`, which may have moved on.
        # `_epoch_start_step` only changes after Keras has waited for every
        # batch of the previous epoch.
        if logs is not None:
            first_step = self._epoch_start_step + batch - self._steps_per_execution + 1
            logs["temperature"] = self._temperature_at(first_step)

    def on_epoch_end(self, epoch, logs=None):
        value = self._set(self._global_step())
        if logs is not None:
            logs["temperature"] = value
