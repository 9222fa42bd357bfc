"""Gumbel-top-k: samples of k distinct classes, exact and relaxed.

Perturbing the logits with i.i.d. Gumbel(0, 1) noise and taking the k
largest scores draws k classes without replacement, in the order of
sequential sampling from `softmax(logits)` (Kool, van Hoof & Welling, 2019).
`relaxed_top_k` is the continuous relaxation of the resulting k-hot vector by
k successive softmaxes (Xie & Ermon, 2019); with `hard=True` it is the exact
k-hot sample with the relaxed gradient.

Conventions shared with `keras_gumbel.ops.relaxed`: noise and arithmetic in
float32 whatever the input dtype, results cast back to it; a logit of `-inf`
or a `False` mask entry removes a class. Here every row needs at least `k`
candidate classes (finite logits that are not masked). The number is checked
whenever the values are known (eager execution on every backend) and raises
a `ValueError`; inside a compiled function (`tf.function`, `jax.jit`, a
Keras `fit`) it cannot be checked, and a row with fewer candidates chooses
all of them and nothing else: its k-hot vector has fewer than k ones and the
missing indices are -1.

References:
    - Kool, van Hoof & Welling, "Stochastic Beams and Where to Find Them:
      The Gumbel-Top-k Trick for Sampling Sequences Without Replacement",
      ICML 2019, https://arxiv.org/abs/1903.06059
    - Xie & Ermon, "Reparameterizable Subset Sampling via Continuous
      Relaxations", IJCAI 2019, https://arxiv.org/abs/1901.10517
    - Jang, Gu & Poole, "Categorical Reparameterization with Gumbel-Softmax",
      ICLR 2017; Maddison, Mnih & Teh, "The Concrete Distribution", ICLR 2017.
"""

import numbers

import keras
from keras import ops

from keras_gumbel.ops.permutations import sort_indices
from keras_gumbel.ops.relaxed import _MASKED_SCORE
from keras_gumbel.ops.relaxed import _TINY
from keras_gumbel.ops.relaxed import _check_temperature
from keras_gumbel.ops.relaxed import _num_classes
from keras_gumbel.ops.relaxed import gumbel_noise
from keras_gumbel.validation import check_float_tensor

# Scores of classes already chosen by a successive softmax never fall below
# this value: it keeps them finite (and below masked classes, which sit at
# _MASKED_SCORE) whatever the temperature.
_FLOOR = 3.0 * _MASKED_SCORE
# Below this total weight of the other classes (the smallest normal float32),
# log(1 - a) of the leading class is taken from the gap between the two
# largest scores.
_UNDERFLOW = _TINY


def _check_k(k, num_classes):
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(
            f"Invalid value received for argument `k`. Expected an integer >= 1. Received: k={k!r}"
        )
    if k > num_classes:
        raise ValueError(
            "Invalid value received for argument `k`. Expected an integer <= the "
            f"number of classes, {num_classes}. Received: k={k}"
        )


def _is_concrete(x):
    """Whether the values of tensor `x` can be read now (not traced)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.executing_eagerly() and not isinstance(x, keras.KerasTensor)
    if backend == "jax":
        import jax

        return not isinstance(x, jax.core.Tracer)
    if backend == "torch":
        import torch

        return x.device.type != "meta" and not torch.compiler.is_compiling()
    return True


def _candidates(x, mask):
    """True where a class may be chosen: a finite logit that is not masked."""
    finite = x > float("-inf")
    if mask is None:
        return finite
    return ops.logical_and(finite, ops.cast(mask, "bool"))


def _check_enough_candidates(name, candidates, k, axis):
    if not _is_concrete(candidates):
        return
    counts = ops.convert_to_numpy(ops.sum(ops.cast(candidates, "int32"), axis=axis))
    fewest = int(counts.min()) if counts.size else k
    if fewest < k:
        raise ValueError(
            f"`{name}` needs at least k={k} candidate classes (finite logits "
            f"that are not masked) in every row. Received: a row with {fewest}."
        )


def _to_last(x, axis):
    return x if axis in (-1, len(x.shape) - 1) else ops.moveaxis(x, axis, -1)


def _from_last(x, axis):
    return x if axis in (-1, len(x.shape) - 1) else ops.moveaxis(x, -1, axis)


def _top_k_of_scores(scores, k, axis, num_classes, ties_to_lower_index=False):
    """Indices (int32, -1 for non-candidates) and float32 k-hot of the top k."""
    scores = _to_last(scores, axis)
    if ties_to_lower_index:
        # `ops.top_k` gives ties to the lower index on TensorFlow and JAX but
        # not on PyTorch (`torch.topk` may even choose another set).
        indices = sort_indices(scores)[..., :k]
        values = ops.take_along_axis(scores, indices, axis=-1)
    else:
        # Ties among noisy scores have probability zero: the cheaper top_k.
        values, indices = ops.top_k(scores, k)
    # PyTorch's top_k returns int64 indices; the documented dtype is int32.
    indices = ops.where(values > _MASKED_SCORE, ops.cast(indices, "int32"), -1)
    # A sum of one-hot rows is exactly k-hot; a threshold at the k-th value
    # would mark k + 1 classes on a tie.
    k_hot = ops.sum(ops.one_hot(indices, num_classes, dtype="float32"), axis=-2)
    return _from_last(indices, axis), _from_last(k_hot, axis)


def _scores(logits, k, mask, name, axis):
    """Float32 logits with non-candidates at 0, and the candidate mask."""
    check_float_tensor("logits", logits)
    num_classes = _num_classes(logits, axis)
    _check_k(k, num_classes)
    x = ops.cast(logits, "float32")
    candidates = _candidates(x, mask)
    _check_enough_candidates(name, candidates, k, axis)
    # A -inf logit is replaced before any arithmetic, so that neither the
    # forward pass nor a gradient ever computes `-inf - -inf` or `0 * inf`.
    return ops.where(candidates, x, 0.0), candidates, num_classes


def gumbel_top_k(logits, k, axis=-1, mask=None, seed=None):
    """Draws k distinct classes without replacement (the Gumbel-top-k trick).

    With `g_i` i.i.d. Gumbel(0, 1) noise, the indices of the k largest
    perturbed scores `logits_i + g_i`, in decreasing order, are distributed
    as k draws without replacement, each from `softmax(logits)` renormalized
    over the classes not yet drawn:

    ```
    P(i_1, ..., i_k) = prod_j p_{i_j} / (1 - p_{i_1} - ... - p_{i_{j-1}})
    ```

    Args:
        logits: Float tensor of unnormalized log-probabilities. `-inf` marks
            an impossible class.
        k: Integer in [1, number of classes]. How many classes to draw.
        axis: Integer. The class axis.
        mask: Optional boolean tensor broadcastable to `logits`; `False`
            classes are never drawn.
        seed: Optional int or `keras.random.SeedGenerator`. An int seed draws
            the same noise as `relaxed_top_k` and `gumbel_noise` with that
            seed, hence the same classes.

    Returns:
        A tuple `(indices, k_hot)`: `indices`, int32, the shape of `logits`
        with `k` entries along `axis`, the drawn classes in the order drawn;
        `k_hot`, the shape and dtype of `logits`, 1 at the drawn classes and
        0 elsewhere. A row with fewer than k candidate classes (possible only
        in compiled code, see the module notes) has -1 in place of the
        missing indices.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> from keras_gumbel.ops import gumbel_top_k
    >>> indices, k_hot = gumbel_top_k(keras.ops.zeros((2, 10)), 3, seed=0)
    >>> indices, k_hot = keras.ops.convert_to_numpy(indices), keras.ops.convert_to_numpy(k_hot)
    >>> indices.shape, k_hot.shape, k_hot.sum(axis=-1).tolist()
    ((2, 3), (2, 10), [3.0, 3.0])

    The indices are distinct and are those of the ones of `k_hot`:

    >>> [len(set(row)) for row in indices.tolist()]
    [3, 3]
    >>> bool(np.all(np.take_along_axis(k_hot, indices, axis=-1) == 1.0))
    True

    A masked class is never drawn:

    >>> mask = np.arange(10) >= 5
    >>> indices, _ = gumbel_top_k(keras.ops.zeros((2, 10)), 3, mask=mask, seed=0)
    >>> bool(np.all(keras.ops.convert_to_numpy(indices) >= 5))
    True

    Reference:
        - Kool, van Hoof & Welling, "Stochastic Beams and Where to Find
          Them", ICML 2019.
    """
    x, candidates, num_classes = _scores(logits, k, mask, "gumbel_top_k", axis)
    scores = ops.where(candidates, x + gumbel_noise(ops.shape(x), seed=seed), _MASKED_SCORE)
    indices, k_hot = _top_k_of_scores(scores, k, axis, num_classes)
    return indices, ops.cast(k_hot, logits.dtype)


def k_hot_top_k(logits, k, axis=-1, mask=None):
    """The k largest logits, without noise: the mode of `gumbel_top_k`.

    The deterministic counterpart of `gumbel_top_k` and of
    `relaxed_top_k(hard=True)`; ties go to the lower index.

    Args:
        logits: Float tensor.
        k: Integer in [1, number of classes].
        axis: Integer. The class axis.
        mask: Optional boolean tensor broadcastable to `logits`.

    Returns:
        A tuple `(indices, k_hot)` as returned by `gumbel_top_k`: the indices
        of the k largest logits in decreasing order of logit, and their
        k-hot vector in the dtype of `logits`.

    Example:

    >>> import keras
    >>> from keras_gumbel.ops import k_hot_top_k
    >>> indices, k_hot = k_hot_top_k(keras.ops.array([[0.1, 2.0, 1.0, 3.0]]), 2)
    >>> keras.ops.convert_to_numpy(indices).tolist(), keras.ops.convert_to_numpy(k_hot).tolist()
    ([[3, 1]], [[0.0, 1.0, 0.0, 1.0]])
    """
    x, candidates, num_classes = _scores(logits, k, mask, "k_hot_top_k", axis)
    indices, k_hot = _top_k_of_scores(
        ops.where(candidates, x, _MASKED_SCORE), k, axis, num_classes, ties_to_lower_index=True
    )
    return indices, ops.cast(k_hot, logits.dtype)


def _successive_softmax(z, k, tau, axis):
    """Sum of k successive softmaxes of the scaled scores `z`, in float32.

    `log(1 - a)` is computed without cancellation: as `log1p(-a)` where
    `a <= 1/2`, and for the row's leading class (`a > 1/2`, at most one) as
    the log of the other classes' total weight. Where that total underflows
    (the leading scaled score is ahead of every other by more than about
    87), it is replaced by the gap to the second largest score: a removal
    larger than the exact one by at most log(K - 1), which changes what
    follows only for tau within about log(K) / 87 of 1. So a class chosen
    with `a` within float precision of 1 is removed by as much as the
    scores say rather than by a clipped amount, and logits far apart (1e4)
    still give the exact k-hot vector as tau -> 0.
    """
    total = None
    for step in range(k):
        a = ops.softmax(z, axis=axis)
        total = a if total is None else total + a
        if step == k - 1:
            break
        leading = a > 0.5
        log_rest = ops.log1p(-ops.minimum(a, 0.5))
        others = ops.sum(ops.where(leading, 0.0, a), axis=axis, keepdims=True)
        gap = ops.max(ops.where(leading, _FLOOR, z), axis=axis, keepdims=True) - ops.max(
            z, axis=axis, keepdims=True
        )
        # Both branches stay finite, so neither gives a NaN gradient.
        log_leading = ops.where(others > _UNDERFLOW, ops.log(ops.maximum(others, _UNDERFLOW)), gap)
        log_1m_a = ops.where(leading, log_leading, log_rest)
        z = ops.maximum(z + log_1m_a / tau, _FLOOR)
    return total


def relaxed_top_k(logits, k, temperature, hard=False, axis=-1, mask=None, seed=None):
    """Draws a relaxed k-hot sample of k classes without replacement.

    The perturbed scores `logits + g` (the Gumbel-top-k trick, `g` i.i.d.
    Gumbel(0, 1)) go through k successive softmaxes at temperature `tau`,
    each removing softly the class it chose (Xie & Ermon, 2019):

    ```
    z_1 = (logits + g) / tau,           a_1 = softmax(z_1)
    z_{j+1} = z_j + log(1 - a_j) / tau,   a_{j+1} = softmax(z_{j+1})
    y = a_1 + ... + a_k
    ```

    `y` is non-negative and sums to k along `axis`. It is not confined to
    [0, 1]: at moderate and large tau an entry may exceed 1 (a class keeps
    part of its weight after being chosen); that is the relaxation, not an
    error. As tau -> 0 it becomes the k-hot vector of the top k perturbed
    scores, i.e. `gumbel_top_k` with the same noise.

    With `hard=True` the forward value is that exact k-hot sample and the
    gradient is the gradient of the relaxed `y` drawn with the same noise,
    written as `(y - stop_gradient(y)) + k_hot` so that the forward value is
    exactly the k-hot vector (`y - y` is exactly 0 in IEEE arithmetic).

    Args:
        logits: Float tensor of unnormalized log-probabilities. `-inf` marks
            an impossible class.
        k: Integer in [1, number of classes]. The size of the subset.
        temperature: Float > 0, or a scalar float tensor (e.g. a variable).
        hard: Boolean. Whether to return the straight-through k-hot sample.
        axis: Integer. The class axis.
        mask: Optional boolean tensor broadcastable to `logits`; `False`
            classes get exactly 0 and are never chosen.
        seed: Optional int or `keras.random.SeedGenerator`. An int seed gives
            the noise of `gumbel_top_k` with the same seed.

    Returns:
        A tensor with the shape and dtype of `logits`.

    Example:

    Every sample sums to k; the hard sample is the exact k-hot vector:

    >>> import keras
    >>> from keras_gumbel.ops import relaxed_top_k
    >>> y = relaxed_top_k(keras.ops.zeros((4, 10)), 3, temperature=0.5, seed=1)
    >>> keras.ops.convert_to_numpy(y).sum(axis=-1, dtype="float64").round(4).tolist()
    [3.0, 3.0, 3.0, 3.0]
    >>> hard = relaxed_top_k(keras.ops.zeros((4, 10)), 3, 0.5, hard=True, seed=1)
    >>> [sorted(set(row)) for row in keras.ops.convert_to_numpy(hard).tolist()]
    [[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]

    Reference:
        - Xie & Ermon, "Reparameterizable Subset Sampling via Continuous
          Relaxations", IJCAI 2019.
        - Kool, van Hoof & Welling, "Stochastic Beams and Where to Find
          Them", ICML 2019.
    """
    _check_temperature(temperature)
    if not isinstance(hard, bool):
        raise TypeError(
            "Invalid value received for argument `hard`. Expected a boolean. "
            f"Received: hard={hard!r}"
        )
    x, candidates, num_classes = _scores(logits, k, mask, "relaxed_top_k", axis)
    tau = ops.cast(temperature, "float32")
    # Scaled scores z = (logits + g) / tau; non-candidates at a finite large
    # negative value after the division, so no temperature overflows them.
    z = ops.where(candidates, (x + gumbel_noise(ops.shape(x), seed=seed)) / tau, _MASKED_SCORE)
    y = _successive_softmax(z, k, tau, axis)
    if hard:
        _, k_hot = _top_k_of_scores(z, k, axis, num_classes)
        y = (y - ops.stop_gradient(y)) + k_hot
    else:
        # Exactly 0 (value and gradient) outside the candidates, also in a
        # row with fewer than k of them.
        y = ops.where(candidates, y, 0.0)
    return ops.cast(y, logits.dtype)
