"""The log-domain Sinkhorn iterations and their hand-written gradient.

One iteration normalizes the columns of the log-scores `z`, then the rows:

```
columns = z - logsumexp(z, axis=-2)
rows = columns - logsumexp(columns, axis=-1)
```

The vector-Jacobian product of a normalization `y = z - logsumexp(z, axis)`
is `g - exp(y) * sum(g, axis)`: it needs only the step's output. So the
forward pass keeps the `2 * num_iters` normalized tensors and the backward
pass walks them in reverse, where differentiating the loop would stack every
logsumexp's intermediates (1.15x the time of the same iterations unrolled,
forward and backward; `benchmarks/permutations/sinkhorn.py`).

How the iterations run depends on where:

- compiled by XLA (`jax.jit`, `tf.function(jit_compile=True)`, a Keras
  `fit` with XLA): in `keras.ops.scan`, forward and then in reverse. XLA on
  CPU took 20 seconds to compile 20 unrolled iterations (and minutes for
  60), the loop about one.
- a TensorFlow graph without XLA, or eager TensorFlow: unrolled in Python,
  the kept tensors in a list. Nothing is compiled, and `scan` would stack
  the kept tensors into one and unstack them again for the reverse pass:
  two copies of everything kept, which cost 5-10% of the forward and
  backward pass on a 2-core CPU (more when memory is contended).
- PyTorch: a plain loop that autograd differentiates. Its autograd keeps
  each step's tensors without copying them; the hand-written gradient in
  `scan` made the forward and backward pass 1.3x as slow, and
  `torch.compile` took half as long again to trace it.
"""

import keras
from keras import ops


def _columns_then_rows(z):
    columns = z - ops.logsumexp(z, axis=-2, keepdims=True)
    return columns, columns - ops.logsumexp(columns, axis=-1, keepdims=True)


def _iteration_vjp(g, columns, rows):
    """The gradient with respect to an iteration's input, from its two outputs."""
    g = g - ops.exp(rows) * ops.sum(g, axis=-1, keepdims=True)
    return g - ops.exp(columns) * ops.sum(g, axis=-2, keepdims=True)


def _iterate_in_scan(z, num_iters):
    """Runs the iterations; returns their result and the function of its gradient."""

    def forward(carry, _):
        outputs = _columns_then_rows(carry[1])
        return outputs, outputs

    _, (columns, rows) = ops.scan(forward, (z, z), length=num_iters)

    def backward(g):
        def step(g, outputs):
            return _iteration_vjp(g, *outputs), None

        return ops.scan(step, g, (columns, rows), reverse=True)[0]

    return rows[-1], backward


def _iterate_unrolled(z, num_iters):
    """`_iterate_in_scan` as Python steps, the kept tensors in a list."""
    kept = []
    for _ in range(num_iters):
        columns, z = _columns_then_rows(z)
        kept.append((columns, z))

    def backward(g):
        for columns, rows in reversed(kept):
            g = _iteration_vjp(g, columns, rows)
        return g

    return z, backward


def _compiled_by_xla():
    """Whether the TensorFlow ops being built will be compiled by XLA.

    TensorFlow's own control flow asks the same question with this function,
    which its public API does not export; if a release moves it, the answer
    is "yes" and `scan` runs everywhere, which is right, only slower.
    """
    import tensorflow as tf

    try:
        from tensorflow.python.ops.control_flow_util import GraphOrParentsInXlaContext
    except ImportError:  # pragma: no cover - depends on the TensorFlow release
        return True
    return GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def sinkhorn_log(z, num_iters):
    """`num_iters` column-then-row normalizations of float32 log-scores `z`."""
    backend = keras.backend.backend()
    if backend == "torch":
        for _ in range(num_iters):
            z = _columns_then_rows(z)[1]
        return z
    if backend == "tensorflow" and not _compiled_by_xla():
        iterate = _iterate_unrolled
    else:
        iterate = _iterate_in_scan

    @ops.custom_gradient
    def run(z):
        out, backward = iterate(z, num_iters)

        def grad(*args, upstream=None):
            if upstream is None:  # TensorFlow and JAX pass it positionally
                (upstream,) = args
            return backward(upstream)

        return out, grad

    return run(z)
