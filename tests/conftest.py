"""Test session setup shared by every test module."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

# Hooks, found by pytest in this module's namespace.
from xdist_groups import pytest_collection_modifyitems  # noqa: E402, F401

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    # Two logical CPU devices, so tf.distribute.MirroredStrategy tests run on
    # a one-CPU machine. This must happen before TensorFlow initializes its
    # devices, i.e. before any test touches a tensor.
    _cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        _cpus[0],
        [tf.config.LogicalDeviceConfiguration()] * 2,
    )


def pytest_configure(config):
    """XLA compiles the default run's programs at backend optimization level 0.

    That run compiles hundreds of small XLA programs (every JAX function,
    TensorFlow's `jit_compile` cases), and on arrays this small LLVM's
    optimization passes cost more than they save. XLA reads `XLA_FLAGS` when it
    first compiles, after this hook; subprocesses (the CLI, notebook kernels)
    inherit it. A run that selects the slow tests (which compile every
    estimator's train step, as a user's training does) keeps XLA's default, and
    so does a level the user set.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "not slow" in (config.option.markexpr or "") and "optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=0".strip()
