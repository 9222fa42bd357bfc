"""TensorProto conversion: TF Serving's typed fields, TensorFlow's parsing rules."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import types_pb2

from keras_gumbel.serving import tensors

RNG = np.random.default_rng(0)
BFLOAT16 = tf.bfloat16.as_numpy_dtype

ARRAYS = {
    "float32": RNG.random((3, 4)).astype(np.float32),
    "float64": RNG.random((2, 2)),
    "float16": RNG.random(5).astype(np.float16),
    "bfloat16": RNG.random(4).astype(BFLOAT16),
    "int32": RNG.integers(-(2**31), 2**31, (5,), dtype=np.int32),
    "int64": RNG.integers(-(2**63), 2**63 - 1, (4, 3), dtype=np.int64),
    "int64 varint edges": np.array([0, 1, 127, 128, 300, 2**40, -1, -(2**63)], np.int64),
    "uint64": np.array([0, 2**64 - 1, 2**63, 5], np.uint64),
    "uint32": np.array([0, 2**32 - 1, 7], np.uint32),
    "int8": np.array([-128, -1, 0, 127], np.int8),
    "uint8": np.array([0, 255, 3], np.uint8),
    "int16": np.array([-32768, 32767], np.int16),
    "uint16": np.array([0, 65535], np.uint16),
    "bool": np.array([[True, False], [False, True]]),
    "complex64": (RNG.random(3) + 1j * RNG.random(3)).astype(np.complex64),
    "complex128": RNG.random(3) + 1j * RNG.random(3),
    "bytes": np.array([b"ab", b"", b"\xff\x00"], dtype=object),
    "scalar": np.array(3.5, np.float32),
    "empty": np.zeros((0, 3), np.float32),
}

FIELDS = {
    np.dtype("float32"): "float_val",
    np.dtype("float64"): "double_val",
    np.dtype("int32"): "int_val",
    np.dtype("int8"): "int_val",
    np.dtype("uint8"): "int_val",
    np.dtype("int16"): "int_val",
    np.dtype("uint16"): "int_val",
    np.dtype("int64"): "int64_val",
    np.dtype("uint32"): "uint32_val",
    np.dtype("uint64"): "uint64_val",
    np.dtype("bool"): "bool_val",
    np.dtype("complex64"): "scomplex_val",
    np.dtype("complex128"): "dcomplex_val",
    np.dtype(object): "string_val",
}


def _filled_by_protobuf(array):
    """The TensorProto protobuf itself builds with the dtype's typed field."""
    proto = tensor_pb2.TensorProto(dtype=tensors.datatype_of(array))
    proto.tensor_shape.SetInParent()  # set even for scalars, as TensorFlow does
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    flat = array.ravel()
    if array.dtype in (np.float16, BFLOAT16):
        proto.half_val.extend(flat.view(np.uint16).tolist())
    elif array.dtype.kind == "c":
        getattr(proto, FIELDS[array.dtype]).extend(
            np.stack([flat.real, flat.imag], -1).ravel().tolist()
        )
    else:
        getattr(proto, FIELDS[array.dtype]).extend(flat.tolist())
    return proto


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_typed_bytes_equal_protobuf_typed_fields(name):
    array = ARRAYS[name]
    data = tensors.typed_tensor_bytes(array)
    assert data == _filled_by_protobuf(array).SerializeToString()
    proto = tensor_pb2.TensorProto.FromString(data)
    assert proto.tensor_content == b""
    decoded = tensors.to_ndarray(proto)
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)
    if array.dtype != BFLOAT16:
        np.testing.assert_array_equal(tf.make_ndarray(proto), array)


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_content_protos_round_trip(name):
    array = ARRAYS[name]
    proto = tensors.content_tensor_proto(array)
    np.testing.assert_array_equal(tensors.to_ndarray(proto), array)
    if array.dtype != BFLOAT16:
        np.testing.assert_array_equal(tf.make_ndarray(proto), array)
    if array.dtype != object:
        assert proto.tensor_content == array.tobytes()


def test_tf_make_tensor_proto_is_read():
    array = RNG.random((4, 5)).astype(np.float32)
    proto = tf.make_tensor_proto(array)
    np.testing.assert_array_equal(tensors.to_ndarray(proto), array)


def test_str_arrays_are_sent_as_utf8_strings():
    proto = tensor_pb2.TensorProto.FromString(tensors.typed_tensor_bytes(np.array(["é", "b"])))
    assert proto.dtype == types_pb2.DT_STRING and list(proto.string_val) == [
        b"\xc3\xa9",
        b"b",
    ]


def _typed(dtype, shape, **fields):
    proto = tensor_pb2.TensorProto(dtype=dtype, **fields)
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    return proto


def test_tensorflow_shorthands_for_typed_fields():
    # Fewer values than elements: the last repeats; none: zeros; more: ignored.
    cases = [
        (_typed(types_pb2.DT_FLOAT, [4], float_val=[1, 2]), [1, 2, 2, 2]),
        (_typed(types_pb2.DT_INT64, [2, 2], int64_val=[7]), [[7, 7], [7, 7]]),
        (_typed(types_pb2.DT_FLOAT, [3]), [0, 0, 0]),
        (_typed(types_pb2.DT_FLOAT, [2], float_val=[1, 2, 3]), [1, 2]),
        (_typed(types_pb2.DT_STRING, [2], string_val=[b"x"]), [b"x", b"x"]),
    ]
    for proto, expected in cases:
        np.testing.assert_array_equal(tensors.to_ndarray(proto), np.array(expected))


@pytest.mark.parametrize(
    "proto, message",
    [
        (
            tensor_pb2.TensorProto(dtype=types_pb2.DT_INVALID),
            "unsupported dtype invalid",
        ),
        (tensor_pb2.TensorProto(dtype=types_pb2.DT_RESOURCE), "unsupported dtype"),
        (
            _typed(types_pb2.DT_FLOAT, [1], tensor_content=b"abc"),
            "tensor_content has 3 bytes",
        ),
        (_typed(types_pb2.DT_FLOAT, [-1]), "negative dimension"),
        (_typed(types_pb2.DT_FLOAT, [10**12]), "too large"),
        (
            _typed(types_pb2.DT_STRING, [1], tensor_content=b"x"),
            "cannot use tensor_content",
        ),
        (
            tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape={"unknown_rank": True}),
            "unknown rank",
        ),
    ],
)
def test_unparsable_tensors_are_rejected(proto, message):
    with pytest.raises(ValueError, match=message):
        tensors.to_ndarray(proto)


def test_dtype_names_are_tensorflows_cpp_names():
    names = [
        tensors.dtype_name(d)
        for d in (
            types_pb2.DT_FLOAT,
            types_pb2.DT_DOUBLE,
            types_pb2.DT_HALF,
            types_pb2.DT_STRING,
            types_pb2.DT_INT32,
            types_pb2.DT_INT64,
            types_pb2.DT_BOOL,
        )
    ]
    assert names == ["float", "double", "half", "string", "int32", "int64", "bool"]
