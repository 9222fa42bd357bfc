"""ReinMax: a second-order accurate straight-through estimator."""

from keras import ops

from keras_gumbel.estimators.estimator import Estimator
from keras_gumbel.estimators.estimator import categorical_view
from keras_gumbel.estimators.estimator import check_kind
from keras_gumbel.estimators.estimator import replace_value
from keras_gumbel.estimators.estimator import softmax
from keras_gumbel.estimators.estimator import static_value


def check_reinmax_temperature(temperature):
    """Raises ValueError for a temperature below 1 whose value is known."""
    value = static_value(temperature)
    if value is not None and not value >= 1.0:
        raise ValueError(
            "Invalid value received for argument `temperature`. ReinMax "
            f"expects a temperature >= 1. Received: temperature={value}"
        )


class ReinMaxEstimator(Estimator):
    """ReinMax (Liu et al. 2023): straight-through with Heun's method.

    Straight-through approximates `f(e_j) - f(e_i)` by the derivative at
    one end (a forward-Euler step); ReinMax averages the derivatives at the
    two ends (Heun's method, the trapezoidal rule), which is exact for
    quadratic `f`. With `D` an exact one-hot sample and `pi_0 = softmax(l)`:

    ```
    forward:  D ~ Categorical(pi_0)        (exact)
    pi_1 = (D + softmax(l / tau)) / 2      (its value; its gradient is that
                                            of softmax at pi_1: J(pi_1))
    backward: dD/dl := d(2 pi_1 - pi_0 / 2)/dl = 2 J(pi_1) - J(pi_0) / 2
    ```

    with `J(p) = diag(p) - p p^T` the softmax Jacobian. At `tau = 1` the
    estimate is unbiased when the objective is quadratic in each variable
    (conditionally on the others) and biased otherwise. The temperature
    must be at least 1 (Liu et al. found smaller values harmful).

    The check: a Python number below 1 raises ValueError at the call; a
    Keras variable (the `LatentSampler` temperature) is checked with its
    value when the call is traced or run eagerly. A value that falls below
    1 later inside an already compiled function cannot raise: the sample
    then becomes NaN, so training stops visibly instead of running with an
    invalid temperature (an annealing schedule for ReinMax must keep
    `tau >= 1`).

    Bernoulli units are the two-class case `(0, l)`. Biased; one evaluation
    per sample.

    Reference:
        - Liu, Zhao, Chen, Fang, Luo, Wang & Gao, "Bridging Discrete and
          Backpropagation: Straight-Through and Beyond", NeurIPS 2023.
    """

    name = "reinmax"
    uses_temperature = True

    def sample(self, logits, kind, temperature, seed=None):
        check_kind(kind, self.kinds)
        check_reinmax_temperature(temperature)
        x, hard = categorical_view(logits, kind, seed=seed)
        tau = ops.cast(temperature, "float32")
        tau = ops.where(tau >= 1.0, tau, float("nan"))
        pi_0 = softmax(x)
        pi_1 = ops.stop_gradient((hard + softmax(x / tau)) / 2.0)
        # The value of pi_1 with the gradient of softmax at pi_1.
        pi_1 = softmax(ops.stop_gradient(ops.log(pi_1) - x) + x)
        y = replace_value(hard, 2.0 * pi_1 - 0.5 * pi_0)
        if kind == "bernoulli":
            y = y[..., 1]
        return ops.cast(y, logits.dtype)
