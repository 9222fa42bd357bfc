"""Reader for the IDX file format used to distribute MNIST and its relatives.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number
of dimensions), one big-endian uint32 size per dimension, then the values in
row-major order, big-endian. The files are usually distributed gzipped.
"""

import gzip
import math
import os
import zlib

import numpy as np

from keras_gumbel.datasets.errors import DatasetError

# Type codes of the IDX format and the big-endian dtypes they stand for.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"
_EXPECTED = (
    "Expected an MNIST-format IDX file, raw or gzipped, such as "
    "train-images-idx3-ubyte.gz or t10k-labels-idx1-ubyte"
)


def _fail(path, problem):
    return DatasetError(f"Invalid IDX file '{path}': {problem}. {_EXPECTED}.")


def _read_bytes(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError as e:
        raise DatasetError(
            f"IDX file not found: '{path}'. {_EXPECTED}, or use the shipped "
            "sample with load('mnist-sample')."
        ) from e
    except OSError as e:
        raise DatasetError(
            f"Could not read IDX file '{path}': {e.strerror or e}. {_EXPECTED}."
        ) from e
    # The magic bytes decide, not the suffix: files are often renamed or
    # decompressed in place while keeping their ".gz" name, or vice versa.
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise _fail(path, f"corrupt or truncated gzip data ({e})") from e
    return raw


def read_idx(path):
    """Reads an IDX file (gzipped or not) into a NumPy array.

    Gzip compression is detected from the file's first bytes, so the file
    name does not matter. Every type code of the format is supported (unsigned
    and signed bytes, 16- and 32-bit integers, 32- and 64-bit floats) and any
    number and size of dimensions, so images of any size can be read.

    Args:
        path: str or os.PathLike. The file to read.

    Returns:
        A NumPy array in native byte order whose shape is given by the file's
        header: `(N,)` for a label file, `(N, H, W)` for an image file.

    Raises:
        DatasetError: If the file is missing or unreadable, is not valid
            gzip data although it starts like gzip, has a bad magic number,
            a truncated header, or a payload whose length does not match the
            dimensions exactly.

    Example:

    A file of two 3 x 4 unsigned-byte images (type code 0x08, 3 dimensions):

    >>> import os
    >>> import struct
    >>> import tempfile
    >>> import numpy as np
    >>> from keras_gumbel.datasets import read_idx
    >>> images = np.arange(24, dtype="uint8").reshape(2, 3, 4)
    >>> path = os.path.join(tempfile.mkdtemp(), "images-idx3-ubyte")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(bytes([0, 0, 0x08, 3]) + struct.pack(">3i", 2, 3, 4) + images.tobytes())
    >>> loaded = read_idx(path)
    >>> loaded.shape, loaded.dtype, bool(np.array_equal(loaded, images))
    ((2, 3, 4), dtype('uint8'), True)

    The Fashion-MNIST training images, a download not shipped with the
    package (hence skipped when the examples are tested):

    >>> images = read_idx("train-images-idx3-ubyte.gz")  # doctest: +SKIP
    >>> images.shape, images.dtype  # doctest: +SKIP
    ((60000, 28, 28), dtype('uint8'))
    """
    path = os.fspath(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise _fail(path, f"only {len(raw)} bytes, shorter than the 4-byte header")
    zero_a, zero_b, code, ndim = raw[:4]
    if zero_a != 0 or zero_b != 0 or code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise _fail(
            path,
            f"bad magic number 0x{raw[:4].hex().upper()} (expected 0x0000 "
            f"followed by a type code in {{{known}}} and the number of dimensions)",
        )
    if ndim == 0:
        raise _fail(path, "the header declares 0 dimensions")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise _fail(
            path,
            f"truncated header: {ndim} dimensions need {header_size} bytes, "
            f"the file has {len(raw)}",
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    # Python ints: a corrupt header must not overflow into a plausible size.
    expected = math.prod(shape) * dtype.itemsize
    payload = len(raw) - header_size
    if payload != expected:
        kind = "truncated payload" if payload < expected else "trailing bytes"
        raise _fail(
            path,
            f"{kind}: dimensions {shape} of {dtype.newbyteorder('=').name} need "
            f"{expected} bytes of data, the file has {payload}",
        )
    array = np.frombuffer(raw, dtype, offset=header_size).reshape(shape)
    # Native byte order and a writable copy, so callers can use it freely.
    return array.astype(dtype.newbyteorder("="))
