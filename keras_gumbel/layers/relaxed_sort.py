"""The RelaxedSort layer."""

from keras import ops

from keras_gumbel import ops as gumbel_ops
from keras_gumbel.layers.gumbel_sinkhorn import check_noise_factor
from keras_gumbel.layers.temperature_layer import TemperatureLayer
from keras_gumbel.layers.temperature_layer import codes_dtype
from keras_gumbel.serialization import register
from keras_gumbel.validation import check_choice
from keras_gumbel.validation import check_float_tensor

_METHODS = {"neuralsort": gumbel_ops.neural_sort, "softsort": gumbel_ops.soft_sort}


@register
class RelaxedSort(TemperatureLayer):
    """Turns score vectors `[..., n]` into relaxed sorting matrices `[..., n, n]`.

    The output `P` relaxes the permutation matrix that sorts the scores in
    descending order: row `i` is a probability vector concentrated on the
    item of rank `i` (row 0 on the largest score), so `P @ s` approximates
    the sorted scores. Two relaxations:

    ```
    neuralsort:  P[i, :] = softmax(((n + 1 - 2 i) s - A 1) / tau),  A = |s_j - s_k|
    softsort:    P[i, :] = softmax(-|sorted(s)_i - s| / tau)
    ```

    (`i = 1 .. n` in the NeuralSort formula.) Both are row-stochastic and
    become the exact sorting matrix as `tau -> 0` (for distinct scores).
    With `hard=True` the forward value is that exact matrix and the
    gradient is the relaxed one's. Anneal tau with
    `keras_gumbel.callbacks.TemperatureScheduler`.

    With `noise_factor > 0`, training perturbs the scores with Gumbel noise
    first: the sort of `s + G` is a sample of the Plackett-Luce distribution
    with log-weights `s` (stochastic NeuralSort, Grover et al., 2019). The
    default, 0, keeps training deterministic. At inference
    (`training=False`) the output is deterministic and draws no random
    numbers: the relaxed (or, with `hard`, exact) sort of the scores; pass
    `sample_at_inference=True` to keep sampling instead.

    Masking: every item takes part in the sort, so the layer does not apply
    a mask, and since its output has another shape it does not propagate
    one either.

    Backends: TensorFlow, JAX and PyTorch. On PyTorch, `jit_compile=True`
    (`torch.compile`) does not trace this layer: Dynamo fails inside Keras's
    dtype resolution. Compile without it there (`jit_compile=False`).

    Args:
        temperature: Float > 0. Initial temperature, stored in the scalar
            float32 weight `temperature_variable`. Defaults to 1.0.
        method: String, "neuralsort" or "softsort". Defaults to
            "neuralsort".
        hard: Boolean. Whether to output straight-through exact sorting
            matrices. Defaults to False.
        noise_factor: Float >= 0. Scale of the Gumbel noise in training.
            Defaults to 0.0 (no noise).
        sample_at_inference: Boolean. Whether to sample when `training` is
            False. Defaults to False.
        learn_temperature: Boolean. Whether the temperature is trained by
            backpropagation (kept >= `min_temperature`). Defaults to False.
        min_temperature: Float > 0. Floor of a learned temperature. Defaults
            to 0.01.
        seed: Optional integer. Seed of the layer's random generator.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Float tensor `[..., n]` of scores.
        training: Python boolean. Whether to sample (training) or return the
            deterministic output.
        mask: Ignored.

    Returns:
        A tensor `[..., n, n]` of the dtype of `inputs` (computed in float32).

    Example:

    >>> import keras
    >>> from keras_gumbel.layers import RelaxedSort
    >>> p = RelaxedSort(temperature=0.1, hard=True)(keras.ops.array([[0.0, 3.0, 1.0]]))
    >>> keras.ops.convert_to_numpy(p).tolist()
    [[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]]

    Reference:
        - Grover, Wang, Zweig & Ermon, "Stochastic Optimization of Sorting
          Networks via Continuous Relaxations", ICLR 2019.
        - Prillo & Eisenschlos, "SoftSort: A Continuous Relaxation for the
          argsort Operator", ICML 2020.
        - Jang, Gu & Poole, "Categorical Reparameterization with
          Gumbel-Softmax", ICLR 2017.
        - Maddison, Mnih & Teh, "The Concrete Distribution: A Continuous
          Relaxation of Discrete Random Variables", ICLR 2017.
    """

    codes_description = "indices sorting the scores in descending order: codes[..., i] has rank i"

    def __init__(
        self,
        temperature=1.0,
        method="neuralsort",
        hard=False,
        noise_factor=0.0,
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
        check_choice("method", method, tuple(_METHODS))
        check_noise_factor(noise_factor)
        self.method = method
        self.noise_factor = noise_factor

    def build(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) < 2 or shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape [batch, ..., n] with a known "
                f"n. Received: input_shape={shape}"
            )

    def call(self, inputs, training=None, mask=None):
        check_float_tensor("inputs", inputs)
        if training or self.sample_at_inference:
            return self.sample(inputs, self.temperature_variable, None)
        return self.deterministic(inputs, self.temperature_variable, None)

    def sample(self, logits, temperature, mask):
        x = ops.cast(logits, "float32")
        if self.noise_factor:
            noise = gumbel_ops.gumbel_noise(ops.shape(x), seed=self.seed_generator)
            x = x + self.noise_factor * noise
        return self._sort(x, temperature, logits.dtype)

    def deterministic(self, logits, temperature, mask):
        return self._sort(ops.cast(logits, "float32"), temperature, logits.dtype)

    def _sort(self, scores, temperature, dtype):
        y = _METHODS[self.method](scores, ops.cast(temperature, "float32"), hard=self.hard)
        return ops.cast(y, dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (input_shape[-1],)

    def compute_mask(self, inputs, mask=None):
        return None

    def discrete_codes(self, inputs, mask=None):
        """The deterministic codes of scores: the indices that sort them.

        No random numbers are drawn and the temperature plays no part; the
        mask is ignored, as in `call`.

        Args:
            inputs: Float tensor `[..., n]` of scores, as `call` receives it.
            mask: Ignored.

        Returns:
            A dict of `codes` (int64 `[..., n]`, the item of each rank in
            descending order; ties go to the lower index), `one_hot` (float32
            `[..., n, n]`, the sorting permutation matrix) and `probs`
            (float32 `[..., n, n]`, the relaxed sort at temperature 1).

        Example:

        >>> import keras
        >>> from keras_gumbel.layers import RelaxedSort
        >>> out = RelaxedSort().discrete_codes(keras.ops.array([[0.0, 3.0, 1.0]]))
        >>> keras.ops.convert_to_numpy(out["codes"]).tolist()
        [[1, 2, 0]]
        """
        check_float_tensor("inputs", inputs)
        x = ops.cast(inputs, "float32")
        indices = gumbel_ops.sort_indices(x)
        return {
            "codes": ops.cast(indices, codes_dtype()),
            "one_hot": gumbel_ops.permutation_matrix(indices),
            "probs": _METHODS[self.method](x, 1.0),
        }

    def get_config(self):
        config = super().get_config()
        config.update({"method": self.method, "noise_factor": self.noise_factor})
        return config
