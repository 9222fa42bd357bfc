"""Sorting numbers with Gumbel-Sinkhorn (Mena et al., ICLR 2018, section 5.1).

A sequence of n numbers drawn from U(0, 1) goes through a
permutation-equivariant network: every number, through the same small MLP,
becomes a row of n scores, so `log_alpha[i, j]` scores sending item i to
position j. `keras_gumbel.GumbelSinkhorn` turns the scores into a relaxed
permutation `P` in training; the loss is the squared error between the
sorted sequence and its reconstruction `P^T x`. At test the permutation is
the exact matching of `log_alpha` (`GumbelSinkhorn(hard=True)` at
inference, i.e. `keras_gumbel.ops.matching`), and a sequence counts as
sorted when every item lands at its rank.

    python -m benchmarks.permutations.sort_numbers unit --n 5
    python -m benchmarks.permutations.sort_numbers report

Each unit (one n) resumes from its last checkpoint when run again.
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

EXPERIMENT = "sort_numbers"
MODULE = "benchmarks.permutations.sort_numbers"
SIZES = (5, 10, 15, 80, 100, 120)

# Mena et al. (2018), Table 1: "Prop. any wrong" (share of test sequences with
# at least one element misplaced) and "Prop. wrong" (share of misplaced
# elements), Gumbel-Sinkhorn networks, for n = 5, 10, 15, 80, 100, 120.
PUBLISHED = {
    "source": "Mena, Belanger, Linderman & Snoek, ICLR 2018, Table 1 (arXiv:1802.08665)",
    "verified": False,
    "rows": {},
}


def build_models(n, hidden, temperature, num_iters, noise_factor, seed):
    """The training model (relaxed reconstruction) and the test model (exact matching)."""
    x = keras.Input((n,), name="numbers")
    h = keras.layers.Reshape((n, 1))(x)
    h = keras.layers.Dense(hidden, activation="relu", name="hidden")(h)
    log_alpha = keras.layers.Dense(n, name="scores")(h)  # [batch, item, position]
    relaxed = kg.GumbelSinkhorn(
        temperature=temperature, num_iters=num_iters, noise_factor=noise_factor, seed=seed
    )(log_alpha)
    # sorted[j] = sum_i P[i, j] x[i]
    column = keras.layers.Reshape((n, 1))(x)
    reconstruction = keras.layers.Reshape((n,))(keras.layers.Dot(axes=(1, 1))([relaxed, column]))
    train_model = keras.Model(x, reconstruction, name="sort_numbers")
    exact = kg.GumbelSinkhorn(hard=True, num_iters=1, name="exact_matching")(log_alpha)
    test_model = keras.Model(x, exact, name="sort_numbers_test")
    return train_model, test_model


def make_batch(rng, count, n):
    x = rng.uniform(0.0, 1.0, size=(count, n)).astype("float32")
    return x, np.sort(x, axis=-1)


def true_positions(x):
    """Position of each item in the ascending order: its rank."""
    return np.argsort(np.argsort(x, axis=-1, kind="stable"), axis=-1)


def parse(argv):
    parser = argparse.ArgumentParser(prog=MODULE, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    unit = sub.add_parser("unit", help="train and evaluate one n")
    unit.add_argument("--n", type=int, required=True)
    unit.add_argument("--steps", type=int, default=3000)
    unit.add_argument("--chunk-steps", type=int, default=500)
    unit.add_argument("--batch-size", type=int, default=32)
    unit.add_argument("--hidden", type=int, default=64)
    unit.add_argument("--learning-rate", type=float, default=3e-3)
    unit.add_argument("--temperature", type=float, default=1.0)
    unit.add_argument("--final-temperature", type=float, default=None)
    unit.add_argument("--num-iters", type=int, default=20)
    unit.add_argument("--noise-factor", type=float, default=1.0)
    unit.add_argument("--num-test", type=int, default=1000)
    unit.add_argument("--seed", type=int, default=0)
    unit.add_argument("--tag", default=None, help="a suffix of the unit's name, for a variant")
    unit.add_argument("--runs-dir", default=str(common.DEFAULT_RUNS))
    unit.add_argument("--results", default=str(common.RESULTS))
    report = sub.add_parser("report", help="assemble the units into the tables and figure")
    report.add_argument("--results", default=str(common.RESULTS))
    return parser.parse_args(argv)


def unit_name(args):
    return common.tagged(f"n{args.n:03d}", args)


def unit_command(args):
    options = [
        ("--n", args.n),
        ("--steps", args.steps),
        ("--chunk-steps", args.chunk_steps),
        ("--batch-size", args.batch_size),
        ("--hidden", args.hidden),
        ("--learning-rate", args.learning_rate),
        ("--temperature", args.temperature),
        ("--final-temperature", args.final_temperature),
        ("--num-iters", args.num_iters),
        ("--noise-factor", args.noise_factor),
        ("--num-test", args.num_test),
        ("--seed", args.seed),
        ("--tag", args.tag),
    ]
    if os.path.normpath(args.runs_dir) != os.path.normpath(common.DEFAULT_RUNS):
        options.append(("--runs-dir", common.portable(args.runs_dir, "RUNS_DIR")))
    return common.command_line(MODULE, "unit", options)


def temperature_callbacks(args):
    if args.final_temperature is None:
        return []
    schedule = kg.schedules.LinearDecay(
        initial=args.temperature, final=args.final_temperature, steps=args.steps
    )
    return [kg.TemperatureScheduler(schedule)]


def run_unit(args):
    name = unit_name(args)
    out = common.units_dir(EXPERIMENT, args.results) / f"{name}.json"
    if out.exists():
        print(f"{out} exists; nothing to do")
        return out
    keras.utils.set_random_seed(args.seed)
    train_model, test_model = build_models(
        args.n, args.hidden, args.temperature, args.num_iters, args.noise_factor, args.seed
    )
    train_model.compile(optimizer=keras.optimizers.Adam(args.learning_rate), loss="mse")
    num_chunks = -(-args.steps // args.chunk_steps)
    count = args.chunk_steps * args.batch_size

    def chunk_data(chunk):
        x, y = make_batch(np.random.default_rng([args.seed, chunk]), count, args.n)
        return {"x": x, "y": y, "batch_size": args.batch_size}

    state = common.train_resumable(
        train_model,
        Path(args.runs_dir) / EXPERIMENT / name,
        num_chunks,
        chunk_data,
        callbacks=temperature_callbacks(args),
        log=lambda line: print(f"[{EXPERIMENT} {name}] {line}", flush=True),
    )
    # The test set comes from its own stream, never from a training chunk's.
    x_test, y_test = make_batch(np.random.default_rng([args.seed, 10**6]), args.num_test, args.n)
    matrices = test_model.predict(x_test, batch_size=100, verbose=0)
    predicted = np.argmax(matrices, axis=-1)  # position of each item
    metrics = common.rank_metrics(predicted, true_positions(x_test))
    metrics["prop_any_wrong"] = 1.0 - metrics["exact"]
    metrics["prop_wrong"] = 1.0 - metrics["elementwise"]
    recon = np.einsum("bij,bi->bj", matrices, x_test)
    metrics["test_mse_exact_matching"] = float(np.mean((recon - y_test) ** 2))
    config = {
        key: getattr(args, key)
        for key in (
            "n",
            "steps",
            "chunk_steps",
            "batch_size",
            "hidden",
            "learning_rate",
            "temperature",
            "final_temperature",
            "num_iters",
            "noise_factor",
            "num_test",
            "seed",
            "tag",
        )
    }
    path = common.finish_unit(
        EXPERIMENT, name, config, metrics, state, unit_command(args), results=args.results
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
