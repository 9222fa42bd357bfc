"""Training speed of model M2: marginalizing the class against one Gumbel-Softmax sample.

Reproduces the speed comparison of section 4.3 of Jang et al. (2017): MNIST
images with random labels of K classes, training steps per second of
`SemiSupervisedVAE` with `y_estimator="marginalize"` and with
`"gumbel_softmax"`, for K in {10, 20, 50, 100}. Every model is built and
warmed up first; then the timed runs are interleaved (every K and estimator
once per repetition), so a slow spell of the shared machine hits all of
them alike. Medians over repetitions; the speedup is the ratio of medians.

The step time of marginalization is fitted as `a + b K` (least squares over
the K values): `a` is what every step pays once (the classifier on both
batches, the inference network's convolutions, the labelled term, the
optimizer update), `b` the cost of one more class (the inference head, the
decoder and the likelihood on the unlabelled batch). One Gumbel-Softmax
sample pays `a + b`-ish whatever K is, so the speedup grows like
`(a + b K) / (a + b)`.

Usage:
    python -m benchmarks.paper.semisupervised_speed                  # the committed results
    python -m benchmarks.paper.semisupervised_speed --smoke --out /tmp/speed
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import cpu_model
from benchmarks.common import shown_args

RESULTS = Path(__file__).parent / "results"
PAPER_SPEEDUP = {10: 2.0, 100: 9.9}  # one GPU, Jang et al. (2017), section 4.3


def _models(ks, estimators, batch_size, seed):
    import keras
    import tensorflow as tf

    from keras_gumbel import datasets
    from keras_gumbel.models import SemiSupervisedVAE

    images = datasets.load("mnist-sample").x_train.reshape(-1, 784)
    rng = np.random.default_rng(seed)
    runs = {}
    for k in ks:
        labels = rng.integers(0, k, len(images))
        labelled = rng.choice(len(images), min(10 * k, len(images)), replace=False)
        train = datasets.make_semi_supervised_dataset(
            images[labelled], labels[labelled], images, batch_size=batch_size, seed=seed
        ).repeat()
        for estimator in estimators:
            keras.utils.set_random_seed(seed)
            model = SemiSupervisedVAE(num_classes=k, y_estimator=estimator, seed=seed)
            model.compile(optimizer="adam")
            runs[(k, estimator)] = (model, train)
    return runs, tf


class _StepClock:
    """Keras callback: the wall time of every training step, synchronized.

    Reading the loss at the end of a step waits for the step to finish, so
    the differences between consecutive step ends are step times.
    """

    def __init__(self):
        import keras

        class Clock(keras.callbacks.Callback):
            def on_train_begin(inner, logs=None):
                self.ends = []

            def on_train_batch_end(inner, batch, logs=None):
                float(logs["loss"])
                self.ends.append(time.perf_counter())

        self.callback = Clock()
        self.ends = []

    def step_seconds(self):
        return list(np.diff(self.ends))


def _time_steps(model, train, steps):
    """Seconds of each of `steps` steps of `model.fit`, after one untimed step."""
    clock = _StepClock()
    model.fit(
        train,
        epochs=1,
        steps_per_epoch=steps + 1,
        callbacks=[clock.callback],
        shuffle=False,
        verbose=0,
    )
    return clock.step_seconds()


def run(ks, reps, steps, batch_size, seed):
    runs, tf = _models(ks, ("marginalize", "gumbel_softmax"), batch_size, seed)
    for model, train in runs.values():  # build, trace and warm every model
        _time_steps(model, train, 1)
    times = {key: [] for key in runs}
    for _ in range(reps):
        for key, (model, train) in runs.items():
            times[key] += _time_steps(model, train, steps)
    rows = []
    for k in ks:
        marg = statistics.median(times[(k, "marginalize")])
        gumbel = statistics.median(times[(k, "gumbel_softmax")])
        rows.append(
            {
                "classes": k,
                "marginalize_steps_per_second": 1.0 / marg,
                "gumbel_softmax_steps_per_second": 1.0 / gumbel,
                "speedup": marg / gumbel,
                "paper_speedup": PAPER_SPEEDUP.get(k),
                "marginalize_seconds": times[(k, "marginalize")],
                "gumbel_softmax_seconds": times[(k, "gumbel_softmax")],
            }
        )
    return {
        "rows": rows,
        "marginalize_fit_seconds": fit_step_time(rows),
        "settings": {
            "batch_size": batch_size,
            "labelled_batch_size": batch_size,
            "timed_steps": steps,
            "repetitions": reps,
            "seed": seed,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        },
    }


def fit_step_time(rows):
    """Fits marginalization's median step time as `a + b K`.

    The fit leaves out the largest K when there are three or more (at
    K = 100 a decoder batch of 10,100 images no longer stays in the CPU's
    caches, and the machine's noise is largest on the longest steps); the
    rows record the fit's prediction next to every measured time.
    """
    ks = np.array([r["classes"] for r in rows], float)
    times = np.array([1.0 / r["marginalize_steps_per_second"] for r in rows])
    used = slice(None, -1) if len(ks) >= 3 else slice(None)
    slope, intercept = np.polyfit(ks[used], times[used], 1)
    for row, k in zip(rows, ks, strict=True):
        row["marginalize_fit_seconds"] = float(intercept + slope * k)
        row["marginalize_p10_seconds"] = float(np.percentile(row["marginalize_seconds"], 10))
    return {
        "per_step": float(intercept),
        "per_class": float(slope),
        "fitted_classes": [int(k) for k in ks[used]],
    }


def machine():
    import keras
    import tensorflow as tf

    return {
        "cpu": cpu_model(platform.processor() or platform.machine()),
        "cores": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def write(results, out, command):
    out.mkdir(parents=True, exist_ok=True)
    results = {"command": command, "machine": machine(), **results}
    (out / "semisupervised_speed.json").write_text(json.dumps(results, indent=2) + "\n")
    fit = results["marginalize_fit_seconds"]
    settings = results["settings"]
    lines = [
        "# Model M2: training speed, marginalization vs one Gumbel-Softmax sample",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, "
        f"{results['machine']['gpus']} GPUs; TensorFlow {results['machine']['tensorflow']}, "
        f"Keras {results['machine']['keras']}. Batches of {settings['batch_size']} unlabelled + "
        f"{settings['labelled_batch_size']} labelled MNIST images with random labels; "
        f"median step times over {settings['repetitions']} interleaved repetitions of "
        f"{settings['timed_steps']} steps (each step synchronized; the first step of every "
        "`fit` call is not timed).",
        "",
        "| K | marginalize (steps/s) | Gumbel-Softmax (steps/s) | speedup | paper (GPU) "
        "| marginalize step: median / fastest 10% / a + bK |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        paper = f"{row['paper_speedup']:.1f}x" if row["paper_speedup"] else ""
        lines.append(
            f"| {row['classes']} | {row['marginalize_steps_per_second']:.2f} | "
            f"{row['gumbel_softmax_steps_per_second']:.2f} | {row['speedup']:.1f}x | {paper} | "
            f"{1 / row['marginalize_steps_per_second']:.2f} / "
            f"{row['marginalize_p10_seconds']:.2f} / {row['marginalize_fit_seconds']:.2f} s |"
        )
    fitted = ", ".join(str(k) for k in fit["fitted_classes"])
    lines += [
        "",
        f"Marginalization's median step time for K = {fitted} fits `a + b K` with "
        f"a = {1000 * fit['per_step']:.0f} ms, what every step pays once (the classifier on "
        "both batches, the inference network's convolutions, the labelled bound, the Adam "
        f"update), and b = {1000 * fit['per_class']:.1f} ms per class (the inference head, "
        "the decoder and the likelihood on one more copy of the unlabelled batch). One "
        "Gumbel-Softmax step pays about `a + b` whatever K is, so the speedup grows like "
        "`(a + b K) / (a + b)`.",
        "",
    ]
    (out / "semisupervised_speed.md").write_text("\n".join(lines))
    plot(results, out / "semisupervised_speed.png")


def plot(results, path):
    from matplotlib.figure import Figure

    rows = results["rows"]
    ks = [r["classes"] for r in rows]
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    ax.plot(ks, [r["speedup"] for r in rows], "o-", label="this package, CPU")
    paper = sorted(PAPER_SPEEDUP.items())
    ax.plot([k for k, _ in paper], [s for _, s in paper], "s--", label="paper, one GPU")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xlabel("number of classes K")
    ax.set_ylabel("speedup of Gumbel-Softmax\nover marginalization")
    ax.set_title("M2 training steps per second, ratio", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 20, 50, 100])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repetition")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="seconds-long run: K = 2, 3")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.classes, args.reps, args.steps, args.batch_size = [2, 3], 1, 1, 8
    shown = shown_args(sys.argv[1:] if argv is None else argv, {"--out": 1})
    command = " ".join(["python -m benchmarks.paper.semisupervised_speed", *shown])
    results = run(args.classes, args.reps, args.steps, args.batch_size, args.seed)
    write(results, args.out, command)
    print((args.out / "semisupervised_speed.md").read_text())


if __name__ == "__main__":
    main()
