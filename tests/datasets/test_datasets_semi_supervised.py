"""`labelled_subset` and `make_semi_supervised_dataset`."""

import numpy as np
import pytest

from keras_gumbel.datasets import DatasetError
from keras_gumbel.datasets import labelled_subset
from keras_gumbel.datasets import make_semi_supervised_dataset


def test_labelled_subset_is_balanced_seeded_and_a_partition():
    labels = np.repeat(np.arange(10), 30)
    labelled, unlabelled = labelled_subset(labels, 100, seed=3)
    assert np.bincount(labels[labelled]).tolist() == [10] * 10
    assert len(np.intersect1d(labelled, unlabelled)) == 0
    assert sorted(np.concatenate([labelled, unlabelled]).tolist()) == list(range(300))
    again, _ = labelled_subset(labels, 100, seed=3)
    other, _ = labelled_subset(labels, 100, seed=4)
    np.testing.assert_array_equal(labelled, again)
    assert not np.array_equal(labelled, other)


@pytest.mark.parametrize(
    "labels, num_labels, pattern",
    [
        (np.repeat(np.arange(10), 30), 95, "positive multiple of the 10 classes"),
        (np.repeat(np.arange(10), 30), 0, "num_labels"),
        (np.repeat(np.arange(10), 5), 100, "Class 0 has 5 examples"),
        (np.zeros((4, 2), int), 2, "1-D array of integer labels"),
        (np.linspace(0, 1, 10), 2, "1-D array of integer labels"),
    ],
)
def test_labelled_subset_errors_name_the_problem(labels, num_labels, pattern):
    with pytest.raises(DatasetError, match=pattern):
        labelled_subset(labels, num_labels)


def test_every_unlabelled_image_once_per_pass_with_cycled_labelled_batches():
    # Pixel values identify images: unlabelled i -> i, labelled j -> 1000 + j.
    unlabelled = np.arange(23, dtype="float32")[:, None, None] * np.ones((1, 2, 2), "float32")
    labelled = 1000 + np.arange(4, dtype="float32")[:, None, None] * np.ones((1, 2, 2), "float32")
    labels = np.array([0, 1, 0, 1])
    dataset = make_semi_supervised_dataset(labelled, labels, unlabelled, batch_size=5, seed=1)
    for _ in range(2):
        batches = list(dataset)
        assert len(batches) == 5
        seen = np.concatenate([b["x"][:, 0] for b in batches])
        assert sorted(seen.tolist()) == list(range(23))
        for batch in batches:
            assert batch["x"].shape[1] == 4 and batch["labelled_x"].shape == (4, 4)
            ids = batch["labelled_x"][:, 0].numpy().astype(int) - 1000
            # Each labelled batch is a reshuffled cycle, labels kept with images.
            assert sorted(ids.tolist()) == [0, 1, 2, 3]
            np.testing.assert_array_equal(batch["labels"].numpy(), labels[ids])


def test_dynamic_binarization_draws_bits_for_both_streams():
    images = np.full((6, 3, 3), 0.5, "float32")
    dataset = make_semi_supervised_dataset(
        images[:2], np.array([0, 1]), images, batch_size=6, dynamic_binarization=True
    )
    batch = next(iter(dataset))
    for key in ("x", "labelled_x"):
        assert set(np.unique(batch[key]).tolist()) == {0.0, 1.0}


def test_labelled_batch_size_is_checked():
    images = np.zeros((6, 2, 2), "float32")
    with pytest.raises(DatasetError, match="labelled_batch_size.*from 1 to the 2 labelled"):
        make_semi_supervised_dataset(
            images[:2], np.array([0, 1]), images, batch_size=4, labelled_batch_size=3
        )
