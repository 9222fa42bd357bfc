"""Sorting multi-digit MNIST numbers from their images (Grover et al., ICLR 2019).

The "large-MNIST" task of NeuralSort: a number is four MNIST digits side by
side (a 28 x 112 image, 0000 to 9999); a sequence holds n numbers; the only
supervision is the permutation that sorts them. A CNN shared by the images
gives one score per image, `keras_gumbel.RelaxedSort` (NeuralSort, or
SoftSort with `--method softsort`; Plackett-Luce sampling with
`--noise-factor 1`) relaxes the sorting permutation of the scores, and the
loss is the row-wise cross-entropy against the true sorting permutation
(row i: the number of rank i, largest first). The Gumbel-Sinkhorn baseline
(`--method gumbel_sinkhorn`) has the CNN give n scores per image, one per
rank, and `keras_gumbel.GumbelSinkhorn` relaxes the permutation; at test it
uses the exact matching.

Metrics (Grover et al., Table 1): exact-match, the share of test sequences
with all n ranks right, and element-wise, the share of ranks right. A rank
counts as right when the number put there has the value that belongs there,
so tied numbers may trade places.

Training and test sequences are drawn from the MNIST train and test splits
with fixed seeds (the test sequences depend on `--seed` and n only).

    python -m benchmarks.permutations.mnist_sort unit --n 3 --data MNIST_DIR
    python -m benchmarks.permutations.mnist_sort report
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_gumbel as kg  # noqa: E402
from benchmarks.permutations import common  # noqa: E402
from keras_gumbel.datasets.sources import read_source  # noqa: E402

EXPERIMENT = "mnist_sort"
MODULE = "benchmarks.permutations.mnist_sort"
METHODS = ("neuralsort", "softsort", "gumbel_sinkhorn")
DIGITS = 4
KEYS = (
    "n",
    "method",
    "data",
    "temperature",
    "noise_factor",
    "num_iters",
    "num_test",
)


def make_sequences(rng, images, labels, count, n):
    """`count` sequences of n four-digit numbers: uint8 images `[count, n, 28, 112]`, values."""
    picks = rng.integers(0, len(images), size=(count, n, DIGITS))
    pixels = images[picks]  # [count, n, DIGITS, 28, 28]
    pixels = pixels.transpose(0, 1, 3, 2, 4).reshape(count, n, 28, 28 * DIGITS)
    values = np.zeros((count, n), "int64")
    for d in range(DIGITS):
        values = values * 10 + labels[picks[..., d]]
    return pixels, values


def sorting_indices(values):
    """Item of each rank, largest first (ties: lower index first)."""
    return np.argsort(-values, axis=-1, kind="stable")


def target_matrices(values, method):
    """The true permutation in the orientation of the method's output."""
    n = values.shape[-1]
    matrix = np.eye(n, dtype="float32")[sorting_indices(values)]  # [rank, item]
    return matrix.transpose(0, 2, 1) if method == "gumbel_sinkhorn" else matrix


class Sequences(keras.utils.PyDataset):
    """One chunk of training batches, each a pure function of (seed, chunk, index)."""

    def __init__(self, images, labels, n, method, batch_size, steps, seed, chunk):
        super().__init__()
        self.images, self.labels = images, labels
        self.n, self.method = n, method
        self.batch_size, self.steps = batch_size, steps
        self.seed, self.chunk = seed, chunk

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, self.chunk, index])
        x, values = make_sequences(rng, self.images, self.labels, self.batch_size, self.n)
        return x[..., None], target_matrices(values, self.method)


def image_scorer(outputs):
    """The CNN shared by the images: a 28 x 112 uint8 image -> `outputs` scores."""
    return keras.Sequential(
        [
            keras.Input((28, 28 * DIGITS, 1)),
            keras.layers.Rescaling(1.0 / 255.0),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(outputs),
        ],
        name="image_scorer",
    )


def build_models(n, method, temperature, noise_factor, num_iters, seed):
    """The training model (relaxed permutation) and the test model (exact ranks)."""
    images = keras.Input((n, 28, 28 * DIGITS, 1), name="images")
    if method == "gumbel_sinkhorn":
        log_alpha = keras.layers.TimeDistributed(image_scorer(n))(images)  # [item, rank]
        relaxed = kg.GumbelSinkhorn(
            temperature=temperature, num_iters=num_iters, noise_factor=noise_factor, seed=seed
        )(log_alpha)
        exact = kg.GumbelSinkhorn(hard=True, num_iters=1, name="exact_matching")(log_alpha)
        # The item of each rank: transpose the [item, rank] permutation matrix.
        exact = keras.layers.Permute((2, 1))(exact)
    else:
        scores = keras.layers.TimeDistributed(image_scorer(1))(images)
        scores = keras.layers.Reshape((n,))(scores)
        relaxed = kg.RelaxedSort(
            temperature=temperature, method=method, noise_factor=noise_factor, seed=seed
        )(scores)
        exact = kg.RelaxedSort(hard=True, method=method, name="exact_sort")(scores)
    return keras.Model(images, relaxed), keras.Model(images, exact)


def parse(argv):
    parser = argparse.ArgumentParser(prog=MODULE, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    unit = sub.add_parser("unit", help="train and evaluate one n and method")
    unit.add_argument("--n", type=int, required=True)
    unit.add_argument("--method", choices=METHODS, default="neuralsort")
    unit.add_argument("--data", required=True, help="an MNIST IDX directory, or mnist-sample")
    unit.add_argument("--temperature", type=float, default=1.0)
    unit.add_argument("--noise-factor", type=float, default=0.0)
    unit.add_argument("--num-iters", type=int, default=20)
    unit.add_argument("--num-test", type=int, default=1000)
    common.add_training_arguments(unit, 2000, 250, 16, 1e-3)
    report = sub.add_parser("report", help="assemble the units into the tables and figure")
    report.add_argument("--results", default=str(common.RESULTS))
    return parser.parse_args(argv)


def unit_name(args):
    name = f"{args.method}__n{args.n:02d}"
    if args.noise_factor and args.method != "gumbel_sinkhorn":
        name += "__stochastic"
    return common.tagged(name, args)


def as_uint8(images):
    return np.round(images * 255.0).astype("uint8")


def run_unit(args):
    name = unit_name(args)
    out = common.units_dir(EXPERIMENT, args.results) / f"{name}.json"
    if out.exists():
        print(f"{out} exists; nothing to do")
        return out
    data = read_source(args.data)
    train_images, test_images = as_uint8(data.x_train), as_uint8(data.x_test)
    keras.utils.set_random_seed(args.seed)
    train_model, test_model = build_models(
        args.n, args.method, args.temperature, args.noise_factor, args.num_iters, args.seed
    )
    train_model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate), loss="categorical_crossentropy"
    )

    def chunk_data(chunk):
        batches = Sequences(
            train_images,
            data.y_train,
            args.n,
            args.method,
            args.batch_size,
            args.chunk_steps,
            args.seed,
            chunk,
        )
        return {"x": batches}

    state = common.train_resumable(
        train_model,
        Path(args.runs_dir) / EXPERIMENT / name,
        common.num_chunks(args),
        chunk_data,
        log=lambda line: print(f"[{EXPERIMENT} {name}] {line}", flush=True),
    )
    rng = np.random.default_rng([args.seed, args.n, 10**6])
    x_test, values = make_sequences(rng, test_images, data.y_test, args.num_test, args.n)
    matrices = test_model.predict(x_test[..., None], batch_size=50, verbose=0)
    predicted_items = np.argmax(matrices, axis=-1)  # item put at each rank
    predicted_values = np.take_along_axis(values, predicted_items, axis=-1)
    true_values = -np.sort(-values, axis=-1)
    metrics = common.rank_metrics(predicted_values, true_values)
    path = common.finish_unit(
        EXPERIMENT,
        name,
        common.config_of(args, KEYS) | {"data": common.portable(args.data, "MNIST_DIR")},
        metrics,
        state,
        common.unit_command(MODULE, args, KEYS, data_key="data"),
        results=args.results,
    )
    print(f"[{EXPERIMENT} {name}] {metrics} -> {path}", flush=True)
    return path


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.command == "unit":
        run_unit(args)
    else:
        from benchmarks.permutations import report

        report.report(EXPERIMENT, args.results)


if __name__ == "__main__":
    main()
