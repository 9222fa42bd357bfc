"""Jigsaw puzzles on MNIST with Gumbel-Sinkhorn (Mena et al., ICLR 2018, section 5.2).

A digit is cut into a k x k grid of pieces (28 x 28 images; for k = 3 the
last row and column are cropped to 27 x 27), and the pieces are shuffled. A
network shared by the pieces scores each piece against each of the k^2
positions, giving `log_alpha [k^2, k^2]` (row: shuffled piece, column:
position). `keras_gumbel.GumbelSinkhorn` relaxes the permutation in
training; the loss is the squared error between the digit's pieces in their
places and `P^T pieces`, the reconstruction through the relaxed
permutation. At test the permutation is the exact matching
(`GumbelSinkhorn(hard=True)` at inference).

Metrics: the share of positions that receive the right piece, the share of
puzzles solved exactly (every position right), and the per-pixel L1 and RMSE
of the reconstructed image against the digit. A position counts as right
when it receives the right pixels, so identical pieces (blank corners) may
trade places; the stricter share of pieces put at their own index is kept
as `pieces_at_own_index` and `puzzles_all_at_own_index`.

    python -m benchmarks.permutations.jigsaw unit --k 2 --data MNIST_DIR
    python -m benchmarks.permutations.jigsaw report
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

EXPERIMENT = "jigsaw"
MODULE = "benchmarks.permutations.jigsaw"
KEYS = (
    "k",
    "data",
    "hidden",
    "temperature",
    "final_temperature",
    "num_iters",
    "noise_factor",
    "num_test",
)


def to_pieces(images, k):
    """`[N, H, W]` images -> `[N, k * k, (H // k) * (W // k)]` pieces, row-major."""
    size = images.shape[1] // k
    images = images[:, : size * k, : size * k]
    n = len(images)
    pieces = images.reshape(n, k, size, k, size).transpose(0, 1, 3, 2, 4)
    return pieces.reshape(n, k * k, size * size)


def from_pieces(pieces, k):
    """The inverse of `to_pieces`: `[N, k * k, s * s]` -> `[N, k * s, k * s]`."""
    n, _, d = pieces.shape
    size = int(round(d**0.5))
    grid = pieces.reshape(n, k, k, size, size).transpose(0, 1, 3, 2, 4)
    return grid.reshape(n, k * size, k * size)


def scramble(rng, pieces):
    """Shuffles each puzzle's pieces; returns them and each shuffled piece's true position."""
    n, m, _ = pieces.shape
    positions = np.argsort(rng.random((n, m)), axis=-1)  # shuffled piece i sits at positions[i]
    shuffled = np.take_along_axis(pieces, positions[:, :, None], axis=1)
    return shuffled.astype("float32"), positions


def build_models(k, piece_size, hidden, temperature, num_iters, noise_factor, seed):
    m = k * k
    pieces = keras.Input((m, piece_size), name="pieces")
    h = keras.layers.Dense(hidden, activation="relu", name="hidden")(pieces)
    h = keras.layers.Dense(hidden, activation="relu", name="hidden2")(h)
    log_alpha = keras.layers.Dense(m, name="scores")(h)  # [batch, piece, position]
    relaxed = kg.GumbelSinkhorn(
        temperature=temperature, num_iters=num_iters, noise_factor=noise_factor, seed=seed
    )(log_alpha)
    # ordered[j] = sum_i P[i, j] piece_i
    reconstruction = keras.layers.Dot(axes=(1, 1))([relaxed, pieces])
    train_model = keras.Model(pieces, reconstruction, name="jigsaw")
    exact = kg.GumbelSinkhorn(hard=True, num_iters=1, name="exact_matching")(log_alpha)
    return train_model, keras.Model(pieces, exact, name="jigsaw_test")


def parse(argv):
    parser = argparse.ArgumentParser(prog=MODULE, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    unit = sub.add_parser("unit", help="train and evaluate one grid size")
    unit.add_argument("--k", type=int, required=True)
    unit.add_argument("--data", required=True, help="an MNIST IDX directory, or mnist-sample")
    unit.add_argument("--hidden", type=int, default=64)
    unit.add_argument("--temperature", type=float, default=1.0)
    unit.add_argument("--final-temperature", type=float, default=None)
    unit.add_argument("--num-iters", type=int, default=20)
    unit.add_argument("--noise-factor", type=float, default=1.0)
    unit.add_argument("--num-test", type=int, default=2000)
    common.add_training_arguments(unit, 3000, 500, 32, 3e-3)
    report = sub.add_parser("report", help="assemble the units into the tables and figure")
    report.add_argument("--results", default=str(common.RESULTS))
    return parser.parse_args(argv)


def unit_name(args):
    return common.tagged(f"k{args.k}", args)


def temperature_callbacks(args):
    if args.final_temperature is None:
        return []
    schedule = kg.schedules.LinearDecay(
        initial=args.temperature, final=args.final_temperature, steps=args.steps
    )
    return [kg.TemperatureScheduler(schedule)]


def evaluate(test_model, pieces, positions, shuffled, k):
    matrices = test_model.predict(shuffled, batch_size=200, verbose=0)
    predicted = np.argmax(matrices, axis=-1)
    by_index = common.rank_metrics(predicted, positions)
    ordered = np.einsum("bij,bid->bjd", matrices, shuffled)
    truth, recovered = from_pieces(pieces, k), from_pieces(ordered, k)
    # A position is right when it holds the right pixels: identical pieces
    # (blank corners) may trade places.
    right = np.all(ordered == pieces, axis=-1)
    metrics = {
        "num_test": by_index["num_test"],
        "pieces_in_place": float(np.mean(right)),
        "puzzles_solved": float(np.mean(np.all(right, axis=-1))),
        "pieces_at_own_index": by_index["elementwise"],
        "puzzles_all_at_own_index": by_index["exact"],
    }
    metrics["prop_wrong"] = 1.0 - metrics["pieces_in_place"]
    metrics["prop_any_wrong"] = 1.0 - metrics["puzzles_solved"]
    metrics["l1"] = float(np.mean(np.abs(recovered - truth)))
    metrics["rmse"] = float(np.sqrt(np.mean((recovered - truth) ** 2)))
    return metrics, recovered


def run_unit(args):
    name = unit_name(args)
    out = common.units_dir(EXPERIMENT, args.results) / f"{name}.json"
    if out.exists():
        print(f"{out} exists; nothing to do")
        return out
    data = read_source(args.data)
    train_pieces = to_pieces(data.x_train, args.k)
    keras.utils.set_random_seed(args.seed)
    train_model, test_model = build_models(
        args.k,
        train_pieces.shape[-1],
        args.hidden,
        args.temperature,
        args.num_iters,
        args.noise_factor,
        args.seed,
    )
    train_model.compile(optimizer=keras.optimizers.Adam(args.learning_rate), loss="mse")
    count = args.chunk_steps * args.batch_size

    def chunk_data(chunk):
        rng = np.random.default_rng([args.seed, chunk])
        chosen = train_pieces[rng.integers(0, len(train_pieces), count)]
        shuffled, _ = scramble(rng, chosen)
        return {"x": shuffled, "y": chosen, "batch_size": args.batch_size}

    state = common.train_resumable(
        train_model,
        Path(args.runs_dir) / EXPERIMENT / name,
        common.num_chunks(args),
        chunk_data,
        callbacks=temperature_callbacks(args),
        log=lambda line: print(f"[{EXPERIMENT} {name}] {line}", flush=True),
    )
    rng = np.random.default_rng([args.seed, 10**6])
    test_pieces = to_pieces(data.x_test[: args.num_test], args.k)
    shuffled, positions = scramble(rng, test_pieces)
    metrics, recovered = evaluate(test_model, test_pieces, positions, shuffled, args.k)
    path = common.finish_unit(
        EXPERIMENT,
        name,
        common.config_of(args, KEYS) | {"data": common.portable(args.data, "MNIST_DIR")},
        metrics,
        state,
        common.unit_command(MODULE, args, KEYS, data_key="data"),
        results=args.results,
    )
    # A few test puzzles, scrambled and recovered, for the report's figure.
    np.savez_compressed(
        path.with_suffix(".examples.npz"),
        scrambled=from_pieces(shuffled[:8], args.k).astype("float16"),
        recovered=recovered[:8].astype("float16"),
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
