"""The GumbelVectorQuantizer layer."""

import math

import keras
from keras import ops

from keras_gumbel import ops as gumbel_ops
from keras_gumbel.layers.temperature_layer import TemperatureLayer
from keras_gumbel.layers.temperature_layer import codes_dtype
from keras_gumbel.serialization import register
from keras_gumbel.validation import check_float_tensor
from keras_gumbel.validation import check_positive_int
from keras_gumbel.validation import is_number


@register
class GumbelVectorQuantizer(TemperatureLayer):
    """Quantizes vectors with a Gumbel-Softmax choice of code vectors per group.

    The quantizer of wav2vec 2.0. A dense projection scores the `num_vars`
    code vectors of each of the `num_groups` groups at every position of the
    inputs; one code vector is chosen per group and the choices are
    concatenated:

    ```
    logits = inputs @ kernel + bias                          [..., G, V]
    training:   w = straight-through Gumbel-Softmax(logits, tau) per group
    inference:  w = one_hot(argmax(logits)) per group
    outputs[..., g] = sum_v w[..., g, v] * codevectors[g * V + v]   [..., C]
    ```

    In training, with `hard=True` (the default, as in wav2vec 2.0) the
    forward value of `w` is the exact one-hot of `argmax(logits + g)`,
    `g ~ Gumbel(0, 1)`, so each group contributes exactly one code vector,
    and the gradient is that of `softmax((logits + g) / tau)`
    (Straight-Through Gumbel-Softmax); `hard=False` outputs the relaxed
    mixture of code vectors instead. At inference the output is the code
    vector of the largest logit of each group, deterministic and without
    random numbers. Anneal the temperature with
    `keras_gumbel.callbacks.TemperatureScheduler` and
    `keras_gumbel.schedules.GeometricDecay()` (wav2vec 2.0:
    `max(2 * 0.999995 ** step, 0.5)`).

    Every call also computes the codebook perplexity (see
    `keras_gumbel.ops.codebook_perplexity`): in training that of the
    batch-average `softmax(logits)`, at inference that of the batch-average
    one-hot codes, as Hugging Face's `Wav2Vec2GumbelVectorQuantizer` does.
    The diversity loss `diversity_weight * (G * V - perplexity) / (G * V)`
    is added with `add_loss` when `diversity_weight > 0`. On the TensorFlow
    and PyTorch backends the perplexity is also a metric of the layer,
    named `"<layer name>_perplexity"`, which `fit` and `evaluate` log
    (averaged over the batches of an epoch). Keras's JAX trainer runs the
    forward pass without the state of metrics, so on JAX no such metric is
    created; the loss works on every backend.

    Masking: a Keras time-step mask (shape `inputs.shape[:-1]`, True = a
    real step, e.g. from `Embedding(mask_zero=True)` or `Masking`) leaves
    the masked steps out of the perplexity, as `mask_time_indices` does for
    the Hugging Face module. Masked steps still get a code vector, and the
    mask is passed on to the next layer.

    Mixed precision: the projection, sampling and lookup run in float32 (the
    weights are float32 and not autocast); the outputs have the layer's
    compute dtype.

    Weights: `trainable_weights` are exactly `[kernel (D, G * V), bias
    (G * V,), codevectors (G * V, C // G)]`; the temperature is a separate
    non-trainable float32 weight. A PyTorch `Wav2Vec2GumbelVectorQuantizer`
    loads by assigning `weight_proj.weight.T`, `weight_proj.bias` and
    `codevectors[0]` to them, in this order.

    Args:
        num_groups: Integer >= 1. Number of codebook groups `G`.
        num_vars: Integer >= 1. Code vectors per group `V`.
        codevector_dim: Integer >= 1, divisible by `num_groups`. Size `C`
            of the output vectors; each group's code vectors have
            `C // G` entries.
        temperature: Float > 0. Initial temperature, stored in the scalar
            float32 weight `temperature_variable`. Defaults to 2.0, the
            starting temperature of wav2vec 2.0.
        hard: Boolean. Whether training outputs are straight-through
            one-hot choices (True) or relaxed mixtures. Defaults to True.
        diversity_weight: Float >= 0. Weight of the diversity loss added
            with `add_loss`; 0 adds none. Defaults to 0.1, the
            `diversity_loss_weight` of wav2vec 2.0.
        sample_at_inference: Boolean. Whether to keep sampling when
            `training` is False. Defaults to False.
        kernel_initializer: Initializer of the projection kernel. Defaults
            to a standard normal, as wav2vec 2.0.
        bias_initializer: Initializer of the projection bias. Defaults to
            zeros.
        codevector_initializer: Initializer of the code vectors. Defaults
            to uniform on [0, 1), as wav2vec 2.0.
        seed: Optional integer. Seed of the layer's random generator.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Float tensor `[..., D]`, `D` known.
        training: Python boolean. Whether to sample (training) or take the
            argmax codes.
        mask: Optional boolean time-step mask of shape `inputs.shape[:-1]`.

    Returns:
        A tensor `[..., codevector_dim]` in the layer's compute dtype.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> from keras_gumbel.layers import GumbelVectorQuantizer
    >>> quantizer = GumbelVectorQuantizer(num_groups=2, num_vars=8,
    ...                                   codevector_dim=16, seed=0)
    >>> features = keras.random.normal((2, 50, 32), seed=1)
    >>> tuple(quantizer(features, training=True).shape)
    (2, 50, 16)
    >>> codes = quantizer.discrete_codes(features)
    >>> tuple(codes["codes"].shape), tuple(codes["probs"].shape)
    ((2, 50, 2), (2, 50, 2, 8))

    At inference each group contributes its code vector of the largest
    logit, so the output is the codebook looked up at the codes:

    >>> table = keras.ops.convert_to_numpy(quantizer.codevectors).reshape(2, 8, 8)
    >>> c = keras.ops.convert_to_numpy(codes["codes"])
    >>> expected = np.concatenate([table[0][c[..., 0]], table[1][c[..., 1]]], axis=-1)
    >>> bool(np.allclose(keras.ops.convert_to_numpy(quantizer(features)), expected))
    True

    Reference:
        - Baevski, Zhou, Mohamed & Auli, "wav2vec 2.0: A Framework for
          Self-Supervised Learning of Speech Representations", NeurIPS 2020.
        - Jang, Gu & Poole, "Categorical Reparameterization with
          Gumbel-Softmax", ICLR 2017.
        - Maddison, Mnih & Teh, "The Concrete Distribution: A Continuous
          Relaxation of Discrete Random Variables", ICLR 2017.
    """

    codes_description = "code vector index per group along the last axis, [..., num_groups]"
    # Only the group axis: the axes before it are positions (batch, time).
    codes_group_rank = 1

    def __init__(
        self,
        num_groups,
        num_vars,
        codevector_dim,
        temperature=2.0,
        hard=True,
        diversity_weight=0.1,
        sample_at_inference=False,
        kernel_initializer=None,
        bias_initializer="zeros",
        codevector_initializer=None,
        seed=None,
        **kwargs,
    ):
        fixed = sorted({"learn_temperature", "min_temperature"} & set(kwargs))
        if fixed:
            # A learned temperature would join `trainable_weights` and break
            # the order that checkpoints are loaded in.
            raise ValueError(
                f"Unrecognized keyword arguments passed to {type(self).__name__}: "
                f"{fixed}. Its temperature is annealed (TemperatureScheduler), "
                "not learned."
            )
        super().__init__(
            temperature=temperature,
            hard=hard,
            sample_at_inference=sample_at_inference,
            seed=seed,
            **kwargs,
        )
        check_positive_int("num_groups", num_groups)
        check_positive_int("num_vars", num_vars)
        check_positive_int("codevector_dim", codevector_dim)
        if codevector_dim % num_groups:
            raise ValueError(
                "Invalid value received for argument `codevector_dim`. Expected "
                f"an integer divisible by num_groups={num_groups}. Received: "
                f"codevector_dim={codevector_dim}"
            )
        if (
            not is_number(diversity_weight)
            or not math.isfinite(diversity_weight)
            or diversity_weight < 0
        ):
            raise ValueError(
                "Invalid value received for argument `diversity_weight`. Expected "
                f"a finite float >= 0. Received: diversity_weight={diversity_weight!r}"
            )
        self.num_groups = num_groups
        self.num_vars = num_vars
        self.codevector_dim = codevector_dim
        self.diversity_weight = float(diversity_weight)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or keras.initializers.RandomNormal(mean=0.0, stddev=1.0)
        )
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.codevector_initializer = keras.initializers.get(
            codevector_initializer or keras.initializers.RandomUniform(minval=0.0, maxval=1.0)
        )
        # Keras's JAX trainer calls layers statelessly without the metrics'
        # variables, so a metric updated in `call` cannot work there.
        self.perplexity_tracker = None
        if keras.backend.backend() != "jax":
            self.perplexity_tracker = keras.metrics.Mean(name=f"{self.name}_perplexity")

    @property
    def num_codevectors(self):
        """`num_groups * num_vars`, the size of the codebook."""
        return self.num_groups * self.num_vars

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"{type(self).__name__} needs a known last input axis. Received: "
                f"input_shape={input_shape}"
            )
        # Float32 and not autocast: under mixed precision the projection and
        # the lookup still run in float32. Created in the order of
        # `trainable_weights` that checkpoints rely on.
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_dim, self.num_codevectors),
            initializer=self.kernel_initializer,
            dtype="float32",
            autocast=False,
        )
        self.bias = self.add_weight(
            name="bias",
            shape=(self.num_codevectors,),
            initializer=self.bias_initializer,
            dtype="float32",
            autocast=False,
        )
        self.codevectors = self.add_weight(
            name="codevectors",
            shape=(self.num_codevectors, self.codevector_dim // self.num_groups),
            initializer=self.codevector_initializer,
            dtype="float32",
            autocast=False,
        )

    def _time_mask(self, inputs, mask):
        if mask is None:
            return None
        if len(mask.shape) != len(inputs.shape) - 1:
            raise ValueError(
                f"{type(self).__name__} takes a time-step mask of shape "
                f"inputs.shape[:-1]. Received: mask.shape={mask.shape} for "
                f"inputs.shape={inputs.shape}"
            )
        return ops.cast(mask, "bool")

    def group_logits(self, inputs):
        """Float32 logits `[..., G, V]` of the code vectors of each group."""
        check_float_tensor("inputs", inputs)
        leading = ops.shape(inputs)[:-1]
        # A 2-D matmul: TensorFlow runs [N, D] @ [D, G * V] as one GEMM,
        # where a batched [..., D] @ [D, G * V] broadcasts the kernel.
        x = ops.reshape(ops.cast(inputs, "float32"), (-1, inputs.shape[-1]))
        logits = ops.matmul(x, self.kernel) + self.bias
        return ops.reshape(logits, (*leading, self.num_groups, self.num_vars))

    def call(self, inputs, training=None, mask=None):
        mask = self._time_mask(inputs, mask)
        logits = self.group_logits(inputs)
        if training or self.sample_at_inference:
            weights = gumbel_ops.gumbel_softmax(
                logits, self.temperature_variable, hard=self.hard, seed=self.seed_generator
            )
            # The perplexity of the temperature-free code distribution
            # carries the diversity gradient, as in wav2vec 2.0.
            code_probs = ops.softmax(logits, axis=-1)
        else:
            weights = gumbel_ops.one_hot_argmax(logits)
            code_probs = weights
        perplexity = gumbel_ops.codebook_perplexity(code_probs, mask)
        if self.diversity_weight > 0:
            self.add_loss(
                self.diversity_weight * gumbel_ops.diversity_loss(perplexity, self.num_codevectors)
            )
        if self.perplexity_tracker is not None:
            self.perplexity_tracker.update_state(ops.stop_gradient(perplexity))
        outputs = gumbel_ops.select_codevectors(weights, self.codevectors)
        return ops.cast(outputs, self.compute_dtype)

    def discrete_codes(self, inputs, mask=None):
        """The deterministic codes of `inputs`, without random numbers.

        Args:
            inputs: Float tensor `[..., D]`, what `call` receives.
            mask: Optional time-step mask of shape `inputs.shape[:-1]`.
                Masked steps still get codes (the mask only leaves them
                out of the perplexity), as in `call`.

        Returns:
            A dict of `"codes"` (int64 `[..., G]`, the argmax code of each
            group; int32 on JAX without 64-bit integers, see
            `codes_dtype`), `"one_hot"` (float32 `[..., G, V]`) and
            `"probs"` (float32 `[..., G, V]`, the temperature-free
            `softmax(logits)` of each group).
        """
        self._time_mask(inputs, mask)
        if not self.built:
            self.build(tuple(inputs.shape))
        logits = self.group_logits(inputs)
        # The very one-hot of `call` at inference, so that ties are broken
        # the same way; its argmax is then unambiguous.
        one_hot = gumbel_ops.one_hot_argmax(logits)
        return {
            "codes": ops.cast(ops.argmax(one_hot, axis=-1), codes_dtype()),
            "one_hot": one_hot,
            "probs": ops.softmax(logits, axis=-1),
        }

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.codevector_dim,)

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        config = super().get_config()
        # Fixed here: a learned temperature would join `trainable_weights`
        # and break their checkpoint order.
        del config["learn_temperature"], config["min_temperature"]
        config.update(
            {
                "num_groups": self.num_groups,
                "num_vars": self.num_vars,
                "codevector_dim": self.codevector_dim,
                "diversity_weight": self.diversity_weight,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "codevector_initializer": keras.initializers.serialize(self.codevector_initializer),
            }
        )
        return config
