"""Test session setup shared by every test module."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The tests compile hundreds of small XLA programs (every JAX function, and
# TensorFlow's `jit_compile`), where LLVM's optimization passes take most of the
# time; at level 0 they compile about 1.6x faster. A level the user set is kept,
# and subprocesses (the CLI, notebook kernels) inherit it.
_xla_flags = os.environ.get("XLA_FLAGS", "")
if "xla_backend_optimization_level" not in _xla_flags:
    os.environ["XLA_FLAGS"] = f"{_xla_flags} --xla_backend_optimization_level=0".strip()

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
