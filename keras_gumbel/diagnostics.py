"""Bias and variance of gradient estimators against exact gradients.

On a problem small enough to enumerate, the gradient of the expected
objective with respect to the logits is exact:

```
L(l)      = E_{z ~ q(z | l)}[f(z)] = sum_z q(z | l) f(z)
grad L(l) = d/dl sum_z q(z | l) f(z)          (automatic differentiation)
```

`gradient_bias_variance` draws many single-sample estimates of `grad L`
with an estimator, at each of several temperatures, and reports their mean,
the bias `mean - exact` and the per-coordinate variance. An unbiased
estimator's bias is zero up to Monte Carlo error (its standard error is
`sqrt(variance / num_samples)`); Gumbel-Softmax's bias shrinks and its
variance grows as the temperature decreases. `plot_bias_variance` draws
both against the temperature.

The gradients use `tf.GradientTape`: these diagnostics need the TensorFlow
backend, as the models do.
"""

import dataclasses
import itertools
from statistics import NormalDist

import keras
import numpy as np

from keras_gumbel import estimators as estimators_lib
from keras_gumbel._extras import require_extra
from keras_gumbel.estimators.estimator import check_kind
from keras_gumbel.estimators.estimator import log_prob

#: The most configurations `exact_gradient` enumerates: beyond it the exact
#: gradient would cost more than the estimates it checks, so it is refused.
MAX_CONFIGURATIONS = 1 << 16


def _tf():
    if keras.backend.backend() != "tensorflow":
        raise NotImplementedError(
            "keras_gumbel.diagnostics needs the TensorFlow backend. Received: "
            f"backend={keras.backend.backend()!r}"
        )
    import tensorflow as tf

    return tf


def _check_logits(logits, kind):
    check_kind(kind)
    logits = np.asarray(logits, dtype="float32")
    rank = 2 if kind == "categorical" else 1
    if logits.ndim != rank or 0 in logits.shape:
        raise ValueError(
            "Invalid value received for argument `logits`. Expected the logits "
            "of one example: shape (num_vars, num_classes) for categorical, "
            f"(num_units,) for bernoulli. Received: logits.shape={logits.shape}"
        )
    return logits


def configurations(shape, kind):
    """Every latent value for logits of `shape`: `[count, *shape]`, float32.

    Categorical: all combinations of one-hot rows; Bernoulli: all binary
    vectors.
    """
    if kind == "categorical":
        num_vars, num_classes = shape
        count = num_classes**num_vars
        if count > MAX_CONFIGURATIONS:
            raise ValueError(f"{count} configurations are too many to enumerate.")
        codes = np.array(list(itertools.product(range(num_classes), repeat=num_vars)))
        return np.eye(num_classes, dtype="float32")[codes]
    count = 2 ** shape[0]
    if count > MAX_CONFIGURATIONS:
        raise ValueError(f"{count} configurations are too many to enumerate.")
    return np.array(list(itertools.product((0.0, 1.0), repeat=shape[0])), dtype="float32")


def exact_gradient(logits, objective, kind="categorical"):
    """`d/dl E_{z ~ q(z | l)}[f(z)]` by enumerating every `z`.

    Args:
        logits: Array of one example's logits, `(num_vars, num_classes)`
            (categorical) or `(num_units,)` (Bernoulli).
        objective: Callable mapping a batch of latents `[n, *logits.shape]`
            to `n` values.
        kind: `"categorical"` or `"bernoulli"`.

    Returns:
        `(value, gradient)`: the expected objective (float) and its gradient
        (float64 array shaped like `logits`).
    """
    tf = _tf()
    logits = _check_logits(logits, kind)
    z = tf.constant(configurations(logits.shape, kind))
    x = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(x)
        broadcast = tf.broadcast_to(x, tf.shape(z))
        weights = tf.exp(log_prob(z, broadcast, kind))
        value = tf.reduce_sum(weights * tf.cast(objective(z), tf.float32))
    return float(value), tape.gradient(value, x).numpy().astype("float64")


@dataclasses.dataclass
class BiasVariance:
    """Monte Carlo moments of an estimator's single-sample gradient estimates.

    Attributes:
        estimator: The estimator's name.
        kind: The latent kind.
        temperatures: Float array `[T]`.
        exact: The exact gradient, shaped like the logits.
        mean: `[T, *logits.shape]` mean of the estimates.
        variance: `[T, *logits.shape]` variance of one estimate, per
            coordinate.
        num_samples: Estimates per temperature.
    """

    estimator: str
    kind: str
    temperatures: np.ndarray
    exact: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    num_samples: int

    @property
    def bias(self):
        """`mean - exact`, `[T, *logits.shape]` (includes Monte Carlo error)."""
        return self.mean - self.exact

    @property
    def standard_error(self):
        """Standard error of `mean`, per coordinate."""
        return np.sqrt(self.variance / self.num_samples)

    @property
    def bias_norm(self):
        """`||mean - exact||` per temperature."""
        return np.sqrt(np.sum(self.bias**2, axis=tuple(range(1, self.bias.ndim))))

    @property
    def noise_floor(self):
        """Expected `bias_norm` of an unbiased estimator: `sqrt(sum var / n)`."""
        return np.sqrt(self.total_variance / self.num_samples)

    @property
    def relative_bias(self):
        """`bias_norm / ||exact||`."""
        return self.bias_norm / np.linalg.norm(self.exact)

    @property
    def total_variance(self):
        """`E||g - E g||^2`: the summed per-coordinate variance, per temperature."""
        return np.sum(self.variance, axis=tuple(range(1, self.variance.ndim)))

    @property
    def cosine(self):
        """Cosine between the mean estimate and the exact gradient, per temperature."""
        flat = self.mean.reshape(len(self.temperatures), -1)
        exact = self.exact.reshape(-1)
        return flat @ exact / (np.linalg.norm(flat, axis=1) * np.linalg.norm(exact))

    def z_scores(self):
        """`(mean - exact) / standard_error`, per coordinate."""
        return self.bias / np.maximum(self.standard_error, 1e-30)

    def consistent_with_unbiased(self, alpha=1e-3):
        """Per temperature: whether every `|z|` is below `bonferroni_bound`.

        False is evidence of bias at family-wise level `alpha`; True means
        the bias is not resolved at this sample size.
        """
        z = np.abs(self.z_scores()).reshape(len(self.temperatures), -1)
        return z.max(axis=1) < bonferroni_bound(z.shape[1], alpha)

    def to_dict(self):
        return {
            "estimator": self.estimator,
            "kind": self.kind,
            "num_samples": self.num_samples,
            "temperatures": self.temperatures.tolist(),
            "bias_norm": self.bias_norm.tolist(),
            "relative_bias": self.relative_bias.tolist(),
            "noise_floor": self.noise_floor.tolist(),
            "total_variance": self.total_variance.tolist(),
        }


def _has_state(estimator):
    return bool(getattr(estimator, "non_trainable_variables", None))


def gradient_bias_variance(
    estimator,
    logits,
    objective,
    temperatures=(1.0,),
    num_samples=10000,
    kind="categorical",
    batch_size=10000,
    seed=0,
):
    """Measures bias (against the exact gradient) and variance of an estimator.

    Each estimate is the gradient with respect to the logits of
    `f(z) + surrogate` for one sample `z = estimator.sample(logits, ...)`,
    exactly what a training step backpropagates. Estimates are drawn in
    batches of `batch_size` copies of the logits. An estimator with running
    statistics (the score-function family) first sees one batch that is not
    counted, so that its statistics come from earlier batches as in
    training; they keep updating between batches.

    Args:
        estimator: A name, config dict or `Estimator` (see
            `keras_gumbel.estimators.get`). A name builds a new estimator
            for each call.
        logits: Array of one example's logits, `(num_vars, num_classes)`
            (categorical) or `(num_units,)` (Bernoulli).
        objective: Callable mapping latents `[n, *logits.shape]` to `n`
            values (a smooth function, defined on relaxed samples too).
        temperatures: Floats > 0. Temperatures to measure at (an estimator
            that ignores the temperature is measured once and repeated).
        num_samples: Integer >= 1. Estimates per temperature.
        kind: `"categorical"` or `"bernoulli"`.
        batch_size: Integer >= 1. Estimates drawn at once.
        seed: Integer. Seed of the samples.

    Returns:
        A `BiasVariance`.

    Example:

    >>> import numpy as np
    >>> import tensorflow as tf
    >>> from keras_gumbel.diagnostics import gradient_bias_variance
    >>> result = gradient_bias_variance(
    ...     "gumbel_softmax", np.zeros((2, 3)), lambda z: tf.reduce_sum(z[:, :, 0] ** 2, -1),
    ...     temperatures=[0.5, 1.0], num_samples=2000)
    >>> result.exact.shape, result.mean.shape, result.bias_norm.shape
    ((2, 3), (2, 2, 3), (2,))
    """
    tf = _tf()
    logits = _check_logits(logits, kind)
    estimator = estimators_lib.get(estimator)
    temperatures = np.asarray(temperatures, dtype="float64").reshape(-1)
    for name, value in (("num_samples", num_samples), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"Invalid value received for argument `{name}`. Expected an "
                f"integer >= 1. Received: {name}={value!r}"
            )
    if len(temperatures) == 0:
        raise ValueError("Invalid value received for argument `temperatures`: it is empty.")
    # Python temperatures are validated by the estimator itself, eagerly,
    # with its own messages (e.g. ReinMax's tau >= 1).
    for tau in temperatures:
        estimator.sample(tf.constant(logits[None]), kind, float(tau), seed=seed)
    _, exact = exact_gradient(logits, objective, kind)
    generator = keras.random.SeedGenerator(seed)
    x = tf.constant(logits)

    @tf.function
    def estimates(tau, size):
        broadcast = tf.broadcast_to(x, tf.concat([[size], tf.shape(x)], 0))
        with tf.GradientTape() as tape:
            tape.watch(broadcast)
            z = estimator.sample(broadcast, kind, tau, seed=generator)
            total = tf.cast(objective(z), tf.float32)
            surrogate = estimator.surrogate(objective, z, broadcast, kind)
            if surrogate is not None:
                total = total + surrogate
            total = tf.reduce_sum(total)
        # Each copy of the logits only reaches its own sample, so the
        # gradient of the sum holds the per-sample estimates.
        return tape.gradient(total, broadcast)

    sizes = [batch_size] * (num_samples // batch_size)
    if num_samples % batch_size:
        sizes.append(num_samples % batch_size)
    means, variances = [], []
    for i, tau in enumerate(temperatures):
        if i and not estimator.uses_temperature:
            means.append(means[0])
            variances.append(variances[0])
            continue
        tau_tensor = tf.constant(tau, tf.float32)
        if _has_state(estimator):
            estimates(tau_tensor, tf.constant(sizes[0]))
        total = np.zeros(logits.shape)
        total_sq = np.zeros(logits.shape)
        for size in sizes:
            g = estimates(tau_tensor, tf.constant(size)).numpy().astype("float64")
            total += g.sum(axis=0)
            total_sq += (g**2).sum(axis=0)
        mean = total / num_samples
        denominator = max(num_samples - 1, 1)
        means.append(mean)
        variances.append(np.maximum(total_sq - num_samples * mean**2, 0.0) / denominator)
    return BiasVariance(
        estimator=estimator.name,
        kind=kind,
        temperatures=temperatures,
        exact=exact,
        mean=np.stack(means),
        variance=np.stack(variances),
        num_samples=num_samples,
    )


def plot_bias_variance(results, path, title=""):
    """Bias and variance against the temperature, one line per estimator.

    Left: `||E g - grad||` with each estimator's Monte Carlo noise floor
    (dotted; a bias below it is not resolved). Right: `E||g - E g||^2`.

    Args:
        results: A `BiasVariance` or a list of them.
        path: Output PNG path.
        title: Figure title.

    Returns:
        `str(path)`.
    """
    require_extra("keras_gumbel.diagnostics.plot_bias_variance", "paper", modules=("matplotlib",))
    # A Figure object, not pyplot: the process's backend stays as it is.
    from matplotlib.figure import Figure

    if isinstance(results, BiasVariance):
        results = [results]
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    for i, result in enumerate(results):
        color = f"C{i % 10}"
        taus = result.temperatures
        axes[0].plot(taus, result.bias_norm, "o-", color=color, label=result.estimator)
        axes[0].plot(taus, result.noise_floor, ":", color=color, linewidth=1)
        axes[1].plot(taus, result.total_variance, "o-", color=color, label=result.estimator)
    axes[0].set_ylabel("bias  ||E[g] - exact gradient||")
    axes[1].set_ylabel("variance  E||g - E[g]||^2")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("temperature")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return str(path)


def bonferroni_bound(num_coordinates, alpha=1e-3):
    """The `|z|` bound for `num_coordinates` z-scores at family-wise level `alpha`.

    An unbiased estimator's z-scores (`BiasVariance.z_scores`) are about
    standard normal for many samples; all of them stay below this bound
    with probability at least `1 - alpha` (two-sided, Bonferroni).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"Expected `alpha` in (0, 1). Received: alpha={alpha}")
    return NormalDist().inv_cdf(1.0 - alpha / (2.0 * num_coordinates))
