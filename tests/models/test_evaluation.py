"""`importance_bound` traces its `tf.function` once per model, not once per call."""

import gc
import logging
import weakref

import keras
import numpy as np
import pytest
from testing import BACKEND

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="importance_bound runs as a tf.function"
)

if BACKEND == "tensorflow":
    import tensorflow as tf

    from keras_gumbel.models import evaluation
    from keras_gumbel.models import importance_bound


class CountingModel(keras.Model):
    """`log_weights` that count their traces, with a variable the trace captures.

    Every sample's log-weight is `sum(x) * w` (w = 1), so the bound is known
    exactly: `-sum(x)` for any m.
    """

    def __init__(self):
        super().__init__()
        self.w = self.add_weight(shape=(), initializer="ones", name="w")
        self.traces = 0

    def log_weights(self, batch, num_samples):
        self.traces += 1  # Python: runs only while tracing.
        per_example = tf.reduce_sum(batch, axis=-1) * self.w
        return tf.broadcast_to(per_example, [num_samples, tf.shape(batch)[0]])


def _batches():
    x = np.arange(12, dtype="float32").reshape(6, 2) / 10.0
    return x, [x[:4], x[4:]]  # A smaller last batch, as at the end of an epoch.


def test_ten_calls_trace_once_and_log_no_retracing_warning(caplog):
    # One batch and one chunk: each call makes a single call of the traced
    # function, so a function traced per call would trace on every call, and
    # TensorFlow warns once 5 of the last 10 calls of a function retraced.
    model = CountingModel()
    x, _ = _batches()
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        for _ in range(10):
            bound = importance_bound(model, [x], num_samples=4)
            np.testing.assert_allclose(bound, -x.sum(axis=-1), rtol=1e-6)
    assert model.traces == 1
    assert evaluation._chunk_function(model).experimental_get_tracing_count() == 1
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


def test_a_smaller_last_batch_traces_once_more_then_never():
    model = CountingModel()
    x, batches = _batches()
    for _ in range(10):
        bound = importance_bound(model, batches, num_samples=30, chunk_size=10)
        np.testing.assert_allclose(bound, -x.sum(axis=-1), rtol=1e-6)
    # One trace for the batch of 4, one for the batch of 2, which reduce_retracing
    # generalizes to any batch size; none after the first call.
    assert model.traces == 2


def test_each_chunk_size_is_one_trace():
    model = CountingModel()
    x, batches = _batches()
    for _ in range(3):
        # m = 25 in chunks of 10: two chunks of 10 and one of 5.
        bound = importance_bound(model, [x], num_samples=25, chunk_size=10)
        np.testing.assert_allclose(bound, -x.sum(axis=-1), rtol=1e-6)
    assert model.traces == 2


def test_the_cached_function_follows_the_model_weights():
    model = CountingModel()
    x, _ = _batches()
    importance_bound(model, [x], num_samples=4)
    model.w.assign(2.0)
    np.testing.assert_allclose(
        importance_bound(model, [x], num_samples=4), -2.0 * x.sum(axis=-1), rtol=1e-6
    )


def test_the_cache_does_not_keep_models_alive():
    model = CountingModel()
    x, _ = _batches()
    importance_bound(model, [x], num_samples=4)
    assert model in evaluation._CHUNK_FUNCTIONS
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
    assert len([m for m in evaluation._CHUNK_FUNCTIONS.keys() if isinstance(m, CountingModel)]) == 0
