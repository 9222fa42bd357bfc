"""Binarization of grayscale images into {0, 1} pixels."""

import numbers

import numpy as np

from keras_gumbel.datasets.errors import DatasetError

#: Every binarization `load` accepts. "dynamic" is drawn by `make_dataset`.
BINARIZATIONS = ("static", "threshold", "dynamic", "none")

# Rows drawn at once by the static binarization, to bound the memory of the
# uniform draws (a full 60,000 x 784 float32 draw alone would be 188 MB).
_CHUNK_ROWS = 4096


def check_binarization(binarization):
    """Raises `DatasetError` unless `binarization` is a known method."""
    if not isinstance(binarization, str) or binarization not in BINARIZATIONS:
        raise DatasetError(
            "Invalid value received for argument `binarization`. Expected one "
            f"of {BINARIZATIONS}. Received: binarization={binarization!r}"
        )


def check_seed(seed, name="seed"):
    """Returns `seed` as an int, or raises `DatasetError` if it is not one >= 0."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise DatasetError(
            f"Invalid value received for argument `{name}`. Expected a "
            f"non-negative integer. Received: {name}={seed!r}"
        )
    return int(seed)


def as_intensities(images, name="images"):
    """Returns `images` as float32 intensities, checking they lie in [0, 1]."""
    try:
        array = np.asarray(images, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise DatasetError(
            f"Invalid value received for argument `{name}`. Expected an array "
            f"of intensities in [0, 1]. Received: {type(images).__name__} ({e})"
        ) from e
    if array.size:
        low, high = float(np.min(array)), float(np.max(array))
        # NaN fails both comparisons, so it is caught here too.
        if not (low >= 0.0 and high <= 1.0):
            raise DatasetError(
                f"Invalid value received for argument `{name}`. Expected "
                f"intensities in [0, 1] (divide uint8 images by 255). "
                f"Received: values in [{low}, {high}]"
            )
    return array


def binarize(images, method="static", seed=0):
    """Turns grayscale intensities into binary pixels.

    Methods:

    - `"static"`: one Bernoulli draw per pixel with probability equal to its
      intensity, made once with a NumPy generator seeded by `seed`. The same
      images and seed always give the same bits.
    - `"threshold"`: a pixel is 1 where its intensity is greater than 0.5.
    - `"none"`: the intensities themselves, as float32.

    Dynamic binarization (a fresh draw every time a batch is produced) is not
    done here but by `make_dataset(..., dynamic_binarization=True)`.

    Args:
        images: array-like. Intensities in [0, 1], of any shape.
        method: str. One of `"static"`, `"threshold"` or `"none"`.
        seed: int. Seed of the static draw; a non-negative integer. Unused by
            the other methods.

    Returns:
        A float32 NumPy array of the same shape as `images`, holding 0.0 and
        1.0 (or the intensities, for `"none"`).

    Raises:
        DatasetError: If `method` is unknown or `"dynamic"`, `seed` is not a
            non-negative integer, or `images` has values outside [0, 1].

    Example:

    >>> import numpy as np
    >>> bits = binarize(np.full((2, 3), 0.5), "static", seed=1)
    >>> sorted(np.unique(bits).tolist())
    [0.0, 1.0]
    >>> binarize(np.array([0.2, 0.7]), "threshold").tolist()
    [0.0, 1.0]
    """
    check_binarization(method)
    if method == "dynamic":
        raise DatasetError(
            "binarize() cannot apply binarization='dynamic': dynamic bits are "
            "drawn afresh for every batch. Use make_dataset(images, ..., "
            "dynamic_binarization=True), or one of 'static', 'threshold', 'none'."
        )
    seed = check_seed(seed)
    intensities = as_intensities(images)
    if method == "none":
        return intensities.copy()
    if method == "threshold":
        return (intensities > 0.5).astype(np.float32)
    if intensities.size == 0:
        return intensities.copy()
    rng = np.random.default_rng(seed)
    flat = intensities.reshape(len(intensities) if intensities.ndim else 1, -1)
    bits = np.empty(flat.shape, dtype=np.float32)
    # The uniforms lie in [0, 1): intensity 0 never fires, intensity 1 always.
    for start in range(0, len(flat), _CHUNK_ROWS):
        rows = flat[start : start + _CHUNK_ROWS]
        bits[start : start + _CHUNK_ROWS] = rng.random(rows.shape, np.float32) < rows
    return bits.reshape(intensities.shape)
