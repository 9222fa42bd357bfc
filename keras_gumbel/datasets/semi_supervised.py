"""Labelled subsets and the paired labelled/unlabelled pipeline of model M2."""

import numbers

import numpy as np

from keras_gumbel._extras import import_tensorflow
from keras_gumbel.datasets.binarize import check_seed
from keras_gumbel.datasets.errors import DatasetError
from keras_gumbel.datasets.pipeline import make_dataset


def labelled_subset(labels, num_labels=100, *, seed=0):
    """Picks a class-balanced set of examples to keep the labels of.

    Args:
        labels: array-like. `(N,)` integer class labels.
        num_labels: int. How many labels to keep; a multiple of the number
            of classes (100 labels of 10 classes: 10 per class, the
            semi-supervised setting of Kingma et al. 2014).
        seed: int. Seed of the choice.

    Returns:
        `(labelled, unlabelled)`: sorted int64 index arrays that partition
        `range(N)`.

    Raises:
        DatasetError: If `num_labels` is not a positive multiple of the
            number of classes, or a class has fewer examples than its share.

    Example:

    >>> import numpy as np
    >>> labelled, unlabelled = labelled_subset(np.arange(50) % 10, 20)
    >>> len(labelled), len(unlabelled)
    (20, 30)
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(
            "Invalid value received for argument `labels`. Expected a 1-D array "
            f"of integer labels. Received: shape {labels.shape}, dtype {labels.dtype}"
        )
    if labels.size and labels.min() < 0:
        raise DatasetError(
            "Invalid value received for argument `labels`. Expected class labels "
            f"0, 1, 2, ...; found {labels.min()} (a dataset without labels, such as the "
            "binarized MNIST .amat files, cannot train a semi-supervised model)"
        )
    classes = np.unique(labels)
    if (
        isinstance(num_labels, bool)
        or not isinstance(num_labels, numbers.Integral)
        or num_labels < len(classes)
        or num_labels % len(classes)
    ):
        raise DatasetError(
            "Invalid value received for argument `num_labels`. Expected a "
            f"positive multiple of the {len(classes)} classes. Received: "
            f"num_labels={num_labels!r}"
        )
    per_class = num_labels // len(classes)
    rng = np.random.default_rng(check_seed(seed))
    chosen = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise DatasetError(
                f"Class {c} has {len(members)} examples, fewer than the "
                f"{per_class} labels per class that num_labels={num_labels} asks for."
            )
        chosen.append(rng.choice(members, per_class, replace=False))
    labelled = np.sort(np.concatenate(chosen)).astype(np.int64)
    unlabelled = np.setdiff1d(np.arange(len(labels)), labelled).astype(np.int64)
    return labelled, unlabelled


def make_semi_supervised_dataset(
    labelled_images,
    labels,
    unlabelled_images,
    *,
    batch_size,
    labelled_batch_size=None,
    seed=0,
    dynamic_binarization=False,
):
    """Pairs every unlabelled batch with a labelled one, for `SemiSupervisedVAE.fit`.

    A pass (a Keras epoch) visits every unlabelled image once; the few
    labelled images are cycled through, reshuffled on every cycle, so every
    step sees `labelled_batch_size` of them.

    Args:
        labelled_images: array-like. `(L, ...)` images whose labels are kept.
        labels: array-like. `(L,)` integer labels.
        unlabelled_images: array-like. `(U, ...)` images.
        batch_size: int. Unlabelled images per batch.
        labelled_batch_size: int or None. Labelled images per batch; defaults
            to `min(batch_size, L)`.
        seed: int. Seed of the orders and of the dynamic bits.
        dynamic_binarization: bool. Whether to draw fresh bits for every
            batch from grayscale intensities.

    Returns:
        A `tf.data.Dataset` of dicts `{"x": unlabelled, "labelled_x":
        labelled, "labels": int64 labels}`, images flattened.

    Raises:
        DatasetError: If an argument is invalid.
    """
    tf = import_tensorflow("keras_gumbel.datasets.make_semi_supervised_dataset")
    seed = check_seed(seed)
    num_labelled = len(labelled_images)
    if labelled_batch_size is None:
        labelled_batch_size = min(batch_size, num_labelled)
    if (
        isinstance(labelled_batch_size, bool)
        or not isinstance(labelled_batch_size, numbers.Integral)
        or not 1 <= labelled_batch_size <= num_labelled
    ):
        raise DatasetError(
            "Invalid value received for argument `labelled_batch_size`. "
            f"Expected an integer from 1 to the {num_labelled} labelled images. "
            f"Received: labelled_batch_size={labelled_batch_size!r}"
        )
    common = {"dynamic_binarization": dynamic_binarization, "shuffle": True}
    unlabelled = make_dataset(unlabelled_images, batch_size=batch_size, seed=seed, **common)
    labelled = make_dataset(
        labelled_images,
        labels,
        batch_size=labelled_batch_size,
        seed=seed + 1,
        drop_remainder=True,
        repeat=True,
        **common,
    )
    pairs = tf.data.Dataset.zip((unlabelled, labelled))
    return pairs.map(lambda x, xy: {"x": x, "labelled_x": xy[0], "labels": xy[1]})
