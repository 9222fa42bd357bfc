"""Base class of the layers whose output depends on an annealed temperature."""

import keras
from keras import ops

from keras_gumbel.serialization import register
from keras_gumbel.validation import check_bool
from keras_gumbel.validation import check_float_tensor
from keras_gumbel.validation import check_optional_int
from keras_gumbel.validation import check_positive_float


def codes_dtype():
    """The integer dtype of discrete codes: "int64" where the backend has it.

    JAX has no 64-bit integers unless `jax_enable_x64` is on; there the codes
    are "int32" (a SavedModel export casts them to int64 either way).
    """
    if keras.backend.backend() == "jax":
        import jax

        if not jax.config.read("jax_enable_x64"):
            return "int32"
    return "int64"


@register
class TemperatureFloor(keras.constraints.Constraint):
    """Keeps a learned temperature at or above `min_value` (> 0).

    Applied by the optimizer after every update, so the temperature that the
    next forward pass reads is always strictly positive.

    Args:
        min_value: Float > 0. The smallest temperature allowed.

    Example:

    >>> import keras
    >>> from keras_gumbel.layers import TemperatureFloor
    >>> floor = TemperatureFloor(0.25)
    >>> keras.ops.convert_to_numpy(floor(keras.ops.array([0.01, 0.5]))).tolist()
    [0.25, 0.5]
    """

    def __init__(self, min_value):
        check_positive_float("min_value", min_value)
        self.min_value = min_value

    def __call__(self, w):
        return ops.maximum(w, ops.cast(self.min_value, w.dtype))

    def get_config(self):
        return {"min_value": self.min_value}


class TemperatureLayer(keras.layers.Layer):
    """A layer with a temperature that `TemperatureScheduler` can anneal.

    The temperature is a scalar float32 weight named `temperature`, exposed as
    `temperature_variable`. It is a variable rather than a Python float
    because a compiled train function captures Python floats as constants and
    would never see a new value. It is not autocast under mixed precision, is
    saved with the weights (so a `.keras` file keeps the annealed value), and
    is trainable only with `learn_temperature=True`, in which case
    `TemperatureFloor(min_temperature)` keeps it strictly positive.

    Subclasses implement `sample(logits, temperature, mask)` (the training
    path, random) and `deterministic(logits, temperature, mask)` (the
    inference path, no random numbers), and the discrete-codes protocol:
    `discrete_codes(inputs, mask=None)` and a class attribute
    `codes_description`, which `keras_gumbel.export` uses to serve the
    layer's codes; `codes_group_rank` (optional) tells
    `keras_gumbel.callbacks.CodeUsage` which axes of the codes are groups.

    Args:
        temperature: Float > 0. Initial temperature.
        hard: Boolean. Whether outputs are straight-through hard samples.
        sample_at_inference: Boolean. Whether to keep sampling outside
            training instead of returning the deterministic output.
        learn_temperature: Boolean. Whether the temperature is trainable.
        min_temperature: Float > 0. Lower bound of a learned temperature.
        seed: Optional integer seed of the layer's `SeedGenerator`.
        **kwargs: Base layer keyword arguments, e.g. `name` and `dtype`.

    Example:

    A relaxed one-hot layer written on the base class: it gets the
    temperature variable, the training/inference switch, masking and
    `get_config`, and `TemperatureScheduler` anneals it.

    >>> import keras
    >>> from keras_gumbel import ops as gumbel_ops
    >>> from keras_gumbel.layers import TemperatureLayer
    >>> class Relaxed(TemperatureLayer):
    ...     def sample(self, logits, temperature, mask):
    ...         return gumbel_ops.gumbel_softmax(
    ...             logits, temperature, mask=mask, seed=self.seed_generator)
    ...     def deterministic(self, logits, temperature, mask):
    ...         return gumbel_ops.tempered_softmax(logits, temperature, mask=mask)
    >>> layer = Relaxed(temperature=2.0, seed=0)
    >>> logits = keras.ops.array([[0.0, 2.0]])
    >>> keras.ops.convert_to_numpy(layer(logits)).astype("float64").round(4).tolist()
    [[0.2689, 0.7311]]
    >>> _ = layer.temperature_variable.assign(1.0)
    >>> keras.ops.convert_to_numpy(layer(logits)).astype("float64").round(4).tolist()
    [[0.1192, 0.8808]]
    >>> round(float(keras.ops.convert_to_numpy(layer(logits, training=True)).sum()), 4)
    1.0
    """

    def __init__(
        self,
        temperature=1.0,
        hard=False,
        sample_at_inference=False,
        learn_temperature=False,
        min_temperature=1e-2,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_float("temperature", temperature)
        check_bool("hard", hard)
        check_bool("sample_at_inference", sample_at_inference)
        check_bool("learn_temperature", learn_temperature)
        check_positive_float("min_temperature", min_temperature)
        if learn_temperature and temperature < min_temperature:
            raise ValueError(
                "Invalid value received for argument `temperature`. Expected "
                f"temperature >= min_temperature={min_temperature} when "
                f"learn_temperature=True. Received: temperature={temperature}"
            )
        check_optional_int("seed", seed)
        self.temperature = float(temperature)
        self.hard = hard
        self.sample_at_inference = sample_at_inference
        self.learn_temperature = learn_temperature
        self.min_temperature = float(min_temperature)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.temperature_variable = self.add_weight(
            name="temperature",
            shape=(),
            dtype="float32",
            initializer=keras.initializers.Constant(self.temperature),
            trainable=learn_temperature,
            autocast=False,
            constraint=(TemperatureFloor(self.min_temperature) if learn_temperature else None),
        )
        self.supports_masking = True

    # The discrete-codes protocol: a short description of what the codes
    # index, set by every layer that implements `discrete_codes`.
    codes_description = None

    # Optional part of the protocol, read by `keras_gumbel.callbacks.CodeUsage`:
    # how many axes of `one_hot` just before its class axis index groups
    # (separate categorical variables, each with its own codes). None: every
    # axis after the batch axis whose size is known, counted back from the
    # class axis up to the first unknown one, so that `[batch, 20, 10]` is 20
    # groups of 10 codes and `[batch, time, 10]`, `time` unknown, one group.
    codes_group_rank = None

    def call(self, inputs, training=None, mask=None):
        check_float_tensor("inputs", inputs)
        mask = self._class_mask(inputs, mask)
        if training or self.sample_at_inference:
            return self.sample(inputs, self.temperature_variable, mask)
        return self.deterministic(inputs, self.temperature_variable, mask)

    def _class_mask(self, inputs, mask):
        """The boolean mask of classes (or units) that `call` applies, or None.

        A mask of the inputs' rank selects classes (or units); a mask of
        lower rank is a Keras time-step mask, which only passes through.
        """
        if mask is not None and len(mask.shape) != len(inputs.shape):
            mask = None
        if mask is not None:
            mask = ops.cast(mask, "bool")
        if self.learn_temperature:
            # d(logits / tau) / d tau at a -inf logit is -inf * 0 = NaN: treat
            # such classes as masked so the temperature gradient stays finite.
            finite = inputs > float("-inf")
            mask = finite if mask is None else ops.logical_and(mask, finite)
        return mask

    def sample(self, logits, temperature, mask):
        raise NotImplementedError

    def deterministic(self, logits, temperature, mask):
        raise NotImplementedError

    def discrete_codes(self, inputs, mask=None):
        """The deterministic discrete codes of `inputs`; no random numbers.

        The discrete-codes protocol, which `keras_gumbel.export` serves:
        computed from exactly what `call` receives as `inputs` (and `mask`,
        honoured as in `call`: masked classes are never chosen), it returns
        a dict of three tensors:

        - "codes": int64 indices of the deterministic choice (`codes_dtype()`:
          int32 on JAX without 64-bit integers);
        - "one_hot": float32 one-hot (or k-hot) vectors of the codes, the
          class axis last;
        - "probs": float32 probabilities of the underlying categorical
          distribution (softmax of the logits, temperature-free), the class
          axis last.

        Each subclass documents its shapes and sets `codes_description`.

        Args:
            inputs: The tensor `call` receives.
            mask: Optional mask, as `call` receives it.

        Returns:
            A dict with keys "codes", "one_hot" and "probs".
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not implement `discrete_codes`, so it has no "
            "discrete codes to export."
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "temperature": self.temperature,
                "hard": self.hard,
                "sample_at_inference": self.sample_at_inference,
                "learn_temperature": self.learn_temperature,
                "min_temperature": self.min_temperature,
                "seed": self.seed,
            }
        )
        return config
