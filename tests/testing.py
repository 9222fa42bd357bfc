"""A reusable harness for keras-gumbel layer tests, and small helpers."""

import gzip
import json
import struct

import keras
import numpy as np
import pytest

BACKEND = keras.backend.backend()

# `jit_compile=True` is XLA on TensorFlow and JAX and torch.compile on
# PyTorch. torch.compile works with these layers, but compiling a small model
# takes one to two minutes on a CPU, so on PyTorch the compiled runs are slow
# tests (`-m slow`). Use `pytest.param(True, marks=SLOW_ON_TORCH)`.
SLOW_ON_TORCH = [pytest.mark.slow] if BACKEND == "torch" else []
# For tests about training rather than compilation: XLA on TensorFlow and JAX,
# uncompiled on PyTorch.
JIT_COMPILE = BACKEND != "torch"


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def grad(fn, x):
    """Gradient of the scalar `fn(x)` with respect to the tensor `x`."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return to_numpy(tape.gradient(y, x))
    if BACKEND == "jax":
        import jax

        return np.asarray(jax.grad(fn)(keras.ops.convert_to_tensor(x)))
    if BACKEND == "torch":
        x = keras.ops.convert_to_tensor(x).detach().requires_grad_(True)
        fn(x).backward()
        return to_numpy(x.grad)  # also bfloat16, which has no NumPy view in torch
    raise NotImplementedError(BACKEND)


def check_layer(
    layer_cls,
    init_kwargs,
    input_shape,
    tmp_path,
    expected_output_dtype="float32",
    output_shape=None,
):
    """Runs the checks every keras-gumbel layer must pass.

    - config and JSON round trips rebuild an equal config;
    - the symbolic output shape equals the eager one;
    - a compiled `fit` step runs and changes the weights before the layer;
    - a `mixed_float16` copy returns float16 without NaN or Inf;
    - `.keras` save and load give identical inference outputs and keep a
      changed temperature.

    `output_shape` (without the batch axis) defaults to `input_shape`.
    """
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8,) + tuple(input_shape)).astype("float32")
    output_shape = (8,) + tuple(input_shape if output_shape is None else output_shape)

    # Config and JSON round trips.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for key, value in init_kwargs.items():
        assert config[key] == value, (key, config[key], value)
    assert layer_cls.from_config(config).get_config() == config
    revived = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    )
    assert type(revived) is layer_cls
    assert revived.get_config() == config

    # Symbolic vs eager shapes.
    symbolic = layer_cls(**init_kwargs)(keras.Input(shape=input_shape))
    eager = layer_cls(**init_kwargs)(x, training=True)
    assert tuple(symbolic.shape)[1:] == tuple(eager.shape)[1:]
    assert tuple(eager.shape) == output_shape

    # A compiled fit step reaches the weights before the layer.
    inputs = keras.Input(shape=input_shape)
    dense = keras.layers.Dense(input_shape[-1])
    outputs = layer_cls(**init_kwargs)(dense(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    before = to_numpy(dense.kernel).copy()
    target = rng.uniform(size=output_shape).astype("float32")
    model.fit(x, target, batch_size=8, epochs=1, verbose=0)
    assert not np.allclose(to_numpy(dense.kernel), before)

    # Mixed precision.
    mixed = layer_cls(**init_kwargs, dtype="mixed_float16")
    for training in (True, False):
        y = mixed(x, training=training)
        assert keras.backend.standardize_dtype(y.dtype) == "float16"
        assert np.all(np.isfinite(to_numpy(y)))

    # .keras save and load.
    layer = layer_cls(**init_kwargs)
    model = keras.Sequential([keras.Input(shape=input_shape), layer])
    layer.temperature_variable.assign(0.37)
    expected = to_numpy(model(x, training=False))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert float(to_numpy(loaded.layers[-1].temperature_variable)) == np.float32(0.37)
    np.testing.assert_array_equal(to_numpy(loaded(x, training=False)), expected)
    assert keras.backend.standardize_dtype(loaded(x).dtype) == expected_output_dtype


# IDX files (the MNIST format) for dataset and training tests.

IDX_CODES = {
    np.dtype("u1"): 0x08,
    np.dtype("i1"): 0x09,
    np.dtype("i2"): 0x0B,
    np.dtype("i4"): 0x0C,
    np.dtype("f4"): 0x0D,
    np.dtype("f8"): 0x0E,
}


def idx_bytes(array):
    """Encodes `array` as an IDX file: magic, big-endian sizes, big-endian data."""
    array = np.asarray(array)
    code = IDX_CODES[array.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx_file(path, array, compress=False):
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def write_idx_dir(directory, n_train=40, n_test=20, height=8, width=8, seed=0):
    """Writes an MNIST-style directory of random gzipped IDX images and labels."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, height, width), np.uint8)
        write_idx_file(directory / f"{split}-images-idx3-ubyte.gz", images, compress=True)
        write_idx_file(
            directory / f"{split}-labels-idx1-ubyte.gz",
            np.arange(n, dtype=np.uint8) % 10,
            compress=True,
        )
    return directory
