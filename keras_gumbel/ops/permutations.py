"""Permutations: Sinkhorn, Gumbel-Sinkhorn, exact matching and relaxed sorting.

A permutation of n items is an `n x n` matrix with one 1 in every row and
every column. Its continuous relaxations here are:

- `sinkhorn` / `gumbel_sinkhorn`: a doubly-stochastic matrix, the limit of
  alternately normalizing the rows and columns of `exp(log_alpha / tau)`;
  with Gumbel noise added to the scores, a relaxed sample whose `tau -> 0`
  limit is the exact maximum-weight matching of the perturbed scores
  (Mena et al., 2018);
- `neural_sort` / `soft_sort`: a row-stochastic matrix that relaxes the
  permutation sorting a score vector (Grover et al., 2019; Prillo &
  Eisenschlos, 2020).

`matching` is the exact maximum-weight permutation of a score matrix (the
linear assignment problem), written with core ops only so that it runs
inside compiled graphs on every backend and in exported SavedModels.

Conventions: a permutation is given as indices `perm` of shape `[..., n]`,
row `i` going to column `perm[i]`; its matrix `P` (`permutation_matrix`)
has `P[i, perm[i]] = 1`. For sorting, row `i` of the matrix is the item of
rank `i` in descending order (rank 0 = the largest score), so `P @ s` is `s`
sorted in descending order. Arithmetic is float32 whatever the input dtype,
and results are cast back to it.

References:
    - Mena, Belanger, Linderman & Snoek, "Learning Latent Permutations with
      Gumbel-Sinkhorn Networks", ICLR 2018, https://arxiv.org/abs/1802.08665
    - Grover, Wang, Zweig & Ermon, "Stochastic Optimization of Sorting
      Networks via Continuous Relaxations", ICLR 2019,
      https://arxiv.org/abs/1903.08850
    - Prillo & Eisenschlos, "SoftSort: A Continuous Relaxation for the argsort
      Operator", ICML 2020, https://arxiv.org/abs/2006.16038
    - Jang, Gu & Poole, "Categorical Reparameterization with Gumbel-Softmax",
      ICLR 2017; Maddison, Mnih & Teh, "The Concrete Distribution", ICLR 2017.
"""

import numbers

import keras
from keras import ops

from keras_gumbel.ops._sinkhorn_loop import sinkhorn_log
from keras_gumbel.ops.relaxed import _check_temperature
from keras_gumbel.ops.relaxed import gumbel_noise
from keras_gumbel.validation import check_bool
from keras_gumbel.validation import check_float_tensor
from keras_gumbel.validation import is_number


def _check_num_iters(num_iters):
    if isinstance(num_iters, bool) or not isinstance(num_iters, numbers.Integral) or num_iters < 1:
        raise ValueError(
            "Invalid value received for argument `num_iters`. Expected an integer >= 1. "
            f"Received: num_iters={num_iters!r}"
        )


def _check_square(name, x):
    check_float_tensor(name, x)
    shape = tuple(x.shape)
    if len(shape) < 2 or shape[-1] is None or shape[-1] != shape[-2]:
        raise ValueError(
            f"Expected `{name}` of shape [..., n, n] with a known n. Received: {name}.shape={shape}"
        )
    return shape[-1]


def _check_vector(name, x):
    check_float_tensor(name, x)
    shape = tuple(x.shape)
    if len(shape) < 1 or shape[-1] is None:
        raise ValueError(
            f"Expected `{name}` of shape [..., n] with a known n. Received: {name}.shape={shape}"
        )
    return shape[-1]


def _check_noise_factor(noise_factor):
    if isinstance(noise_factor, bool) or not is_number(noise_factor) or not noise_factor >= 0:
        raise ValueError(
            "Invalid value received for argument `noise_factor`. Expected a float >= 0. "
            f"Received: noise_factor={noise_factor!r}"
        )


def sinkhorn(log_alpha, num_iters=20):
    """Normalizes `exp(log_alpha)` towards a doubly-stochastic matrix.

    The Sinkhorn operator, in the log domain: `num_iters` times, every
    column and then every row of the scores is normalized with a
    logsumexp,

    ```
    z <- z - logsumexp(z, axis=-2)     (columns)
    z <- z - logsumexp(z, axis=-1)     (rows)
    S(log_alpha) = exp(z)
    ```

    so no entry overflows whatever the scale of the scores (scores of
    magnitude 1e4 give a finite matrix and finite gradients). Divide the
    scores by a temperature before the call for the relaxation `S(X / tau)`,
    whose limit as `tau -> 0` is the maximum-weight permutation of `X`.

    Accuracy: the last step normalizes rows, so every row sums to 1 up to
    float32 rounding (about `n * 1.2e-7`). Column sums converge to 1
    geometrically, at a rate set by the spread of the scores (Birkhoff's
    contraction coefficient `tanh(D / 4)` with `D` at most four times the
    largest `|log_alpha|`), so the column error after `num_iters` depends on
    the input and shrinks as n grows. For standard-normal scores, after
    the default 20 iterations, the largest column error over 2,000 draws
    was 3e-3 at n = 2, 6e-4 at n = 3, 8e-5 at n = 5 and below float32
    rounding from n = 10 (the tests bound it by 5e-3 at n = 2, 1e-3 at
    n = 5 and 1e-5 at n >= 20); the same scores times 3 (i.e. tau = 1/3)
    still leave about 0.04, and times 10 about 0.4. Widely spread scores
    (small temperatures) need many more iterations; until then the result
    is row-stochastic with columns only approximately normalized.

    Gradient: on TensorFlow and JAX it is written by hand and keeps only
    the output of each half-step, `2 * num_iters` float32 tensors of the
    shape of `log_alpha`, for the backward pass; on PyTorch autograd
    differentiates the loop.

    Args:
        log_alpha: Float tensor `[..., n, n]` of scores. Float16 and bfloat16
            inputs are computed in float32.
        num_iters: Integer >= 1. Number of column-and-row normalizations.

    Returns:
        A tensor of the shape and dtype of `log_alpha`, non-negative, rows
        summing to 1 and columns approximately so.

    Example:

    >>> import keras
    >>> from keras_gumbel.ops import sinkhorn
    >>> s = sinkhorn(keras.ops.array([[2.0, 0.0], [0.0, 1.0]]))
    >>> [round(float(t), 4) for t in keras.ops.sum(s, axis=0)]
    [1.0, 1.0]

    Reference:
        - Sinkhorn, "A Relationship Between Arbitrary Positive Matrices and
          Doubly Stochastic Matrices", Ann. Math. Statist. 1964.
        - Mena, Belanger, Linderman & Snoek, "Learning Latent Permutations
          with Gumbel-Sinkhorn Networks", ICLR 2018.
    """
    _check_square("log_alpha", log_alpha)
    _check_num_iters(num_iters)
    z = sinkhorn_log(ops.cast(log_alpha, "float32"), num_iters)
    return ops.cast(ops.exp(z), log_alpha.dtype)


def gumbel_sinkhorn(log_alpha, temperature, num_iters=20, seed=None, noise_factor=1.0):
    """Draws a relaxed permutation matrix (the Gumbel-Sinkhorn distribution).

    ```
    G ~ Gumbel(0, 1) i.i.d., of the shape of log_alpha
    Y = sinkhorn((log_alpha + noise_factor * G) / tau)
    ```

    As `tau -> 0`, `Y` becomes the permutation matrix of
    `matching(log_alpha + noise_factor * G)`: the exact maximum-weight
    matching of Gumbel-perturbed scores (Mena et al., 2018). Note that this
    distribution over permutations is not the Gibbs distribution
    `P(perm) ~ exp(sum_i log_alpha[i, perm[i]])`; it coincides with it only
    for n <= 2. At large tau the matrix tends to the uniform `1 / n`.

    Args:
        log_alpha: Float tensor `[..., n, n]` of scores.
        temperature: Float > 0, or a scalar float tensor (e.g. a variable).
        num_iters: Integer >= 1. Sinkhorn iterations.
        seed: Optional int or `keras.random.SeedGenerator`. An int seed
            draws the noise of `keras_gumbel.ops.gumbel_noise` with that
            seed.
        noise_factor: Float >= 0. Scale of the Gumbel noise; 0 gives the
            deterministic `sinkhorn(log_alpha / tau)`.

    Returns:
        A tensor of the shape and dtype of `log_alpha`.

    Example:

    >>> import keras
    >>> from keras_gumbel.ops import gumbel_sinkhorn
    >>> y = gumbel_sinkhorn(keras.ops.zeros((2, 4, 4)), temperature=0.5, seed=0)
    >>> tuple(y.shape)
    (2, 4, 4)

    Reference:
        - Mena, Belanger, Linderman & Snoek, "Learning Latent Permutations
          with Gumbel-Sinkhorn Networks", ICLR 2018.
    """
    _check_square("log_alpha", log_alpha)
    _check_temperature(temperature)
    _check_num_iters(num_iters)
    _check_noise_factor(noise_factor)
    z = _perturbed(log_alpha, temperature, seed, noise_factor)
    return ops.cast(ops.exp(sinkhorn_log(z, num_iters)), log_alpha.dtype)


def _perturbed(log_alpha, temperature, seed, noise_factor):
    """Float32 `(log_alpha + noise_factor * G) / tau`."""
    x = ops.cast(log_alpha, "float32")
    tau = ops.cast(temperature, "float32")
    if noise_factor:
        x = x + noise_factor * gumbel_noise(ops.shape(x), seed=seed)
    return x / tau


def _take_row(matrix, index):
    """`matrix[b, index[b], :]` for `matrix [B, m, m]` and int `index [B]`."""
    m = ops.shape(matrix)[-1]
    idx = ops.broadcast_to(ops.reshape(index, (-1, 1, 1)), (ops.shape(matrix)[0], 1, m))
    return ops.take_along_axis(matrix, idx, axis=1)[:, 0, :]


def _take(vector, index):
    """`vector[b, index[b]]` for `vector [B, m]` and int `index [B]`."""
    return ops.take_along_axis(vector, ops.expand_dims(index, 1), axis=1)[:, 0]


def _hungarian(cost):
    """Minimum-cost assignment of every `[n, n]` in `cost [B, n, n]`, float32.

    The shortest-augmenting-path Hungarian algorithm with potentials (Kuhn
    1955, Jonker & Volgenant 1987, in the O(n^3) form of Tomizawa 1971),
    vectorized over the batch and over the columns. Index 0 of the columns
    and rows is a dummy, so the arrays are `n + 1` wide. Batch elements that
    have finished their augmenting path wait (masked) until every element
    has finished.

    Returns int32 `[B, n]`: the column assigned to each row.
    """
    batch = ops.shape(cost)[0]
    n = cost.shape[-1]
    m = n + 1
    # Row 0 and column 0 are the dummy of the algorithm; their cost is never
    # read for a real row, so 0 is as good as any value.
    cost = ops.pad(cost, [[0, 0], [1, 0], [1, 0]])
    inf = ops.cast(float("inf"), "float32")
    columns = ops.arange(m, dtype="int32")
    zeros_f = ops.zeros((batch, m), "float32")
    zeros_i = ops.zeros((batch, m), "int32")

    def search(j0, p, u, v, way, minv, used, rowused, active):
        """One step of Dijkstra on reduced costs, from the newest column j0."""
        at_j0 = ops.expand_dims(columns, 0) == ops.expand_dims(j0, 1)
        act = ops.expand_dims(active, 1)
        used = ops.logical_or(used, ops.logical_and(at_j0, act))
        i0 = _take(p, j0)
        rowused = ops.logical_or(
            rowused,
            ops.logical_and(ops.expand_dims(columns, 0) == ops.expand_dims(i0, 1), act),
        )
        reduced = _take_row(cost, i0) - ops.expand_dims(_take(u, i0), 1) - v
        free = ops.logical_not(used)
        better = ops.logical_and(ops.logical_and(free, reduced < minv), act)
        minv = ops.where(better, reduced, minv)
        way = ops.where(better, ops.expand_dims(j0, 1), way)
        candidates = ops.where(free, minv, inf)
        j1 = ops.cast(ops.argmin(candidates, axis=1), "int32")
        delta = ops.where(active, ops.min(candidates, axis=1), 0.0)
        d = ops.expand_dims(delta, 1)
        u = ops.where(rowused, u + d, u)
        v = ops.where(used, v - d, v)
        minv = ops.where(used, minv, minv - d)
        j0 = ops.where(active, j1, j0)
        active = ops.logical_and(active, _take(p, j0) != 0)
        return j0, p, u, v, way, minv, used, rowused, active

    def add_row(i, state):
        p, u, v, way = state
        row = ops.cast(i + 1, "int32")
        p = ops.where(ops.expand_dims(columns, 0) == 0, row, p)
        j0 = ops.zeros((batch,), "int32")
        loop = (
            j0,
            p,
            u,
            v,
            way,
            zeros_f + inf,
            ops.zeros((batch, m), "bool"),
            ops.zeros((batch, m), "bool"),
            ops.ones((batch,), "bool"),
        )
        j0, p, u, v, way, *_ = ops.while_loop(lambda *s: ops.any(s[-1]), search, loop)

        def augment(j0, p):
            moving = j0 != 0
            j1 = _take(way, j0)
            at_j0 = ops.logical_and(
                ops.expand_dims(columns, 0) == ops.expand_dims(j0, 1), ops.expand_dims(moving, 1)
            )
            p = ops.where(at_j0, ops.expand_dims(_take(p, j1), 1), p)
            return ops.where(moving, j1, 0), p

        _, p = ops.while_loop(lambda j0, p: ops.any(j0 != 0), augment, (j0, p))
        return p, u, v, way

    p, *_ = ops.fori_loop(0, n, add_row, (zeros_i, zeros_f, zeros_f, zeros_i))
    # p[j] is the row (1-based) of column j; invert it: row r -> column.
    return ops.cast(ops.argsort(p[:, 1:], axis=-1), "int32")


_COMPILED = {}


def _compiled_hungarian():
    """`_hungarian`, compiled once per backend for eager calls.

    Run eagerly, the loops would go op by op through Python on TensorFlow,
    and on JAX every call would trace and compile new loop bodies; compiled
    once at module level, each input shape is traced once and cached. Inside
    a caller's compiled function (a `tf.function`, `jax.jit`, a SavedModel)
    the compiled function is inlined.
    """
    backend = keras.backend.backend()
    if backend not in _COMPILED:
        if backend == "jax":
            import jax

            _COMPILED[backend] = jax.jit(_hungarian)
        elif backend == "tensorflow":
            import tensorflow as tf

            graph = tf.function(_hungarian, autograph=False)

            def hungarian(cost):
                return graph(cost) if tf.executing_eagerly() else _hungarian(cost)

            _COMPILED[backend] = hungarian
        else:
            _COMPILED[backend] = _hungarian
    return _COMPILED[backend]


def matching(log_alpha):
    """The exact maximum-weight permutation of each score matrix.

    Solves the linear assignment problem

    ```
    perm = argmax over permutations of  sum_i log_alpha[i, perm[i]]
    ```

    for every `[n, n]` matrix of a batch `[..., n, n]`: the `tau -> 0` limit
    of `sinkhorn(log_alpha / tau)`, and with Gumbel-perturbed scores the
    exact sample that `gumbel_sinkhorn` relaxes. It is the solution of
    `scipy.optimize.linear_sum_assignment(log_alpha, maximize=True)` (up to
    ties and float32 rounding: two permutations whose totals differ by less
    than about `1e-7 * n * max|log_alpha|` may be exchanged).

    The algorithm is the Hungarian method with shortest augmenting paths
    (Jonker-Volgenant style), written with `keras.ops.fori_loop` and
    `keras.ops.while_loop` and no host callback, so it compiles inside
    `tf.function`, `jax.jit` and XLA and can be exported to a SavedModel
    that TF Serving runs. Cost: O(n^3) arithmetic per matrix in O(n^2)
    sequential steps of O(batch * n) vectorized work; the batch advances in
    lockstep, so a batch takes as many steps as its slowest matrix. On a CPU
    expect milliseconds for n = 10 and on the order of a second for a batch
    of 64 at n = 100 (see `benchmarks/permutations`). No gradient flows
    through it (the result is integer).

    Args:
        log_alpha: Float tensor `[..., n, n]` of finite scores.

    Returns:
        Int32 tensor `[..., n]`: `perm[..., i]` is the column matched to row
        `i`. `permutation_matrix(perm)` gives the matrix.

    Example:

    >>> import keras
    >>> from keras_gumbel.ops import matching
    >>> scores = keras.ops.array([[1.0, 5.0, 0.0], [4.0, 3.0, 0.0], [2.0, 6.0, 1.0]])
    >>> keras.ops.convert_to_numpy(matching(scores)).tolist()
    [1, 0, 2]

    Reference:
        - Kuhn, "The Hungarian Method for the Assignment Problem", Naval
          Research Logistics Quarterly 1955.
        - Jonker & Volgenant, "A Shortest Augmenting Path Algorithm for Dense
          and Sparse Linear Assignment Problems", Computing 1987.
    """
    n = _check_square("log_alpha", log_alpha)
    batch_shape = ops.shape(log_alpha)[:-2]
    cost = -ops.reshape(ops.stop_gradient(ops.cast(log_alpha, "float32")), (-1, n, n))
    perm = _compiled_hungarian()(cost)
    return ops.reshape(perm, tuple(batch_shape) + (n,))


def permutation_matrix(perm, dtype="float32"):
    """The matrix `P` of permutation indices: `P[..., i, perm[..., i]] = 1`.

    Args:
        perm: Integer tensor `[..., n]`, a permutation of `0 .. n - 1` along
            the last axis.
        dtype: String. The dtype of the matrix.

    Returns:
        A `[..., n, n]` tensor of zeros and ones.

    Example:

    >>> import keras
    >>> from keras_gumbel.ops import permutation_matrix
    >>> keras.ops.convert_to_numpy(permutation_matrix(keras.ops.array([2, 0, 1]))).tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    return ops.one_hot(perm, perm.shape[-1], dtype=dtype)


def sort_indices(scores):
    """Indices that sort `scores` in descending order (ties: lower index first).

    Args:
        scores: Float tensor `[..., n]`.

    Returns:
        Int32 tensor `[..., n]`: `indices[..., i]` is the item of rank `i`.

    Example:

    >>> import keras
    >>> from keras_gumbel.ops import sort_indices
    >>> keras.ops.convert_to_numpy(sort_indices(keras.ops.array([0.5, 2.0, 0.5, 1.0]))).tolist()
    [1, 3, 0, 2]
    """
    _check_vector("scores", scores)
    # A stable ascending sort of the negated scores keeps tied items in index
    # order on every backend; `ops.top_k` does on TensorFlow and JAX but not
    # on PyTorch, where `torch.topk` orders ties arbitrarily from n = 4 on.
    # `0 - s` rather than `-s` makes both zeros +0, so that 0.0 and -0.0 tie:
    # XLA's sort puts -0.0 first.
    negated = ops.subtract(0.0, ops.cast(scores, "float32"))
    return ops.cast(ops.argsort(negated, axis=-1), "int32")


def _hard_sort(y, s, hard):
    if not hard:
        return y
    hard_y = permutation_matrix(sort_indices(s), "float32")
    return (y - ops.stop_gradient(y)) + hard_y


def neural_sort(scores, temperature, hard=False):
    """NeuralSort: a relaxed matrix of the permutation sorting `scores`.

    With `A[j, k] = |s_j - s_k|` and `i = 1 .. n` (Grover et al., 2019),

    ```
    P[i, :] = softmax(((n + 1 - 2 i) * s - A 1) / tau)
    ```

    Each row is a probability vector; row `i` concentrates on the item of
    rank `i` in descending order (rank 1, the first row, is the largest
    score), so `P @ s` approximates `s` sorted in descending order. As
    `tau -> 0` it becomes the exact sorting permutation matrix (for
    distinct scores); the columns are not normalized, so it is
    row-stochastic only. With `hard=True` the forward value is that exact
    matrix and the gradient is the relaxed one's.

    Args:
        scores: Float tensor `[..., n]`.
        temperature: Float > 0, or a scalar float tensor.
        hard: Boolean. Whether to return the straight-through exact matrix.

    Returns:
        A tensor `[..., n, n]` of the dtype of `scores`.

    Example:

    >>> import keras
    >>> from keras_gumbel.ops import neural_sort
    >>> p = neural_sort(keras.ops.array([0.0, 3.0, 1.0]), temperature=0.1)
    >>> keras.ops.convert_to_numpy(keras.ops.argmax(p, axis=-1)).tolist()
    [1, 2, 0]

    Reference:
        - Grover, Wang, Zweig & Ermon, "Stochastic Optimization of Sorting
          Networks via Continuous Relaxations", ICLR 2019.
    """
    n = _check_vector("scores", scores)
    _check_temperature(temperature)
    check_bool("hard", hard)
    s = ops.cast(scores, "float32")
    y = _neural_sort_float32(s, n, ops.cast(temperature, "float32"))
    return ops.cast(_hard_sort(y, s, hard), scores.dtype)


def _neural_sort_float32(s, n, tau):
    row_sums = ops.sum(ops.abs(ops.expand_dims(s, -1) - ops.expand_dims(s, -2)), axis=-1)
    scale = ops.cast(n + 1 - 2 * (ops.arange(n) + 1), "float32")  # rank i = 1 .. n
    logits = ops.expand_dims(scale, -1) * ops.expand_dims(s, -2) - ops.expand_dims(row_sums, -2)
    return ops.softmax(logits / tau, axis=-1)


def soft_sort(scores, temperature, hard=False):
    """SoftSort: a relaxed matrix of the permutation sorting `scores`.

    With `sorted(s)` the scores in descending order (Prillo & Eisenschlos,
    2020),

    ```
    P[i, j] = softmax_j(-|sorted(s)_i - s_j| / tau)
    ```

    The same convention as `neural_sort`: row `i` concentrates on the item
    of rank `i` in descending order, rows sum to 1, and `tau -> 0` gives the
    exact sorting permutation matrix (for distinct scores). With
    `hard=True` the forward value is that exact matrix and the gradient is
    the relaxed one's. SoftSort needs O(n^2) work like NeuralSort but no
    `A 1` term, and its gradient flows through the sorted values.

    Args:
        scores: Float tensor `[..., n]`.
        temperature: Float > 0, or a scalar float tensor.
        hard: Boolean. Whether to return the straight-through exact matrix.

    Returns:
        A tensor `[..., n, n]` of the dtype of `scores`.

    Example:

    >>> import keras
    >>> from keras_gumbel.ops import soft_sort
    >>> p = soft_sort(keras.ops.array([0.0, 3.0, 1.0]), temperature=0.1)
    >>> keras.ops.convert_to_numpy(keras.ops.argmax(p, axis=-1)).tolist()
    [1, 2, 0]

    Reference:
        - Prillo & Eisenschlos, "SoftSort: A Continuous Relaxation for the
          argsort Operator", ICML 2020.
    """
    n = _check_vector("scores", scores)
    _check_temperature(temperature)
    check_bool("hard", hard)
    s = ops.cast(scores, "float32")
    y = _soft_sort_float32(s, n, ops.cast(temperature, "float32"))
    return ops.cast(_hard_sort(y, s, hard), scores.dtype)


def _soft_sort_float32(s, n, tau):
    ordered = ops.top_k(s, n)[0]
    logits = -ops.abs(ops.expand_dims(ordered, -1) - ops.expand_dims(s, -2))
    return ops.softmax(logits / tau, axis=-1)
