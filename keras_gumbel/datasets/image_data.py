"""The container `load` returns: an image dataset split three ways."""

import dataclasses

import numpy as np

from keras_gumbel.datasets.errors import DatasetError


# eq=False: comparing NumPy arrays element-wise has no single truth value.
@dataclasses.dataclass(frozen=True, eq=False)
class ImageData:
    """Train, validation and test splits of a grayscale image dataset.

    Images are float32 arrays of shape `(N, H, W)` with values in [0, 1]:
    binary (0.0 or 1.0) for the `"static"` and `"threshold"` binarizations,
    grayscale intensities for `"dynamic"` (binarized later, per batch, by
    `make_dataset`) and `"none"`. Labels are int64 arrays of shape `(N,)`.

    Attributes:
        x_train: np.ndarray. Training images.
        y_train: np.ndarray. Training labels.
        x_val: np.ndarray. Validation images (possibly empty).
        y_val: np.ndarray. Validation labels.
        x_test: np.ndarray. Test images.
        y_test: np.ndarray. Test labels.
        name: str. Short name of the dataset, e.g. `"mnist-sample"`.
        source: str. Where the data came from, for people: a path or a
            description.
        binarization: str. One of `"static"`, `"threshold"`, `"dynamic"`,
            `"none"`.
        image_shape: tuple. `(H, W)`.
        num_classes: int. Number of label classes.

    Example:

    >>> from keras_gumbel.datasets import load
    >>> data = load("mnist-sample")
    >>> data.x_train.shape, data.image_shape
    ((3500, 28, 28), (28, 28))
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    source: str
    binarization: str
    image_shape: tuple
    num_classes: int

    def __post_init__(self):
        splits = {
            "train": (self.x_train, self.y_train),
            "val": (self.x_val, self.y_val),
            "test": (self.x_test, self.y_test),
        }
        for split, (x, y) in splits.items():
            if x.shape[1:] != tuple(self.image_shape) or x.shape[:1] != y.shape:
                raise DatasetError(
                    f"Inconsistent {split} split of '{self.name}': images of "
                    f"shape {x.shape} and labels of shape {y.shape}, expected "
                    f"(N, *{tuple(self.image_shape)}) and (N,)."
                )

    def summary(self):
        """Returns a one-line description of the dataset.

        Returns:
            A string such as `"mnist-sample: 3,500 train / 500 val / 1,000
            test images of 28x28, 10 classes, binarization: static (from:
            ...)"`.
        """
        height_width = "x".join(str(d) for d in self.image_shape)
        return (
            f"{self.name}: {len(self.x_train):,} train / {len(self.x_val):,} val"
            f" / {len(self.x_test):,} test images of {height_width}, "
            f"{self.num_classes} classes, binarization: {self.binarization} "
            f"(from: {self.source})"
        )

    def __repr__(self):
        # The generated repr would print every pixel.
        return f"<ImageData {self.summary()}>"
