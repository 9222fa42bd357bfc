"""The GumbelTopK layer."""

from keras import ops

from keras_gumbel import ops as gumbel_ops
from keras_gumbel.layers.temperature_layer import TemperatureLayer
from keras_gumbel.layers.temperature_layer import codes_dtype
from keras_gumbel.serialization import register
from keras_gumbel.validation import check_float_tensor
from keras_gumbel.validation import check_positive_int


@register
class GumbelTopK(TemperatureLayer):
    """Turns logits into relaxed k-hot samples of k classes without replacement.

    In training the layer perturbs the logits with Gumbel noise (the
    Gumbel-top-k trick: the k largest perturbed scores are k draws without
    replacement from `softmax(logits)`) and returns the relaxation of their
    k-hot vector by k successive softmaxes, each softly removing the class
    it chose (Xie & Ermon, 2019):

    ```
    z_1 = (logits + g) / tau,             g ~ Gumbel(0, 1) i.i.d.
    a_j = softmax(z_j),   z_{j+1} = z_j + log(1 - a_j) / tau
    y = a_1 + ... + a_k
    ```

    `y` is non-negative and sums to k; at moderate and large tau an entry
    may exceed 1 (a class keeps part of its weight after being chosen). As
    `tau -> 0` it becomes the exact k-hot sample. With `hard=True` the
    forward value is that exact k-hot sample and the backward pass uses the
    gradient of `y` drawn with the same noise. Anneal tau with
    `keras_gumbel.callbacks.TemperatureScheduler`.

    At inference (`training=False`) the output is deterministic and draws no
    random numbers: the k-hot vector of the k largest logits (ties go to the
    lower index), with or without `hard`, since a relaxed output without
    noise is not a sample of anything. Pass `sample_at_inference=True` to
    keep sampling instead.

    Masking: a Keras mask of the same rank as the inputs (True = allowed), or
    a logit of `-inf`, removes a class: it gets exactly 0 and is never
    chosen. Every row needs at least k allowed classes; eager calls raise a
    `ValueError` otherwise, and compiled calls choose all the allowed classes
    of such a row (see `keras_gumbel.ops.relaxed_top_k`). A mask of lower
    rank (a time-step mask) is passed through.

    Args:
        k: Integer >= 1, at most the number of classes. The size of the
            subset.
        temperature: Float > 0. Initial temperature, stored in the scalar
            float32 weight `temperature_variable`. Defaults to 1.0.
        hard: Boolean. Whether to output straight-through k-hot samples.
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

    In training, hard samples are k-hot vectors of k distinct classes:

    >>> import keras
    >>> import numpy as np
    >>> from keras_gumbel.layers import GumbelTopK
    >>> layer = GumbelTopK(k=3, temperature=0.5, hard=True, seed=0)
    >>> y = keras.ops.convert_to_numpy(layer(keras.ops.zeros((2, 10)), training=True))
    >>> np.unique(y).tolist(), y.sum(axis=-1).tolist()
    ([0.0, 1.0], [3.0, 3.0])

    At inference a hard layer returns the k-hot vector of the k largest
    logits, without random numbers:

    >>> logits = keras.ops.array([[0.1, 2.0, 1.0, 3.0]])
    >>> keras.ops.convert_to_numpy(GumbelTopK(k=2, hard=True)(logits)).tolist()
    [[0.0, 1.0, 0.0, 1.0]]

    Reference:
        - Xie & Ermon, "Reparameterizable Subset Sampling via Continuous
          Relaxations", IJCAI 2019.
        - Kool, van Hoof & Welling, "Stochastic Beams and Where to Find
          Them: The Gumbel-Top-k Trick for Sampling Sequences Without
          Replacement", ICML 2019.
        - Jang, Gu & Poole, "Categorical Reparameterization with
          Gumbel-Softmax", ICLR 2017.
        - Maddison, Mnih & Teh, "The Concrete Distribution: A Continuous
          Relaxation of Discrete Random Variables", ICLR 2017.
    """

    codes_description = "indices of the k largest logits, in decreasing order of logit"

    def __init__(
        self,
        k,
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
        check_positive_int("k", k)
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise TypeError(
                "Invalid value received for argument `axis`. Expected an "
                f"integer. Received: axis={axis!r}"
            )
        self.k = k
        self.axis = axis

    def build(self, input_shape):
        # Fails early, at model construction, on a bad axis, an unknown
        # number of classes or a k larger than it.
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(
                "Invalid value received for argument `axis`. Expected an "
                f"integer in [-{rank}, {rank}) for inputs of rank {rank}. "
                f"Received: axis={self.axis}"
            )
        num_classes = input_shape[self.axis]
        if num_classes is None:
            raise ValueError(
                f"{type(self).__name__} needs a known number of classes. "
                f"Received: input_shape={input_shape} with axis={self.axis}"
            )
        if self.k > num_classes:
            raise ValueError(
                "Invalid value received for argument `k`. Expected an integer "
                f"<= the number of classes, {num_classes}. Received: k={self.k}"
            )

    def sample(self, logits, temperature, mask):
        return gumbel_ops.relaxed_top_k(
            logits,
            self.k,
            temperature,
            hard=self.hard,
            axis=self.axis,
            mask=mask,
            seed=self.seed_generator,
        )

    def deterministic(self, logits, temperature, mask):
        return gumbel_ops.k_hot_top_k(logits, self.k, axis=self.axis, mask=mask)[1]

    def discrete_codes(self, inputs, mask=None):
        """The deterministic codes of logits: the indices of the k largest.

        No random numbers are drawn and the temperature plays no part. A
        mask is honoured as in `call`: masked classes are never chosen.

        Args:
            inputs: Float tensor of logits, as `call` receives it.
            mask: Optional boolean tensor, as `call` receives it.

        Returns:
            A dict of `codes` (int64, the inputs' shape without the class
            axis plus k: the indices in decreasing order of logit), `one_hot`
            (float32 k-hot vectors, the inputs' shape with the class axis
            moved last) and `probs` (float32 `softmax(logits)`, the same
            shape).

        Example:

        >>> import keras
        >>> from keras_gumbel.layers import GumbelTopK
        >>> layer = GumbelTopK(k=2)
        >>> out = layer.discrete_codes(keras.ops.array([[0.0, 2.0, 1.0]]))
        >>> out = {key: keras.ops.convert_to_numpy(value) for key, value in out.items()}
        >>> out["codes"].tolist(), out["one_hot"].tolist()
        ([[1, 2]], [[0.0, 1.0, 1.0]])
        """
        check_float_tensor("inputs", inputs)
        mask = self._class_mask(inputs, mask)
        logits = ops.moveaxis(ops.cast(inputs, "float32"), self.axis, -1)
        if mask is not None:
            mask = ops.moveaxis(mask, self.axis, -1)
        indices, k_hot = gumbel_ops.k_hot_top_k(logits, self.k, mask=mask)
        probs = gumbel_ops.tempered_softmax(logits, 1.0, mask=mask)
        return {"codes": ops.cast(indices, codes_dtype()), "one_hot": k_hot, "probs": probs}

    def get_config(self):
        config = super().get_config()
        config.update({"k": self.k, "axis": self.axis})
        return config
