"""Cost of `CodeUsage` on a quantizer model's training step.

The model: wav2vec 2.0's quantizer (G = 2 groups of V = 320 code vectors,
D = 512 input features, codevector_dim 256) between a Dense input
projection and a Dense head, trained with Adam on a mean squared error,
batches of 8 sequences x 500 steps, `model.fit` on the current Keras
backend (TensorFlow by default). Two sides, in one process, with the same
weights and data:

- `without`: `fit` with a step timer only;
- `with`: `fit` with the step timer and `CodeUsage(update_freq=...)`,
  which adds the code counting to the compiled train step and reads the
  counts to Python every `update_freq` steps.

A step's time is the wall time, and the process's CPU time (all threads),
between two consecutive batch ends (the step plus its callbacks, the reads
included). The sides run in
interleaved rounds (each side one `fit` per round, in alternating order);
the first `skip` steps of every `fit` (tracing, warm-up) are left out.
Reported: the median and mean step time of each side over all rounds, and
the ratios with / without (the median is the step the callback does not
read; the mean spreads the reads' cost over the steps).

Usage (from the repository root):
    python -m benchmarks.quantizer.code_usage_cost             # the committed results
    python -m benchmarks.quantizer.code_usage_cost --smoke --out /tmp/code_usage
"""

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.common import cpu_model

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "code_usage_cost"
COMMAND = "python -m benchmarks.quantizer.code_usage_cost"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes and repetitions of one run."""

    batch: int = 8
    steps: int = 500
    input_dim: int = 512
    num_groups: int = 2
    num_vars: int = 320
    codevector_dim: int = 256
    steps_per_fit: int = 20
    skip: int = 3
    rounds: int = 4
    update_freq: int = 10


SMOKE = Settings(
    batch=2,
    steps=10,
    input_dim=16,
    num_vars=8,
    codevector_dim=8,
    steps_per_fit=6,
    skip=2,
    rounds=1,
    update_freq=2,
)


class _StepTimer:
    """Wall time between consecutive batch ends of one `fit`."""

    def __init__(self):
        import keras

        class Timer(keras.callbacks.Callback):
            def on_train_begin(inner, logs=None):
                inner.last = (time.perf_counter(), time.process_time())
                inner.times = []

            def on_train_batch_end(inner, batch, logs=None):
                now = (time.perf_counter(), time.process_time())
                inner.times.append((now[0] - inner.last[0], now[1] - inner.last[1]))
                inner.last = now

        self.callback = Timer()


def _model(settings, seed=0):
    import keras

    from keras_gumbel.layers import GumbelVectorQuantizer

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((settings.steps, settings.input_dim))
    h = keras.layers.Dense(settings.input_dim)(inputs)
    h = GumbelVectorQuantizer(
        settings.num_groups, settings.num_vars, settings.codevector_dim, seed=seed
    )(h)
    outputs = keras.layers.Dense(settings.input_dim)(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    return model


def run(settings, threads):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)

    from keras_gumbel.callbacks import CodeUsage

    rng = np.random.default_rng(0)
    n = settings.batch * settings.steps_per_fit
    x = rng.normal(size=(n, settings.steps, settings.input_dim)).astype("float32")
    models = {"without": _model(settings), "with": _model(settings)}
    times = {side: [] for side in models}
    usage = None
    for round_index in range(settings.rounds):
        order = ["without", "with"] if round_index % 2 == 0 else ["with", "without"]
        for side in order:
            timer = _StepTimer().callback
            callbacks = [timer]
            if side == "with":
                usage = CodeUsage(
                    update_freq=settings.update_freq, window=10 * settings.update_freq
                )
                callbacks = [usage, timer]
            models[side].fit(
                x, x, batch_size=settings.batch, epochs=1, verbose=0, callbacks=callbacks
            )
            times[side].extend(timer.times[settings.skip :])
    result = {}
    for side, values in times.items():
        wall = [w for w, _ in values]
        cpu = [c for _, c in values]
        result[side] = {
            "median_ms": 1e3 * statistics.median(wall),
            "mean_ms": 1e3 * statistics.fmean(wall),
            "cpu_median_ms": 1e3 * statistics.median(cpu),
            "cpu_mean_ms": 1e3 * statistics.fmean(cpu),
            "samples": len(values),
        }
    for measure in ("median_ms", "mean_ms", "cpu_median_ms", "cpu_mean_ms"):
        key = "ratio_" + measure.removesuffix("_ms")
        result[key] = result["with"][measure] / result["without"][measure]
    result["last_logs"] = {key: values[-1] for key, values in usage.values.items()}
    result["backend"] = keras.backend.backend()
    result["load_average"] = os.getloadavg()[0]
    return result


def write(result, settings, out, threads):
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "command": COMMAND,
        "settings": dataclasses.asdict(settings),
        "threads": threads,
        "machine": {"cpu": cpu_model(), "python": platform.python_version()},
        **result,
    }
    (out / f"{NAME}.json").write_text(json.dumps(record, indent=2) + "\n")
    s = settings
    lines = [
        "# Cost of CodeUsage on a quantizer training step",
        "",
        f"Command: `{COMMAND}`",
        "",
        f"Model: Dense({s.input_dim}) -> GumbelVectorQuantizer(G={s.num_groups}, "
        f"V={s.num_vars}, codevector_dim={s.codevector_dim}) -> Dense({s.input_dim}), "
        f"Adam, MSE; batches of {s.batch} x {s.steps} x {s.input_dim}; `model.fit` on "
        f"{result['backend']}, {threads} threads, {record['machine']['cpu']}. "
        f"{s.rounds} interleaved rounds of one `fit` of {s.steps_per_fit} steps per side, "
        f"the first {s.skip} steps of each left out; "
        f"`CodeUsage(update_freq={s.update_freq}, window={10 * s.update_freq})`.",
        "",
        "| side | median step (ms) | mean step (ms) | median CPU (ms) | mean CPU (ms) | steps |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for side in ("without", "with"):
        r = result[side]
        lines.append(
            f"| {side} CodeUsage | {r['median_ms']:.1f} | {r['mean_ms']:.1f} | "
            f"{r['cpu_median_ms']:.1f} | {r['cpu_mean_ms']:.1f} | {r['samples']} |"
        )
    lines += [
        "",
        f"Ratio with / without: wall median {result['ratio_median']:.3f}, wall mean "
        f"{result['ratio_mean']:.3f}; CPU median {result['ratio_cpu_median']:.3f}, CPU mean "
        f"{result['ratio_cpu_mean']:.3f}. The means include the reads of the counts every "
        f"{s.update_freq} steps; CPU time (all threads of the process) is the steadier "
        f"measure on a shared machine (load average {result['load_average']:.1f} at the end).",
        "",
        "Last logged values: "
        + ", ".join(f"`{k}` = {v:.4g}" for k, v in result["last_logs"].items())
        + ".",
        "",
    ]
    (out / f"{NAME}.md").write_text("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for tests")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    settings = SMOKE if args.smoke else Settings()
    result = run(settings, args.threads)
    write(result, settings, args.out, args.threads)
    print((args.out / f"{NAME}.md").read_text())


if __name__ == "__main__":
    main()
