"""The GumbelSoftmax layer."""

from keras import ops

from keras_gumbel import ops as gumbel_ops
from keras_gumbel.layers.temperature_layer import TemperatureLayer
from keras_gumbel.layers.temperature_layer import codes_dtype
from keras_gumbel.serialization import register
from keras_gumbel.validation import check_float_tensor


@register
class GumbelSoftmax(TemperatureLayer):
    """Turns logits into Gumbel-Softmax (Concrete) samples along `axis`.

    In training the layer draws a relaxed one-hot sample

    ```
    y = softmax((logits + g) / tau),   g ~ Gumbel(0, 1) i.i.d.
    ```

    so that gradients reach the logits (the Gumbel-Softmax estimator). With
    `hard=True` the forward value is the exact categorical sample
    `one_hot(argmax(logits + g))` and the backward pass uses the gradient of
    `y` (Straight-Through Gumbel-Softmax).

    The temperature `tau` trades bias for variance: as `tau -> 0` samples
    become one-hot (the argmax is an exact categorical sample at every `tau`)
    but gradients grow noisy; as `tau -> inf` samples approach the uniform
    vector `1/k`. Anneal it from about 1 to a small value such as 0.5 with
    `keras_gumbel.callbacks.TemperatureScheduler`.

    At inference (`training=False`) the output is deterministic and draws no
    random numbers: `one_hot(argmax(logits))` when `hard=True`, otherwise
    `softmax(logits / tau)`. Pass `sample_at_inference=True` to keep
    sampling instead.

    Masking: a Keras mask of the same rank as the inputs (True = allowed), or
    a logit of `-inf`, removes a class: it gets exactly 0 and is never
    chosen. A mask of lower rank (a time-step mask) is passed through.

    Args:
        temperature: Float > 0. Initial temperature, stored in the scalar
            float32 weight `temperature_variable`. Defaults to 1.0.
        hard: Boolean. Whether to output straight-through one-hot samples.
            Defaults to False.
        axis: Integer. The class axis. Defaults to -1.
        sample_at_inference: Boolean. Whether to sample when `training` is
            False. Defaults to False.
        learn_temperature: Boolean. Whether the temperature is trained by
            backpropagation (kept >= `min_temperature`). Defaults to False.
        min_temperature: Float > 0. Floor of a learned temperature. Defaults
            to 0.01.
        seed: Optional integer. Seed of the layer's random generator.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Float tensor of logits, any rank, classes along `axis`.
        training: Python boolean. Whether to sample (training) or return the
            deterministic output.
        mask: Optional boolean tensor of the inputs' shape; False = masked.

    Returns:
        A tensor with the shape and dtype of `inputs`.

    Example:

    In training, hard samples are one-hot along the class axis:

    >>> import keras
    >>> import numpy as np
    >>> from keras_gumbel.layers import GumbelSoftmax
    >>> layer = GumbelSoftmax(temperature=0.5, hard=True, seed=0)
    >>> codes = keras.ops.convert_to_numpy(layer(keras.ops.zeros((2, 20, 10)), training=True))
    >>> codes.shape, np.unique(codes).tolist(), np.unique(codes.sum(axis=-1)).tolist()
    ((2, 20, 10), [0.0, 1.0], [1.0])

    At inference the output is deterministic: the one-hot argmax, or
    `softmax(logits / tau)` for a soft layer:

    >>> logits = keras.ops.array([[0.0, 2.0, 1.0]])
    >>> keras.ops.convert_to_numpy(layer(logits)).tolist()
    [[0.0, 1.0, 0.0]]
    >>> soft = GumbelSoftmax(temperature=2.0)
    >>> keras.ops.convert_to_numpy(soft(logits)).astype("float64").round(4).tolist()
    [[0.1863, 0.5065, 0.3072]]

    Reference:
        - Jang, Gu & Poole, "Categorical Reparameterization with
          Gumbel-Softmax", ICLR 2017.
        - Maddison, Mnih & Teh, "The Concrete Distribution: A Continuous
          Relaxation of Discrete Random Variables", ICLR 2017.
    """

    def __init__(
        self,
        temperature=1.0,
        hard=False,
        axis=-1,
        sample_at_inference=False,
        learn_temperature=False,
        min_temperature=1e-2,
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
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise TypeError(
                "Invalid value received for argument `axis`. Expected an "
                f"integer. Received: axis={axis!r}"
            )
        self.axis = axis

    def build(self, input_shape):
        # Fails early, at model construction, on a bad axis or unknown k.
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(
                "Invalid value received for argument `axis`. Expected an "
                f"integer in [-{rank}, {rank}) for inputs of rank {rank}. "
                f"Received: axis={self.axis}"
            )
        if input_shape[self.axis] is None:
            raise ValueError(
                f"{type(self).__name__} needs a known number of classes. "
                f"Received: input_shape={input_shape} with axis={self.axis}"
            )

    def sample(self, logits, temperature, mask):
        return gumbel_ops.gumbel_softmax(
            logits,
            temperature,
            axis=self.axis,
            hard=self.hard,
            mask=mask,
            seed=self.seed_generator,
        )

    def deterministic(self, logits, temperature, mask):
        if self.hard:
            return gumbel_ops.one_hot_argmax(logits, axis=self.axis, mask=mask)
        return gumbel_ops.tempered_softmax(logits, temperature, axis=self.axis, mask=mask)

    codes_description = "class index along the layer's axis"

    def discrete_codes(self, inputs, mask=None):
        """The deterministic codes of logits: the index of the largest logit.

        No random numbers are drawn and the temperature plays no part. A
        mask is honoured as in `call`: masked classes are never chosen.

        Args:
            inputs: Float tensor of logits, as `call` receives it.
            mask: Optional boolean tensor, as `call` receives it.

        Returns:
            A dict of `codes` (int64, the inputs' shape without the class
            axis), `one_hot` and `probs` (float32, the codes' shape plus the
            K classes: the class axis moved last; `probs = softmax(logits)`).

        Example:

        >>> import keras
        >>> from keras_gumbel.layers import GumbelSoftmax
        >>> layer = GumbelSoftmax(hard=True)
        >>> out = layer.discrete_codes(keras.ops.array([[0.0, 2.0, 1.0]]))
        >>> out = {key: keras.ops.convert_to_numpy(value) for key, value in out.items()}
        >>> out["codes"].tolist(), out["one_hot"].tolist()
        ([1], [[0.0, 1.0, 0.0]])
        >>> out["probs"].astype("float64").round(4).tolist()
        [[0.09, 0.6652, 0.2447]]
        """
        check_float_tensor("inputs", inputs)
        mask = self._class_mask(inputs, mask)
        logits = ops.cast(inputs, "float32")
        one_hot = gumbel_ops.one_hot_argmax(logits, axis=self.axis, mask=mask)
        probs = gumbel_ops.tempered_softmax(logits, 1.0, axis=self.axis, mask=mask)
        one_hot = ops.moveaxis(one_hot, self.axis, -1)
        probs = ops.moveaxis(probs, self.axis, -1)
        # A row whose classes are all masked has an all-zero one-hot and code 0.
        codes = ops.cast(ops.argmax(one_hot, axis=-1), codes_dtype())
        return {"codes": codes, "one_hot": one_hot, "probs": probs}

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config
