"""Pathwise estimators: the gradient flows through the sample itself.

| name                | forward sample                  | backward gradient of   | biased |
|---------------------|---------------------------------|------------------------|--------|
| `gumbel_softmax`    | relaxed `softmax((l + g) / tau)` | the relaxed sample     | yes (tau > 0) |
| `st_gumbel_softmax` | exact `one_hot(argmax(l + g))`   | the relaxed sample     | yes    |
| `straight_through`  | exact categorical / Bernoulli    | `softmax(l)` / `sigmoid(l)` | yes |

Each costs one evaluation of the downstream function per sample. For the
binary kind, `l` is one log-odds per unit and the noise is logistic.

References:
    - Jang, Gu & Poole, "Categorical Reparameterization with Gumbel-Softmax",
      ICLR 2017.
    - Maddison, Mnih & Teh, "The Concrete Distribution", ICLR 2017.
    - Bengio, Leonard & Courville, "Estimating or Propagating Gradients
      Through Stochastic Neurons for Conditional Computation", 2013.
"""

from keras import ops

from keras_gumbel import ops as gumbel_ops
from keras_gumbel.estimators.estimator import Estimator
from keras_gumbel.estimators.estimator import check_kind
from keras_gumbel.estimators.estimator import exact_sample


class GumbelSoftmaxEstimator(Estimator):
    """The Gumbel-Softmax estimator: a relaxed sample, differentiated."""

    name = "gumbel_softmax"
    uses_temperature = True
    hard = False

    def sample(self, logits, kind, temperature, seed=None):
        check_kind(kind)
        if kind == "categorical":
            return gumbel_ops.gumbel_softmax(logits, temperature, hard=self.hard, seed=seed)
        return gumbel_ops.gumbel_sigmoid(logits, temperature, hard=self.hard, seed=seed)


class STGumbelSoftmaxEstimator(GumbelSoftmaxEstimator):
    """Straight-Through Gumbel-Softmax: exact sample forward, relaxed gradient."""

    name = "st_gumbel_softmax"
    hard = True


class StraightThroughEstimator(Estimator):
    """Straight-through (Bengio et al. 2013): exact sample forward, the
    gradient of the class probabilities backward."""

    name = "straight_through"

    def sample(self, logits, kind, temperature=None, seed=None):
        check_kind(kind)
        hard = exact_sample(logits, kind, seed=seed)
        x = ops.cast(logits, "float32")
        probs = ops.softmax(x, axis=-1) if kind == "categorical" else ops.sigmoid(x)
        return ops.cast(gumbel_ops.straight_through(probs, ops.cast(hard, "float32")), logits.dtype)
