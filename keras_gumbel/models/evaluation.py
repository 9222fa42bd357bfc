"""Multi-sample likelihood bounds of the paper's models, in nats.

Both the VAEs' importance-weighted bound and the stochastic binary networks'
m-sample NLL are a log-mean-exp of per-sample log-weights (`model.log_weights`),
so one routine serves both:

```
bound(x) = log (1/m) sum_{i=1..m} exp(w_i(x))
VAE:  w_i = log p(x, z_i) - log q(z_i | x),   z_i ~ q(z | x)   (Burda et al. 2016)
SBN:  w_i = log p(x_lower | h_i),             h_i ~ p(h | x_upper)
```

The bound is returned negated (nats, lower is better), the convention of
Table 1 of Jang et al. (2017). Samples are drawn in chunks and combined with
a running log-sum-exp, so memory grows with `batch * chunk_size`, never with
`m`.
"""

import math
import weakref

import numpy as np
import tensorflow as tf

# Each model's traced chunk function, so that evaluating every epoch traces once
# (per chunk size and batch shape), not once per call. Weak keys: an entry goes
# with its model, and the function reaches the model only through a weak reference.
_CHUNK_FUNCTIONS = weakref.WeakKeyDictionary()


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected an "
            f"integer >= 1. Received: {name}={value!r}"
        )


def _chunk_function(model):
    """`model`'s `tf.function` of `(batch, size)`: the log-sum-exp of `size` log-weights.

    Made once per model and cached; `size` is a Python integer, so each chunk
    size is one trace.
    """
    function = _CHUNK_FUNCTIONS.get(model)
    if function is None:
        model_ref = weakref.ref(model)

        @tf.function(reduce_retracing=True)
        def function(batch, size):
            return tf.reduce_logsumexp(model_ref().log_weights(batch, size), axis=0)

        _CHUNK_FUNCTIONS[model] = function
    return function


def importance_bound(model, dataset, num_samples=1000, chunk_size=100):
    """Negative m-sample bound per example, in nats.

    Args:
        model: A model with `log_weights(batch, num_samples)` returning
            `[num_samples, batch]` log-weights (`CategoricalVAE`,
            `BernoulliVAE`, `StochasticBinaryNetwork`).
        dataset: Iterable of batches as the model's `evaluate` takes them
            (images, or `(x_upper, x_lower)` pairs), e.g. a `tf.data.Dataset`.
        num_samples: Integer >= 1. The number of samples m (1000 in the
            paper).
        chunk_size: Integer >= 1. Samples drawn at once per example.

    Returns:
        A float64 NumPy array with one value per example: `-bound(x)`.

    The samples are drawn by a `tf.function` traced once per model (and
    chunk size): evaluating the same model every epoch does not retrace.
    """
    _check_positive_int("num_samples", num_samples)
    _check_positive_int("chunk_size", chunk_size)
    chunk_size = min(chunk_size, num_samples)
    chunks = [chunk_size] * (num_samples // chunk_size)
    if num_samples % chunk_size:
        chunks.append(num_samples % chunk_size)
    chunk_logsumexp = _chunk_function(model)
    results = []
    for batch in dataset:
        total = None
        for size in chunks:
            part = tf.cast(chunk_logsumexp(batch, size), tf.float64)
            total = part if total is None else tf.reduce_logsumexp(tf.stack([total, part]), axis=0)
        results.append(-(total.numpy() - math.log(num_samples)))
    if not results:
        raise ValueError("importance_bound received an empty dataset.")
    return np.concatenate(results)


def independent_pixels_nll(train_images, test_images):
    """Test NLL (nats per image) of independent Bernoulli pixels.

    The simplest density model of binary images and the baseline a latent
    variable model must beat: each pixel's probability is its training
    frequency with add-one smoothing, `(count + 1) / (n + 2)`.

    Args:
        train_images: Binary array `[n, ...]`.
        test_images: Binary array `[m, ...]` of the same image shape.

    Returns:
        A float64 NumPy array of per-image NLLs.
    """
    train = np.asarray(train_images, np.float64).reshape(len(train_images), -1)
    test = np.asarray(test_images, np.float64).reshape(len(test_images), -1)
    p = (train.sum(axis=0) + 1.0) / (len(train) + 2.0)
    return -(test @ np.log(p) + (1.0 - test) @ np.log1p(-p))
