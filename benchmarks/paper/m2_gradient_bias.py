"""Model M2: how far each y-estimator's gradient is from the exact one.

At a trained model's weights, on validation digits, the gradient of the
unlabelled bound `U(x) = E_q(y|x)[T(x, y)] + KL(q(y|x) || uniform)` with
respect to the classifier's logits `l` (`T` the per-class terms, one z
draw each):

- exact: y summed out, `sum_y softmax(l)_y T(x, y)`, whose gradient in `l`
  is exact up to the z draws; averaged over `--draws` draws;
- each sampled estimator (Gumbel-Softmax, ST Gumbel-Softmax) at the
  temperature `--temperature`: the mean of its gradient over `--draws`
  draws of (y, z).

Per digit it reports the cosine between the mean estimate and the exact
gradient, and the bias `|mean - exact| / |exact|` beside the part of it
that the finite number of draws explains (`sqrt(trace cov / draws) /
|exact|`, the standard error of the mean estimate): a bias well above
that is the estimator's own. Medians over digits. Where the classifier
is saturated (`q(y|x)` one-hot to float precision) the exact gradient
vanishes and the ratios say nothing: the table gives its median norm.

Usage:
    python -m benchmarks.paper.m2_gradient_bias RUN_DIR [RUN_DIR ...] --name m2_gradient_bias
"""

import argparse
import json
import os
import platform
import shlex
import sys
from pathlib import Path

import numpy as np

from benchmarks.common import shown_args

RESULTS = Path(__file__).resolve().parent / "results"
ESTIMATORS = ("gumbel_softmax", "st_gumbel_softmax")


def gradients(model, images, temperature, draws, seed=0):
    """Exact and per-estimator gradients of U(x) in the class logits, `[draws, n, K]` each."""
    import keras
    import tensorflow as tf

    from keras_gumbel import estimators

    images = tf.convert_to_tensor(images, tf.float32)
    logits = tf.constant(model(images))
    seed_generator = keras.random.SeedGenerator(seed)

    def gradient(logits, sample):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            y = None if sample is None else sample(logits)
            # Each digit's bound depends on its own logits only.
            total = tf.reduce_sum(model.unlabelled_bound(images, logits, y=y))
        return tape.gradient(total, logits)

    samplers = {"exact": None}
    for name in ESTIMATORS:
        estimator = estimators.get(name)
        samplers[name] = lambda x, e=estimator: e.sample(
            x, "categorical", temperature, seed=seed_generator
        )
    steps = {name: tf.function(lambda x, s=s: gradient(x, s)) for name, s in samplers.items()}
    return {
        name: np.stack([step(logits).numpy() for _ in range(draws)]) for name, step in steps.items()
    }


def summarize(grads):
    exact = grads["exact"].mean(axis=0)
    norm = np.linalg.norm(exact, axis=-1)
    rows = {}
    for name in ESTIMATORS:
        g = grads[name]
        mean = g.mean(axis=0)
        cosine = np.sum(mean * exact, -1) / (np.linalg.norm(mean, axis=-1) * norm)
        bias = np.linalg.norm(mean - exact, axis=-1) / norm
        standard_error = np.sqrt(g.var(axis=0, ddof=1).sum(-1) / len(g)) / norm
        rows[name] = {
            "median_cosine": float(np.median(cosine)),
            "fraction_cosine_positive": float(np.mean(cosine > 0)),
            "median_relative_bias": float(np.median(bias)),
            "median_relative_standard_error": float(np.median(standard_error)),
            "median_norm_ratio": float(np.median(np.linalg.norm(mean, axis=-1) / norm)),
        }
    return {"median_exact_norm": float(np.median(norm)), "estimators": rows}


def measure(run_dir, digits, temperature, draws):
    from keras_gumbel.training import builders
    from keras_gumbel.training import load_config
    from keras_gumbel.training import restore

    config = load_config(run_dir)
    data = builders.build_data(config)
    model, state = restore(run_dir, config, data)
    images = np.concatenate([np.asarray(x) for x, _ in data.validation.take(-(-digits // 100))])
    grads = gradients(model, images[:digits], temperature, draws)
    return {
        "run_dir": str(run_dir),
        "estimator_trained_with": config.estimator,
        "epoch": state["epoch"],
        "digits": digits,
        "draws": draws,
        "temperature": temperature,
        **summarize(grads),
    }


def write(rows, name, command):
    payload = {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "runs": rows}
    payload["command"] = command
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        f"# {name}",
        "",
        f"Made by `{command}`. Gradient of the unlabelled bound in the class logits, "
        "each estimator's mean over the draws against the exact (y summed out); medians "
        "over validation digits. Bias: |mean - exact| / |exact|; standard error: the part "
        "of it the finite draws explain; norm ratio: |mean| over |exact|.",
        "",
        "| model (trained with, epoch) | exact norm | estimator | cosine | cosine > 0 | bias "
        "| standard error | norm ratio |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        for estimator, s in row["estimators"].items():
            lines.append(
                f"| {row['estimator_trained_with']}, epoch {row['epoch']} "
                f"| {row['median_exact_norm']:.2g} | {estimator} "
                f"| {s['median_cosine']:.3f} | {100 * s['fraction_cosine_positive']:.0f}% "
                f"| {s['median_relative_bias']:.2f} | {s['median_relative_standard_error']:.2f} "
                f"| {s['median_norm_ratio']:.2f} |"
            )
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="M2 run directories")
    parser.add_argument("--name", default="m2_gradient_bias", help="results file stem")
    parser.add_argument("--digits", type=int, default=500)
    parser.add_argument("--draws", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.5)
    args = parser.parse_args(argv)
    rows = [measure(d, args.digits, args.temperature, args.draws) for d in args.run_dirs]
    command = "python -m benchmarks.paper.m2_gradient_bias " + shlex.join(
        shown_args(sys.argv[1:] if argv is None else argv)
    )
    write(rows, args.name, command)


if __name__ == "__main__":
    main()
