"""The GumbelSigmoid layer."""

from keras import ops

from keras_gumbel import ops as gumbel_ops
from keras_gumbel.layers.temperature_layer import TemperatureLayer
from keras_gumbel.layers.temperature_layer import codes_dtype
from keras_gumbel.serialization import register
from keras_gumbel.validation import check_float_tensor


@register
class GumbelSigmoid(TemperatureLayer):
    """Turns log-odds into binary Gumbel-Softmax (relaxed Bernoulli) samples.

    The two-class Gumbel-Softmax with one logit per unit. In training:

    ```
    y = sigmoid((logits + L) / tau),   L = log(u) - log(1 - u), u ~ U(0, 1)
    ```

    With `hard=True` the forward value is the exact Bernoulli sample
    `1[logits + L > 0]` and the gradient is that of `y` (straight-through).
    As `tau -> 0` samples approach {0, 1}; as `tau -> inf` they approach 1/2.

    At inference the output is deterministic: `1[logits > 0]` when `hard`,
    otherwise `sigmoid(logits / tau)`, unless `sample_at_inference=True`.
    A Keras mask of the inputs' rank sets masked units to exactly 0.

    Args:
        temperature: Float > 0. Initial temperature, stored in the scalar
            float32 weight `temperature_variable`. Defaults to 1.0.
        hard: Boolean. Whether to output straight-through {0, 1} samples.
            Defaults to False.
        sample_at_inference: Boolean. Whether to sample when `training` is
            False. Defaults to False.
        learn_temperature: Boolean. Whether the temperature is trained by
            backpropagation (kept >= `min_temperature`). Defaults to False.
        min_temperature: Float > 0. Floor of a learned temperature. Defaults
            to 0.01.
        seed: Optional integer. Seed of the layer's random generator.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Float tensor of log-odds, any shape.
        training: Python boolean. Whether to sample.
        mask: Optional boolean tensor of the inputs' shape; False = masked.

    Returns:
        A tensor with the shape and dtype of `inputs`.

    Example:

    In training, hard samples are exact Bernoulli(sigmoid(logits)) bits
    (here p = 1/2; 400 draws give a frequency within 0.1 of it with
    probability above 0.9999):

    >>> import keras
    >>> import numpy as np
    >>> from keras_gumbel.layers import GumbelSigmoid
    >>> layer = GumbelSigmoid(hard=True, seed=0)
    >>> bits = keras.ops.convert_to_numpy(layer(keras.ops.zeros((2, 200)), training=True))
    >>> bits.shape, np.unique(bits).tolist(), bool(abs(bits.mean() - 0.5) < 0.1)
    ((2, 200), [0.0, 1.0], True)

    At inference the output is deterministic: `1[logits > 0]`, or
    `sigmoid(logits / tau)` for a soft layer:

    >>> logits = keras.ops.array([[-1.0, 0.5, 2.0]])
    >>> keras.ops.convert_to_numpy(layer(logits)).tolist()
    [[0.0, 1.0, 1.0]]
    >>> soft = GumbelSigmoid(temperature=0.5)
    >>> keras.ops.convert_to_numpy(soft(logits)).astype("float64").round(4).tolist()
    [[0.1192, 0.7311, 0.982]]

    Reference:
        - Jang, Gu & Poole, "Categorical Reparameterization with
          Gumbel-Softmax", ICLR 2017.
        - Maddison, Mnih & Teh, "The Concrete Distribution: A Continuous
          Relaxation of Discrete Random Variables", ICLR 2017.
    """

    def sample(self, logits, temperature, mask):
        return gumbel_ops.gumbel_sigmoid(
            logits, temperature, hard=self.hard, mask=mask, seed=self.seed_generator
        )

    def deterministic(self, logits, temperature, mask):
        if self.hard:
            return gumbel_ops.threshold(logits, mask=mask)
        return gumbel_ops.tempered_sigmoid(logits, temperature, mask=mask)

    codes_description = "unit state, 0 or 1; one_hot and probs are [off, on] on a new last axis"

    def discrete_codes(self, inputs, mask=None):
        """The deterministic codes of log-odds: `1[logits > 0]` per unit.

        No random numbers are drawn and the temperature plays no part. A
        masked unit (as in `call`) has code 0.

        Args:
            inputs: Float tensor of log-odds, as `call` receives it.
            mask: Optional boolean tensor, as `call` receives it.

        Returns:
            A dict of `codes` (int64 in {0, 1}, the inputs' shape), `one_hot`
            (`[1 - code, code]`) and `probs` (`[1 - p, p]` with
            `p = sigmoid(logits)`), float32 with a new last axis of size 2.

        Example:

        >>> import keras
        >>> from keras_gumbel.layers import GumbelSigmoid
        >>> layer = GumbelSigmoid(hard=True)
        >>> out = layer.discrete_codes(keras.ops.array([[-1.0, 0.5]]))
        >>> keras.ops.convert_to_numpy(out["codes"]).tolist()
        [[0, 1]]
        >>> keras.ops.convert_to_numpy(out["one_hot"]).tolist()
        [[[1.0, 0.0], [0.0, 1.0]]]
        >>> keras.ops.convert_to_numpy(out["probs"]).astype("float64").round(4).tolist()
        [[[0.7311, 0.2689], [0.3775, 0.6225]]]
        """
        check_float_tensor("inputs", inputs)
        mask = self._class_mask(inputs, mask)
        logits = ops.cast(inputs, "float32")
        bits = gumbel_ops.threshold(logits, mask=mask)
        p = gumbel_ops.tempered_sigmoid(logits, 1.0, mask=mask)
        return {
            "codes": ops.cast(bits, codes_dtype()),
            "one_hot": ops.stack([1.0 - bits, bits], axis=-1),
            "probs": ops.stack([1.0 - p, p], axis=-1),
        }
