"""The score-function (REINFORCE) estimator with a running baseline."""

import keras
from keras import ops

from keras_gumbel.estimators.estimator import Estimator
from keras_gumbel.estimators.estimator import check_kind
from keras_gumbel.estimators.estimator import exact_sample
from keras_gumbel.estimators.estimator import log_prob


def _check_unit_interval(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a float "
            f"in [0, 1). Received: {name}={value!r}"
        )


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(
            f"Invalid value received for argument `{name}`. Expected a "
            f"boolean. Received: {name}={value!r}"
        )


class ScoreFunctionEstimator(Estimator, keras.layers.Layer):
    """Score function (REINFORCE, likelihood ratio) with a running baseline.

    The downstream network sees an exact sample `z ~ q(z | l)` with no
    gradient path; the gradient with respect to the logits `l` comes from
    the surrogate

    ```
    surrogate = stop_gradient(s * (f(z) - c)) * log q(z | l)
    grad_l    = s * (f(z) - c) * grad_l log q(z | l)
    s         = 1 / max(1, sqrt(v))      (variance normalization)
    ```

    with `f` the per-example objective, `c` a running mean of the learning
    signal `f(z)` (the baseline) and `v` a running mean of `(f(z) - c)^2`,
    both exponential moving averages over training steps with factor
    `decay`, as in NVIL (Mnih & Gregor 2014). The statistics used at a step
    are those of earlier steps (the first step uses its own batch), so they
    do not depend on the step's samples: with `normalize=False` the
    estimate is unbiased; with `normalize=True` it is unbiased up to the
    positive factor `s`, a step size that adapts to the signal's spread,
    which Jang et al. (2017) report SF, DARN and MuProp needed.

    Cost: one evaluation of `f` per sample (the implementation calls
    `objective(z)` again inside the surrogate). Works for both kinds.

    The running statistics are non-trainable float32 variables of this
    object, which is a Keras layer for that reason: a `LatentSampler`
    holding it tracks them, saves them with the model and restores them
    from checkpoints. They are updated by assignment when the surrogate is
    built, so a compiled train step (`tf.function`, XLA) updates them every
    step; each sampler owns its own estimator and statistics.

    Args:
        baseline: Boolean. Whether to subtract the running mean `c`.
        normalize: Boolean. Whether to divide by `max(1, running std)`.
        decay: Float in [0, 1). Factor of the moving averages.
        **kwargs: Base layer keyword arguments (`name`).

    Example:

    ```python
    model = CategoricalVAE(estimator="score_function")
    model.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9))
    ```

    Reference:
        - Williams, "Simple statistical gradient-following algorithms for
          connectionist reinforcement learning", Machine Learning 1992.
        - Mnih & Gregor, "Neural Variational Inference and Learning in
          Belief Networks", ICML 2014 (baseline, variance normalization).
        - Jang, Gu & Poole, ICLR 2017; Maddison, Mnih & Teh, ICLR 2017.
    """

    name = "score_function"
    biased = False
    evaluations = 1
    uses_surrogate = True

    def __init__(self, baseline=True, normalize=True, decay=0.9, **kwargs):
        keras.layers.Layer.__init__(
            self, name=kwargs.pop("name", type(self).name), dtype="float32", **kwargs
        )
        _check_bool("baseline", baseline)
        _check_bool("normalize", normalize)
        _check_unit_interval("decay", decay)
        self.baseline = baseline
        self.normalize = normalize
        self.decay = float(decay)

        def statistic(name):
            # "mean" aggregation: replicas of a distribution strategy each
            # update with their own batch and keep the average.
            return self.add_weight(
                name=name,
                shape=(),
                dtype="float32",
                initializer="zeros",
                trainable=False,
                autocast=False,
                aggregation="mean",
            )

        self.signal_mean = statistic("signal_mean")
        self.signal_variance = statistic("signal_variance")
        self.num_updates = statistic("num_updates")
        # Nothing is built from input shapes: the state above is complete.
        self.built = True

    def sample(self, logits, kind, temperature=None, seed=None):
        check_kind(kind, self.kinds)
        return exact_sample(logits, kind, seed=seed)

    def surrogate(self, objective, sample, logits, kind):
        check_kind(kind, self.kinds)
        signal = ops.stop_gradient(ops.cast(objective(sample), "float32"))
        centered, scale = self.standardize(signal)
        return scale * centered * log_prob(sample, logits, kind)

    def standardize(self, signal):
        """Centers and scales a learning signal with the running statistics.

        Returns `(signal - c, s)`, both without gradient, computed from the
        statistics of earlier steps, then folds this batch into them. `c` is
        0 when `baseline=False` and `s` is 1 when `normalize=False`.

        Args:
            signal: Float32 tensor of learning signals (any shape; the
                statistics are scalars over all of its entries).
        """
        signal = ops.stop_gradient(signal)
        started = ops.cast(self.num_updates > 0, "float32")
        batch_mean = ops.mean(signal)
        # Before any update the batch's own statistics stand in (one step
        # with a baseline that depends on the batch, instead of a first
        # step whose huge raw signal no normalization tempers).
        mean = started * self.signal_mean + (1.0 - started) * batch_mean
        centered = signal - mean if self.baseline else signal
        batch_variance = ops.mean(ops.square(signal - mean))
        variance = started * self.signal_variance + (1.0 - started) * batch_variance
        if self.normalize:
            scale = 1.0 / ops.maximum(1.0, ops.sqrt(variance))
        else:
            scale = ops.ones_like(variance)
        decay = started * self.decay
        self.signal_mean.assign(decay * mean + (1.0 - decay) * batch_mean)
        self.signal_variance.assign(decay * variance + (1.0 - decay) * batch_variance)
        self.num_updates.assign(self.num_updates + 1.0)
        return ops.stop_gradient(centered), ops.stop_gradient(scale)

    def get_config(self):
        return {"baseline": self.baseline, "normalize": self.normalize, "decay": self.decay}
