"""The optimizer's update as one XLA-compiled function inside the train step.

Keras's optimizers update each variable with a handful of separate
element-wise operations (Adam: about a dozen per variable, plus the bias
corrections), which TensorFlow runs one kernel at a time when the train step
is not compiled with XLA. Keras leaves XLA off on CPU-only machines
(`jit_compile="auto"` resolves to False there), and there these small kernels
are a large part of a small model's step: compiling the update alone takes the
categorical VAE's batch-100 `fit` step on a 2-core CPU from 11.7 ms to 9.9 ms
(`benchmarks/performance/performance.py`, training: `fit` with and without XLA).

`CompiledUpdate` runs `optimizer.apply_gradients` as one nested
`tf.function(jit_compile=True)`, which XLA fuses into a few loops, while the
forward and backward passes stay with TensorFlow's own kernels (which, for
large matrix products, are faster than XLA's on a CPU). It does so only where
the user left `jit_compile="auto"` and Keras resolved it to False, in graph
mode, and without a distribution strategy (whose cross-replica update cannot
run inside an XLA function). `compile(jit_compile=False)` turns XLA off
entirely, `jit_compile=True` compiles the whole step.
"""

import inspect

import keras

from keras_gumbel.models.step_function import without_strategy

_COMPILE_SIGNATURE = inspect.signature(keras.Model.compile)


def requested_jit_compile(args, kwargs):
    """The `jit_compile` argument of a `keras.Model.compile(*args, **kwargs)` call."""
    bound = _COMPILE_SIGNATURE.bind(None, *args, **kwargs)
    return bound.arguments.get("jit_compile", "auto")


def compiled_update(optimizer, model):
    """`optimizer.apply_gradients` to `model.trainable_variables`, compiled with XLA.

    Returns a function of the list of gradients. The optimizer's variables are
    built first, outside any trace, since XLA functions cannot create them.
    """
    import tensorflow as tf

    if not optimizer.built:
        with tf.init_scope():
            optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=True)
    def update(gradients):
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))

    update.optimizer = optimizer
    return update


class CompiledUpdate:
    """Mixin for `keras.Model` subclasses with a custom `train_step`.

    The train step calls `self.apply_gradients(gradients)` instead of
    `self.optimizer.apply_gradients(...)`. See the module docstring for what
    that changes and when. Put it before `keras.Model` in the bases.
    """

    def compile(self, *args, **kwargs):
        super().compile(*args, **kwargs)
        # Keras keeps only the resolved value; "auto" is what decides here.
        self._jit_compile_auto = requested_jit_compile(args, kwargs) == "auto"

    def get_compile_config(self):
        config = super().get_compile_config()
        if config and getattr(self, "_jit_compile_auto", False):
            # Saved as requested, so a loaded model resolves it on its machine.
            config["jit_compile"] = "auto"
        return config

    def compile_from_config(self, config):
        # Keras's own version refuses models that override `compile`; this is
        # what it does otherwise.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def compiled_update_applies(self):
        """Whether `apply_gradients`, called now, runs the XLA-compiled update."""
        if keras.backend.backend() != "tensorflow":
            return False
        import tensorflow as tf

        return (
            getattr(self, "_jit_compile_auto", False)
            and not self.jit_compile
            and not tf.executing_eagerly()
            and without_strategy(self)
        )

    def apply_gradients(self, gradients):
        """Applies `gradients` of `self.trainable_variables` with the optimizer."""
        if not self.compiled_update_applies():
            self.optimizer.apply_gradients(zip(gradients, self.trainable_variables, strict=True))
            return
        update = getattr(self, "_compiled_update", None)
        if update is None or update.optimizer is not self.optimizer:
            update = self._compiled_update = compiled_update(self.optimizer, self)
        update(gradients)
