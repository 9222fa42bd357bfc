"""Speed of a GumbelVectorQuantizer training step against a hand-written floor.

One training step of wav2vec 2.0's quantizer (G = 2 groups of V = 320 code
vectors, D = 512 input features, codevector_dim 256) on inputs of 8
sequences x 500 steps: the forward pass in training mode (projection,
Gumbel noise, straight-through one-hot per group, code-vector lookup,
perplexity of the batch-average softmax and the diversity loss), the loss
`sum(outputs * w) + diversity loss` (`w` a fixed random tensor), and its
gradient with respect to the inputs and the three trainable weights.

- `keras_gumbel`: the layer called inside a `tf.function`, the diversity
  loss read from `layer.losses` (the layer also updates its perplexity
  metric, as it does in `fit`).
- `tf_floor`: the same quantizer written directly in TensorFlow, as a
  careful engineer would: one GEMM for the projection, `tf.random.uniform`
  Gumbel noise, softmax, `one_hot(argmax)` straight-through, an einsum with
  the codebook, `tf.math.xlogy` for the perplexity, in a `tf.function`,
  with its own `tf.Variable`s holding the same weights.

Both sides run in this process, warmed up (traced) first, then timed in
interleaved rounds (every side once per round, in a fresh random order,
after a 0.1 s pause), with medians over rounds; the ratio is the layer's
median over the floor's. The process's CPU time per step (all threads) is
recorded beside the wall time: on a shared machine it is the steadier
measure of the same cost. Threads are pinned (2 by default). Before timing,
the two sides' diversity losses on the same weights are compared (they do
not depend on the noise), so the floor is known to compute the same thing.

Usage:
    python -m benchmarks.quantizer.vector_quantizer                  # the committed results
    python -m benchmarks.quantizer.vector_quantizer --smoke --out /tmp/vq
"""

import argparse
import dataclasses
import functools
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "vector_quantizer"
TARGET = 1.10
SIDES = ("keras_gumbel", "tf_floor")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes and repetitions of one run."""

    batch: int = 8
    steps: int = 500
    input_dim: int = 512
    num_groups: int = 2
    num_vars: int = 320
    codevector_dim: int = 256
    temperature: float = 2.0
    diversity_weight: float = 0.1
    reps: int = 31
    min_sample_s: float = 1.0  # each timed sample repeats steps up to this long


SMOKE = Settings(
    batch=2, steps=10, input_dim=16, num_vars=8, codevector_dim=8, reps=2, min_sample_s=0.0
)


def layer_step(settings):
    """The layer's training step and the layer, under `tf.function`."""
    import tensorflow as tf

    from keras_gumbel.layers import GumbelVectorQuantizer

    layer = GumbelVectorQuantizer(
        settings.num_groups,
        settings.num_vars,
        settings.codevector_dim,
        temperature=settings.temperature,
        diversity_weight=settings.diversity_weight,
        seed=0,
    )
    layer.build((None, None, settings.input_dim))

    @tf.function
    def step(x, w):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = layer(x, training=True)
            diversity = tf.add_n(layer.losses)
            loss = tf.reduce_sum(outputs * w) + diversity
        return loss, diversity, tape.gradient(loss, [x, *layer.trainable_variables])

    return step, layer


def floor_step(settings, weights):
    """The same step written directly in TensorFlow, with its own variables."""
    import tensorflow as tf

    tiny = float(np.finfo(np.float32).tiny)
    g, v, d = settings.num_groups, settings.num_vars, settings.input_dim
    total = float(g * v)
    kernel, bias, codevectors = (tf.Variable(value) for value in weights)
    tau = tf.Variable(settings.temperature)

    @tf.function
    def step(x, w):
        with tf.GradientTape() as tape:
            tape.watch(x)
            shape = tf.shape(x)
            logits = tf.reshape(tf.matmul(tf.reshape(x, [-1, d]), kernel) + bias, [-1, g, v])
            u = tf.random.uniform(tf.shape(logits), minval=tiny, maxval=1.0)
            scores = (logits - tf.math.log(-tf.math.log(u))) / tau
            soft = tf.nn.softmax(scores)
            hard = tf.one_hot(tf.argmax(scores, axis=-1), v)
            choice = soft + tf.stop_gradient(hard - soft)
            table = tf.reshape(codevectors, [g, v, -1])
            picked = tf.einsum("ngv,gvc->ngc", choice, table)
            outputs = tf.reshape(picked, tf.concat([shape[:-1], [-1]], axis=0))
            marginal = tf.reduce_mean(tf.nn.softmax(logits), axis=0)
            perplexity = tf.reduce_sum(
                tf.exp(-tf.reduce_sum(tf.math.xlogy(marginal, marginal), -1))
            )
            diversity = settings.diversity_weight * (total - perplexity) / total
            loss = tf.reduce_sum(outputs * w) + diversity
        return loss, diversity, tape.gradient(loss, [x, kernel, bias, codevectors])

    return step


def timed(call, calls, cpu_times):
    """Wall seconds per call; appends the process's CPU seconds per call to `cpu_times`.

    CPU time (all threads of the process) is the cost of a step with the
    waiting left out, which on a shared machine is the steadier number.
    """
    from benchmarks.performance.perf_timing import time_calls

    cpu_start = time.process_time()
    seconds = time_calls(call, calls)
    cpu_times.append((time.process_time() - cpu_start) / calls)
    return seconds


def caller(step, x, w):
    def call():
        loss, _, gradients = step(x, w)
        loss.numpy()  # Waits for the step (and its gradients) to finish.
        del gradients

    return call


def run(settings, threads):
    import tensorflow as tf

    from benchmarks.performance.perf_timing import PeakRss
    from benchmarks.performance.perf_timing import add_ratios
    from benchmarks.performance.perf_timing import calls_per_sample
    from benchmarks.performance.perf_timing import interleaved
    from benchmarks.performance.perf_timing import machine
    from benchmarks.performance.perf_timing import pin_tensorflow_threads

    pinned = pin_tensorflow_threads(threads)
    rng = np.random.default_rng(0)
    shape = (settings.batch, settings.steps)
    x = tf.constant(rng.standard_normal((*shape, settings.input_dim), dtype=np.float32))
    w = tf.constant(rng.standard_normal((*shape, settings.codevector_dim), dtype=np.float32))
    keras_step, layer = layer_step(settings)
    tf_step = floor_step(settings, [v.numpy() for v in layer.trainable_variables])
    steps = {"keras_gumbel": keras_step, "tf_floor": tf_step}

    # Same weights: the noise-free diversity losses must agree.
    diversity = {name: float(step(x, w)[1]) for name, step in steps.items()}
    check = abs(diversity["keras_gumbel"] - diversity["tf_floor"])
    if check > 1e-5:
        raise RuntimeError(f"the two sides compute different diversity losses: {diversity}")

    peak_rss = PeakRss()
    samplers, cpu_times = {}, {name: [] for name in steps}
    for name, step in steps.items():
        call = caller(step, x, w)
        calls = calls_per_sample(call, settings.min_sample_s)  # also the warm-up
        samplers[name] = functools.partial(timed, call, calls, cpu_times[name])
    load_start = [round(value, 2) for value in os.getloadavg()]
    sides = add_ratios(interleaved(samplers, settings.reps, peak_rss), "tf_floor")
    for name, side in sides.items():
        side["cpu_times_s"] = cpu_times[name]
        side["cpu_median_s"] = statistics.median(cpu_times[name])
    for side in sides.values():
        side["cpu_ratio"] = side["cpu_median_s"] / sides["tf_floor"]["cpu_median_s"]
    ratio = sides["keras_gumbel"]["ratio"]
    return {
        "sides": sides,
        "ratio": ratio,
        "diversity_loss_check": {"values": diversity, "abs_diff": check},
        "target": {
            "name": f"layer training step <= {TARGET:.2f}x the hand-written TensorFlow floor",
            "threshold": TARGET,
            "measured": f"{ratio:.3f}x",
            "met": ratio <= TARGET,
        },
        "machine": machine(),
        "threads": pinned,
        "memory_method": peak_rss.method,
        "load_average": {"start": load_start, "end": [round(v, 2) for v in os.getloadavg()]},
    }


def markdown(results):
    from benchmarks.performance.perf_timing import mib
    from benchmarks.performance.perf_timing import ms

    s, m = results["settings"], results["machine"]
    v, threads = m["versions"], results["threads"]
    target = results["target"]
    lines = [
        "# GumbelVectorQuantizer training step",
        "",
        f"Command: `{results['command']}`"
        + (" (smoke mode: tiny sizes)" if results["smoke"] else ""),
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']:.1f} GiB; {m['platform']}; "
        f"load average {results['load_average']['start']} at the start, "
        f"{results['load_average']['end']} at the end (the machine is shared).",
        "",
        f"Versions: keras_gumbel {v['keras_gumbel']}, TensorFlow {v['tensorflow']}, Keras "
        f"{v['keras']}, NumPy {v['numpy']}, Python {m['python']}.",
        "",
        f"Threads: TensorFlow intra-op {threads['tensorflow_intra_op']}, inter-op "
        f"{threads['tensorflow_inter_op']}. Peak RSS: {results['memory_method']}. "
        f"Wall time of the run: {results['wall_s']:.0f} s.",
        "",
        f"Inputs `[{s['batch']}, {s['steps']}, {s['input_dim']}]`, G = {s['num_groups']}, "
        f"V = {s['num_vars']}, codevector_dim = {s['codevector_dim']}, tau = "
        f"{s['temperature']}, diversity weight {s['diversity_weight']}. One step: the "
        "training-mode forward pass (projection, Gumbel noise, straight-through one-hot per "
        "group, code-vector lookup, perplexity and diversity loss), `loss = sum(outputs * w) + "
        "diversity loss`, and its gradient with respect to the inputs and the three weights, "
        "in a `tf.function` (no XLA). The floor is the same quantizer written directly in "
        "TensorFlow (`tf.matmul`, `tf.random.uniform` Gumbel noise, softmax, `one_hot(argmax)` "
        "straight-through, `tf.einsum` with the codebook, `tf.math.xlogy` perplexity). "
        f"{s['reps']} interleaved rounds in random order; medians; ratio = the layer's median "
        "over the floor's (lower is better); CPU time is the process's (all threads) per step, "
        "medians over the same samples. The two sides' diversity losses on the same "
        f"weights differ by {results['diversity_loss_check']['abs_diff']:.2g}.",
        "",
        "| side | median per step | ratio to floor | CPU time per step | CPU ratio "
        "| peak RSS (MiB) | peak over start (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in SIDES:
        side = results["sides"][name]
        lines.append(
            f"| {name} | {ms(side['median_s'])} | {side['ratio']:.3f}x | "
            f"{ms(side['cpu_median_s'])} | {side['cpu_ratio']:.3f}x | "
            f"{mib(side['peak_rss_mib'])} | {mib(side['peak_over_start_mib'])} |"
        )
    met = "yes" if target["met"] else "**no**"
    lines += ["", f"Target: {target['name']}: measured {target['measured']}, met: {met}.", ""]
    return "\n".join(lines)


def command_args(argv):
    """The arguments that shape the results (all but `--out`)."""
    kept, argv = [], list(argv)
    while argv:
        arg = argv.pop(0)
        if arg == "--out":
            argv = argv[1:]
        elif not arg.startswith("--out="):
            kept.append(arg)
    return kept


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="seconds-long run, tiny sizes")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow threads")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    settings = SMOKE if args.smoke else Settings()
    start = time.perf_counter()
    results = {
        "command": "python -m benchmarks.quantizer.vector_quantizer"
        + "".join(f" {a}" for a in command_args(argv)),
        "smoke": args.smoke,
        "settings": dataclasses.asdict(settings),
        **run(settings, args.threads),
    }
    results["wall_s"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{NAME}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{NAME}.md").write_text(markdown(results))
    print((args.out / f"{NAME}.md").read_text())


if __name__ == "__main__":
    main()
