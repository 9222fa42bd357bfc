"""The interface shared by every gradient estimator."""

from keras import ops

from keras_gumbel import ops as gumbel_ops

KINDS = ("categorical", "bernoulli")


def check_kind(kind):
    if kind not in KINDS:
        raise ValueError(
            "Invalid value received for argument `kind`. Expected one of "
            f"{KINDS}. Received: kind={kind!r}"
        )


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


class Estimator:
    """How a discrete latent sample is drawn and how its gradient is formed.

    `sample(logits, kind, temperature, seed)` returns what the downstream
    network sees, with the estimator's gradient path to `logits`.
    `surrogate(objective, sample, logits, kind)` returns a per-example term
    whose gradient, added to the loss, completes the estimator (score-function
    estimators), or None when the pathwise gradient is the whole estimator.
    `objective` is a callable `z -> per-example loss` (e.g. `-log p(x | z)`),
    so that an estimator may evaluate it at other points (MuProp, DARN). Only
    the surrogate's gradient matters: its value is added to the minimized
    objective but not to the reported loss.

    Attributes:
        name: The name the `estimator` arguments accept.
        uses_temperature: Whether the temperature changes the gradient.
        biased: Whether the gradient estimate is biased.
        evaluations: Function evaluations per sample (cost).
    """

    name = None
    uses_temperature = False
    biased = True
    evaluations = 1

    def sample(self, logits, kind, temperature, seed=None):
        raise NotImplementedError

    def surrogate(self, objective, sample, logits, kind):
        del objective, sample, logits, kind
        return None

    def __repr__(self):
        return f"{type(self).__name__}()"
