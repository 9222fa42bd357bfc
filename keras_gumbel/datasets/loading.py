"""`load`: one call from a source name or path to binarized, split data."""

import numbers

import numpy as np

from keras_gumbel.datasets.binarize import binarize
from keras_gumbel.datasets.binarize import check_binarization
from keras_gumbel.datasets.binarize import check_seed
from keras_gumbel.datasets.errors import DatasetError
from keras_gumbel.datasets.image_data import ImageData
from keras_gumbel.datasets.sources import read_source


def _split_seed(seed, split):
    # Train and test get unrelated streams; reusing `seed` for both would
    # give the first test image the same uniforms as the first train image.
    return int(np.random.SeedSequence([seed, split]).generate_state(1)[0])


def load(source="mnist-sample", *, binarization="static", validation_size=None, seed=0):
    """Loads an MNIST-family image dataset, binarized and split three ways.

    Sources:

    - `"mnist-sample"` (default): 5,000 real MNIST digits shipped with the
      package, no download needed. Split 3,500 / 500 / 1,000 (train /
      validation / test), stratified by class (350 / 50 / 100 digits of each)
      with a fixed seed when the file was made, so everyone gets the same
      split. Grayscale is stored with 16 levels (multiples of 1/15), and the
      `"static"` binarization is the one shipped with the file: identical
      for everyone and independent of `seed`.
    - `"mnist"`, `"fashion_mnist"`: the full datasets through
      `keras.datasets` (downloaded on first use, needs internet).
    - A directory of MNIST-format IDX files (`train-images-idx3-ubyte`,
      `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
      `t10k-labels-idx1-ubyte`, each raw or `.gz`), of any image size.

    For the last two, validation images are the last `validation_size`
    images of the train split; the default is 10,000 when the train split has
    60,000 images or more (the 50,000 / 10,000 / 10,000 split of the
    Gumbel-Softmax paper), else a sixth of it. For the sample, the 4,000
    non-test digits are split the same way, with a default of 500.

    Binarizations:

    - `"static"`: each pixel drawn once from Bernoulli(intensity), fixed by
      `seed` (the sample's bits ship with it); the usual "binarized MNIST"
      for VAEs and structured output prediction.
    - `"threshold"`: intensity > 0.5.
    - `"dynamic"`: the grayscale intensities are returned and
      `binarization="dynamic"` is recorded, so that
      `make_dataset(..., dynamic_binarization=True)` draws fresh bits for
      every batch.
    - `"none"`: grayscale intensities in [0, 1].

    Args:
        source: str or os.PathLike. A dataset name or an IDX directory. A
            string equal to a dataset name always means that dataset; write
            e.g. `"./mnist"` for a directory of that name.
        binarization: str. One of `"static"`, `"threshold"`, `"dynamic"`,
            `"none"`.
        validation_size: int or None. Number of train images to hold out for
            validation, 0 allowed; None for the default above.
        seed: int. Seed of the static binarization of sources that are not
            shipped binarized. A non-negative integer.

    Returns:
        An `ImageData`.

    Raises:
        DatasetError: If an argument is invalid, or the source cannot be
            found, downloaded or read.

    Example:

    >>> data = load("mnist-sample")
    >>> data.x_train.shape, data.x_val.shape, data.x_test.shape
    ((3500, 28, 28), (500, 28, 28), (1000, 28, 28))
    """
    check_binarization(binarization)
    seed = check_seed(seed)
    if validation_size is not None and (
        isinstance(validation_size, bool)
        or not isinstance(validation_size, numbers.Integral)
        or validation_size < 0
    ):
        raise DatasetError(
            "Invalid value received for argument `validation_size`. Expected "
            "None or a non-negative integer. Received: "
            f"validation_size={validation_size!r}"
        )
    data = read_source(source)
    num_train = len(data.x_train)
    if validation_size is None:
        validation_size = data.default_validation_size
    validation_size = int(validation_size)
    if validation_size >= num_train:
        raise DatasetError(
            "Invalid value received for argument `validation_size`. Expected "
            f"None or an integer in [0, {num_train - 1}] for '{data.name}', "
            f"whose train split has {num_train} images. Received: "
            f"validation_size={validation_size}"
        )

    if binarization == "static" and data.static_train is not None:
        x_train, x_test = data.static_train, data.static_test
    elif binarization == "static":
        # The whole train split is drawn at once, before the validation split,
        # so a pixel's bit does not depend on `validation_size`.
        x_train = binarize(data.x_train, "static", seed=_split_seed(seed, 0))
        x_test = binarize(data.x_test, "static", seed=_split_seed(seed, 1))
    elif binarization == "threshold":
        x_train = binarize(data.x_train, "threshold")
        x_test = binarize(data.x_test, "threshold")
    else:  # "dynamic" is drawn by make_dataset; "none" keeps the grayscale.
        x_train, x_test = data.x_train, data.x_test

    cut = num_train - validation_size
    return ImageData(
        x_train=x_train[:cut],
        y_train=data.y_train[:cut],
        x_val=x_train[cut:],
        y_val=data.y_train[cut:],
        x_test=x_test,
        y_test=data.y_test,
        name=data.name,
        source=data.source,
        binarization=binarization,
        image_shape=tuple(int(d) for d in x_train.shape[1:]),
        num_classes=data.num_classes,
    )
