"""Models with a Gumbel bottleneck for the export tests, and their codes
computed in process without the exporter (from the layers' own outputs).

Each builder returns `(model, inputs_fn, codes_fn)`: `inputs_fn(n, seed)`
makes n inputs; `codes_fn(x)` gives the int64 codes computed in process.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np

import keras_gumbel as kg
from keras_gumbel import datasets

ROOT = Path(__file__).resolve().parents[1]


def _argmax_codes(submodel):
    def codes(x):
        return np.argmax(keras.ops.convert_to_numpy(submodel(x, training=False)), -1)

    return codes


def quickstart_model(epochs=1):
    """The README quickstart autoencoder (20 codes of 10 classes), trained."""
    x = datasets.load("mnist-sample").x_train
    x = x.reshape(len(x), -1)
    inputs = keras.Input(shape=(784,))
    h = keras.layers.Dense(256, activation="relu")(inputs)
    logits = keras.layers.Reshape((20, 10))(keras.layers.Dense(200)(h))
    codes = kg.GumbelSoftmax(hard=True, name="codes")(logits)
    h = keras.layers.Dense(256, activation="relu")(keras.layers.Flatten()(codes))
    outputs = keras.layers.Dense(784, activation="sigmoid")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    anneal = kg.TemperatureScheduler(
        kg.schedules.ExponentialDecay(rate=3e-3, minimum=0.5, interval=50)
    )
    model.fit(x, x, epochs=epochs, batch_size=100, callbacks=[anneal], verbose=0)
    encoder = keras.Model(inputs, codes)

    def inputs_fn(n, seed=0):
        test = datasets.load("mnist-sample").x_test
        return test.reshape(len(test), -1)[:n].astype("float32")

    return model, inputs_fn, _argmax_codes(encoder)


def conv_model():
    """A convolutional image encoder: images [-1, 28, 28, 1] -> 16 codes of 8."""
    images = keras.Input(shape=(28, 28, 1), name="images")
    h = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(images)
    h = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(h)
    logits = keras.layers.Reshape((16, 8))(keras.layers.Dense(128)(keras.layers.Flatten()(h)))
    codes = kg.GumbelSoftmax(hard=True, name="codes")(logits)
    outputs = keras.layers.Dense(10, name="digit")(keras.layers.Flatten()(codes))
    model = keras.Model(images, outputs)

    def inputs_fn(n, seed=0):
        test = datasets.load("mnist-sample").x_test
        return test[:n].reshape(n, 28, 28, 1).astype("float32")

    return model, inputs_fn, _argmax_codes(keras.Model(images, logits))


def token_model(vocab=100):
    """Two named inputs: token ids [-1, T] (0 is padding, masked by the
    embedding) and a float context [-1, 4]; a code of 6 classes per token."""
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    context = keras.Input(shape=(4,), name="context")
    embedded = keras.layers.Embedding(vocab, 16, mask_zero=True)(tokens)
    shift = keras.layers.Reshape((1, 16))(keras.layers.Dense(16)(context))
    h = keras.layers.Add()([embedded, shift])
    logits = keras.layers.Dense(6)(h)
    codes = kg.GumbelSoftmax(hard=True, name="token_codes")(logits)
    pooled = keras.layers.GlobalAveragePooling1D()(codes)
    outputs = keras.layers.Dense(2)(pooled)
    model = keras.Model({"tokens": tokens, "context": context}, outputs)
    logits_model = keras.Model({"tokens": tokens, "context": context}, logits)

    def inputs_fn(n, seed=0, length=12):
        rng = np.random.default_rng(seed)
        ids = rng.integers(1, vocab, size=(n, length)).astype("int32")
        lengths = rng.integers(1, length + 1, size=n)
        ids[np.arange(length)[None, :] >= lengths[:, None]] = 0  # padding
        return {"tokens": ids, "context": rng.normal(size=(n, 4)).astype("float32")}

    return model, inputs_fn, _argmax_codes(logits_model)


@keras.saving.register_keras_serializable(package="keras_gumbel_tests")
class Bottleneck(keras.layers.Layer):
    """A plain layer holding the Gumbel layer: log-odds -> 12 binary codes."""

    def __init__(self, units=12, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.project = keras.layers.Dense(units)
        self.bits = kg.GumbelSigmoid(hard=True, name="bits")

    def call(self, x, training=None):
        return self.bits(self.project(x), training=training)


@keras.saving.register_keras_serializable(package="keras_gumbel_tests")
class SubclassedAutoencoder(keras.Model):
    """A subclassed model whose Gumbel layer sits inside a plain layer."""

    def __init__(self, features=10, **kwargs):
        super().__init__(**kwargs)
        self.features = features
        self.hidden = keras.layers.Dense(32, activation="relu")
        self.bottleneck = Bottleneck()
        self.out = keras.layers.Dense(features)

    def call(self, x, training=None):
        return self.out(self.bottleneck(self.hidden(x), training=training))


def subclassed_model():
    model = SubclassedAutoencoder()

    def inputs_fn(n, seed=0):
        return np.random.default_rng(seed).normal(size=(n, 10)).astype("float32")

    model(inputs_fn(2))

    def codes(x):
        logits = model.bottleneck.project(model.hidden(x))
        return (keras.ops.convert_to_numpy(logits) > 0).astype("int64")

    return model, inputs_fn, codes


def vector_quantizer_model():
    """MNIST rows as 28-step sequences through a GumbelVectorQuantizer
    (2 groups of 8 code vectors); None if the layer is not available."""
    layer_class = getattr(kg.layers, "GumbelVectorQuantizer", None)
    if layer_class is None:
        return None
    rows = keras.Input(shape=(28, 28), name="rows")
    h = keras.layers.Dense(32, activation="relu")(rows)
    quantizer = layer_class(num_groups=2, num_vars=8, codevector_dim=16, seed=0, name="vq")
    quantized = quantizer(h)
    outputs = keras.layers.Dense(28)(quantized)
    model = keras.Model(rows, outputs)
    features = keras.Model(rows, h)

    def inputs_fn(n, seed=0):
        return datasets.load("mnist-sample").x_test[:n].astype("float32")

    def codes(x):
        out = quantizer.discrete_codes(features(x, training=False))
        return keras.ops.convert_to_numpy(out["codes"]).astype("int64")

    return model, inputs_fn, codes


def permutation_model():
    """Jigsaw-style: a 2x2 grid of 14x14 pieces of an MNIST digit, each piece scored
    against the 4 positions, through a straight-through GumbelSinkhorn; its codes are
    the exact maximum-weight matching (the position of each piece)."""
    pieces = keras.Input(shape=(4, 14 * 14), name="pieces")
    h = keras.layers.Dense(32, activation="relu")(pieces)
    scores = keras.layers.Dense(4)(h)  # [batch, piece, position]
    perm = kg.GumbelSinkhorn(temperature=0.5, hard=True, seed=0, name="perm")(scores)
    outputs = keras.layers.Dense(4)(keras.layers.Flatten()(perm))
    model = keras.Model(pieces, outputs)
    score_model = keras.Model(pieces, scores)

    def inputs_fn(n, seed=0):
        images = datasets.load("mnist-sample").x_test[:n].astype("float32")
        grid = images.reshape(n, 2, 14, 2, 14).transpose(0, 1, 3, 2, 4).reshape(n, 4, 196)
        order = np.random.default_rng(seed).permuted(np.tile(np.arange(4), (n, 1)), axis=1)
        return np.take_along_axis(grid, order[:, :, None], axis=1)

    def codes(x):
        perm_indices = kg.ops.matching(score_model(x, training=False))
        return keras.ops.convert_to_numpy(perm_indices).astype("int64")

    return model, inputs_fn, codes


JAX_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras
    import numpy as np
    import keras_gumbel as kg
    from keras_gumbel import datasets

    assert keras.backend.backend() == "jax"
    out = sys.argv[1]
    data = datasets.load("mnist-sample")
    x = data.x_train.reshape(len(data.x_train), -1)[:1000]
    inputs = keras.Input(shape=(784,), name="pixels")
    h = keras.layers.Dense(64, activation="relu")(inputs)
    logits = keras.layers.Reshape((8, 4))(keras.layers.Dense(32)(h))
    codes = kg.GumbelSoftmax(hard=True, name="codes")(logits)
    outputs = keras.layers.Dense(784, activation="sigmoid")(keras.layers.Flatten()(codes))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, x, epochs=1, batch_size=100, verbose=0)
    model.save(out + "/jax_model.keras")
    test = data.x_test.reshape(len(data.x_test), -1)[:1000].astype("float32")
    jax_codes = np.argmax(np.asarray(keras.Model(inputs, logits)(test)), -1)
    np.save(out + "/inputs.npy", test)
    np.save(out + "/codes.npy", jax_codes.astype("int64"))
    print(json.dumps({"backend": keras.backend.backend()}))
    """
)


def train_on_jax(directory):
    """Trains a small autoencoder on the JAX backend in a subprocess.

    Returns:
        `(model_path, inputs, codes)`: the `.keras` file and the codes that
        the JAX model computed for 1,000 test digits.
    """
    Path(directory).mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(directory)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"backend": "jax"}
    directory = Path(directory)
    return (
        directory / "jax_model.keras",
        np.load(directory / "inputs.npy"),
        np.load(directory / "codes.npy"),
    )
