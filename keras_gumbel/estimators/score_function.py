"""The score-function (REINFORCE) estimator with NVIL's baselines and normalization."""

import math

import keras
from keras import ops

from keras_gumbel.estimators.estimator import Estimator
from keras_gumbel.estimators.estimator import check_kind
from keras_gumbel.estimators.estimator import exact_sample
from keras_gumbel.estimators.estimator import log_prob
from keras_gumbel.estimators.estimator import per_example
from keras_gumbel.validation import check_positive_int


def _check_unit_interval(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a float "
            f"in [0, 1). Received: {name}={value!r}"
        )


def check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(
            f"Invalid value received for argument `{name}`. Expected a "
            f"boolean. Received: {name}={value!r}"
        )


class ScoreFunctionEstimator(Estimator, keras.layers.Layer):
    """Score function (REINFORCE, likelihood ratio) with NVIL's variance reduction.

    The downstream network sees an exact sample `z ~ q(z | l)` with no
    gradient path; the gradient with respect to the logits `l` comes from
    the surrogate

    ```
    surrogate = stop_gradient(s * (f(z) - c - b(x))) * log q(z | l)
    grad_l    = s * (f(z) - c - b(x)) * grad_l log q(z | l)
    s         = 1 / max(1, sqrt(v))      (variance normalization)
    ```

    with `f` the per-example objective and the two baselines and the
    normalization of NVIL (Mnih & Gregor 2014):

    - `b(x)`, the input-dependent baseline: a small network of the model's
      input `x` (one hidden layer of `baseline_units` tanh units), trained
      jointly with the model by minimizing `s * (f(z) - c - b(x))^2 / 2`,
      a term of the surrogate whose gradient reaches only `b`'s weights;
    - `c`, a running mean of `f(z) - b(x)` (the constant baseline);
    - `v`, a running mean of `(f(z) - b(x) - c)^2`, the spread left after
      both baselines.

    `c` and `v` are exponential moving averages over training steps with
    factor `decay` (0.9; NVIL used 0.8). The statistics used at a step are
    those of earlier steps (the first step uses its own batch), and `b(x)`
    does not depend on the sample, so with `normalize=False` the estimate is
    unbiased. With `normalize=True` it is the unbiased estimate times the
    positive factor `s`: a step size for the inference network that adapts
    to the learning signal's spread, which Jang et al. (2017) report SF,
    DARN and MuProp needed. For that to hold for the whole gradient of the
    logits, a model that adds an analytic term of the logits to its loss
    (a VAE's KL divergence) passes the logits through `scale_gradient`
    first: otherwise the learning signal is divided by `s` and the KL term
    is not, and the encoder mostly minimizes the KL term.

    The model's input reaches the surrogate as `inputs`; without it (or
    with `input_baseline=False`) only `c` is subtracted. Models build the
    baseline network with their own weights (`build_baseline`), so the
    optimizer trains it and checkpoints and `.keras` files hold it.

    Cost: one evaluation of `f` per sample (the implementation calls
    `objective(z)` again inside the surrogate) and one pass of `b`. Works
    for both kinds.

    The running statistics are non-trainable float32 variables of this
    object, which is a Keras layer for that reason: a `LatentSampler`
    holding it tracks them, saves them with the model and restores them
    from checkpoints. They are updated by assignment when the surrogate is
    built, so a compiled train step (`tf.function`, XLA) updates them every
    step; each sampler owns its own estimator, statistics and baseline.

    Args:
        baseline: Boolean. Whether to subtract the running mean `c`.
        normalize: Boolean. Whether to divide by `max(1, running std)`.
        decay: Float in [0, 1). Factor of the moving averages.
        input_baseline: Boolean. Whether to subtract the learned `b(x)`.
        baseline_units: Integer >= 1. Hidden units of `b`.
        **kwargs: Base layer keyword arguments (`name`).

    Example:

    ```python
    model = CategoricalVAE(estimator="score_function")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    # Without the learned baseline, for comparison:
    model = CategoricalVAE(estimator={
        "class_name": "score_function", "config": {"input_baseline": False}})
    ```

    Reference:
        - Williams, "Simple statistical gradient-following algorithms for
          connectionist reinforcement learning", Machine Learning 1992.
        - Mnih & Gregor, "Neural Variational Inference and Learning in
          Belief Networks", ICML 2014 (baselines, variance normalization).
        - Jang, Gu & Poole, ICLR 2017; Maddison, Mnih & Teh, ICLR 2017.
    """

    name = "score_function"
    biased = False
    evaluations = 1
    uses_surrogate = True

    def __init__(
        self,
        baseline=True,
        normalize=True,
        decay=0.9,
        input_baseline=True,
        baseline_units=100,
        **kwargs,
    ):
        keras.layers.Layer.__init__(
            self, name=kwargs.pop("name", type(self).name), dtype="float32", **kwargs
        )
        check_bool("baseline", baseline)
        check_bool("normalize", normalize)
        _check_unit_interval("decay", decay)
        check_bool("input_baseline", input_baseline)
        check_positive_int("baseline_units", baseline_units)
        self.baseline = baseline
        self.normalize = normalize
        self.decay = float(decay)
        self.input_baseline = input_baseline
        self.baseline_units = int(baseline_units)

        def statistic(name, initializer="zeros"):
            # "mean" aggregation: replicas of a distribution strategy each
            # update with their own batch and keep the average.
            return self.add_weight(
                name=name,
                shape=(),
                dtype="float32",
                initializer=initializer,
                trainable=False,
                autocast=False,
                aggregation="mean",
            )

        self.signal_mean = statistic("signal_mean")
        self.signal_variance = statistic("signal_variance")
        self.num_updates = statistic("num_updates")
        # The normalization factor `s` of the latest step (for `scale_gradient`).
        self.signal_scale = statistic("signal_scale", initializer="ones")
        # The network of `b(x)`, created by `build_baseline` once the input
        # and signal sizes are known.
        self.baseline_hidden = None
        self.baseline_output = None
        self.built = True

    def sample(self, logits, kind, temperature=None, seed=None):
        check_kind(kind, self.kinds)
        return exact_sample(logits, kind, seed=seed)

    def surrogate(self, objective, sample, logits, kind, inputs=None, mean_field=None):
        del mean_field  # Only MuProp expands the mean-field network.
        check_kind(kind, self.kinds)
        signal = ops.stop_gradient(ops.cast(objective(sample), "float32"))
        centered, scale, fit = self.learning_signal(signal, inputs)
        return scale * centered * log_prob(sample, logits, kind) + fit

    # The learning signal.

    def signal_shape(self, logits_shape, kind):
        """Per-example shape of the learning signal for logits of `logits_shape`.

        `()`: one signal per example (overridden by estimators with one per
        unit or variable).
        """
        del logits_shape, kind
        return ()

    def build_baseline(self, input_shape, logits_shape, kind):
        """Creates the weights of `b(x)` for inputs of `input_shape` (batch first).

        A no-op with `input_baseline=False` or when already built. Models
        call it from their `build`, so the weights exist before the
        optimizer is built or a checkpoint is restored.
        """
        if not self.input_baseline or self.baseline_output is not None:
            return
        input_dim = math.prod(int(d) for d in input_shape[1:])
        self._build_network(input_dim, math.prod(self.signal_shape(logits_shape, kind)))

    def _build_network(self, input_dim, signal_size):
        with keras.name_scope(self.name):
            self.baseline_hidden = keras.layers.Dense(
                self.baseline_units, activation="tanh", name="baseline_hidden", dtype="float32"
            )
            self.baseline_output = keras.layers.Dense(
                signal_size, name="baseline_output", dtype="float32"
            )
            self.baseline_hidden.build((None, input_dim))
            self.baseline_output.build((None, self.baseline_units))

    def predict_baseline(self, inputs, signal):
        """`b(x)` shaped like `signal`, differentiable in `b`'s weights, or None.

        None without inputs or with `input_baseline=False`. Built here on
        first use when the model did not call `build_baseline`.
        """
        if inputs is None or not self.input_baseline:
            return None
        x = ops.stop_gradient(ops.cast(inputs, "float32"))
        x = ops.reshape(x, (ops.shape(x)[0], -1))
        if self.baseline_output is None:
            self._build_network(int(x.shape[-1]), math.prod(signal.shape[1:]))
        prediction = self.baseline_output(self.baseline_hidden(x))
        return ops.reshape(prediction, ops.shape(signal))

    def learning_signal(self, signal, inputs=None):
        """The centred, normalized learning signal and the baseline's loss.

        Returns `(centered, scale, fit)`: `centered = signal - c - b(x)` and
        `scale = s`, both without gradient, and `fit`, a per-example term
        `s * (signal - c - b(x))^2 / 2` whose gradient trains `b` (0 without
        an input baseline). The running statistics (of `signal - b(x)`) are
        updated with this batch.

        Args:
            signal: Float32 tensor of learning signals, batch first.
            inputs: The model's input batch, or None.
        """
        signal = ops.stop_gradient(signal)
        prediction = self.predict_baseline(inputs, signal)
        if prediction is None:
            centered, scale = self.standardize(signal)
            return centered, scale, ops.zeros_like(per_example(signal))
        centered, scale = self.standardize(signal - ops.stop_gradient(prediction))
        # signal - c: the target of b(x).
        target = ops.stop_gradient(centered + ops.stop_gradient(prediction))
        fit = 0.5 * scale * per_example(ops.square(target - prediction))
        return centered, scale, fit

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
        self.signal_scale.assign(scale)
        return ops.stop_gradient(centered), ops.stop_gradient(scale)

    def scale_gradient(self, x):
        """`x` unchanged, its gradient multiplied by this step's `s`.

        Call after `surrogate` in the same step, on the logits that enter an
        analytic term of the loss (a VAE's KL divergence), so that variance
        normalization rescales the whole gradient of the logits alike.
        """
        if not self.normalize:
            return x
        scale = ops.cast(self.signal_scale, x.dtype)
        return ops.stop_gradient(x) + scale * (x - ops.stop_gradient(x))

    def get_config(self):
        return {
            "baseline": self.baseline,
            "normalize": self.normalize,
            "decay": self.decay,
            "input_baseline": self.input_baseline,
            "baseline_units": self.baseline_units,
        }
