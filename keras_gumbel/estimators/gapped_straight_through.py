"""GST: the gapped straight-through estimator."""

from keras import ops

from keras_gumbel.estimators.estimator import Estimator
from keras_gumbel.estimators.estimator import categorical_view
from keras_gumbel.estimators.estimator import check_kind
from keras_gumbel.estimators.estimator import check_temperature
from keras_gumbel.estimators.estimator import replace_value
from keras_gumbel.estimators.estimator import softmax
from keras_gumbel.validation import check_positive_float


class GappedStraightThroughEstimator(Estimator):
    """Gapped Straight-Through (GST, Fan et al. 2022); GST-1.0 by default.

    ST-Gumbel-Softmax differentiates a softmax of randomly perturbed logits
    whose argmax is the sample. GST replaces the random perturbation by a
    deterministic one with the same argmax and no gradient, built from the
    sample `D` alone (no resampling): the sampled logit is raised to the
    largest logit and every other logit is pushed at least `gap` below it.

    ```
    forward:  D ~ Categorical(softmax(l))                     (exact)
    m_1 = (max(l) - l) * D
    m_2 = relu(l - max(l) + gap) * (1 - D)
    backward: dD/dl := d softmax((l + stop_gradient(m_1 - m_2)) / tau) / dl
    ```

    Biased; one evaluation per sample. Bernoulli units are the two-class
    case `(0, l)`.

    Args:
        gap: Float > 0. The margin; 1.0 gives GST-1.0.

    Reference:
        - Fan, Chi, Rudnicky & Ramadge, "Training Discrete Deep Generative
          Models via Gapped Straight-Through Estimator", ICML 2022.
    """

    name = "gapped_straight_through"
    uses_temperature = True

    def __init__(self, gap=1.0):
        check_positive_float("gap", gap)
        self.gap = float(gap)

    def sample(self, logits, kind, temperature, seed=None):
        check_kind(kind, self.kinds)
        check_temperature(temperature)
        x, hard = categorical_view(logits, kind, seed=seed)
        top = ops.max(x, axis=-1, keepdims=True)
        raise_sampled = (top - x) * hard
        lower_others = ops.relu(x - top + self.gap) * (1.0 - hard)
        shifted = x + ops.stop_gradient(raise_sampled - lower_others)
        soft = softmax(shifted / ops.cast(temperature, "float32"))
        y = replace_value(hard, soft)
        if kind == "bernoulli":
            y = y[..., 1]
        return ops.cast(y, logits.dtype)

    def get_config(self):
        return {"gap": self.gap}
