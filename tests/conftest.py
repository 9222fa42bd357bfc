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
