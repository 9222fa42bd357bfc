"""Stochastic binary networks for structured output prediction."""

import keras
import tensorflow as tf

from keras_gumbel import estimators as estimators_lib
from keras_gumbel.models.compiled_update import CompiledUpdate
from keras_gumbel.models.discrete_vae import bernoulli_log_likelihood
from keras_gumbel.models.discrete_vae import step_logs
from keras_gumbel.models.latent_sampler import LatentSampler
from keras_gumbel.models.latent_signatures import LatentSignatures
from keras_gumbel.models.latents import make_latent
from keras_gumbel.models.step_function import OneStepFit
from keras_gumbel.serialization import register


@register
class StochasticBinaryNetwork(OneStepFit, CompiledUpdate, LatentSignatures, keras.Model):
    """Predicts one binary vector from another through stochastic layers.

    The paper's structured output task: model the lower half of a binarized
    digit given its upper half with a network of stochastic layers,

    ```
    h_1 ~ p(h_1 | x_upper),  h_2 ~ p(h_2 | h_1),  x_lower ~ Bernoulli(f(h_2))
    ```

    each `p(h_l | .)` an affine map to the logits of `num_vars` Bernoulli
    units (392-200-200-392) or of `num_vars` categorical variables of
    `num_classes` classes (392-(20x10)-(20x10)-392). Training maximizes
    `log p(x_lower | h)` with one sample of `h`, drawn by the chosen
    estimator; `evaluate` uses exact samples. The test NLL of the paper,
    `-log (1/m) sum_i p(x_lower | h_i)` with m = 1000 ancestral samples, is
    `keras_gumbel.models.evaluation.importance_bound` over `log_weights`.

    Data: `(x_upper, x_lower)` pairs, e.g. from
    `keras_gumbel.datasets.split_halves`. `keras_gumbel.export` exports the
    network with the signatures of `export_signatures`
    (`LatentSignatures`), on upper halves as `images`.

    Args:
        latent: `"bernoulli"` or `"categorical"`.
        num_vars: Integer. Units (Bernoulli) or variables (categorical) per
            stochastic layer. Defaults to 200 for Bernoulli, 20 otherwise.
        num_classes: Integer >= 2. Classes per categorical variable.
        num_layers: Integer >= 1. Number of stochastic layers. Defaults to 2.
        estimator: String. Gradient estimator name.
        temperature: Float > 0. Initial temperature (the paper fixes 1).
        output_dim: Optional integer. Size of the predicted vector; taken
            from the first training batch when None.
        seed: Optional integer seed.
        **kwargs: Base `keras.Model` keyword arguments.

    Reference:
        - Jang, Gu & Poole, "Categorical Reparameterization with
          Gumbel-Softmax", ICLR 2017, section 4.1.
        - Maddison, Mnih & Teh, "The Concrete Distribution", ICLR 2017.
    """

    def __init__(
        self,
        latent="bernoulli",
        num_vars=None,
        num_classes=10,
        num_layers=2,
        estimator="gumbel_softmax",
        temperature=1.0,
        output_dim=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_vars is None:
            num_vars = 200 if latent == "bernoulli" else 20
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(
                "Invalid value received for argument `num_layers`. Expected an "
                f"integer >= 1. Received: num_layers={num_layers!r}"
            )
        estimators_lib.get(estimator)
        self.latent = make_latent(latent, num_vars, num_classes)
        self.latent_kind = latent
        self.num_vars = num_vars
        self.num_classes = num_classes
        self.num_layers = num_layers
        self.estimator = estimator
        self.temperature = temperature
        self.output_dim = output_dim
        self.seed = seed
        self.to_logits = [
            keras.layers.Dense(self.latent.flat_size, name=f"layer_{i + 1}_logits")
            for i in range(num_layers)
        ]
        self.samplers = [
            LatentSampler(
                kind=self.latent.kind,
                estimator=estimator,
                temperature=temperature,
                seed=None if seed is None else seed + i,
                name=f"layer_{i + 1}_sampler",
            )
            for i in range(num_layers)
        ]
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def build(self, input_shape):
        self.input_dim = int(input_shape[-1])
        if self.output_dim is None:
            self.output_dim = self.input_dim
        self.output_layer = keras.layers.Dense(self.output_dim, name="output_logits")
        size = self.input_dim
        for dense in self.to_logits:
            dense.build((None, size))
            size = self.latent.flat_size
        self.output_layer.build((None, size))
        # Every layer's score-function baseline reads the network's input.
        for sampler in self.samplers:
            sampler.build_baseline((None, self.input_dim), self.latent.logits_shape)

    def _ensure_built(self, x_upper, x_lower=None):
        if not self.built:
            if x_lower is not None and self.output_dim is None:
                self.output_dim = int(x_lower.shape[-1])
            self.build(tuple(x_upper.shape))

    def _layer_logits(self, i, h):
        logits = self.to_logits[i](tf.reshape(h, [tf.shape(h)[0], -1]))
        return tf.reshape(logits, [-1, *self.latent.logits_shape])

    def _forward(self, x_upper, draw):
        """Output logits after passing through every stochastic layer."""
        h = tf.cast(x_upper, tf.float32)
        for i in range(self.num_layers):
            h = draw(i, self._layer_logits(i, h))
        return self.output_layer(tf.reshape(h, [tf.shape(h)[0], -1]))

    def call(self, x_upper, training=False):
        """Logits of p(x_lower | x_upper) along one sample (the mode at inference)."""
        self._ensure_built(x_upper)
        return self._forward(x_upper, lambda i, logits: self.samplers[i](logits, training=training))

    @property
    def metrics(self):
        return [self.loss_tracker]

    def train_step(self, data):
        """One step on the single-sample NLL `-log p(x_lower | h)`.

        Pathwise estimators backpropagate through every layer's sample.
        Surrogate (score-function family) estimators draw exact samples
        with no gradient path and add, for each stochastic layer `i`,
        `estimator.surrogate(objective_i, h_i, logits_i, kind)`, where
        `objective_i(h)` is the downstream NLL as a function of layer
        `i`'s value: the layers above `i` are drawn again from `h` with the
        noise of this step's samples (common random numbers). At the
        step's own `h_i` it is therefore exactly the step's loss, the
        learning signal of every layer, as in REINFORCE for stochastic
        networks; each layer's input-dependent baseline reads `x_upper`.
        Away from `h_i` (MuProp's `f(mu)`, the derivatives of DARN and
        MuProp) the layers above are straight-through Gumbel-Softmax
        samples of that noise, so `objective_i` has a derivative; it only
        enters control variates or, for DARN, a biased signal, so MuProp
        stays unbiased. MuProp with `mean_field=True` expands the
        deterministic mean-field network's loss instead (every later layer
        replaced by its mean). The output layer's weights get the pathwise
        gradient of the NLL; each layer's logits only get their own
        surrogate's.
        """
        x_upper, x_lower = data[:2]
        self._ensure_built(x_upper, x_lower)
        estimators = [sampler._estimator for sampler in self.samplers]
        with tf.GradientTape() as tape:
            if not any(e.uses_surrogate for e in estimators):
                nll = -bernoulli_log_likelihood(x_lower, self(x_upper, training=True))
                total = nll
            else:
                kind = self.latent.kind
                noise = []
                logits = []
                samples = []

                def draw(j, layer_logits, smooth):
                    # An exact sample of the noise's scores; with `smooth`,
                    # straight-through Gumbel-Softmax of the same noise.
                    scores = tf.cast(layer_logits, tf.float32) + noise[j]
                    if kind == "categorical":
                        hard = tf.one_hot(tf.argmax(scores, axis=-1), self.num_classes)
                        soft = tf.nn.softmax(scores / self.samplers[j].temperature_variable)
                    else:
                        hard = tf.cast(scores > 0, tf.float32)
                        soft = tf.sigmoid(scores / self.samplers[j].temperature_variable)
                    return hard + (soft - tf.stop_gradient(soft)) if smooth else hard

                def output_logits(h):
                    return self.output_layer(tf.reshape(h, [tf.shape(h)[0], -1]))

                h = tf.cast(x_upper, tf.float32)
                for i, sampler in enumerate(self.samplers):
                    layer_logits = self._layer_logits(i, h)
                    shape = tf.shape(layer_logits)
                    seed = sampler.seed_generator
                    noise.append(estimators_lib.sample_noise(shape, kind, seed=seed))
                    h = tf.stop_gradient(draw(i, layer_logits, smooth=False))
                    logits.append(layer_logits)
                    samples.append(h)
                nll = -bernoulli_log_likelihood(x_lower, output_logits(h))
                total = nll

                def downstream(value, i, step):
                    # The NLL with layer `i` at `value` and each later layer
                    # `step(j, logits)` of its input.
                    for j in range(i + 1, self.num_layers):
                        value = step(j, self._layer_logits(j, value))
                    return -bernoulli_log_likelihood(x_lower, output_logits(value))

                def straight_through(j, layer_logits):
                    return draw(j, layer_logits, smooth=True)

                def mean_of(j, layer_logits):
                    # The deterministic mean-field network.
                    return estimators_lib.mean(layer_logits, kind)

                for i, estimator in enumerate(estimators):
                    surrogate = estimator.surrogate(
                        lambda value, i=i: downstream(value, i, straight_through),
                        samples[i],
                        logits[i],
                        kind,
                        inputs=x_upper,
                        mean_field=lambda value, i=i: downstream(value, i, mean_of),
                    )
                    if surrogate is not None:
                        total = total + surrogate
            loss = tf.reduce_mean(total) / tf.distribute.get_strategy().num_replicas_in_sync
        gradients = tape.gradient(loss, self.trainable_variables)
        self.apply_gradients(gradients)
        self.loss_tracker.update_state(nll)
        return step_logs({"loss": self.loss_tracker.result()})

    def test_step(self, data):
        x_upper, x_lower = data[:2]
        self._ensure_built(x_upper, x_lower)
        logits = self._forward(x_upper, lambda i, lg: self.samplers[i].exact_sample(lg))
        self.loss_tracker.update_state(-bernoulli_log_likelihood(x_lower, logits))
        return step_logs({"loss": self.loss_tracker.result()})

    def log_weights(self, data, num_samples):
        """`log p(x_lower | h_i)` for `num_samples` ancestral samples, `[num_samples, batch]`.

        With `h_i ~ p(h | x_upper)` exactly, log-mean-exp over the samples is
        the m-sample estimate of `log p(x_lower | x_upper)`.
        """
        x_upper, x_lower = data[:2]
        self._ensure_built(x_upper, x_lower)
        tiled = tf.reshape(
            tf.broadcast_to(x_upper, tf.concat([[num_samples], tf.shape(x_upper)], 0)),
            [-1, self.input_dim],
        )
        logits = self._forward(tiled, lambda i, lg: self.samplers[i].exact_sample(lg))
        targets = tf.reshape(
            tf.broadcast_to(x_lower, tf.concat([[num_samples], tf.shape(x_lower)], 0)),
            [-1, self.output_dim],
        )
        return tf.reshape(bernoulli_log_likelihood(targets, logits), [num_samples, -1])

    def latent_logits(self, x_upper):
        """Logits of the last stochastic layer, `[batch, *latent.logits_shape]`.

        Along the deterministic path: each layer before the last takes the
        mode of the one above it, as in `encode`.
        """
        self._ensure_built(x_upper)
        logits = self._layer_logits(0, tf.cast(x_upper, tf.float32))
        for i in range(1, self.num_layers):
            logits = self._layer_logits(i, self.latent.mode(logits))
        return logits

    def encode(self, x_upper):
        """Deterministic codes of the last stochastic layer, `[batch, num_vars]`."""
        return self.latent.to_codes(self.latent.mode(self.latent_logits(x_upper)))

    def decode(self, codes):
        """Bernoulli means of the lower half for last-layer codes."""
        h = self.latent.from_codes(codes)
        return tf.sigmoid(self.output_layer(tf.reshape(h, [tf.shape(h)[0], -1])))

    def reconstruct(self, x_upper):
        """Deterministic prediction of the lower half: `decode(encode(x_upper))`."""
        return self.decode(self.encode(x_upper))

    def sample(self, x_upper, seed=None):
        """One exact sample of the lower half given the upper half, in {0, 1}."""
        self._ensure_built(x_upper)
        generator = keras.random.SeedGenerator(seed)
        logits = self._forward(
            x_upper, lambda i, lg: estimators_lib.exact_sample(lg, self.latent.kind, seed=generator)
        )
        return estimators_lib.exact_sample(logits, "bernoulli", seed=generator)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "latent": self.latent_kind,
                "num_vars": self.num_vars,
                "num_classes": self.num_classes,
                "num_layers": self.num_layers,
                "estimator": self.estimator,
                "temperature": self.temperature,
                "output_dim": self.output_dim,
                "seed": self.seed,
            }
        )
        return config
