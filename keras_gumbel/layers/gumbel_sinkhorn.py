"""The GumbelSinkhorn layer."""

from keras import ops

from keras_gumbel import ops as gumbel_ops
from keras_gumbel.layers.temperature_layer import TemperatureLayer
from keras_gumbel.layers.temperature_layer import codes_dtype
from keras_gumbel.serialization import register
from keras_gumbel.validation import check_float_tensor
from keras_gumbel.validation import check_positive_int
from keras_gumbel.validation import is_number


def check_noise_factor(noise_factor):
    if isinstance(noise_factor, bool) or not is_number(noise_factor) or not noise_factor >= 0:
        raise ValueError(
            "Invalid value received for argument `noise_factor`. Expected a float >= 0. "
            f"Received: noise_factor={noise_factor!r}"
        )


@register
class GumbelSinkhorn(TemperatureLayer):
    """Turns `[n, n]` score matrices into relaxed permutation matrices.

    In training the layer adds Gumbel noise to the scores and applies the
    Sinkhorn operator at temperature tau (Mena et al., 2018):

    ```
    G ~ Gumbel(0, 1) i.i.d.,   X = log_alpha + noise_factor * G
    y = sinkhorn(X / tau)      (rows and columns normalized in turn)
    ```

    `y` is non-negative, its rows sum to 1 and its columns approximately so
    (see `keras_gumbel.ops.sinkhorn` for the tolerance). As `tau -> 0` it
    becomes the permutation matrix of `matching(X)`, the exact maximum-weight
    matching of the perturbed scores. With `hard=True` the forward value is
    that exact permutation matrix (computed by `keras_gumbel.ops.matching`)
    and the backward pass uses the gradient of the soft `y` drawn with the
    same noise. Anneal tau with `keras_gumbel.callbacks.TemperatureScheduler`.

    At inference (`training=False`) the output is deterministic and draws no
    random numbers: `sinkhorn(log_alpha / tau)`, or with `hard=True` the
    permutation matrix of the exact matching of `log_alpha`. Pass
    `sample_at_inference=True` to keep sampling instead.

    Masking: every row and column takes part in a permutation, so the layer
    does not apply a mask; a Keras mask passes through unchanged to the
    layers that follow.

    Args:
        temperature: Float > 0. Initial temperature, stored in the scalar
            float32 weight `temperature_variable`. Defaults to 1.0.
        num_iters: Integer >= 1. Sinkhorn iterations. Defaults to 20.
        hard: Boolean. Whether to output straight-through exact permutation
            matrices. Defaults to False.
        noise_factor: Float >= 0. Scale of the Gumbel noise in training; 0
            makes training deterministic. Defaults to 1.0.
        sample_at_inference: Boolean. Whether to sample when `training` is
            False. Defaults to False.
        learn_temperature: Boolean. Whether the temperature is trained by
            backpropagation (kept >= `min_temperature`). Defaults to False.
        min_temperature: Float > 0. Floor of a learned temperature. Defaults
            to 0.01.
        seed: Optional integer. Seed of the layer's random generator.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Float tensor `[..., n, n]` of scores (`log_alpha`); row `i`,
            column `j` scores sending item `i` to position `j`.
        training: Python boolean. Whether to sample (training) or return the
            deterministic output.
        mask: Ignored (passed through).

    Returns:
        A tensor with the shape and dtype of `inputs`. Under mixed precision
        the computation is float32 and the result is cast to the compute
        dtype.

    Example:

    >>> import keras
    >>> from keras_gumbel.layers import GumbelSinkhorn
    >>> layer = GumbelSinkhorn(temperature=0.5, hard=True, seed=0)
    >>> y = layer(keras.ops.zeros((2, 4, 4)), training=True)
    >>> keras.ops.convert_to_numpy(keras.ops.sum(y, axis=-1)).tolist()
    [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]

    Reference:
        - Mena, Belanger, Linderman & Snoek, "Learning Latent Permutations
          with Gumbel-Sinkhorn Networks", ICLR 2018.
        - Jang, Gu & Poole, "Categorical Reparameterization with
          Gumbel-Softmax", ICLR 2017.
        - Maddison, Mnih & Teh, "The Concrete Distribution: A Continuous
          Relaxation of Discrete Random Variables", ICLR 2017.
    """

    codes_description = (
        "permutation of the exact maximum-weight matching: codes[..., i] is the column of row i"
    )

    def __init__(
        self,
        temperature=1.0,
        num_iters=20,
        hard=False,
        noise_factor=1.0,
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
        check_positive_int("num_iters", num_iters)
        check_noise_factor(noise_factor)
        self.num_iters = num_iters
        self.noise_factor = noise_factor

    def build(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) < 3 or shape[-1] is None or shape[-1] != shape[-2]:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape [batch, ..., n, n] with a "
                f"known n. Received: input_shape={shape}"
            )

    def call(self, inputs, training=None, mask=None):
        check_float_tensor("inputs", inputs)
        if training or self.sample_at_inference:
            return self.sample(inputs, self.temperature_variable, None)
        return self.deterministic(inputs, self.temperature_variable, None)

    def _output(self, scores, tau, dtype):
        soft = gumbel_ops.sinkhorn(scores / tau, self.num_iters)
        if self.hard:
            hard = gumbel_ops.permutation_matrix(gumbel_ops.matching(scores))
            soft = (soft - ops.stop_gradient(soft)) + hard
        return ops.cast(soft, dtype)

    def sample(self, logits, temperature, mask):
        x = ops.cast(logits, "float32")
        if self.noise_factor:
            noise = gumbel_ops.gumbel_noise(ops.shape(x), seed=self.seed_generator)
            x = x + self.noise_factor * noise
        return self._output(x, ops.cast(temperature, "float32"), logits.dtype)

    def deterministic(self, logits, temperature, mask):
        x = ops.cast(logits, "float32")
        return self._output(x, ops.cast(temperature, "float32"), logits.dtype)

    def discrete_codes(self, inputs, mask=None):
        """The deterministic codes of scores: the exact maximum-weight matching.

        No random numbers are drawn and the temperature plays no part; the
        mask is ignored, as in `call`.

        Args:
            inputs: Float tensor `[..., n, n]` of scores, as `call` receives it.
            mask: Ignored.

        Returns:
            A dict of `codes` (int64 `[..., n]`: the column matched to each
            row), `one_hot` (float32 `[..., n, n]`, the permutation matrix)
            and `probs` (float32 `[..., n, n]`, `sinkhorn(inputs)` at
            temperature 1).

        Example:

        >>> import keras
        >>> from keras_gumbel.layers import GumbelSinkhorn
        >>> scores = keras.ops.array([[[0.0, 3.0], [1.0, 0.0]]])
        >>> out = GumbelSinkhorn().discrete_codes(scores)
        >>> keras.ops.convert_to_numpy(out["codes"]).tolist()
        [[1, 0]]
        """
        check_float_tensor("inputs", inputs)
        x = ops.cast(inputs, "float32")
        perm = gumbel_ops.matching(x)
        return {
            "codes": ops.cast(perm, codes_dtype()),
            "one_hot": gumbel_ops.permutation_matrix(perm),
            "probs": gumbel_ops.sinkhorn(x, self.num_iters),
        }

    def get_config(self):
        config = super().get_config()
        config.update({"num_iters": self.num_iters, "noise_factor": self.noise_factor})
        return config
