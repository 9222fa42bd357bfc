"""Input pipelines: batched `tf.data` datasets and image halves."""

import numbers

import numpy as np

from keras_gumbel._extras import import_tensorflow
from keras_gumbel.datasets.binarize import as_intensities
from keras_gumbel.datasets.binarize import check_seed
from keras_gumbel.datasets.errors import DatasetError


def _check_flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise DatasetError(
            f"Invalid value received for argument `{name}`. Expected True or "
            f"False. Received: {name}={value!r}"
        )
    return bool(value)


def _as_labels(labels, num_images):
    array = np.asarray(labels)
    if array.ndim == 0 or len(array) != num_images:
        raise DatasetError(
            "Invalid value received for argument `labels`. Expected one label "
            f"(or target row) per image, {num_images} in all. Received: "
            f"labels of shape {array.shape}"
        )
    if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        return array.astype(np.int64)
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32)
    raise DatasetError(
        "Invalid value received for argument `labels`. Expected integer "
        f"labels or float targets. Received: labels of dtype {array.dtype}"
    )


def make_dataset(
    images,
    labels=None,
    *,
    batch_size,
    shuffle=True,
    seed=0,
    dynamic_binarization=False,
    flatten=True,
    drop_remainder=False,
    repeat=False,
):
    """Builds a batched `tf.data.Dataset` of images, optionally with labels.

    Each pass over the dataset (each Keras epoch) visits every image once, in
    a new order when `shuffle` is on. With `dynamic_binarization`, every
    batch is binarized afresh as it is produced: pixel ~ Bernoulli(intensity),
    so each epoch sees different bits for the same image, as in the
    semi-supervised experiments of the Gumbel-Softmax paper.

    Both the shuffle order and the dynamic bits are drawn by seeded `tf.data`
    random ops that draw anew on every pass: a dataset built twice with the
    same `seed` produces the same sequence of epochs (given the same
    TensorFlow global seed, if one was set with `tf.random.set_seed` or
    `keras.utils.set_random_seed`).

    Args:
        images: array-like. `(N, ...)` images, e.g. `(N, 28, 28)`. With
            `dynamic_binarization`, intensities in [0, 1].
        labels: array-like or None. `(N, ...)` integer labels (yielded as
            int64) or float targets (yielded as float32), or None to yield
            images only. Dynamic binarization never touches them.
        batch_size: int. Images per batch, at least 1.
        shuffle: bool. Whether to visit the images in a new random order on
            every pass.
        seed: int. Seed of the shuffle order and the dynamic bits; a
            non-negative integer.
        dynamic_binarization: bool. Whether to binarize every batch afresh.
        flatten: bool. Whether to yield images as `(batch, H * W)` vectors
            instead of `(batch, H, W)`.
        drop_remainder: bool. Whether to drop the last batch of a pass when it
            is smaller than `batch_size`.
        repeat: bool. Whether to repeat the passes forever (then give Keras a
            `steps_per_epoch`).

    Returns:
        A `tf.data.Dataset` yielding float32 image batches, or `(images,
        labels)` tuples when `labels` is given, prefetched with AUTOTUNE.

    Raises:
        DatasetError: If an argument is invalid, e.g. `batch_size` < 1,
            labels that do not match the images, or intensities outside
            [0, 1] with `dynamic_binarization`.

    Example:

    >>> import numpy as np
    >>> images = np.random.default_rng(0).random((10, 28, 28))
    >>> ds = make_dataset(images, batch_size=4, dynamic_binarization=True)
    >>> [tuple(batch.shape) for batch in ds]
    [(4, 784), (4, 784), (2, 784)]
    """
    tf = import_tensorflow("keras_gumbel.datasets.make_dataset")
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, numbers.Integral)
        or batch_size < 1
    ):
        raise DatasetError(
            "Invalid value received for argument `batch_size`. Expected a "
            f"positive integer. Received: batch_size={batch_size!r}"
        )
    seed = check_seed(seed)
    shuffle = _check_flag(shuffle, "shuffle")
    dynamic_binarization = _check_flag(dynamic_binarization, "dynamic_binarization")
    flatten = _check_flag(flatten, "flatten")
    drop_remainder = _check_flag(drop_remainder, "drop_remainder")
    repeat = _check_flag(repeat, "repeat")

    if dynamic_binarization:
        x = as_intensities(images)
    else:
        try:
            x = np.asarray(images, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise DatasetError(
                "Invalid value received for argument `images`. Expected a "
                f"numeric array. Received: {type(images).__name__} ({e})"
            ) from e
    if x.ndim < 2 or len(x) == 0:
        raise DatasetError(
            "Invalid value received for argument `images`. Expected a "
            f"non-empty array of shape (N, ...). Received: shape {x.shape}"
        )
    num_images = len(x)
    if flatten:
        x = x.reshape(num_images, -1)
    tensors = [tf.constant(x)]
    if labels is not None:
        tensors.append(tf.constant(_as_labels(labels, num_images)))

    # Separate op seeds for the order and the bits, so the two are unrelated.
    shuffle_seed, bits_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(2))
    # Shuffling indices and gathering whole batches avoids holding a second
    # copy of the data in a shuffle buffer.
    indices = tf.data.Dataset.range(num_images)
    if shuffle:
        indices = indices.shuffle(num_images, seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = indices.batch(batch_size, drop_remainder=drop_remainder)
    if repeat:
        dataset = dataset.repeat()

    def gather(batch_indices):
        return tuple(tf.gather(t, batch_indices) for t in tensors)

    dataset = dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE)

    if dynamic_binarization:
        # One stateless seed (a pair of int64) per batch. The stream is
        # seeded, yet draws new values on every pass, so bits differ between
        # epochs and are reproducible across runs.
        batch_seeds = tf.data.Dataset.random(seed=bits_seed, rerandomize_each_iteration=True).batch(
            2
        )

        def binarize_batch(batch, batch_seed):
            images_batch = batch[0]
            uniforms = tf.random.stateless_uniform(
                tf.shape(images_batch), seed=batch_seed, dtype=tf.float32
            )
            bits = tf.cast(uniforms < images_batch, tf.float32)
            return (bits,) + tuple(batch[1:])

        dataset = tf.data.Dataset.zip((dataset, batch_seeds)).map(
            binarize_batch, num_parallel_calls=tf.data.AUTOTUNE
        )

    if labels is None:
        dataset = dataset.map(lambda *batch: batch[0])
    else:
        dataset = dataset.map(lambda *batch: (batch[0], batch[1]))
    return dataset.prefetch(tf.data.AUTOTUNE)


def split_halves(images):
    """Splits images into flattened upper and lower halves.

    For structured output prediction: a model sees the upper half of an image
    and predicts the lower half. For 28x28 images each half is 14 rows, 392
    pixels. For an odd height the upper half gets the middle row, e.g. 4 of 7
    rows. Concatenating the halves along the last axis gives back the image
    flattened in row-major order.

    Args:
        images: array-like. `(N, H, W)` images, H >= 2.

    Returns:
        A tuple `(upper, lower)` of NumPy arrays with the dtype of `images`,
        of shapes `(N, ceil(H / 2) * W)` and `(N, floor(H / 2) * W)`.

    Raises:
        DatasetError: If `images` is not of shape `(N, H, W)` with H >= 2.

    Example:

    >>> import numpy as np
    >>> upper, lower = split_halves(np.zeros((5, 28, 28)))
    >>> upper.shape, lower.shape
    ((5, 392), (5, 392))
    """
    array = np.asarray(images)
    if array.ndim != 3 or array.shape[1] < 2:
        raise DatasetError(
            "Invalid value received for argument `images`. Expected images of "
            f"shape (N, H, W) with H >= 2. Received: shape {array.shape}"
        )
    num_images, height, _ = array.shape
    top_rows = (height + 1) // 2
    upper = array[:, :top_rows].reshape(num_images, -1)
    lower = array[:, top_rows:].reshape(num_images, -1)
    return upper, lower
