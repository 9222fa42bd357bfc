"""Where image data comes from: the shipped sample, keras.datasets, IDX files.

Each reader returns a `SourceData`: grayscale train and test splits as the
source defines them, plus the shipped static bits where there are some.
Splitting off validation data and binarizing is left to `load`.
"""

import dataclasses
import importlib.resources
import io
import os
import zipfile

import keras
import numpy as np

from keras_gumbel.datasets import amat
from keras_gumbel.datasets.errors import DatasetError
from keras_gumbel.datasets.idx import read_idx

SAMPLE_NAME = "mnist-sample"
KERAS_DATASETS = ("mnist", "fashion_mnist")

IDX_HINT = "a directory of IDX files (*-images-idx3-ubyte[.gz], *-labels-idx1-ubyte[.gz])"
AMAT_HINT = "a directory of binarized_mnist_{train,valid,test}.amat files"
ALTERNATIVES = (
    f"Use one of: '{SAMPLE_NAME}' (ships with the package), "
    + ", ".join(f"'{name}'" for name in KERAS_DATASETS)
    + f" (keras.datasets, needs internet), {IDX_HINT}, or {AMAT_HINT}"
)

# File names looked for in an IDX directory, in order of preference: the
# names MNIST and Fashion-MNIST are distributed under, then the dotted
# variant some mirrors use, each raw before gzipped (raw reads faster).
_IDX_STEMS = {
    "train images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}

_SAMPLE_FORMAT_VERSION = 1
_SAMPLE_KEYS = (
    "labels",
    "intensities_4bit",
    "static_bits",
    "split_sizes",
    "image_shape",
    "format_version",
)


@dataclasses.dataclass(frozen=True, eq=False)
class SourceData:
    """Train and test splits of one source, before validation split and binarization.

    Attributes:
        name: str. Short dataset name.
        source: str. Where the data came from, for people.
        x_train: np.ndarray. float32 `(N, H, W)` intensities in [0, 1].
        y_train: np.ndarray. int64 `(N,)` labels.
        x_test: np.ndarray. float32 `(M, H, W)` intensities in [0, 1].
        y_test: np.ndarray. int64 `(M,)` labels.
        default_validation_size: int. Images at the end of the train split
            that `load` holds out for validation unless told otherwise.
        num_classes: int. Number of label classes.
        static_train: np.ndarray or None. Shipped static binarization of
            `x_train` (float32 0/1), or None when it must be drawn.
        static_test: np.ndarray or None. Same for `x_test`.
    """

    name: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    default_validation_size: int
    num_classes: int
    static_train: np.ndarray = None
    static_test: np.ndarray = None


def default_validation_size(num_train):
    """The paper's 10,000 held-out digits for full MNIST, else a sixth of train."""
    return 10_000 if num_train >= 60_000 else num_train // 6


def read_source(source):
    """Reads a source given by name or directory path.

    Args:
        source: str or os.PathLike. `"mnist-sample"`, `"mnist"`,
            `"fashion_mnist"`, or a directory holding MNIST IDX files. A
            string equal to one of the names always means that dataset; pass
            e.g. `"./mnist"` for a directory of that name.

    Returns:
        A `SourceData`.

    Raises:
        DatasetError: If the source is unknown or cannot be read.
    """
    if isinstance(source, str) and source == SAMPLE_NAME:
        return read_sample()
    if isinstance(source, str) and source in KERAS_DATASETS:
        return read_keras_dataset(source)
    if isinstance(source, (str, os.PathLike)):
        path = os.path.expanduser(os.fspath(source))
        if os.path.isdir(path) and amat.is_amat_directory(path):
            return read_amat_source(path)
        if os.path.isdir(path):
            return read_idx_directory(path)
        if os.path.exists(path):
            problem = "it is a file, not a directory"
        else:
            problem = "it is neither a dataset name nor an existing directory"
        raise DatasetError(f"Unknown dataset source {source!r}: {problem}. {ALTERNATIVES}.")
    raise DatasetError(
        "Invalid value received for argument `source`. Expected a dataset name "
        f"or a directory path. Received: source={source!r}. {ALTERNATIVES}."
    )


def _sample_resource():
    package = importlib.resources.files("keras_gumbel.datasets")
    return package / "data" / "mnist_sample.npz"


def read_sample():
    """Reads the 5,000-digit MNIST sample shipped inside the package.

    The digits come stored in the order train (3,500), validation (500), test
    (1,000), a stratified split fixed when the file was made (see
    `data/make_mnist_sample.py`). Train and validation are returned together
    as the train split, with a default validation size of 500, so that `load`
    splits them off like any other source.

    Returns:
        A `SourceData` with the shipped static bits attached.

    Raises:
        DatasetError: If the file is missing or damaged.
    """
    resource = _sample_resource()
    damaged = (
        f"The MNIST sample shipped with keras_gumbel ('{resource}') is missing "
        "or damaged; reinstall keras-gumbel, or use 'mnist', 'fashion_mnist' "
        f"(keras.datasets, needs internet) or {IDX_HINT}"
    )
    try:
        with np.load(io.BytesIO(resource.read_bytes()), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in _SAMPLE_KEYS}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DatasetError(f"{damaged} ({type(e).__name__}: {e}).") from e
    if int(arrays["format_version"]) != _SAMPLE_FORMAT_VERSION:
        raise DatasetError(
            f"{damaged} (format version {int(arrays['format_version'])}, "
            f"expected {_SAMPLE_FORMAT_VERSION})."
        )
    labels = arrays["labels"].astype(np.int64)
    height, width = (int(d) for d in arrays["image_shape"])
    num_pixels = height * width
    num_images = len(labels)
    num_train, num_val, num_test = (int(s) for s in arrays["split_sizes"])
    packed = arrays["intensities_4bit"]
    if (
        num_train + num_val + num_test != num_images
        or packed.shape != (num_images, num_pixels // 2)
        or arrays["static_bits"].shape != (num_images, (num_pixels + 7) // 8)
    ):
        raise DatasetError(f"{damaged} (array shapes do not agree).")
    # Two 4-bit levels per byte, the high nibble first; level q is q / 15.
    levels = np.empty((num_images, num_pixels), dtype=np.uint8)
    levels[:, 0::2] = packed >> 4
    levels[:, 1::2] = packed & 0x0F
    images = (levels.astype(np.float32) / np.float32(15)).reshape(-1, height, width)
    bits = np.unpackbits(arrays["static_bits"], axis=1, count=num_pixels)
    bits = bits.astype(np.float32).reshape(-1, height, width)
    pool = num_train + num_val
    return SourceData(
        name=SAMPLE_NAME,
        source="5,000-digit MNIST sample shipped with keras_gumbel",
        x_train=images[:pool],
        y_train=labels[:pool],
        x_test=images[pool:],
        y_test=labels[pool:],
        default_validation_size=num_val,
        num_classes=int(labels.max()) + 1,
        static_train=bits[:pool],
        static_test=bits[pool:],
    )


def read_keras_dataset(name):
    """Reads `"mnist"` or `"fashion_mnist"` through `keras.datasets`.

    Keras downloads the data on first use and caches it in `~/.keras/datasets`.

    Args:
        name: str. `"mnist"` or `"fashion_mnist"`.

    Returns:
        A `SourceData` with the train and test splits Keras defines.

    Raises:
        DatasetError: If the download or the loading fails.
    """
    try:
        loader = getattr(keras.datasets, name).load_data
        (x_train, y_train), (x_test, y_test) = loader()
    except Exception as e:
        reason = (str(e).strip().splitlines() or [""])[0][:200]
        raise DatasetError(
            f"Could not load '{name}' with keras.datasets.{name}.load_data(), "
            f"which downloads it and needs internet ({type(e).__name__}: "
            f"{reason}). Use '{SAMPLE_NAME}' (ships with the package) or "
            f"{IDX_HINT} instead."
        ) from e
    where = f"keras.datasets.{name}"
    return _source_from_arrays(name, where, x_train, y_train, x_test, y_test, where)


def _find_idx_file(directory, stems):
    for stem in stems:
        for suffix in ("", ".gz"):
            path = os.path.join(directory, stem + suffix)
            if os.path.isfile(path):
                return path
    return None


def read_idx_directory(directory):
    """Reads a directory of MNIST-format IDX files, of any image size.

    The directory must hold the four files `train-images-idx3-ubyte`,
    `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
    `t10k-labels-idx1-ubyte`, each raw or gzipped (`.gz`); the dotted names
    `train-images.idx3-ubyte` etc. are accepted too.

    Args:
        directory: str or os.PathLike. The directory.

    Returns:
        A `SourceData` named after the directory.

    Raises:
        DatasetError: If a file is missing or invalid, or image and label
            counts disagree.
    """
    directory = os.path.abspath(os.fspath(directory))
    paths = {key: _find_idx_file(directory, stems) for key, stems in _IDX_STEMS.items()}
    missing = [_IDX_STEMS[key][0] + "[.gz]" for key, path in paths.items() if not path]
    if missing:
        try:
            present = sorted(os.listdir(directory))
        except OSError:
            present = []
        found = ", ".join(present[:8]) + (", ..." if len(present) > 8 else "")
        raise DatasetError(
            f"IDX directory '{directory}' lacks {', '.join(missing)} "
            f"(found: {found or 'nothing, it is empty'}). {ALTERNATIVES}."
        )
    arrays = {key: read_idx(path) for key, path in paths.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split} images"], arrays[f"{split} labels"]
        if images.ndim == 3 and labels.ndim == 1 and len(images) != len(labels):
            raise DatasetError(
                f"IDX directory '{directory}': {len(images)} {split} images in "
                f"'{paths[f'{split} images']}' but {len(labels)} labels in "
                f"'{paths[f'{split} labels']}'; the counts must agree."
            )
    return _source_from_arrays(
        os.path.basename(directory) or directory,
        directory,
        arrays["train images"],
        arrays["train labels"],
        arrays["test images"],
        arrays["test labels"],
        where=f"IDX directory '{directory}'",
        files=paths,
    )


def read_amat_source(directory):
    """Reads the binarized MNIST of Larochelle & Murray (2011) from `.amat` files.

    The fixed split is kept: `train` then `valid` form the train split, and
    `load`'s default validation size is the `valid` file's length, so the
    default validation images are exactly that file's. The images are
    already binary, so every binarization returns them unchanged. The files
    have no labels: every label is `amat.NO_LABEL` (-1) and `num_classes`
    is 0.
    """
    directory = os.path.abspath(os.fspath(directory))
    splits = amat.read_amat_directory(directory)
    x_train = np.concatenate([splits["train"], splits["valid"]])
    x_test = splits["test"]
    return SourceData(
        name="binarized_mnist",
        source=f"binarized MNIST (Larochelle & Murray, 2011) in '{directory}'",
        x_train=x_train,
        y_train=np.full(len(x_train), amat.NO_LABEL, np.int64),
        x_test=x_test,
        y_test=np.full(len(x_test), amat.NO_LABEL, np.int64),
        default_validation_size=len(splits["valid"]),
        num_classes=0,
        static_train=x_train,
        static_test=x_test,
    )


def _to_intensities(images, where, what):
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255)
    if np.issubdtype(images.dtype, np.floating):
        if images.size and not (images.min() >= 0.0 and images.max() <= 1.0):
            raise DatasetError(
                f"{where}: {what} are floats outside [0, 1] "
                f"(range [{images.min()}, {images.max()}]); expected uint8 "
                "pixels 0..255 or float intensities in [0, 1]."
            )
        return images.astype(np.float32)
    raise DatasetError(
        f"{where}: {what} have dtype {images.dtype}; expected uint8 pixels "
        "0..255 or float intensities in [0, 1]."
    )


def _to_labels(labels, where, what):
    if not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(
            f"{where}: {what} have dtype {labels.dtype}; expected integer class labels."
        )
    if labels.size and labels.min() < 0:
        raise DatasetError(
            f"{where}: {what} include the negative label {labels.min()}; "
            "expected class labels 0, 1, 2, ..."
        )
    return labels.astype(np.int64)


def _source_from_arrays(name, source, x_train, y_train, x_test, y_test, where, files=None):
    """Validates raw train/test arrays and converts them for `SourceData`."""
    files = files or {}
    raw = {
        "train images": np.asarray(x_train),
        "train labels": np.asarray(y_train),
        "test images": np.asarray(x_test),
        "test labels": np.asarray(y_test),
    }

    def what(key):
        return f"{key} ('{files[key]}')" if key in files else key

    for key, array in raw.items():
        expected_ndim = 3 if key.endswith("images") else 1
        if array.ndim != expected_ndim:
            layout = "(N, H, W)" if expected_ndim == 3 else "(N,)"
            raise DatasetError(f"{where}: {what(key)} have shape {array.shape}; expected {layout}.")
    if raw["train images"].shape[1:] != raw["test images"].shape[1:]:
        raise DatasetError(
            f"{where}: train images are {raw['train images'].shape[1:]} but "
            f"test images are {raw['test images'].shape[1:]}; they must match."
        )
    for split in ("train", "test"):
        n_images, n_labels = len(raw[f"{split} images"]), len(raw[f"{split} labels"])
        if n_images != n_labels:
            raise DatasetError(
                f"{where}: {n_images} {split} images but {n_labels} {split} "
                "labels; the counts must agree."
            )
    if len(raw["train images"]) == 0:
        raise DatasetError(f"{where}: the train split is empty. {ALTERNATIVES}.")
    y_train = _to_labels(raw["train labels"], where, what("train labels"))
    y_test = _to_labels(raw["test labels"], where, what("test labels"))
    num_classes = int(max(y_train.max(), y_test.max(initial=0))) + 1
    return SourceData(
        name=name,
        source=source,
        x_train=_to_intensities(raw["train images"], where, what("train images")),
        y_train=y_train,
        x_test=_to_intensities(raw["test images"], where, what("test images")),
        y_test=y_test,
        default_validation_size=default_validation_size(len(y_train)),
        num_classes=num_classes,
    )
