"""DARN: the first-order Taylor term of the objective as the learning signal."""

from keras import ops

from keras_gumbel.estimators.estimator import check_kind
from keras_gumbel.estimators.estimator import log_prob_elements
from keras_gumbel.estimators.estimator import per_example
from keras_gumbel.estimators.estimator import value_and_gradient
from keras_gumbel.estimators.score_function import ScoreFunctionEstimator

CENTERS = ("midpoint", "mean")


class DARNEstimator(ScoreFunctionEstimator):
    """The DARN estimator (Gregor et al. 2013), a biased score function.

    DARN replaces the learning signal `f(z) - f(z_bar)` of each stochastic
    unit by its first-order Taylor approximation around `z_bar`,
    `f'(z) . (z - z_bar)`, with the derivative taken at the sample by
    backpropagation. Each unit (Bernoulli) or variable (categorical) `v`
    gets its own signal:

    ```
    signal_v = sum_c df/dz_{v,c}(z) * (z_{v,c} - z_bar_{v,c})
    grad_l   = s * sum_v (signal_v - b_v(x) - c) * grad_l log q(z_v | l_v)
    ```

    `z_bar` is the midpoint of the sample space, 1/2 for Bernoulli units as
    in Gregor et al. and Jang et al. (2017), `1/k` for `k` classes; with
    `center="mean"` it is the mean `E[z]` instead. `c` and `s` are the
    baselines and variance normalization of `ScoreFunctionEstimator`
    applied to these signals: `c` is the running mean of
    `signal_v - b_v(x)`, with an input-dependent baseline `b(x)` that has
    one output per unit (variable), and `s` is computed over all units'
    signals.

    Averaged over a Bernoulli unit's own sample (the others held fixed),
    `(z - 1/2) * d log q(z) / dl = (z (1 - p) + (1 - z) p) / 2`, so the
    estimate replaces the finite difference `f(1) - f(0)` of the exact
    gradient `p (1 - p) (f(1) - f(0))` by `(f'(0) + f'(1)) / 2`, the
    trapezoidal rule: unbiased when `f` is quadratic (or linear) in each
    unit, biased otherwise. For Bernoulli units this is the estimator
    Shekhovtsov (2023) writes DARN(1/2). Categorical variables have no such
    identity: DARN is biased for them even for quadratic `f` (unbiased for
    linear `f`, for any `z_bar`).

    Cost: one evaluation of `f` and one backward pass through it per
    sample. Works for both kinds; needs the TensorFlow or JAX backend for
    the derivative.

    Args:
        center: `"midpoint"` (1/2, or 1/k) or `"mean"` (`E[z]`).
        baseline: Boolean. Whether to subtract a running mean of the signal.
        normalize: Boolean. Whether to divide by `max(1, running std)`.
        decay: Float in [0, 1). Factor of the moving averages.
        input_baseline: Boolean. Whether to subtract the learned `b(x)`.
        baseline_units: Integer >= 1. Hidden units of `b`.
        **kwargs: Base layer keyword arguments.

    Reference:
        - Gregor, Danihelka, Mnih, Blundell & Wierstra, "Deep AutoRegressive
          Networks", ICML 2014 (arXiv:1310.8499, 2013).
        - Jang, Gu & Poole, ICLR 2017, section 3.2 and Table 1.
        - Shekhovtsov, "Cold Analysis of Rao-Blackwellized Straight-Through
          Gumbel-Softmax Gradient Estimator", ICML 2023.
    """

    name = "darn"
    biased = True
    evaluations = 1

    def __init__(self, center="midpoint", **kwargs):
        if center not in CENTERS:
            raise ValueError(
                "Invalid value received for argument `center`. Expected one "
                f"of {CENTERS}. Received: center={center!r}"
            )
        super().__init__(**kwargs)
        self.center = center

    def signal_shape(self, logits_shape, kind):
        # One signal per Bernoulli unit or categorical variable.
        return tuple(logits_shape[:-1] if kind == "categorical" else logits_shape)

    def surrogate(self, objective, sample, logits, kind, inputs=None, mean_field=None):
        del mean_field  # Only MuProp expands the mean-field network.
        check_kind(kind, self.kinds)
        z = ops.stop_gradient(ops.cast(sample, "float32"))
        _, gradient = value_and_gradient(objective, z)
        if self.center == "mean":
            x = ops.cast(logits, "float32")
            z_bar = ops.softmax(x, axis=-1) if kind == "categorical" else ops.sigmoid(x)
            z_bar = ops.stop_gradient(z_bar)
        elif kind == "categorical":
            z_bar = 1.0 / z.shape[-1]
        else:
            z_bar = 0.5
        signal = gradient * (z - z_bar)
        if kind == "categorical":
            signal = ops.sum(signal, axis=-1)
        centered, scale, fit = self.learning_signal(signal, inputs)
        return scale * per_example(centered * log_prob_elements(z, logits, kind)) + fit

    def get_config(self):
        return {"center": self.center, **super().get_config()}
