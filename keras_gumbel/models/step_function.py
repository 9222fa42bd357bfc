"""A one-step training function for `fit`, without Keras's multi-step loop.

Keras 3's TensorFlow trainer compiles every training call as a `tf.while_loop`
over `iterator.get_next_as_optional()`, so that one call can run
`steps_per_execution` steps, and then reads the optional's `has_value()` back
on the host. With one step per call, the default, that machinery is pure
overhead: on a 2-core CPU it cost about 1 ms of a 12 ms batch-100 VAE step
(`benchmarks/performance/performance.py`, training), 8% of `fit`'s speed.

`OneStepFit` replaces the train function, where that is safe, with the plain
equivalent: take the next batch with `next(iterator)` and run `train_step` as
one compiled `tf.function` (XLA when the model compiles with
`jit_compile=True`). It computes the same step on the same batches with the
same random draws. Everywhere else (other backends, `run_eagerly=True`,
`steps_per_execution > 1`, a distribution strategy) Keras's own function is
kept unchanged.
"""

import keras


def without_strategy(model):
    """Whether no distribution strategy is in scope now nor was captured by `model`.

    TensorFlow backend only.
    """
    import tensorflow as tf

    return (
        not tf.distribute.has_strategy()
        and model.distribute_strategy is tf.distribute.get_strategy()
    )


def one_step_applies(model):
    """Whether `model`'s training calls can run as single compiled steps.

    True for the TensorFlow backend with one step per execution, compiled
    (not eager), and no distribution strategy, neither in scope now nor
    captured when the model was built.
    """
    if keras.backend.backend() != "tensorflow":
        return False
    return not model.run_eagerly and model.steps_per_execution == 1 and without_strategy(model)


def one_step_train_function(train_step, jit_compile):
    """A train function: one batch from the iterator, one compiled `train_step`.

    `next(iterator)` raises `StopIteration` when a finite dataset runs out,
    which ends the epoch exactly as Keras's own function does.
    """
    import tensorflow as tf

    step = tf.function(train_step, reduce_retracing=True, jit_compile=jit_compile)

    def function(iterator):
        return step(next(iterator))

    function.step = step
    return function


class OneStepFit:
    """Mixin for `keras.Model` subclasses: `fit` runs one compiled step per call.

    Put it before `keras.Model` in the bases. See the module docstring for
    what it changes and when.
    """

    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return self.train_function
        if one_step_applies(self):
            self.train_function = one_step_train_function(self.train_step, self.jit_compile)
        else:
            super().make_train_function(force=force)
        return self.train_function
