"""The interface shared by every gradient estimator, and the helpers they share.

The helpers work on both latent kinds:

- `"categorical"`: one-hot samples, classes on the last axis, logits are
  unnormalized log-probabilities;
- `"bernoulli"`: samples in {0, 1}, one log-odds per unit.

The first axis is the batch: per-example quantities sum over every other
axis.
"""

import keras
from keras import ops

from keras_gumbel import ops as gumbel_ops
from keras_gumbel.validation import check_positive_float
from keras_gumbel.validation import is_number

#: The kinds of latent variable an estimator handles.
KINDS = ("categorical", "bernoulli")


def check_kind(kind, supported=KINDS):
    """Raises a `ValueError` unless `kind` is one of `supported`.

    Args:
        kind: The latent kind to check, e.g. `"categorical"`.
        supported: Tuple of the accepted kinds. Defaults to `KINDS`.

    Raises:
        ValueError: If `kind` is not supported, in Keras's message format.
    """
    if kind not in supported:
        raise ValueError(
            "Invalid value received for argument `kind`. Expected one of "
            f"{supported}. Received: kind={kind!r}"
        )


def check_temperature(temperature):
    """Validates a Python temperature; a tensor is checked by its producer."""
    if isinstance(temperature, bool) or is_number(temperature):
        check_positive_float("temperature", temperature)


def exact_sample(logits, kind, seed=None):
    """An exact discrete sample (one-hot or {0, 1}) with no gradient path.

    Categorical: the Gumbel-max trick; Bernoulli: `1[logits + L > 0]` with
    logistic `L`. Both are exact for any temperature, so 1 is used.
    """
    check_kind(kind)
    if kind == "categorical":
        sample = gumbel_ops.gumbel_softmax(logits, 1.0, hard=True, seed=seed)
    else:
        sample = gumbel_ops.gumbel_sigmoid(logits, 1.0, hard=True, seed=seed)
    return ops.stop_gradient(sample)


def sample_noise(shape, kind, seed=None):
    """Float32 noise whose argmax (or sign) with the logits is an exact sample.

    Gumbel(0, 1) for the categorical kind (`one_hot(argmax(l + g))`),
    logistic for the Bernoulli kind (`1[l + L > 0]`).
    """
    check_kind(kind)
    if kind == "categorical":
        return gumbel_ops.gumbel_noise(shape, seed=seed)
    return gumbel_ops.logistic_noise(shape, seed=seed)


def per_example(x):
    """Sums `x` over every axis but the first (the batch)."""
    rank = len(x.shape)
    return x if rank == 1 else ops.sum(x, axis=tuple(range(1, rank)))


def log_prob_elements(sample, logits, kind):
    """`log q(z)` of each variable (categorical) or unit (Bernoulli), float32.

    Categorical: `sum_c z_c log softmax(logits)_c`, the class axis removed;
    Bernoulli: `z * logits - softplus(logits)`, the shape of `logits`.
    """
    x = ops.cast(logits, "float32")
    z = ops.cast(sample, "float32")
    if kind == "categorical":
        return ops.sum(z * ops.log_softmax(x, axis=-1), axis=-1)
    return z * x - ops.softplus(x)


def log_prob(sample, logits, kind):
    """`log q(z)` per example, summed over all variables, float32."""
    return per_example(log_prob_elements(sample, logits, kind))


def mean(logits, kind):
    """`E[z]`: `softmax(logits)` or `sigmoid(logits)`, float32, differentiable."""
    x = ops.cast(logits, "float32")
    return ops.softmax(x, axis=-1) if kind == "categorical" else ops.sigmoid(x)


def two_class_logits(logits):
    """Bernoulli log-odds `l` as two-class logits `(0, l)` on a new last axis.

    `Categorical(softmax(0, l))` is `Bernoulli(sigmoid(l))` on its second
    class, so a categorical estimator serves the binary kind through this
    view: sample and differentiate the two-class form, keep class 1.
    """
    x = ops.cast(logits, "float32")
    return ops.stack([ops.zeros_like(x), x], axis=-1)


def gumbel_max_one_hot(logits, seed=None):
    """An exact one-hot Categorical(softmax(logits)) sample, float32, no gradient."""
    return ops.stop_gradient(
        gumbel_ops.gumbel_softmax(ops.cast(logits, "float32"), 1.0, hard=True, seed=seed)
    )


def categorical_view(logits, kind, seed=None):
    """Float32 categorical logits and an exact one-hot sample of them.

    Categorical: the logits and a Gumbel-max sample. Bernoulli: the
    two-class logits `(0, l)` and the one-hot of `b = 1[l + L > 0]` with
    logistic `L` (the same distribution, drawn without a softmax).
    """
    if kind == "categorical":
        x = ops.cast(logits, "float32")
        return x, gumbel_max_one_hot(x, seed=seed)
    x = ops.cast(logits, "float32")
    bit = ops.cast(x + gumbel_ops.logistic_noise(ops.shape(x), seed=seed) > 0, "float32")
    return two_class_logits(x), ops.stop_gradient(ops.stack([1.0 - bit, bit], axis=-1))


def softmax(x):
    """Softmax over the last axis; two classes as a sigmoid of the difference.

    The same values and gradient; a sigmoid is several times faster than a
    softmax over an axis of size 2 (the Bernoulli view of ReinMax, GST).
    """
    if x.shape[-1] == 2:
        p = ops.sigmoid(x[..., 1] - x[..., 0])
        return ops.stack([1.0 - p, p], axis=-1)
    return ops.softmax(x, axis=-1)


def replace_value(hard, soft):
    """`hard` in the forward pass, the gradient of `soft` in the backward pass.

    Written `hard + (soft - stop_gradient(soft))`: the forward value is
    exactly `hard` even where `soft` lies outside [0, 1] (ReinMax), since
    `x - x == 0` in floating point.
    """
    return hard + (soft - ops.stop_gradient(soft))


def static_value(x):
    """The value of a scalar known at call time, or None.

    Python and NumPy numbers; eager tensors; and Keras variables, whose
    current value is read even while a compiled function is traced (with
    TensorFlow's `init_scope`). A symbolic tensor gives None.
    """
    if is_number(x):
        return float(x)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if isinstance(x, keras.Variable):
            with tf.init_scope():
                return float(x.numpy())
        if tf.is_tensor(x) and tf.executing_eagerly():
            return float(x.numpy())
        return None
    try:
        return float(ops.convert_to_numpy(x))
    except Exception:  # A tracer or a symbolic tensor: no value yet.
        return None


def value_and_gradient(fn, x):
    """`fn(x)` and the gradient of `sum(fn(x))` with respect to `x`.

    `fn` maps a batch to one value per example, so the gradient of the sum
    is the per-example gradient. Both results carry no gradient path: they
    are coefficients of a surrogate, never differentiated themselves.

    The gradient needs the backend's autodiff: TensorFlow (a nested
    `GradientTape`, which works inside `tf.function` and XLA) and JAX
    (`jax.vjp`).
    """
    backend = keras.backend.backend()
    x = ops.stop_gradient(ops.cast(x, "float32"))
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        gradient = tape.gradient(y, x)
        if gradient is None:
            gradient = tf.zeros_like(x)
    elif backend == "jax":
        import jax
        import jax.numpy as jnp

        y, vjp = jax.vjp(fn, x)
        (gradient,) = vjp(jnp.ones_like(y))
    else:
        raise NotImplementedError(
            "Estimators that expand the objective around a point (DARN, "
            "MuProp) need its gradient, implemented for the TensorFlow and "
            f"JAX backends. Received: backend={backend!r}"
        )
    return ops.stop_gradient(ops.cast(y, "float32")), ops.stop_gradient(gradient)


class Estimator:
    """How a discrete latent sample is drawn and how its gradient is formed.

    `sample(logits, kind, temperature, seed)` returns what the downstream
    network sees, with the estimator's gradient path to `logits`.
    `surrogate(objective, sample, logits, kind, inputs, mean_field)` returns a
    per-example term whose gradient, added to the loss, completes the
    estimator (score-function estimators), or None when the pathwise
    gradient is the whole estimator. `objective` is a callable
    `z -> per-example loss` (e.g. `-log p(x | z)`), so that an estimator may
    evaluate it at other points (MuProp, DARN); `inputs` is the model's
    input batch, which an input-dependent baseline reads (None: no such
    baseline). A model with several stochastic layers may also pass
    `mean_field`, the loss of its deterministic mean-field network as a
    function of the same value, which only MuProp (optionally) expands;
    every other estimator ignores it. Only the surrogate's gradient
    matters: its value is added to the minimized objective but not to the
    reported loss.

    Two hooks serve models whose estimators learn: `build_baseline(
    input_shape, logits_shape, kind)`, called from the model's `build`,
    creates weights that depend on the input (the score-function family's
    baseline network), and `scale_gradient(x)`, applied after `surrogate`
    to the logits of an analytic loss term (a VAE's KL), rescales that
    term's gradient like the estimator's own. Both do nothing here.

    Estimators with `uses_surrogate = True` draw exact samples with no
    gradient path; their whole gradient with respect to the logits is the
    surrogate's. Estimators that keep running statistics (the score-function
    family) are Keras layers that own non-trainable variables, so the
    `LatentSampler` that holds one tracks, saves and restores them.

    Attributes:
        name: The name the `estimator` arguments accept.
        uses_temperature: Whether the temperature changes the gradient.
        biased: Whether the gradient estimate is biased.
        evaluations: Evaluations of the downstream function per sample
            (cost); Taylor-expansion estimators also backpropagate once
            through it.
        uses_surrogate: Whether `surrogate` returns a term (else None).
        kinds: The latent kinds the estimator supports.
    """

    name = None
    uses_temperature = False
    biased = True
    evaluations = 1
    uses_surrogate = False
    kinds = KINDS

    def sample(self, logits, kind, temperature, seed=None):
        raise NotImplementedError

    def surrogate(self, objective, sample, logits, kind, inputs=None, mean_field=None):
        del objective, sample, logits, kind, inputs, mean_field
        return None

    def build_baseline(self, input_shape, logits_shape, kind):
        """Creates weights that depend on the model's input; none here."""
        del input_shape, logits_shape, kind

    def scale_gradient(self, x):
        """`x` with its gradient rescaled like the estimator's; unchanged here."""
        return x

    def get_config(self):
        """The constructor arguments, so that `get(serialize(e))` rebuilds `e`."""
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
