"""Discrete latent families: N categorical variables of K classes, or N bits.

A latent family knows the shapes of its logits and codes and the exact
(discrete) distribution behind them; TensorFlow Probability supplies the
distributions, their samples, log-probabilities and analytic KL terms. The
relaxed samples used in training come from `keras_gumbel.estimators`.

Codes are the integer form of a latent sample: the class index of each
categorical variable, or the bit of each Bernoulli unit, shape `[batch, N]`.
"""

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


def _check_count(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected an "
            f"integer >= {minimum}. Received: {name}={value!r}"
        )


class CategoricalLatent:
    """`num_vars` independent categorical variables of `num_classes` classes.

    Samples are one-hot, shape `[..., num_vars, num_classes]`.
    """

    kind = "categorical"

    def __init__(self, num_vars=20, num_classes=10):
        _check_count("num_vars", num_vars)
        _check_count("num_classes", num_classes, minimum=2)
        self.num_vars = num_vars
        self.num_classes = num_classes

    @property
    def logits_shape(self):
        return (self.num_vars, self.num_classes)

    @property
    def flat_size(self):
        return self.num_vars * self.num_classes

    def distribution(self, logits):
        return tfd.Independent(
            tfd.OneHotCategorical(logits=logits, dtype=tf.float32),
            reinterpreted_batch_ndims=1,
        )

    def kl(self, logits, prior_logits):
        """KL(q || p) per example, summed over the variables."""
        return tfd.kl_divergence(self.distribution(logits), self.distribution(prior_logits))

    def mode(self, logits):
        return tf.one_hot(tf.argmax(logits, axis=-1), self.num_classes, dtype=tf.float32)

    def probs(self, logits):
        """Class probabilities `[..., num_vars, num_classes]`: the softmax of the logits."""
        return tf.nn.softmax(logits, axis=-1)

    def to_codes(self, sample):
        return tf.argmax(sample, axis=-1, output_type=tf.int64)

    def from_codes(self, codes):
        return tf.one_hot(tf.cast(codes, tf.int64), self.num_classes, dtype=tf.float32)

    def uniform_logits(self):
        return tf.zeros(self.logits_shape)

    def __repr__(self):
        return f"CategoricalLatent({self.num_vars}x{self.num_classes})"


class BernoulliLatent:
    """`num_vars` independent binary units; samples in {0, 1}, `[..., num_vars]`."""

    kind = "bernoulli"

    def __init__(self, num_vars=200):
        _check_count("num_vars", num_vars)
        self.num_vars = num_vars
        self.num_classes = 2

    @property
    def logits_shape(self):
        return (self.num_vars,)

    @property
    def flat_size(self):
        return self.num_vars

    def distribution(self, logits):
        return tfd.Independent(
            tfd.Bernoulli(logits=logits, dtype=tf.float32),
            reinterpreted_batch_ndims=1,
        )

    def kl(self, logits, prior_logits):
        return tfd.kl_divergence(self.distribution(logits), self.distribution(prior_logits))

    def mode(self, logits):
        return tf.cast(logits > 0, tf.float32)

    def probs(self, logits):
        """Probabilities `[1 - p, p]` of the codes 0 and 1 of each unit, `[..., num_vars, 2]`."""
        p = tf.sigmoid(logits)
        return tf.stack([1.0 - p, p], axis=-1)

    def to_codes(self, sample):
        return tf.cast(sample > 0.5, tf.int64)

    def from_codes(self, codes):
        return tf.cast(codes, tf.float32)

    def uniform_logits(self):
        return tf.zeros(self.logits_shape)

    def __repr__(self):
        return f"BernoulliLatent({self.num_vars})"


def make_latent(kind, num_vars, num_classes=10):
    """Builds a latent family from its kind, `"categorical"` or `"bernoulli"`."""
    if kind == "categorical":
        return CategoricalLatent(num_vars, num_classes)
    if kind == "bernoulli":
        return BernoulliLatent(num_vars)
    raise ValueError(
        "Invalid value received for argument `latent`. Expected 'categorical' "
        f"or 'bernoulli'. Received: latent={kind!r}"
    )
