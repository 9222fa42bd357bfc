"""The ConcreteSelect layer."""

import keras
from keras import ops

from keras_gumbel import ops as gumbel_ops
from keras_gumbel.layers.temperature_layer import TemperatureLayer
from keras_gumbel.layers.temperature_layer import codes_dtype
from keras_gumbel.serialization import register
from keras_gumbel.validation import check_float_tensor
from keras_gumbel.validation import check_positive_int


@register
class ConcreteSelect(TemperatureLayer):
    """Learns which `num_selected` of the D input features to keep.

    The encoder of the Concrete Autoencoder (Abid, Balın & Zou, 2019). Each
    of the `num_selected` outputs is a Concrete (Gumbel-Softmax) variable
    over the D input features, with trainable logits of shape
    `[num_selected, D]`. In training the layer draws one relaxed selection
    matrix per call (shared by the batch) and returns the inputs times it:

    ```
    S = softmax((logits + G) / tau) along D,   G ~ Gumbel(0, 1) i.i.d.
    outputs = inputs @ transpose(S)           # [batch, num_selected]
    ```

    As the temperature falls, each row of `S` concentrates on one feature.
    At inference (`training=False`) the rows are the one-hot vectors of
    `argmax(logits)`, so the outputs are exactly the selected input features
    (`keras.ops.take(inputs, selected_indices, axis=-1)`), and no random
    numbers are drawn. `selected_indices()` returns those indices. Nothing
    forbids two outputs to select the same feature; the model then uses
    fewer distinct features than it has outputs.

    The paper anneals the temperature exponentially from 10 to 0.01 over
    the whole training run, `tau(t) = 10 * (0.01 / 10) ** (t / T)` for T
    training steps. `keras_gumbel.schedules.ExponentialDecay` expresses it
    exactly, recomputed every step:

    ```python
    steps = epochs * steps_per_epoch
    schedule = keras_gumbel.schedules.ExponentialDecay(
        initial=10.0, rate=math.log(10.0 / 0.01) / steps, minimum=0.01, interval=1)
    model.fit(x, x, epochs=epochs,
              callbacks=[keras_gumbel.callbacks.TemperatureScheduler(schedule)])
    ```

    Args:
        num_selected: Integer >= 1, at most the number of input features.
            How many features to select.
        temperature: Float > 0. Initial temperature, stored in the scalar
            float32 weight `temperature_variable`. Defaults to 10.0, the
            paper's starting value.
        hard: Boolean. Whether training uses straight-through one-hot
            selections (exact feature values forward, the relaxed gradient
            backward) instead of relaxed ones. Defaults to False, as in the
            paper.
        sample_at_inference: Boolean. Whether to draw relaxed selections also
            when `training` is False. Defaults to False.
        learn_temperature: Boolean. Whether the temperature is trained by
            backpropagation (kept >= `min_temperature`). Defaults to False.
        min_temperature: Float > 0. Floor of a learned temperature. Defaults
            to 0.01.
        logits_initializer: Initializer of the selection logits. Defaults to
            "glorot_normal", as in the paper's implementation.
        seed: Optional integer. Seed of the layer's random generator.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Float tensor `[..., D]`, features last.
        training: Python boolean. Whether to draw relaxed selections
            (training) or take the selected features.

    Returns:
        A tensor `[..., num_selected]` in the dtype of `inputs`.

    Example:

    In training each output is a relaxed mixture of the features (their
    weights sum to 1, so constant inputs pass through unchanged):

    >>> import keras
    >>> import numpy as np
    >>> from keras_gumbel.layers import ConcreteSelect
    >>> layer = ConcreteSelect(num_selected=3, seed=0)
    >>> y = keras.ops.convert_to_numpy(layer(keras.ops.ones((4, 20)), training=True))
    >>> y.shape, bool(np.allclose(y, 1.0, atol=1e-5))
    ((4, 3), True)

    At inference the outputs are exactly the selected features:

    >>> x = np.arange(40, dtype="float32").reshape(2, 20)
    >>> selected = layer.selected_indices()
    >>> selected.shape, bool(np.array_equal(keras.ops.convert_to_numpy(layer(x)), x[:, selected]))
    ((3,), True)

    Reference:
        - Abid, Balın & Zou, "Concrete Autoencoders: Differentiable Feature
          Selection and Reconstruction", ICML 2019,
          https://arxiv.org/abs/1901.09346
        - Jang, Gu & Poole, "Categorical Reparameterization with
          Gumbel-Softmax", ICLR 2017.
        - Maddison, Mnih & Teh, "The Concrete Distribution: A Continuous
          Relaxation of Discrete Random Variables", ICLR 2017.
    """

    codes_description = "indices of the selected input features"

    def __init__(
        self,
        num_selected,
        temperature=10.0,
        hard=False,
        sample_at_inference=False,
        learn_temperature=False,
        min_temperature=1e-2,
        logits_initializer="glorot_normal",
        seed=None,
        **kwargs,
    ):
        super().__init__(
            temperature=temperature,
            hard=hard,
            sample_at_inference=sample_at_inference,
            learn_temperature=learn_temperature,
            min_temperature=min_temperature,
            seed=seed,
            **kwargs,
        )
        check_positive_int("num_selected", num_selected)
        self.num_selected = num_selected
        self.logits_initializer = keras.initializers.get(logits_initializer)
        # The output has other features than the input: a mask of the input
        # features means nothing for it.
        self.supports_masking = False

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape [batch, ..., features]. "
                f"Received: input_shape={input_shape}"
            )
        num_features = input_shape[-1]
        if num_features is None:
            raise ValueError(
                f"{type(self).__name__} needs a known number of input features. "
                f"Received: input_shape={input_shape}"
            )
        if self.num_selected > num_features:
            raise ValueError(
                "Invalid value received for argument `num_selected`. Expected an "
                f"integer <= the number of input features, {num_features}. "
                f"Received: num_selected={self.num_selected}"
            )
        # float32 even under mixed precision: the selection is computed from
        # them in float32 and only its result is cast to the inputs' dtype.
        self.logits = self.add_weight(
            name="logits",
            shape=(self.num_selected, num_features),
            initializer=self.logits_initializer,
            dtype="float32",
            autocast=False,
        )

    def call(self, inputs, training=None):
        check_float_tensor("inputs", inputs)
        if training or self.sample_at_inference:
            selection = gumbel_ops.gumbel_softmax(
                self.logits,
                self.temperature_variable,
                hard=self.hard,
                seed=self.seed_generator,
            )
            return ops.matmul(inputs, ops.transpose(ops.cast(selection, inputs.dtype)))
        return ops.take(inputs, self._indices(), axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_selected,)

    def _indices(self):
        return ops.argmax(self.logits, axis=-1)

    def selected_indices(self):
        """The selected input features, one per output, as a NumPy int64 array.

        `argmax` of each row of the selection logits: the features the layer
        returns at inference, in the order of its outputs.
        """
        if not self.built:
            raise ValueError(
                f"{type(self).__name__} {self.name!r} has no selection yet: call it on "
                "inputs (or build it) first."
            )
        return ops.convert_to_numpy(self._indices()).astype("int64")

    def discrete_codes(self, inputs, mask=None):
        """The selected features, broadcast over the batch; no random numbers.

        The selection depends on the layer's logits alone, not on the
        values of `inputs` (which give only the batch shape) nor on a mask.

        Args:
            inputs: Float tensor `[..., D]`, as `call` receives it.
            mask: Ignored: the layer takes no mask.

        Returns:
            A dict of `codes` (int64 `[..., num_selected]`, the selected
            feature indices, identical for every row), `one_hot` (float32
            `[..., num_selected, D]`, their one-hot vectors) and `probs`
            (float32 `[..., num_selected, D]`, `softmax(logits)` of each
            output's Concrete distribution).

        Example:

        >>> import keras
        >>> import numpy as np
        >>> from keras_gumbel.layers import ConcreteSelect
        >>> layer = ConcreteSelect(num_selected=2)
        >>> out = layer.discrete_codes(keras.ops.ones((3, 5)))
        >>> tuple(out["codes"].shape), tuple(out["probs"].shape)
        ((3, 2), (3, 2, 5))
        >>> codes = keras.ops.convert_to_numpy(out["codes"])
        >>> bool(np.all(codes == layer.selected_indices()))
        True
        """
        check_float_tensor("inputs", inputs)
        if not self.built:
            self.build(inputs.shape)
        logits = ops.cast(self.logits, "float32")
        num_features = logits.shape[-1]
        indices = self._indices()
        batch_shape = tuple(ops.shape(inputs)[:-1])
        codes = ops.broadcast_to(
            ops.cast(indices, codes_dtype()), batch_shape + (self.num_selected,)
        )
        full = batch_shape + (self.num_selected, num_features)
        one_hot = ops.broadcast_to(ops.one_hot(indices, num_features, dtype="float32"), full)
        probs = ops.broadcast_to(ops.softmax(logits, axis=-1), full)
        return {"codes": codes, "one_hot": one_hot, "probs": probs}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_selected": self.num_selected,
                "logits_initializer": keras.initializers.serialize(self.logits_initializer),
            }
        )
        return config
