"""A small deterministic SavedModel with the signatures of keras-gumbel's export.

The contract the project's export produces, reproduced with a plain
`tf.Module` so that the serving tests and the serving benchmark need no
trained model and no Keras:

- `encode` (also `serving_default`): `images` float32 [-1, D] ->
  `codes` int64 [-1, N] and `one_hot` float32 [-1, N, K];
- `encode_probs`: `images` -> `probs` float32 [-1, N, K];
- `decode`: `codes` int64 [-1, N] -> `means` float32 [-1, D];
- `reconstruct`: `images` -> `means` float32 [-1, D].

The encoder and decoder are MLPs with fixed random weights (hidden layers
512 and 256, as the Gumbel-Softmax paper's VAE), so outputs are
deterministic for a seed and differ between seeds, which the version tests
use. One extra signature exists for tests only: `wait`, `seconds` float64
scalar -> `elapsed` float64, which busy-waits that long in the graph, to
keep a request in flight.
"""

import numpy as np
import tensorflow as tf

D, N, K = 784, 20, 10
HIDDEN = (512, 256)


def _dense_stack(rng, sizes):
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        w = rng.normal(0.0, 1.0 / np.sqrt(fan_in), (fan_in, fan_out)).astype("float32")
        b = rng.normal(0.0, 0.1, (fan_out,)).astype("float32")
        layers.append((tf.Variable(w), tf.Variable(b)))
    return layers


def _apply(layers, x):
    for i, (w, b) in enumerate(layers):
        x = tf.matmul(x, w) + b
        if i < len(layers) - 1:
            x = tf.nn.relu(x)
    return x


class FixtureModel(tf.Module):
    """Encoder D -> 512 -> 256 -> N*K logits; decoder N*K -> 256 -> 512 -> D."""

    def __init__(self, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.encoder = _dense_stack(rng, (D,) + HIDDEN + (N * K,))
        self.decoder = _dense_stack(rng, (N * K,) + HIDDEN[::-1] + (D,))

    def _logits(self, images):
        return tf.reshape(_apply(self.encoder, images), [-1, N, K])

    def _codes(self, images):
        return tf.argmax(self._logits(images), axis=-1, output_type=tf.int64)

    def _means(self, codes):
        one_hot = tf.reshape(tf.one_hot(codes, K, dtype=tf.float32), [-1, N * K])
        return tf.sigmoid(_apply(self.decoder, one_hot))

    @tf.function(input_signature=[tf.TensorSpec([None, D], tf.float32, name="images")])
    def encode(self, images):
        codes = self._codes(images)
        return {"codes": codes, "one_hot": tf.one_hot(codes, K, dtype=tf.float32)}

    @tf.function(input_signature=[tf.TensorSpec([None, D], tf.float32, name="images")])
    def encode_probs(self, images):
        return {"probs": tf.nn.softmax(self._logits(images), axis=-1)}

    @tf.function(input_signature=[tf.TensorSpec([None, N], tf.int64, name="codes")])
    def decode(self, codes):
        return {"means": self._means(codes)}

    @tf.function(input_signature=[tf.TensorSpec([None, D], tf.float32, name="images")])
    def reconstruct(self, images):
        return {"means": self._means(self._codes(images))}

    @tf.function(input_signature=[tf.TensorSpec([], tf.float64, name="seconds")])
    def wait(self, seconds):
        start = tf.timestamp()
        end = tf.while_loop(
            lambda now: now - start < seconds, lambda now: [tf.timestamp()], [start]
        )
        return {"elapsed": end - start}


def save_fixture_model(path, seed=0):
    """Writes the fixture SavedModel to `path` (a version directory); returns it."""
    model = FixtureModel(seed)
    signatures = {
        "serving_default": model.encode,
        "encode": model.encode,
        "encode_probs": model.encode_probs,
        "decode": model.decode,
        "reconstruct": model.reconstruct,
        "wait": model.wait,
    }
    tf.saved_model.save(model, str(path), signatures=signatures)
    return path
