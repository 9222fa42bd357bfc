"""A variational autoencoder with one layer of discrete latent variables."""

import math

import keras
import tensorflow as tf

from keras_gumbel import estimators as estimators_lib
from keras_gumbel.models.compiled_update import CompiledUpdate
from keras_gumbel.models.latent_sampler import LatentSampler
from keras_gumbel.models.latent_signatures import LatentSignatures
from keras_gumbel.models.latents import make_latent
from keras_gumbel.models.step_function import OneStepFit


def bernoulli_log_prob(x, logits):
    """Elementwise log p(x | logits) of Bernoulli pixels, `x * logits - softplus(logits)`.

    The value and gradient of `-tf.nn.sigmoid_cross_entropy_with_logits`
    (for any x in [0, 1]) in three elementwise operations instead of about
    nine, with a one-operation gradient. `x` broadcasts against `logits`.
    """
    return x * logits - tf.nn.softplus(logits)


def bernoulli_log_likelihood(x, logits):
    """log p(x | logits) of binary pixels, summed over all but the batch axis."""
    log_prob = bernoulli_log_prob(x, logits)
    return tf.reduce_sum(tf.reshape(log_prob, [tf.shape(log_prob)[0], -1]), axis=-1)


def step_logs(logs):
    """Train/test step results, shaped for the active distribution strategy.

    Keras 3 reduces a multi-worker step's results with a mean over axis 0,
    which fails on scalars (tensorflow/tensorflow#72388); there the results
    are returned with shape [1], which that mean turns back into scalars.
    """
    if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
        return {k: tf.reshape(v, [1]) for k, v in logs.items()}
    return logs


def mlp(units, name):
    return keras.Sequential([keras.layers.Dense(n, activation="relu") for n in units], name=name)


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected one of "
            f"{tuple(choices)}. Received: {name}={value!r}"
        )


def check_units(name, units):
    if not isinstance(units, (list, tuple)) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in units
    ):
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a list of "
            f"positive integers. Received: {name}={units!r}"
        )


class DiscreteVAE(OneStepFit, CompiledUpdate, LatentSignatures, keras.Model):
    """VAE with a discrete latent layer, trained on binary data.

    `q(z|x)` is an MLP encoder followed by the latent logits; `p(x|z)` an MLP
    decoder to Bernoulli pixel logits; `p(z)` a uniform or learned prior. The
    training loss is the negative ELBO per example, in nats:

    ```
    -ELBO(x) = -log p(x | z) + KL(q(z | x) || p(z)),   z ~ estimator(q(z | x))
    ```

    with the KL term computed analytically. With a relaxed estimator the
    training loss is the relaxed objective; validation (`evaluate`) uses an
    exact discrete sample, so its loss is the discrete model's negative ELBO.

    Training runs one compiled step per `fit` call (`OneStepFit`); compiled
    with Keras's default `jit_compile="auto"` on a CPU, the optimizer update
    runs as one XLA function (`CompiledUpdate`), the rest without XLA.

    Subclasses choose the latent family (`CategoricalVAE`, `BernoulliVAE`).
    The input size is taken from the data at build time; inputs may be
    images of any shape and are flattened. `keras_gumbel.export` exports
    it with the signatures of `export_signatures` (`LatentSignatures`).
    """

    def __init__(
        self,
        latent,
        num_vars,
        num_classes=10,
        encoder_units=(512, 256),
        decoder_units=(256, 512),
        estimator="gumbel_softmax",
        temperature=1.0,
        prior="uniform",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_units("encoder_units", encoder_units)
        check_units("decoder_units", decoder_units)
        check_choice("prior", prior, ("uniform", "learned"))
        estimators_lib.get(estimator)
        self.latent = make_latent(latent, num_vars, num_classes)
        self.num_vars = num_vars
        self.num_classes = num_classes
        self.encoder_units = tuple(encoder_units)
        self.decoder_units = tuple(decoder_units)
        self.estimator = estimator
        self.temperature = temperature
        self.prior = prior
        self.seed = seed
        self.encoder = mlp(self.encoder_units, "encoder")
        self.to_logits = keras.layers.Dense(self.latent.flat_size, name="latent_logits")
        self.sampler = LatentSampler(
            kind=self.latent.kind,
            estimator=estimator,
            temperature=temperature,
            seed=seed,
            name="sampler",
        )
        self.decoder = mlp(self.decoder_units, "decoder")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    def build(self, input_shape):
        self.input_dim = math.prod(input_shape[1:])
        self.output_layer = keras.layers.Dense(self.input_dim, name="pixel_logits")
        self.prior_logits = self.add_weight(
            name="prior_logits",
            shape=self.latent.logits_shape,
            initializer="zeros",
            trainable=self.prior == "learned",
        )
        flat = (input_shape[0], self.input_dim)
        self.encoder.build(flat)
        self.to_logits.build((input_shape[0], self.encoder_units[-1]))
        self.decoder.build((input_shape[0], self.latent.flat_size))
        self.output_layer.build((input_shape[0], self.decoder_units[-1]))
        self.sampler.build_baseline((input_shape[0], self.input_dim), self.latent.logits_shape)

    # The pieces.

    def _flatten(self, x):
        if not self.built:
            # Custom train/test steps and the public methods may see data
            # before Keras has built the model; the input size comes from it.
            self.build(tuple(x.shape))
        return tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], self.input_dim])

    def latent_logits(self, x):
        """Logits of q(z | x), shape `[batch, *latent.logits_shape]`."""
        h = self.to_logits(self.encoder(self._flatten(x)))
        return tf.reshape(h, [-1, *self.latent.logits_shape])

    def pixel_logits(self, z):
        """Logits of p(x | z) for latent samples or one-hot codes `z`."""
        flat = tf.reshape(z, [-1, self.latent.flat_size])
        return self.output_layer(self.decoder(flat))

    def call(self, x, training=False):
        """Bernoulli pixel logits of a reconstruction (sampled in training)."""
        return self.pixel_logits(self.sampler(self.latent_logits(x), training=training))

    # Training.

    def _elbo_terms(self, x, z, logits):
        reconstruction = -bernoulli_log_likelihood(self._flatten(x), self.pixel_logits(z))
        kl = self._kl(logits)
        return reconstruction, kl

    def _kl(self, logits):
        """Analytic KL(q(z | x) || p(z)) per example, summed over the variables.

        For categorical latents `sum q (log q - log p)` with `q = exp(log q)`:
        one normalization of the logits and its gradient, where
        `latent.kl` (TFP) normalizes them twice (softmax and log-softmax).
        """
        if self.latent.kind != "categorical":
            return self.latent.kl(logits, self.prior_logits)
        log_q = tf.nn.log_softmax(logits)
        log_p = tf.nn.log_softmax(self.prior_logits)
        return tf.reduce_sum(tf.exp(log_q) * (log_q - log_p), axis=[-2, -1])

    def _update(self, reconstruction, kl):
        self.loss_tracker.update_state(reconstruction + kl)
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        return step_logs({m.name: m.result() for m in self.metrics})

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    def train_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        estimator = self.sampler._estimator
        with tf.GradientTape() as tape:
            logits = self.latent_logits(x)
            flat_x = self._flatten(x)

            def objective(z):
                """-log p(x | z) per example: the part of the loss that needs z."""
                return -bernoulli_log_likelihood(flat_x, self.pixel_logits(z))

            z = self.sampler(logits, training=True)
            reconstruction = objective(z)
            if estimator.uses_surrogate:
                # Score-function estimators add a surrogate whose gradient
                # is their estimate (its baseline reads the input). Their
                # variance normalization scales the KL term's gradient to
                # the logits alike, so it rescales the encoder's gradient
                # without tilting it toward the KL term.
                surrogate = estimator.surrogate(
                    objective, z, logits, self.latent.kind, inputs=flat_x
                )
                kl = self._kl(estimator.scale_gradient(logits))
                total = reconstruction + kl + surrogate
            else:
                kl = self._kl(logits)
                total = reconstruction + kl
            # Per-replica mean, divided by the replica count: the optimizer
            # sums the replicas' gradients.
            loss = tf.reduce_mean(total) / tf.distribute.get_strategy().num_replicas_in_sync
        gradients = tape.gradient(loss, self.trainable_variables)
        self.apply_gradients(gradients)
        return self._update(reconstruction, kl)

    def test_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        logits = self.latent_logits(x)
        z = self.sampler.exact_sample(logits)
        return self._update(*self._elbo_terms(x, z, logits))

    def relaxed_loss(self, x):
        """The training objective per example, `[batch]`, in nats.

        `-log p(x | z) + KL(q(z | x) || p(z))` with `z` drawn as in training:
        for Gumbel-Softmax a relaxed sample at the current temperature, which
        the decoder scores although it is not a value of the discrete
        latent; for straight-through and score-function estimators an exact
        sample, so this equals the discrete loss of `evaluate` in expectation.
        Set beside `evaluate`'s loss it shows how much of a relaxed
        estimator's training loss is the relaxation's.
        """
        logits = self.latent_logits(x)
        reconstruction, kl = self._elbo_terms(x, self.sampler(logits, training=True), logits)
        return reconstruction + kl

    # Inference.

    def encode(self, x):
        """Deterministic integer codes `[batch, num_vars]`: the mode of q(z|x)."""
        return self.latent.to_codes(self.latent.mode(self.latent_logits(x)))

    def decode(self, codes):
        """Bernoulli means `[batch, input_dim]` for integer codes `[batch, num_vars]`."""
        return tf.sigmoid(self.pixel_logits(self.latent.from_codes(codes)))

    def reconstruct(self, x):
        """Deterministic reconstruction: `decode(encode(x))`."""
        return self.decode(self.encode(x))

    def sample(self, num_samples, seed=None):
        """Bernoulli means of `num_samples` images drawn from the prior."""
        logits = tf.broadcast_to(self.prior_logits, [num_samples, *self.latent.logits_shape])
        z = estimators_lib.exact_sample(logits, self.latent.kind, seed=seed)
        return tf.sigmoid(self.pixel_logits(z))

    def log_weights(self, x, num_samples):
        """Importance log-weights `log p(x, z_i) - log q(z_i | x)`, `[num_samples, batch]`.

        `z_i` are exact discrete samples of q(z | x); their log-mean-exp is
        the importance-weighted bound on log p(x) (Burda et al. 2016).
        """
        logits = self.latent_logits(x)
        z = self._exact_samples(logits, num_samples)
        x_logits = tf.reshape(self.pixel_logits(z), [num_samples, -1, self.input_dim])
        log_px = tf.reduce_sum(bernoulli_log_prob(self._flatten(x), x_logits), axis=-1)
        return log_px + self._log_prior_ratio(z, logits)

    def _exact_samples(self, logits, num_samples):
        """`num_samples` exact samples of q(z | x) per example, `[num_samples, *logits.shape]`.

        `one_hot(argmax(logits + g))` with Gumbel noise `g`, or
        `1[logits + L > 0]` with logistic noise `L`: the noise and samples
        of `sampler.exact_sample` on the logits repeated `num_samples` times,
        drawn without that function's softmax and straight-through
        arithmetic (which only serve gradients) and without materializing
        the repeated logits.
        """
        shape = tf.concat([[num_samples], tf.shape(logits)], axis=0)
        noise = estimators_lib.sample_noise(
            shape, self.latent.kind, seed=self.sampler.seed_generator
        )
        scores = logits + noise
        if self.latent.kind == "categorical":
            index = tf.argmax(scores, axis=-1, output_type=tf.int32)
            return tf.one_hot(index, self.num_classes, dtype=tf.float32)
        return tf.cast(scores > 0, tf.float32)

    def _log_prior_ratio(self, z, logits):
        """`log p(z) - log q(z | x)` of samples `[num_samples, batch, ...]`, `[num_samples, batch]`.

        The log-probabilities of every class (or bit) are computed once per
        example and shared by its samples, where `distribution(logits)
        .log_prob(z)` would normalize the logits again for each sample.
        """
        if self.latent.kind == "categorical":
            delta = tf.nn.log_softmax(self.prior_logits) - tf.nn.log_softmax(logits)
            return tf.reduce_sum(z * delta, axis=[-2, -1])
        # log p(b) = b * l - softplus(l) for a bit b of log-odds l.
        offset = tf.nn.softplus(logits) - tf.nn.softplus(self.prior_logits)
        return tf.reduce_sum(z * (self.prior_logits - logits), axis=-1) + tf.reduce_sum(
            offset, axis=-1
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_vars": self.num_vars,
                "encoder_units": list(self.encoder_units),
                "decoder_units": list(self.decoder_units),
                "estimator": self.estimator,
                "temperature": self.temperature,
                "prior": self.prior,
                "seed": self.seed,
            }
        )
        return config
