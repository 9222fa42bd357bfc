"""The hand-written training floor of `benchmarks.performance.perf_training` takes
CategoricalVAE's step.

From the same weights, on the same batch and with the same Gumbel noise, one
step of the floor (each XLA variant) must give the loss and the updated
weights of one `CategoricalVAE().train_step` with Keras's Adam: the same
network, loss, gradient and optimizer. Tolerances are float32 round-off:
the two sides add, reduce and fuse in different orders (loss: rtol 1e-5).
Weights after one Adam step of size 1e-3: atol 1e-5, 1% of the step; a
wrong network, loss or update moves weights by about 1e-3. The first Adam
step is 1e-3 * g / (|g| + 1e-7), which for a gradient near 1e-7 turns a
relative round-off of 1e-4 in g into about 1e-6 (measured: 2e-6 for a few
weights when XLA compiles the whole step).
"""

import keras
import numpy as np
import pytest
from testing import BACKEND

from benchmarks.performance import perf_training
from keras_gumbel.models import CategoricalVAE
from keras_gumbel.ops import uniform_noise

pytestmark = pytest.mark.skipif(BACKEND != "tensorflow", reason="the floor is TensorFlow")

BATCH = 16
SEED = 3


def _model_weights(model):
    """The model's kernels and biases in the floor's order (encoder, then decoder)."""
    layers = [*model.encoder.layers, model.to_logits, *model.decoder.layers, model.output_layer]
    return [w for layer in layers for w in (layer.kernel, layer.bias)]


def _model_step(x):
    """One eager `train_step` of a fresh model: its loss, weights before and after."""
    keras.utils.set_random_seed(0)
    model = CategoricalVAE(seed=SEED)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model(x)  # builds the model; inference draws no noise
    before = [w.numpy() for w in _model_weights(model)]
    logs = model.train_step(x)
    after = [w.numpy() for w in _model_weights(model)]
    return float(logs["loss"]), before, after


@pytest.mark.parametrize("xla", perf_training.HAND_XLA)
def test_floor_step_is_the_model_step(xla):
    import tensorflow as tf

    x = (np.random.default_rng(0).random((BATCH, 784)) < 0.3).astype(np.float32)
    loss, before, after = _model_step(tf.constant(x))
    # The noise the model's sampler draws first: a generator in its initial state.
    u = uniform_noise((BATCH, 20, 10), seed=keras.random.SeedGenerator(SEED))

    vae = perf_training.HandVAE()
    assert [tuple(v.shape) for v in vae.variables] == [w.shape for w in before]
    for variable, value in zip(vae.variables, before, strict=True):
        variable.assign(value)
    step = perf_training.hand_train_step(
        vae, keras.optimizers.Adam(1e-3), xla=xla, noise=lambda shape: u
    )
    hand_loss = float(step(tf.constant(x)))

    assert hand_loss == pytest.approx(loss, rel=1e-5)
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(after, before, strict=True))
    assert moved > 5e-4  # the step changed the weights, so equality below means something
    for variable, expected in zip(vae.variables, after, strict=True):
        np.testing.assert_allclose(variable.numpy(), expected, rtol=0, atol=1e-5)
