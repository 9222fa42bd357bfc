"""Codebook math of Gumbel vector quantizers on `keras.ops`, for every backend.

A quantizer with `G` groups of `V` code vectors scores every position of its
inputs with logits of shape `[..., G, V]`, picks one code vector per group and
concatenates the picks. These pure functions hold the parts that do not
depend on how the choice was made:

- `select_codevectors`: weights (one-hot codes or relaxed samples)
  `[..., G, V]` times the codebook, concatenated over groups.
- `codebook_perplexity`: the perplexity of the batch-average code
  distribution, summed over groups, the quantity that wav2vec 2.0's
  diversity loss pushes up.
- `diversity_loss`: `(G * V - perplexity) / (G * V)`.

Everything is computed in float32 whatever the input dtype.

Reference:
    - Baevski, Zhou, Mohamed & Auli, "wav2vec 2.0: A Framework for
      Self-Supervised Learning of Speech Representations", NeurIPS 2020,
      https://arxiv.org/abs/2006.11477
"""

import numpy as np
from keras import ops

from keras_gumbel.validation import check_float_tensor

# Smallest normal float32: `p * log(max(p, tiny))` is `xlogy(p, p)` for every
# representable probability that matters, 0 at p = 0, and has a finite
# gradient there.
_TINY = float(np.finfo(np.float32).tiny)


def _groups_and_vars(x, name):
    if len(x.shape) < 2 or x.shape[-1] is None or x.shape[-2] is None:
        raise ValueError(
            f"Expected `{name}` of shape [..., num_groups, num_vars] with known "
            f"last two axes. Received: {name}.shape={x.shape}"
        )
    return x.shape[-2], x.shape[-1]


def codebook_perplexity(probs, mask=None):
    """Perplexity of the batch-average code distribution, summed over groups.

    With `p[n, g, :]` the code distribution of position `n` in group `g`
    (a softmax of the logits, or a one-hot code) and `M` the positions that
    count:

    ```
    m[g, v] = sum_{n in M} p[n, g, v] / |M|
    perplexity = sum_g exp(-sum_v m[g, v] log m[g, v])
    ```

    It lies in `[G, G * V]`: `G` when every position picks the same code,
    `G * V` when the codes are used uniformly. This is the
    `codevector_perplexity` of wav2vec 2.0 and of Hugging Face's
    `Wav2Vec2GumbelVectorQuantizer`, where `M` is given by
    `mask_time_indices`.

    Args:
        probs: Float tensor `[..., G, V]`, each `[G]`-row a distribution.
        mask: Optional boolean tensor of shape `probs.shape[:-2]`; positions
            where it is False are left out of the average. If no position
            is left, the average distribution is taken as all zeros and the
            perplexity is `G`.

    Returns:
        A float32 scalar.

    Example:

    Codes used uniformly give `G * V`; a single code per group gives `G`:

    >>> import keras
    >>> from keras_gumbel.ops import codebook_perplexity
    >>> uniform = keras.ops.ones((4, 2, 8)) / 8
    >>> round(float(codebook_perplexity(uniform)), 4)
    16.0
    >>> same_code = keras.ops.one_hot(keras.ops.zeros((4, 2), "int32"), 8)
    >>> round(float(codebook_perplexity(same_code)), 4)
    2.0
    """
    check_float_tensor("probs", probs)
    num_groups, num_vars = _groups_and_vars(probs, "probs")
    p = ops.reshape(ops.cast(probs, "float32"), (-1, num_groups, num_vars))
    if mask is None:
        marginal = ops.mean(p, axis=0)
    else:
        keep = ops.reshape(ops.cast(mask, "bool"), (-1, 1, 1))
        # `where`, not a product: a NaN at a left-out position stays out.
        total = ops.sum(ops.where(keep, p, ops.zeros_like(p)), axis=0)
        count = ops.sum(ops.cast(keep, "float32"))
        marginal = total / ops.maximum(count, 1.0)
    entropy = -ops.sum(marginal * ops.log(ops.maximum(marginal, _TINY)), axis=-1)
    return ops.sum(ops.exp(entropy))


def diversity_loss(perplexity, num_codevectors):
    """wav2vec 2.0's diversity loss, `(G * V - perplexity) / (G * V)`.

    0 when the codes are used uniformly, `1 - 1 / V` when a single code of
    each group is used.

    Args:
        perplexity: Float scalar tensor, from `codebook_perplexity`.
        num_codevectors: Integer `G * V`.

    Returns:
        A float32 scalar.

    Example:

    >>> from keras_gumbel.ops import diversity_loss
    >>> round(float(diversity_loss(16.0, 16)), 4), round(float(diversity_loss(2.0, 16)), 4)
    (0.0, 0.875)
    """
    total = float(num_codevectors)
    return (total - ops.cast(perplexity, "float32")) / total


def select_codevectors(weights, codevectors):
    """Weighted code vectors per group, concatenated over groups.

    ```
    out[..., g * C_g : (g + 1) * C_g] = sum_v weights[..., g, v] * codevectors[g * V + v]
    ```

    With one-hot `weights` (argmax codes, or the forward value of a
    straight-through sample) this is exactly the chosen code vector of each
    group; with relaxed weights it is their mixture, and the gradient with
    respect to the weights is `codevectors`.

    Args:
        weights: Float tensor `[..., G, V]`.
        codevectors: Float tensor `[G * V, C_g]`, group `g`'s code vectors
            in rows `g * V` to `(g + 1) * V - 1`.

    Returns:
        A float32 tensor `[..., G * C_g]`.

    Example:

    Two groups of two code vectors of size 1: one-hot weights pick code 1
    of group 0 and code 0 of group 1; relaxed weights mix them.

    >>> import keras
    >>> from keras_gumbel.ops import select_codevectors
    >>> codevectors = keras.ops.array([[1.0], [2.0], [3.0], [4.0]])
    >>> one_hot = keras.ops.array([[[0.0, 1.0], [1.0, 0.0]]])
    >>> keras.ops.convert_to_numpy(select_codevectors(one_hot, codevectors)).tolist()
    [[2.0, 3.0]]
    >>> relaxed = keras.ops.array([[[0.5, 0.5], [0.25, 0.75]]])
    >>> keras.ops.convert_to_numpy(select_codevectors(relaxed, codevectors)).tolist()
    [[1.5, 3.75]]
    """
    check_float_tensor("weights", weights)
    num_groups, num_vars = _groups_and_vars(weights, "weights")
    if len(codevectors.shape) != 2 or codevectors.shape[0] != num_groups * num_vars:
        raise ValueError(
            f"Expected `codevectors` of shape [{num_groups * num_vars}, C_g] for "
            f"weights with {num_groups} groups of {num_vars}. Received: "
            f"codevectors.shape={codevectors.shape}"
        )
    group_dim = codevectors.shape[1]
    leading = ops.shape(weights)[:-2]
    w = ops.reshape(ops.cast(weights, "float32"), (-1, num_groups, num_vars))
    table = ops.reshape(ops.cast(codevectors, "float32"), (num_groups, num_vars, group_dim))
    out = ops.einsum("ngv,gvc->ngc", w, table)
    return ops.reshape(out, (*leading, num_groups * group_dim))
