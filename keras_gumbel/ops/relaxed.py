"""Backend-agnostic Gumbel-Softmax math on `keras.ops` and `keras.random`.

Everything here is a pure function: it reads no layer state and works on the
TensorFlow, JAX and PyTorch backends, eagerly, in compiled graphs and under
XLA. Layers, estimators and models are thin shells over these functions.

Numerics shared by every function:

- Noise, scores and softmax are computed in float32 whatever the input dtype,
  and the result is cast back to the input dtype, so float16 and bfloat16
  models get float32-accurate samples.
- Uniform noise is drawn from `[tiny, 1)` with `tiny` the smallest normal
  float32, so `log(u)` is finite and Gumbel noise lies in about
  `[-4.47, 16.6]`.
- Straight-through outputs are `soft + stop_gradient(hard - soft)`. In IEEE
  arithmetic this is exactly `hard` in the forward pass (for the chosen class
  `soft >= 1 - soft` rounds back to 1; elsewhere `soft - soft == 0`), and its
  gradient is exactly the gradient of `soft`.
- A logit of `-inf` is a class with probability 0: it gets exactly 0 and is
  never chosen, as long as one class of the row is finite. A `mask` does the
  same and also turns rows with no allowed class into zeros instead of NaN.

References:
    - Jang, Gu & Poole, "Categorical Reparameterization with Gumbel-Softmax",
      ICLR 2017, https://arxiv.org/abs/1611.01144
    - Maddison, Mnih & Teh, "The Concrete Distribution: A Continuous
      Relaxation of Discrete Random Variables", ICLR 2017,
      https://arxiv.org/abs/1611.00712
"""

import math

import keras
import numpy as np
from keras import ops

from keras_gumbel.validation import check_float_tensor
from keras_gumbel.validation import check_positive_float
from keras_gumbel.validation import is_number

# Smallest normal float32: the lower end of the uniform noise, so that
# -log(u) <= 87.3 and no log ever sees 0.
_TINY = float(np.finfo(np.float32).tiny)
# Masked scores are set to this finite value rather than -inf: a row whose
# classes are all masked then stays finite through softmax and its gradient,
# and the final `where` turns it into zeros.
_MASKED_SCORE = -1e30


def _check_temperature(temperature):
    """Validates Python temperatures; a tensor is checked by its producer."""
    if isinstance(temperature, bool) or is_number(temperature):
        check_positive_float("temperature", temperature)


def _num_classes(x, axis):
    rank = len(x.shape)
    if not isinstance(axis, int) or isinstance(axis, bool) or not (-rank <= axis < rank):
        raise ValueError(
            "Invalid value received for argument `axis`. Expected an integer "
            f"in [-{rank}, {rank}) for inputs of rank {rank}. Received: "
            f"axis={axis}"
        )
    num_classes = x.shape[axis]
    if num_classes is None:
        raise ValueError(
            "The class axis must have a known size. Received: inputs with "
            f"shape={x.shape} and axis={axis}"
        )
    return num_classes


def _apply_mask(y, mask):
    return y if mask is None else ops.where(mask, y, ops.zeros_like(y))


def _float32_logits(logits, mask):
    """Float32 logits with masked entries replaced by 0.

    A masked logit may be -inf; left in place it would give an infinite
    partial derivative of `logits / tau` with respect to a learned `tau`,
    and `0 * inf = NaN` in the backward pass. The entries are masked again
    after the division.
    """
    x = ops.cast(logits, "float32")
    return x if mask is None else _apply_mask(x, mask)


def _argmax(x, axis):
    """Index of the largest entry along `axis`, in one pass over `x`.

    `keras.ops.argmax` first rewrites every -0.0 of a float input (three
    extra elementwise passes, a sizeable share of a hard sample's cost) so
    that -0.0 ranks below +0.0. Here a tie between zeros of either sign is a
    tie like any other, broken towards the first index as NumPy does, so the
    backend's own argmax is used where there is one.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.math.argmax(x, axis=axis, output_type=tf.int32)
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.argmax(x, axis=axis)
    return ops.argmax(x, axis=axis)


def uniform_noise(shape, seed=None):
    """Float32 uniform noise on `[tiny, 1)`, safe to pass to `log`.

    `tiny` is the smallest normal float32, so `log(u)` is always finite.

    Args:
        shape: Tuple of ints. Shape of the noise.
        seed: Optional int or `keras.random.SeedGenerator`.

    Returns:
        A float32 tensor of the given shape.

    Example:

    >>> import keras
    >>> from keras_gumbel.ops import uniform_noise
    >>> u = keras.ops.convert_to_numpy(uniform_noise((1000,), seed=0))
    >>> u.shape, u.dtype
    ((1000,), dtype('float32'))
    >>> bool(u.min() > 0.0), bool(u.max() < 1.0)
    (True, True)
    """
    if keras.backend.backend() == "tensorflow":
        noise = _tensorflow_philox_uniform(shape, seed)
        if noise is not None:
            return noise
    return keras.random.uniform(shape, minval=_TINY, maxval=1.0, dtype="float32", seed=seed)


def _tensorflow_philox_uniform(shape, seed):
    """`keras.random.uniform(shape, tiny, 1.0, seed=seed)` with Philox named.

    Keras draws TensorFlow's stateless uniforms with `alg="auto_select"`.
    The CPU and GPU kernels resolve that to Philox, so outside XLA these are
    the very numbers Keras would return; under XLA on CPU `auto_select`
    compiles to a generator about 100 times slower than XLA's Philox, which
    made a compiled Gumbel-Softmax layer spend nearly all its time drawing
    noise. The seed is drawn exactly as Keras draws it (same seed-generator
    updates). Returns None if Keras's seed helper has moved, in which case
    the caller falls back to `keras.random.uniform`.
    """
    try:
        from keras.src.random.seed_generator import draw_seed
    except ImportError:  # pragma: no cover - a Keras release reorganized its modules.
        return None
    import tensorflow as tf

    seed = draw_seed(seed)
    if seed.dtype != tf.int32:
        # The stateless ops take int32 seeds; Keras maps its int64 state the same way.
        seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
    return tf.random.stateless_uniform(
        shape,
        seed=seed,
        minval=tf.cast(_TINY, tf.float32),
        maxval=tf.cast(1.0, tf.float32),
        dtype=tf.float32,
        alg="philox",
    )


def gumbel_noise(shape, dtype="float32", seed=None):
    """Samples standard Gumbel(0, 1) noise, `g = -log(-log(u))`.

    Args:
        shape: Tuple of ints. Shape of the noise.
        dtype: String. Dtype of the result; the noise is drawn in float32.
        seed: Optional int or `keras.random.SeedGenerator`.

    Returns:
        A tensor of the given shape and dtype.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> from keras_gumbel.ops import gumbel_noise
    >>> g = keras.ops.convert_to_numpy(gumbel_noise((2, 3), dtype="float16", seed=0))
    >>> g.shape, g.dtype
    ((2, 3), dtype('float16'))
    >>> bool(np.all(np.isfinite(g)))
    True
    """
    u = uniform_noise(shape, seed=seed)
    return ops.cast(-ops.log(-ops.log(u)), dtype)


def logistic_noise(shape, dtype="float32", seed=None):
    """Samples standard logistic noise, `L = log(u) - log(1 - u)`.

    The difference of two independent Gumbel(0, 1) variables is logistic, so
    `logits + L > 0` is an exact Bernoulli(sigmoid(logits)) draw.

    Args:
        shape: Tuple of ints. Shape of the noise.
        dtype: String. Dtype of the result; the noise is drawn in float32.
        seed: Optional int or `keras.random.SeedGenerator`.

    Returns:
        A tensor of the given shape and dtype.

    Example:

    The logistic distribution has mean 0 and variance `pi^2 / 3 = 3.29`;
    20,000 draws estimate the mean to within 0.1 and the variance to within
    0.15 (7.8 and 3.6 standard errors of the estimates):

    >>> import keras
    >>> import numpy as np
    >>> from keras_gumbel.ops import logistic_noise
    >>> noise = keras.ops.convert_to_numpy(logistic_noise((20000,), seed=0))
    >>> bool(abs(noise.mean()) < 0.1), bool(abs(noise.var() - np.pi**2 / 3) < 0.15)
    (True, True)
    """
    u = uniform_noise(shape, seed=seed)
    return ops.cast(ops.log(u) - ops.log1p(-u), dtype)


def straight_through(soft, hard):
    """Returns `hard` in the forward pass and the gradient of `soft` backward.

    Written as `soft + stop_gradient(hard - soft)`, with no custom gradient,
    so it works on every backend and under XLA.

    Args:
        soft: Float tensor, the relaxed value whose gradient is used.
        hard: Float tensor of the same shape, the forward value.

    Returns:
        A tensor equal to `hard`, differentiable as `soft`.

    Example:

    >>> import keras
    >>> from keras_gumbel.ops import straight_through
    >>> soft = keras.ops.array([[0.2, 0.7, 0.1]])
    >>> hard = keras.ops.array([[0.0, 1.0, 0.0]])
    >>> keras.ops.convert_to_numpy(straight_through(soft, hard)).tolist()
    [[0.0, 1.0, 0.0]]
    """
    return soft + ops.stop_gradient(hard - soft)


def one_hot_argmax(logits, axis=-1, mask=None):
    """One-hot vector of the largest logit along `axis`, in the logits' dtype.

    The deterministic (mode) counterpart of `gumbel_softmax(hard=True)`.
    Masked classes are never chosen; a row with no allowed class is all zero.

    Args:
        logits: Float tensor.
        axis: Integer. The class axis.
        mask: Optional boolean tensor broadcastable to `logits`.

    Returns:
        A tensor with the shape and dtype of `logits`.

    Example:

    >>> import keras
    >>> from keras_gumbel.ops import one_hot_argmax
    >>> logits = keras.ops.array([[0.0, 2.0, 1.0]])
    >>> keras.ops.convert_to_numpy(one_hot_argmax(logits)).tolist()
    [[0.0, 1.0, 0.0]]
    >>> mask = keras.ops.array([[True, False, True]])
    >>> keras.ops.convert_to_numpy(one_hot_argmax(logits, mask=mask)).tolist()
    [[0.0, 0.0, 1.0]]
    """
    check_float_tensor("logits", logits)
    num_classes = _num_classes(logits, axis)
    scores = ops.cast(logits, "float32")
    if mask is not None:
        scores = ops.where(mask, scores, _MASKED_SCORE)
    index = _argmax(scores, axis=axis)
    one_hot = ops.one_hot(index, num_classes, axis=axis, dtype="float32")
    return ops.cast(_apply_mask(one_hot, mask), logits.dtype)


def gumbel_softmax(logits, temperature=1.0, axis=-1, hard=False, mask=None, seed=None):
    """Draws a Gumbel-Softmax (Concrete) sample along `axis`.

    With `g_i` i.i.d. Gumbel(0, 1) noise and temperature `tau > 0`:

    ```
    y_i = exp((logits_i + g_i) / tau) / sum_j exp((logits_j + g_j) / tau)
    ```

    `y` lies on the probability simplex. As `tau -> 0` the samples become
    one-hot and `one_hot(argmax y)` is an exact Categorical(softmax(logits))
    sample for every `tau` (the Gumbel-max trick); as `tau -> inf` they
    approach the uniform vector. The gradient with respect to the logits is
    the (biased) Gumbel-Softmax estimator.

    With `hard=True` the forward value is `one_hot(argmax(logits + g))`,
    exactly one-hot, and the gradient is that of the soft sample drawn with
    the same noise (Straight-Through Gumbel-Softmax).

    Args:
        logits: Float tensor of unnormalized log-probabilities. `-inf` marks
            an impossible class.
        temperature: Float > 0, or a scalar float tensor (e.g. a variable).
        axis: Integer. The class axis.
        hard: Boolean. Whether to return the straight-through one-hot sample.
        mask: Optional boolean tensor broadcastable to `logits`; `False`
            classes get exactly 0 and are never chosen.
        seed: Optional int or `keras.random.SeedGenerator`. The same int seed
            gives the same noise, hence the same sample for `hard` and soft.

    Returns:
        A tensor with the shape and dtype of `logits`.

    Example:

    Every sample lies on the simplex; a hard sample is exactly one-hot:

    >>> import keras
    >>> import numpy as np
    >>> from keras_gumbel.ops import gumbel_softmax
    >>> logits = keras.ops.zeros((4, 10))
    >>> y = keras.ops.convert_to_numpy(gumbel_softmax(logits, temperature=0.5, seed=1))
    >>> y.shape, y.sum(axis=-1, dtype="float64").round(4).tolist()
    ((4, 10), [1.0, 1.0, 1.0, 1.0])
    >>> hard = keras.ops.convert_to_numpy(gumbel_softmax(logits, hard=True, seed=1))
    >>> np.sort(hard, axis=-1)[:, -2:].tolist()
    [[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]

    With the same seed, soft and hard samples share their noise, so the
    hard sample is the argmax of the soft one:

    >>> bool(np.all(hard.argmax(-1) == y.argmax(-1)))
    True
    """
    check_float_tensor("logits", logits)
    _check_temperature(temperature)
    num_classes = _num_classes(logits, axis)
    x = _float32_logits(logits, mask)
    scores = (x + gumbel_noise(ops.shape(x), seed=seed)) / ops.cast(temperature, "float32")
    if mask is not None:
        scores = ops.where(mask, scores, _MASKED_SCORE)
    y = ops.softmax(scores, axis=axis)
    if hard:
        index = _argmax(scores, axis=axis)
        y = straight_through(y, ops.one_hot(index, num_classes, axis=axis, dtype="float32"))
    return ops.cast(_apply_mask(y, mask), logits.dtype)


def tempered_softmax(logits, temperature=1.0, axis=-1, mask=None):
    """Deterministic `softmax(logits / tau)`, the noise-free relaxed output.

    Args:
        logits: Float tensor.
        temperature: Float > 0 or a scalar float tensor.
        axis: Integer. The class axis.
        mask: Optional boolean tensor broadcastable to `logits`.

    Returns:
        A tensor with the shape and dtype of `logits`.

    Example:

    >>> import keras
    >>> from keras_gumbel.ops import tempered_softmax
    >>> logits = keras.ops.array([[0.0, 1.0, 2.0]])
    >>> y = tempered_softmax(logits, temperature=0.5)
    >>> keras.ops.convert_to_numpy(y).astype("float64").round(4).tolist()
    [[0.0159, 0.1173, 0.8668]]
    """
    check_float_tensor("logits", logits)
    _check_temperature(temperature)
    _num_classes(logits, axis)
    scores = _float32_logits(logits, mask) / ops.cast(temperature, "float32")
    if mask is not None:
        scores = ops.where(mask, scores, _MASKED_SCORE)
    y = ops.softmax(scores, axis=axis)
    return ops.cast(_apply_mask(y, mask), logits.dtype)


def gumbel_sigmoid(logits, temperature=1.0, hard=False, mask=None, seed=None):
    """Draws a binary Gumbel-Softmax (relaxed Bernoulli, BinConcrete) sample.

    The two-class case written with one logit per unit and logistic noise
    `L`:

    ```
    y = sigmoid((logits + L) / tau)
    ```

    `hard=True` returns `1[logits + L > 0]`, an exact
    Bernoulli(sigmoid(logits)) sample, with the gradient of the soft `y`.

    Args:
        logits: Float tensor of log-odds.
        temperature: Float > 0 or a scalar float tensor.
        hard: Boolean. Whether to return the straight-through binary sample.
        mask: Optional boolean tensor broadcastable to `logits`; `False`
            units get exactly 0.
        seed: Optional int or `keras.random.SeedGenerator`.

    Returns:
        A tensor with the shape and dtype of `logits`.

    Example:

    Soft samples lie in [0, 1] (in float32 a large `|logits + L| / tau`
    rounds to exactly 0 or 1); hard ones are exact Bernoulli(sigmoid(logits))
    draws, here with `p = sigmoid(0) = 1/2` (4,000 draws: the frequency is
    within 0.05 of 1/2 with probability above 0.99999):

    >>> import keras
    >>> import numpy as np
    >>> from keras_gumbel.ops import gumbel_sigmoid
    >>> logits = keras.ops.zeros((4000,))
    >>> y = keras.ops.convert_to_numpy(gumbel_sigmoid(logits, temperature=0.5, seed=0))
    >>> bool(y.min() >= 0.0), bool(y.max() <= 1.0), bool(0.4 < y.mean() < 0.6)
    (True, True, True)
    >>> bits = keras.ops.convert_to_numpy(gumbel_sigmoid(logits, hard=True, seed=0))
    >>> np.unique(bits).tolist(), bool(abs(bits.mean() - 0.5) < 0.05)
    ([0.0, 1.0], True)
    """
    check_float_tensor("logits", logits)
    _check_temperature(temperature)
    x = _float32_logits(logits, mask)
    scores = (x + logistic_noise(ops.shape(x), seed=seed)) / ops.cast(temperature, "float32")
    y = ops.sigmoid(scores)
    if hard:
        y = straight_through(y, ops.cast(scores > 0, "float32"))
    return ops.cast(_apply_mask(y, mask), logits.dtype)


def tempered_sigmoid(logits, temperature=1.0, mask=None):
    """Deterministic `sigmoid(logits / tau)`, the noise-free relaxed output.

    Args:
        logits: Float tensor of log-odds.
        temperature: Float > 0 or a scalar float tensor.
        mask: Optional boolean tensor broadcastable to `logits`; `False`
            units get exactly 0.

    Returns:
        A tensor with the shape and dtype of `logits`.

    Example:

    >>> import keras
    >>> from keras_gumbel.ops import tempered_sigmoid
    >>> logits = keras.ops.array([-2.0, 0.0, 2.0])
    >>> y = tempered_sigmoid(logits, temperature=2.0)
    >>> keras.ops.convert_to_numpy(y).astype("float64").round(4).tolist()
    [0.2689, 0.5, 0.7311]
    """
    check_float_tensor("logits", logits)
    _check_temperature(temperature)
    y = ops.sigmoid(_float32_logits(logits, mask) / ops.cast(temperature, "float32"))
    return ops.cast(_apply_mask(y, mask), logits.dtype)


def threshold(logits, mask=None):
    """Deterministic binary output `1[logits > 0]` in the dtype of `logits`.

    The mode of `gumbel_sigmoid(hard=True)`.

    Args:
        logits: Float tensor of log-odds.
        mask: Optional boolean tensor broadcastable to `logits`; `False`
            units get exactly 0.

    Returns:
        A tensor with the shape and dtype of `logits`.

    Example:

    >>> import keras
    >>> from keras_gumbel.ops import threshold
    >>> keras.ops.convert_to_numpy(threshold(keras.ops.array([-1.0, 0.0, 2.0]))).tolist()
    [0.0, 0.0, 1.0]
    """
    check_float_tensor("logits", logits)
    y = ops.cast(ops.cast(logits, "float32") > 0, "float32")
    return ops.cast(_apply_mask(y, mask), logits.dtype)


def relaxed_one_hot_log_prob(sample, logits, temperature, axis=-1):
    """Log-density of a Gumbel-Softmax (Concrete) sample on the simplex.

    For `k` classes, `pi = softmax(logits)` and `y` on the open simplex:

    ```
    p(y) = Gamma(k) tau^(k-1) (sum_i pi_i / y_i^tau)^(-k) prod_i pi_i / y_i^(tau+1)
    log p(y) = lgamma(k) + (k-1) log tau
               + sum_i log_softmax(logits - tau log y)_i - sum_i log y_i
    ```

    The log-space form is stable for small `tau`. It agrees with TensorFlow
    Probability's `RelaxedOneHotCategorical.log_prob`.

    Args:
        sample: Float tensor on the simplex along `axis`.
        logits: Float tensor broadcastable to `sample`.
        temperature: Float > 0 or a scalar float tensor.
        axis: Integer. The class axis.

    Returns:
        A float32 tensor: `sample`'s shape without `axis`.

    Example:

    With uniform logits and `tau = 1` the density of three classes is
    `2 / ((1/y_1 + 1/y_2 + 1/y_3)^3 (y_1 y_2 y_3)^2)`: 2 at the centre of
    the simplex, and about 2.014 at `(0.2, 0.3, 0.5)`:

    >>> import keras
    >>> from keras_gumbel.ops import relaxed_one_hot_log_prob
    >>> sample = keras.ops.array([[1 / 3, 1 / 3, 1 / 3], [0.2, 0.3, 0.5]])
    >>> log_p = relaxed_one_hot_log_prob(sample, keras.ops.zeros((3,)), temperature=1.0)
    >>> keras.ops.convert_to_numpy(log_p).astype("float64").round(4).tolist()
    [0.6931, 0.7001]
    """
    check_float_tensor("sample", sample)
    check_float_tensor("logits", logits)
    _check_temperature(temperature)
    k = _num_classes(sample, axis)
    tau = ops.cast(temperature, "float32")
    log_y = ops.log(ops.cast(sample, "float32"))
    shifted = ops.cast(logits, "float32") - tau * log_y
    return (
        math.lgamma(k)
        + (k - 1) * ops.log(tau)
        + ops.sum(ops.log_softmax(shifted, axis=axis), axis=axis)
        - ops.sum(log_y, axis=axis)
    )


def relaxed_bernoulli_log_prob(sample, logits, temperature):
    """Log-density of a binary Gumbel-Softmax (BinConcrete) sample in (0, 1).

    ```
    p(y) = tau a y^(-tau-1) (1-y)^(-tau-1) / (a y^(-tau) + (1-y)^(-tau))^2
    ```

    with `a = exp(logits)`, computed in log space. It agrees with TensorFlow
    Probability's `RelaxedBernoulli.log_prob`.

    Args:
        sample: Float tensor with values in (0, 1).
        logits: Float tensor of log-odds, broadcastable to `sample`.
        temperature: Float > 0 or a scalar float tensor.

    Returns:
        A float32 tensor with the shape of `sample`.

    Example:

    At `tau = 1` and logit 0, `sigmoid(L)` of logistic noise `L` is
    uniform on (0, 1), so the log-density is 0 everywhere:

    >>> import keras
    >>> import numpy as np
    >>> from keras_gumbel.ops import relaxed_bernoulli_log_prob
    >>> sample = keras.ops.array([0.1, 0.5, 0.9])
    >>> log_p = relaxed_bernoulli_log_prob(sample, keras.ops.zeros((3,)), temperature=1.0)
    >>> bool(np.allclose(keras.ops.convert_to_numpy(log_p), 0.0, atol=1e-5))
    True
    """
    check_float_tensor("sample", sample)
    check_float_tensor("logits", logits)
    _check_temperature(temperature)
    tau = ops.cast(temperature, "float32")
    x = ops.cast(logits, "float32")
    y = ops.cast(sample, "float32")
    log_y, log_1my = ops.log(y), ops.log1p(-y)
    return (
        ops.log(tau)
        + x
        - (tau + 1.0) * (log_y + log_1my)
        - 2.0 * ops.logaddexp(x - tau * log_y, -tau * log_1my)
    )
