"""Pathwise estimators: the gradient flows through the sample itself.

| name                        | forward sample          | backward: gradient of    | biased |
|-----------------------------|-------------------------|--------------------------|--------|
| `gumbel_softmax`            | `softmax((l + g) / tau)` | the relaxed sample      | yes    |
| `st_gumbel_softmax`         | `one_hot(argmax(l + g))` | the relaxed sample      | yes    |
| `straight_through`          | exact sample            | `softmax(l)`             | yes    |
| `annealed_straight_through` | exact sample            | `softmax(l / tau)`       | yes    |

Each costs one evaluation of the downstream function per sample. For the
binary kind, `l` is one log-odds per unit, the noise is logistic and
`sigmoid` replaces `softmax`. Gumbel-Softmax is biased for every `tau > 0`.

References:
    - Jang, Gu & Poole, "Categorical Reparameterization with Gumbel-Softmax",
      ICLR 2017.
    - Maddison, Mnih & Teh, "The Concrete Distribution", ICLR 2017.
    - Bengio, Leonard & Courville, "Estimating or Propagating Gradients
      Through Stochastic Neurons for Conditional Computation", 2013.
    - Chung, Ahn & Bengio, "Hierarchical Multiscale Recurrent Neural
      Networks", ICLR 2017 (arXiv:1609.01704, 2016): slope annealing.
"""

from keras import ops

from keras_gumbel import ops as gumbel_ops
from keras_gumbel.estimators.estimator import Estimator
from keras_gumbel.estimators.estimator import check_kind
from keras_gumbel.estimators.estimator import exact_sample


class GumbelSoftmaxEstimator(Estimator):
    """The Gumbel-Softmax estimator: a relaxed sample, differentiated.

    ```
    y = softmax((l + g) / tau),   g ~ Gumbel(0, 1)    (categorical)
    y = sigmoid((l + L) / tau),   L ~ Logistic(0, 1)  (Bernoulli)
    ```

    The downstream network sees `y`, not a discrete sample: biased for
    every `tau > 0`, the bias vanishing and the variance growing as
    `tau -> 0`. One evaluation per sample.
    """

    name = "gumbel_softmax"
    uses_temperature = True
    hard = False

    def sample(self, logits, kind, temperature, seed=None):
        check_kind(kind)
        if kind == "categorical":
            return gumbel_ops.gumbel_softmax(logits, temperature, hard=self.hard, seed=seed)
        return gumbel_ops.gumbel_sigmoid(logits, temperature, hard=self.hard, seed=seed)


class STGumbelSoftmaxEstimator(GumbelSoftmaxEstimator):
    """Straight-Through Gumbel-Softmax: exact sample forward, relaxed gradient.

    ```
    forward:  z = one_hot(argmax(l + g))      (exactly one-hot)
    backward: dz/dl := d softmax((l + g) / tau) / dl, the same g
    ```

    Biased (the forward value is not the relaxed sample whose gradient is
    used). One evaluation per sample.
    """

    name = "st_gumbel_softmax"
    hard = True


class StraightThroughEstimator(Estimator):
    """Straight-through (Bengio et al. 2013): exact sample forward, the
    gradient of the class probabilities backward.

    ```
    forward:  z ~ q(z)   (exact)
    backward: dz/dl := d softmax(l) / dl   (or d sigmoid(l) / dl)
    ```

    Biased; one evaluation per sample.
    """

    name = "straight_through"

    def sample(self, logits, kind, temperature=None, seed=None):
        check_kind(kind)
        hard = exact_sample(logits, kind, seed=seed)
        x = ops.cast(logits, "float32")
        probs = ops.softmax(x, axis=-1) if kind == "categorical" else ops.sigmoid(x)
        return ops.cast(gumbel_ops.straight_through(probs, ops.cast(hard, "float32")), logits.dtype)


class AnnealedStraightThroughEstimator(Estimator):
    """Slope-annealed straight-through (Chung et al. 2016).

    ```
    forward:  z ~ q(z)   (exact)
    backward: dz/dl := d softmax(l / tau) / dl   (or d sigmoid(l / tau) / dl)
    ```

    The slope of the backward nonlinearity is `1 / tau`: annealing the
    temperature from 1 down (with `TemperatureScheduler`) sharpens the
    surrogate toward the step function it stands for. At `tau = 1` it is
    `straight_through`. Biased; one evaluation per sample.

    Reference:
        - Chung, Ahn & Bengio, "Hierarchical Multiscale Recurrent Neural
          Networks", ICLR 2017 (arXiv:1609.01704).
        - Jang, Gu & Poole, ICLR 2017, Table 1 ("Annealed ST").
    """

    name = "annealed_straight_through"
    uses_temperature = True

    def sample(self, logits, kind, temperature, seed=None):
        check_kind(kind)
        hard = exact_sample(logits, kind, seed=seed)
        if kind == "categorical":
            soft = gumbel_ops.tempered_softmax(logits, temperature)
        else:
            soft = gumbel_ops.tempered_sigmoid(logits, temperature)
        return gumbel_ops.straight_through(soft, hard)
