"""Gumbel-Rao: Rao-Blackwellized Straight-Through Gumbel-Softmax."""

from keras import ops

from keras_gumbel import ops as gumbel_ops
from keras_gumbel.estimators.estimator import Estimator
from keras_gumbel.estimators.estimator import check_kind
from keras_gumbel.estimators.estimator import check_temperature
from keras_gumbel.estimators.estimator import gumbel_max_one_hot
from keras_gumbel.estimators.estimator import replace_value


def conditional_gumbel_scores(logits, one_hot, num_samples, seed=None):
    """`num_samples` draws of `logits + g`, `g ~ Gumbel(0, 1)`, given the argmax.

    Exact samples of the perturbed logits conditioned on
    `argmax(logits + g) = one_hot`: the maximum of Gumbels with locations
    `logits` is Gumbel with location `logZ = logsumexp(logits)` and is
    independent of where it is reached, and the other coordinates are
    Gumbels truncated below it. With `E ~ Exponential(1)` i.i.d.:

    ```
    top   = logZ - log E_k                              (the sampled class k)
    other = -log(E_i exp(-logits_i) + E_k exp(-logZ))   (i != k)
    ```

    Returns a float32 tensor `[num_samples, *logits.shape]` without gradient.
    """
    x = ops.stop_gradient(ops.cast(logits, "float32"))
    u = gumbel_ops.uniform_noise((num_samples, *ops.shape(x)), seed=seed)
    log_e = ops.log(-ops.log(u))
    log_e_top = ops.sum(one_hot * log_e, axis=-1, keepdims=True)
    log_z = ops.logsumexp(x, axis=-1, keepdims=True)
    top = log_z - log_e_top
    other = -ops.logaddexp(log_e - x, log_e_top - log_z)
    return ops.stop_gradient(ops.where(one_hot > 0, top, other))


def conditional_logistic_noise(logits, bit, num_samples, seed=None):
    """`num_samples` draws of logistic `L` given `1[logits + L > 0] = bit`.

    The binary case of `conditional_gumbel_scores` (a difference of two
    Gumbels is logistic): `L` is a logistic variable truncated to
    `(-logits, inf)` when `bit = 1` and to `(-inf, -logits)` when `bit = 0`,
    drawn by inverting its CDF `sigmoid` on the matching interval,
    `u = sigmoid(-l) + v sigmoid(l)` or `u = v sigmoid(-l)` with
    `v ~ U(0, 1)`, and `L = log u - log(1 - u)` in a form that stays finite
    for large `|l|`. Returns `[num_samples, *logits.shape]`, no gradient.
    """
    x = ops.stop_gradient(ops.cast(logits, "float32"))
    v = gumbel_ops.uniform_noise((num_samples, *ops.shape(x)), seed=seed)
    log_p_one = -ops.softplus(-x)  # log sigmoid(l)
    log_p_zero = -ops.softplus(x)  # log sigmoid(-l)
    # bit = 1: u = sigmoid(-l) + v sigmoid(l), 1 - u = (1 - v) sigmoid(l).
    log_u_one = ops.log(ops.sigmoid(-x) + v * ops.sigmoid(x))
    log_1mu_one = ops.log1p(-v) + log_p_one
    # bit = 0: u = v sigmoid(-l), 1 - u = 1 - v sigmoid(-l).
    log_u_zero = ops.log(v) + log_p_zero
    log_1mu_zero = ops.log1p(-v * ops.sigmoid(-x))
    noise = ops.where(bit > 0, log_u_one - log_1mu_one, log_u_zero - log_1mu_zero)
    return ops.stop_gradient(noise)


class GumbelRaoEstimator(Estimator):
    """Gumbel-Rao Monte Carlo (GR-MCK, Paulus et al. 2021).

    The ST-Gumbel-Softmax gradient averaged over the Gumbel noise given the
    sampled class, estimated with `K` conditional draws:

    ```
    forward:  D = one_hot(argmax(l + g))                      (exact)
    g_k ~ Gumbel(0, 1)^n conditioned on argmax(l + g_k) = D,  k = 1..K
    backward: dD/dl := (1/K) sum_k d softmax((l + g_k) / tau) / dl
    ```

    The noise `g_k` is held fixed in the derivative. The expectation equals
    that of `st_gumbel_softmax` (a Rao-Blackwellization): the same bias,
    with less variance, decreasing in `K`. `K = 1` is ST-Gumbel-Softmax.

    Bernoulli units are the two-class case `(0, l)`, computed in closed
    form: logistic noise truncated to the sampled side of `-l`, and
    `sigmoid((l + L_k) / tau)`. Biased. Cost: one
    evaluation of the downstream function per sample and `K` softmaxes of
    the latent layer.

    Args:
        num_samples: Integer >= 1. `K`, the conditional draws. Defaults to 10.

    Reference:
        - Paulus, Maddison & Krause, "Rao-Blackwellizing the
          Straight-Through Gumbel-Softmax Gradient Estimator", ICLR 2021.
    """

    name = "gumbel_rao"
    uses_temperature = True

    def __init__(self, num_samples=10):
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(
                "Invalid value received for argument `num_samples`. Expected "
                f"an integer >= 1. Received: num_samples={num_samples!r}"
            )
        self.num_samples = num_samples

    def sample(self, logits, kind, temperature, seed=None):
        check_kind(kind, self.kinds)
        check_temperature(temperature)
        x = ops.cast(logits, "float32")
        tau = ops.cast(temperature, "float32")
        # One int seed must not give both draws the same uniform noise.
        second_seed = seed + 1 if isinstance(seed, int) else seed
        if kind == "bernoulli":
            # The two-class case in closed form: sigmoids, no softmax.
            hard = ops.cast(x + gumbel_ops.logistic_noise(ops.shape(x), seed=seed) > 0, "float32")
            hard = ops.stop_gradient(hard)
            noise = conditional_logistic_noise(x, hard, self.num_samples, seed=second_seed)
            soft = ops.mean(ops.sigmoid((x + noise) / tau), axis=0)
        else:
            hard = gumbel_max_one_hot(x, seed=seed)
            scores = conditional_gumbel_scores(x, hard, self.num_samples, seed=second_seed)
            noise = scores - ops.stop_gradient(x)
            soft = ops.mean(ops.softmax((x + noise) / tau, axis=-1), axis=0)
        return ops.cast(replace_value(hard, soft), logits.dtype)

    def get_config(self):
        return {"num_samples": self.num_samples}
