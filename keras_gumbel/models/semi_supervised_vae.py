"""Model M2 of Kingma et al. (2014): semi-supervised classification with a VAE."""

import math

import keras
import tensorflow as tf

from keras_gumbel.models.compiled_update import CompiledUpdate
from keras_gumbel.models.discrete_vae import bernoulli_log_likelihood
from keras_gumbel.models.discrete_vae import step_logs
from keras_gumbel.models.latent_sampler import LatentSampler
from keras_gumbel.models.step_function import OneStepFit
from keras_gumbel.serialization import register
from keras_gumbel.validation import check_choice
from keras_gumbel.validation import check_positive_float
from keras_gumbel.validation import check_positive_int

Y_ESTIMATORS = ("marginalize", "gumbel_softmax", "st_gumbel_softmax")


def _check_filters(filters):
    if (
        not isinstance(filters, (list, tuple))
        or len(filters) != 3
        or not all(isinstance(f, int) and not isinstance(f, bool) and f > 0 for f in filters)
    ):
        raise ValueError(
            "Invalid value received for argument `filters`. Expected three "
            f"positive integers. Received: filters={filters!r}"
        )


def _conv_trunk(filters, name):
    """Three 3x3 stride-2 ReLU convolutions, flattened (28x28 -> 4x4 x filters[2])."""
    return keras.Sequential(
        [keras.layers.Conv2D(f, 3, strides=2, padding="same", activation="relu") for f in filters]
        + [keras.layers.Flatten()],
        name=name,
    )


def gaussian_kl(mean, log_variance):
    """KL(N(mean, exp(log_variance)) || N(0, I)), summed over the last axis."""
    return 0.5 * tf.reduce_sum(tf.square(mean) + tf.exp(log_variance) - 1.0 - log_variance, axis=-1)


def categorical_kl_to_uniform(logits):
    """KL(Cat(softmax(logits)) || Uniform(K)) = log K - H(q), per row."""
    log_q = tf.nn.log_softmax(logits)
    num_classes = tf.cast(tf.shape(logits)[-1], logits.dtype)
    return tf.reduce_sum(tf.exp(log_q) * log_q, axis=-1) + tf.math.log(num_classes)


@register
class SemiSupervisedVAE(OneStepFit, CompiledUpdate, keras.Model):
    """Model M2 of Kingma et al. (2014) with a choice of estimator for the class.

    Three networks: a classifier `q(y|x)`, an inference network `q(z|x, y)`
    with Gaussian `z`, and a decoder `p(x|y, z)` to Bernoulli pixel logits,
    with priors `p(y)` uniform over `num_classes` and `p(z) = N(0, I)`. The
    classifier and the inference network are 3-layer ReLU CNNs (the class
    enters the inference network after its convolutions); the decoder is a
    dense layer and three transposed convolutions.

    The loss per training step, in nats per example, on a labelled batch
    `(x_l, y_l)` and an unlabelled batch `x_u`:

    ```
    loss = mean L(x_l, y_l) + mean U(x_u) + alpha * mean(-log q(y_l | x_l))
    L(x, y) = -log p(x | y, z) + KL(q(z | x, y) || p(z)) - log p(y),  z ~ q(z | x, y)
    U(x) = E_{q(y|x)}[-log p(x | y, z) + KL(q(z | x, y) || p(z))] + KL(q(y|x) || p(y))
    ```

    `y_estimator` chooses how the expectation over `y` in `U` is taken:

    - `"marginalize"`: summed exactly over all classes, as in Kingma et al.;
      the inference head and decoder run once per class, so a step costs
      O(num_classes).
    - `"gumbel_softmax"`: one relaxed Gumbel-Softmax sample of `y` (biased
      by the relaxation, cost independent of num_classes).
    - `"st_gumbel_softmax"`: one straight-through Gumbel-Softmax sample:
      one-hot `y` in the forward pass, relaxed gradient.

    The sampled estimators anneal their temperature with
    `keras_gumbel.callbacks.TemperatureScheduler` (the paper: tau =
    max(0.5, exp(-3e-5 t)) every 2000 steps). Evaluation always
    marginalizes, so every estimator's validation `unlabelled` metric is the
    same exact bound.

    `fit` takes batches as dicts `{"x": x_u, "labelled_x": x_l, "labels":
    y_l}` (see `keras_gumbel.datasets.make_semi_supervised_dataset`);
    `evaluate` takes `(x, y)` pairs and reports the classification accuracy,
    the cross-entropy and the unlabelled negative bound `U(x)`.

    Args:
        num_classes: Integer >= 2. Classes of `y`. Defaults to 10.
        latent_dim: Integer >= 1. Size of the Gaussian `z`. Defaults to 64.
        image_shape: `(height, width)` of the images; inputs may be
            flattened. Defaults to `(28, 28)`.
        filters: Three integers, the channels of the convolutions (the
            decoder uses them in reverse). Defaults to `(32, 64, 128)`.
        hidden_units: Integer. Dense units of the inference network's head.
        y_estimator: One of `Y_ESTIMATORS`. Defaults to "gumbel_softmax".
        alpha: Float > 0. Weight of the labelled cross-entropy.
        temperature: Float > 0. Initial temperature of the class sampler.
        seed: Optional integer seed of the samplers.
        **kwargs: Base `keras.Model` keyword arguments.

    Example:

    ```python
    model = SemiSupervisedVAE(num_classes=10, y_estimator="gumbel_softmax")
    model.compile(optimizer="adam")
    train = make_semi_supervised_dataset(x_l, y_l, x_u, batch_size=100)
    model.fit(train, validation_data=test, epochs=10,
              callbacks=[TemperatureScheduler(ExponentialDecay(rate=3e-5, interval=2000))])
    labels = model.predict_labels(x_test)
    ```

    Reference:
        - Kingma, Rezende, Mohamed & Welling, "Semi-Supervised Learning with
          Deep Generative Models", NeurIPS 2014.
        - Jang, Gu & Poole, "Categorical Reparameterization with
          Gumbel-Softmax", ICLR 2017, section 4.3.
    """

    def __init__(
        self,
        num_classes=10,
        latent_dim=64,
        image_shape=(28, 28),
        filters=(32, 64, 128),
        hidden_units=256,
        y_estimator="gumbel_softmax",
        alpha=1.0,
        temperature=1.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("num_classes", num_classes, minimum=2)
        check_positive_int("latent_dim", latent_dim)
        check_positive_int("hidden_units", hidden_units)
        check_positive_float("alpha", alpha)
        check_choice("y_estimator", y_estimator, Y_ESTIMATORS)
        _check_filters(filters)
        if not isinstance(image_shape, (list, tuple)) or len(image_shape) != 2:
            raise ValueError(
                "Invalid value received for argument `image_shape`. Expected "
                f"(height, width). Received: image_shape={image_shape!r}"
            )
        for size in image_shape:
            check_positive_int("image_shape", size)
        self.num_classes = num_classes
        self.latent_dim = latent_dim
        self.image_shape = tuple(image_shape)
        self.filters = tuple(filters)
        self.hidden_units = hidden_units
        self.y_estimator = y_estimator
        self.alpha = float(alpha)
        self.temperature = temperature
        self.seed = seed
        self.input_dim = math.prod(self.image_shape)

        self.classifier = _conv_trunk(self.filters, "classifier")
        self.class_logits = keras.layers.Dense(self.num_classes, name="class_logits")
        self.z_trunk = _conv_trunk(self.filters, "z_trunk")
        self.z_hidden = keras.layers.Dense(self.hidden_units, activation="relu", name="z_hidden")
        self.z_params = keras.layers.Dense(2 * self.latent_dim, name="z_params")
        height, width = (-(-d // 4) for d in self.image_shape)
        self.decoder = keras.Sequential(
            [
                keras.layers.Dense(height * width * self.filters[2], activation="relu"),
                keras.layers.Reshape((height, width, self.filters[2])),
                keras.layers.Conv2DTranspose(
                    self.filters[1], 3, strides=2, padding="same", activation="relu"
                ),
                keras.layers.Conv2DTranspose(
                    self.filters[0], 3, strides=2, padding="same", activation="relu"
                ),
                keras.layers.Conv2DTranspose(1, 3, padding="same"),
                # Two stride-2 layers give 4h x 4w; crop odd sizes back.
                keras.layers.Cropping2D(
                    ((0, 4 * height - self.image_shape[0]), (0, 4 * width - self.image_shape[1]))
                ),
            ],
            name="decoder",
        )
        self.sampler = None
        if y_estimator != "marginalize":
            self.sampler = LatentSampler(
                kind="categorical",
                estimator=y_estimator,
                temperature=temperature,
                seed=seed,
                name="y_sampler",
            )
        self.z_seed = keras.random.SeedGenerator(seed)
        self.trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("loss", "labelled", "unlabelled", "cross_entropy")
        }
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    def build(self, input_shape=None):
        batch = None
        images = (batch, *self.image_shape, 1)
        self.classifier.build(images)
        features = self.classifier.compute_output_shape(images)[-1]
        self.class_logits.build((batch, features))
        self.z_trunk.build(images)
        self.z_hidden.build((batch, features + self.num_classes))
        self.z_params.build((batch, self.hidden_units))
        self.decoder.build((batch, self.num_classes + self.latent_dim))
        self.built = True

    # The networks.

    def _images(self, x):
        x = tf.cast(x, tf.float32)
        size = math.prod(x.shape[1:]) if x.shape.rank is not None else None
        if size is not None and size != self.input_dim:
            raise ValueError(
                f"SemiSupervisedVAE expects images of {self.image_shape[0]}x"
                f"{self.image_shape[1]} = {self.input_dim} pixels, received inputs of "
                f"shape {tuple(x.shape)}"
            )
        return tf.reshape(x, [-1, *self.image_shape, 1])

    def call(self, x, training=False):
        """Logits of q(y | x), `[batch, num_classes]`."""
        return self.class_logits(self.classifier(self._images(x)))

    def _per_class_terms(self, images, features, y):
        """`-log p(x|y,z) + KL(q(z|x,y) || p(z))` for one z ~ q(z|x,y) per row.

        `images` and `features` (the z trunk's output) have one row per
        `y` row; `y` is one-hot or relaxed `[rows, num_classes]`.
        """
        params = self.z_params(self.z_hidden(tf.concat([features, y], axis=-1)))
        mean, log_variance = tf.split(params, 2, axis=-1)
        noise = keras.random.normal(tf.shape(mean), seed=self.z_seed)
        z = mean + tf.exp(0.5 * log_variance) * noise
        pixel_logits = self.decoder(tf.concat([y, z], axis=-1))
        reconstruction = -bernoulli_log_likelihood(images, pixel_logits)
        return reconstruction + gaussian_kl(mean, log_variance)

    def labelled_bound(self, x, labels):
        """Negative bound `L(x, y)` on `-log p(x, y)` per example (nats)."""
        images = self._images(x)
        y = tf.one_hot(tf.cast(labels, tf.int32), self.num_classes)
        terms = self._per_class_terms(images, self.z_trunk(images), y)
        return terms + math.log(self.num_classes)

    def unlabelled_bound(self, x, class_logits=None, training=False, y=None):
        """Negative bound `U(x)` on `-log p(x)` per example (nats).

        Marginalizes `y` exactly unless `training` and a sampling
        `y_estimator`, which draws one (relaxed or straight-through) `y`.

        Args:
            y: A given draw of the class per example, `[batch, num_classes]`
                (one-hot or relaxed), used instead of the sum over classes and
                of the model's own draw. Its gradient reaches `class_logits`
                only if it was drawn from them: for comparing estimators of
                the classifier's gradient.
        """
        images = self._images(x)
        if class_logits is None:
            class_logits = self(images)
        features = self.z_trunk(images)
        if y is not None:
            y = self._classes(y)
        elif training and self.sampler is not None:
            y = self.sampler(class_logits, training=True)
        if y is None:
            expected = self._marginal_terms(images, features, class_logits)
        else:
            expected = self._per_class_terms(images, features, y)
        return expected + categorical_kl_to_uniform(class_logits)

    def _classes(self, y):
        y = tf.convert_to_tensor(y, tf.float32)
        if y.shape.rank != 2 or y.shape[-1] not in (None, self.num_classes):
            raise ValueError(
                f"`y` must be a draw of the class per example, [batch, {self.num_classes}], "
                f"received shape {tuple(y.shape)}"
            )
        return y

    def _marginal_terms(self, images, features, class_logits):
        """`sum_y q(y|x) terms(x, y)`: every example paired with every class."""
        batch = tf.shape(images)[0]
        k = self.num_classes

        def repeat(t):  # [batch, ...] -> [k * batch, ...], class-major
            return tf.reshape(
                tf.broadcast_to(t[None], tf.concat([[k], tf.shape(t)], 0)),
                tf.concat([[k * batch], tf.shape(t)[1:]], 0),
            )

        y = tf.repeat(tf.eye(k), batch, axis=0)
        terms = tf.reshape(self._per_class_terms(repeat(images), repeat(features), y), [k, batch])
        return tf.reduce_sum(tf.nn.softmax(class_logits) * tf.transpose(terms), axis=-1)

    # Training.

    @property
    def metrics(self):
        return [*self.trackers.values(), self.accuracy_tracker]

    def _unpack_train(self, data):
        if not isinstance(data, dict) or not {"x", "labelled_x", "labels"} <= set(data):
            raise ValueError(
                "SemiSupervisedVAE.fit expects batches as dicts with keys 'x' "
                "(unlabelled images), 'labelled_x' and 'labels'; build them with "
                "keras_gumbel.datasets.make_semi_supervised_dataset"
            )
        return data["labelled_x"], data["labels"], data["x"]

    def _update(self, values, labels, class_logits):
        for name, value in values.items():
            self.trackers[name].update_state(value)
        self.accuracy_tracker.update_state(labels, class_logits)
        return step_logs({m.name: m.result() for m in self.metrics})

    def train_step(self, data):
        labelled_x, labels, unlabelled_x = self._unpack_train(data)
        with tf.GradientTape() as tape:
            labelled_logits = self(labelled_x, training=True)
            labelled = self.labelled_bound(labelled_x, labels)
            unlabelled = self.unlabelled_bound(
                unlabelled_x, self(unlabelled_x, training=True), training=True
            )
            cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.cast(labels, tf.int32), logits=labelled_logits
            )
            loss = (
                tf.reduce_mean(labelled)
                + tf.reduce_mean(unlabelled)
                + self.alpha * tf.reduce_mean(cross_entropy)
            )
            # The optimizer sums the replicas' gradients.
            scaled = loss / tf.distribute.get_strategy().num_replicas_in_sync
        gradients = tape.gradient(scaled, self.trainable_variables)
        self.apply_gradients(gradients)
        values = {
            "loss": loss,
            "labelled": labelled,
            "unlabelled": unlabelled,
            "cross_entropy": cross_entropy,
        }
        return self._update(values, labels, labelled_logits)

    def test_step(self, data):
        if not isinstance(data, (tuple, list)) or len(data) < 2:
            raise ValueError(
                "SemiSupervisedVAE.evaluate expects (images, labels) batches; "
                f"received {type(data).__name__}"
            )
        x, labels = data[0], data[1]
        class_logits = self(x)
        unlabelled = self.unlabelled_bound(x, class_logits)
        cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(labels, tf.int32), logits=class_logits
        )
        values = {
            "loss": unlabelled + self.alpha * cross_entropy,
            "labelled": self.labelled_bound(x, labels),
            "unlabelled": unlabelled,
            "cross_entropy": cross_entropy,
        }
        return self._update(values, labels, class_logits)

    # Inference.

    def classify(self, x):
        """Class probabilities q(y | x), `[batch, num_classes]`."""
        return tf.nn.softmax(self(x))

    def predict_labels(self, x):
        """The most probable class of each image, int64 `[batch]`."""
        return tf.argmax(self(x), axis=-1)

    def decode(self, labels, z):
        """Bernoulli means `[batch, height * width]` of p(x | y, z)."""
        y = tf.one_hot(tf.cast(labels, tf.int32), self.num_classes)
        logits = self.decoder(tf.concat([y, tf.cast(z, tf.float32)], axis=-1))
        return tf.sigmoid(tf.reshape(logits, [-1, self.input_dim]))

    def reconstruct(self, x):
        """Deterministic reconstruction with the predicted class and the mean of q(z|x,y)."""
        images = self._images(x)
        labels = self.predict_labels(images)
        y = tf.one_hot(labels, self.num_classes)
        params = self.z_params(self.z_hidden(tf.concat([self.z_trunk(images), y], axis=-1)))
        return self.decode(labels, tf.split(params, 2, axis=-1)[0])

    def sample(self, labels, seed=None):
        """Bernoulli means of one image per label, with z drawn from p(z)."""
        labels = tf.convert_to_tensor(labels)
        z = keras.random.normal([tf.shape(labels)[0], self.latent_dim], seed=seed)
        return self.decode(labels, z)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "latent_dim": self.latent_dim,
                "image_shape": list(self.image_shape),
                "filters": list(self.filters),
                "hidden_units": self.hidden_units,
                "y_estimator": self.y_estimator,
                "alpha": self.alpha,
                "temperature": self.temperature,
                "seed": self.seed,
            }
        )
        return config
