"""Binarized MNIST-family image data for the Gumbel-Softmax paper's models.

`load` reads a 5,000-digit MNIST sample that ships with the package, MNIST or
Fashion-MNIST through `keras.datasets`, or any directory of MNIST-format IDX
files, and returns an `ImageData` with train, validation and test splits,
binarized statically, by threshold, or left grayscale for dynamic
binarization. `make_dataset` turns the arrays into batched `tf.data`
pipelines (drawing dynamic bits per batch), and `split_halves` cuts images
into upper and lower halves for structured output prediction.

Example:

>>> from keras_gumbel import datasets
>>> data = datasets.load("mnist-sample", binarization="static")
>>> train = datasets.make_dataset(data.x_train, batch_size=100)
>>> upper, lower = datasets.split_halves(data.x_test)
"""

from keras_gumbel.datasets.binarize import BINARIZATIONS
from keras_gumbel.datasets.binarize import binarize
from keras_gumbel.datasets.errors import DatasetError
from keras_gumbel.datasets.idx import read_idx
from keras_gumbel.datasets.image_data import ImageData
from keras_gumbel.datasets.loading import load
from keras_gumbel.datasets.pipeline import make_dataset
from keras_gumbel.datasets.pipeline import split_halves
from keras_gumbel.datasets.semi_supervised import labelled_subset
from keras_gumbel.datasets.semi_supervised import make_semi_supervised_dataset

__all__ = [
    "BINARIZATIONS",
    "DatasetError",
    "ImageData",
    "binarize",
    "labelled_subset",
    "load",
    "make_dataset",
    "make_semi_supervised_dataset",
    "read_idx",
    "split_halves",
]
