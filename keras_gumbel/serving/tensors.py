"""`TensorProto` <-> NumPy conversion with TensorFlow's rules.

Three directions, three encodings:

- `to_ndarray` reads any `TensorProto` a client or server may send: packed
  `tensor_content` or the typed repeated fields (`float_val`, `int64_val`,
  ...), including TensorFlow's shorthand of fewer values than elements
  (the last value repeats; no value means zeros). It rejects what
  TensorFlow's `Tensor::FromProto` rejects.
- `typed_tensor_bytes` serializes a server output the way TF Serving's
  `Tensor::AsProtoField` does, into the typed repeated fields, never into
  `tensor_content`. It writes the protobuf wire format directly, because
  filling a repeated field one Python float at a time costs tens of
  milliseconds per million values.
- `content_tensor_proto` builds a request tensor with `tensor_content`,
  which is what `tf.make_tensor_proto` sends and TF Serving parses fastest.
"""

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow.core.framework import types_pb2

# Larger tensors cannot come from a gRPC message (at most 2 GiB), except by
# TensorFlow's repeat-the-last-value shorthand, which would let a tiny
# request allocate unbounded memory.
MAX_TENSOR_BYTES = 2**31 - 1

_FIELDS = tensor_pb2.TensorProto.DESCRIPTOR.fields_by_name

# DataType -> (NumPy dtype, typed field, wire kind of one field value).
# `"fixed"` fields hold little-endian IEEE values; `"varint"` fields hold
# integers (half and bfloat16 as their 16-bit patterns); strings are
# length-delimited and handled separately.
_TYPED = {
    types_pb2.DT_FLOAT: (np.dtype("float32"), "float_val", "fixed"),
    types_pb2.DT_DOUBLE: (np.dtype("float64"), "double_val", "fixed"),
    types_pb2.DT_INT32: (np.dtype("int32"), "int_val", "varint"),
    types_pb2.DT_INT16: (np.dtype("int16"), "int_val", "varint"),
    types_pb2.DT_INT8: (np.dtype("int8"), "int_val", "varint"),
    types_pb2.DT_UINT8: (np.dtype("uint8"), "int_val", "varint"),
    types_pb2.DT_UINT16: (np.dtype("uint16"), "int_val", "varint"),
    types_pb2.DT_INT64: (np.dtype("int64"), "int64_val", "varint"),
    types_pb2.DT_UINT32: (np.dtype("uint32"), "uint32_val", "varint"),
    types_pb2.DT_UINT64: (np.dtype("uint64"), "uint64_val", "varint"),
    types_pb2.DT_BOOL: (np.dtype("bool"), "bool_val", "varint"),
    types_pb2.DT_HALF: (np.dtype("float16"), "half_val", "varint"),
    types_pb2.DT_BFLOAT16: (np.dtype(tf.bfloat16.as_numpy_dtype), "half_val", "varint"),
    types_pb2.DT_COMPLEX64: (np.dtype("complex64"), "scomplex_val", "fixed"),
    types_pb2.DT_COMPLEX128: (np.dtype("complex128"), "dcomplex_val", "fixed"),
    types_pb2.DT_STRING: (np.dtype(object), "string_val", "bytes"),
}

# TensorFlow's C++ `DataTypeString`, which its error messages use; NumPy's
# names differ for these.
_CPP_NAMES = {
    types_pb2.DT_FLOAT: "float",
    types_pb2.DT_DOUBLE: "double",
    types_pb2.DT_HALF: "half",
}


def dtype_name(dtype):
    """The C++ name of a `DataType` enum value: "float", "int64", "string"."""
    if dtype in _CPP_NAMES:
        return _CPP_NAMES[dtype]
    if dtype == types_pb2.DT_INVALID:
        return "invalid"
    try:
        return tf.dtypes.as_dtype(dtype).name
    except TypeError:
        return f"unknown dtype enum ({dtype})"


def datatype_of(array):
    """The `DataType` enum value for a NumPy array's dtype."""
    if array.dtype == object or array.dtype.kind in "SU":
        return types_pb2.DT_STRING
    return tf.dtypes.as_dtype(array.dtype).as_datatype_enum


def _shape_of(proto):
    shape = proto.tensor_shape
    if shape.unknown_rank:
        raise ValueError("the tensor shape has unknown rank")
    dims = tuple(dim.size for dim in shape.dim)
    if any(size < 0 for size in dims):
        raise ValueError(f"the tensor shape {list(dims)} has a negative dimension")
    return dims


def to_ndarray(proto):
    """Decodes a `TensorProto` into a NumPy array.

    Reads `tensor_content` when it is set, else the dtype's typed repeated
    field, as TensorFlow's `Tensor::FromProto` does: surplus values are
    ignored, missing ones repeat the last value, and no value at all means
    zeros (empty bytes for strings). Strings decode to an object array of
    `bytes`.

    Args:
        proto: `tensorflow.TensorProto`.

    Returns:
        A NumPy array with the proto's dtype and shape. Arrays decoded from
        `tensor_content` are read-only views of the proto's bytes.

    Raises:
        ValueError: If the dtype is not a plain numeric, bool or string type,
            the shape is unknown or negative, `tensor_content` has the wrong
            length, or the tensor would exceed `MAX_TENSOR_BYTES`.
    """
    if proto.dtype not in _TYPED:
        raise ValueError(f"unsupported dtype {dtype_name(proto.dtype)}")
    dtype, field, kind = _TYPED[proto.dtype]
    shape = _shape_of(proto)
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    itemsize = 8 if kind == "bytes" else dtype.itemsize
    if size * itemsize > MAX_TENSOR_BYTES:
        raise ValueError(f"a tensor of shape {list(shape)} is too large")

    if proto.tensor_content:
        if kind == "bytes":
            raise ValueError("string tensors cannot use tensor_content")
        content = proto.tensor_content
        if len(content) != size * dtype.itemsize:
            raise ValueError(
                f"tensor_content has {len(content)} bytes, expected "
                f"{size * dtype.itemsize} for shape {list(shape)} of "
                f"{dtype_name(proto.dtype)}"
            )
        return np.frombuffer(content, dtype=dtype).reshape(shape)

    values = getattr(proto, field)
    if kind == "bytes":
        flat = np.empty(size, dtype=object)
        given = list(values[:size])
        flat[: len(given)] = given
        flat[len(given) :] = given[-1] if given else b""
        return flat.reshape(shape)
    if field == "half_val":
        flat = np.array(values, dtype=np.int64).astype(np.uint16).view(dtype)
    elif kind == "fixed" and dtype.kind == "c":
        parts = dtype.itemsize // 2
        raw = np.array(values, dtype=np.dtype(f"float{parts * 8}"))
        flat = raw[: raw.size // 2 * 2].view(dtype)
    else:
        flat = np.array(values, dtype=dtype)
    if flat.size >= size:
        return flat[:size].reshape(shape)
    filled = np.empty(size, dtype=dtype)
    filled[: flat.size] = flat
    filled[flat.size :] = flat[-1] if flat.size else dtype.type(0)
    return filled.reshape(shape)


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _varints(values):
    """Protobuf varint encoding of an integer array, vectorized.

    Negative values are encoded as their 64-bit two's complement (10 bytes),
    as protobuf does for int32 and int64 fields.
    """
    if values.dtype == np.uint64:
        v = values.ravel()
    else:
        v = values.ravel().astype(np.int64).view(np.uint64)
    if v.size == 0:
        return b""
    width = 1
    while width < 10 and bool((v >> np.uint64(7 * width)).any()):
        width += 1
    shifts = np.arange(width, dtype=np.uint64) * np.uint64(7)
    groups = ((v[:, None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
    lengths = np.ones(v.size, dtype=np.int64)
    for k in range(1, width):
        lengths += (v >> np.uint64(7 * k)) != 0
    columns = np.arange(width)
    groups |= np.where(columns < lengths[:, None] - 1, 0x80, 0).astype(np.uint8)
    return groups[columns < lengths[:, None]].tobytes()


def _shape_proto(shape):
    return tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(s)) for s in shape]
    )


def typed_tensor_bytes(array):
    """Serializes `array` as a `TensorProto` with typed repeated fields.

    The bytes equal those of a `TensorProto` whose dtype field (e.g.
    `float_val`, `int_val` for int32, `int64_val`) holds every element in
    row-major order, as TF Serving's default `AsProtoField` serialization;
    parse them with `TensorProto.FromString` or `MergeFromString`.

    Args:
        array: NumPy array of a dtype `to_ndarray` supports; strings as
            `bytes`/`str` objects or a NumPy bytes/str array.

    Returns:
        bytes.
    """
    array = np.asarray(array)
    datatype = datatype_of(array)
    if datatype not in _TYPED:
        raise ValueError(f"cannot serialize dtype {array.dtype}")
    dtype, field, kind = _TYPED[datatype]
    proto = tensor_pb2.TensorProto(dtype=datatype, tensor_shape=_shape_proto(array.shape))
    if kind == "bytes":
        values = [v if isinstance(v, bytes) else str(v).encode() for v in array.ravel()]
        getattr(proto, field).extend(values)
        return proto.SerializeToString()
    header = proto.SerializeToString()
    if array.size == 0:
        return header
    flat = np.ascontiguousarray(array, dtype=dtype).ravel()
    if kind == "fixed":
        parts = flat.view(np.dtype(f"float{dtype.itemsize * 4}")) if dtype.kind == "c" else flat
        payload = parts.tobytes()
    elif field == "half_val":
        payload = _varints(flat.view(np.uint16))
    else:
        payload = _varints(flat)
    tag = _varint(_FIELDS[field].number << 3 | 2)
    return header + tag + _varint(len(payload)) + payload


def content_tensor_proto(array):
    """A `TensorProto` of `array` with `tensor_content` (strings: `string_val`).

    This is what `tf.make_tensor_proto` produces for numeric arrays, without
    its per-call overhead. Every TF Serving version parses it.

    Args:
        array: array-like; NumPy's dtype is kept (convert first, e.g.
            `np.asarray(x, np.float32)`, to send another one).

    Returns:
        `tensorflow.TensorProto`.
    """
    array = np.asarray(array)
    datatype = datatype_of(array)
    if datatype not in _TYPED:
        raise ValueError(f"cannot serialize dtype {array.dtype}")
    proto = tensor_pb2.TensorProto(dtype=datatype, tensor_shape=_shape_proto(array.shape))
    if datatype == types_pb2.DT_STRING:
        proto.string_val.extend(
            v if isinstance(v, bytes) else str(v).encode() for v in array.ravel()
        )
    else:
        dtype = _TYPED[datatype][0]
        proto.tensor_content = np.ascontiguousarray(array, dtype=dtype).tobytes()
    return proto
