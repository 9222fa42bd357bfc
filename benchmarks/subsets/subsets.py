"""Speed of `relaxed_top_k` against a hand-written TensorFlow expression of it.

The relaxed k-hot sample of Xie & Ermon (2019), k successive softmaxes of
Gumbel-perturbed logits, forward and backward (the gradient of `sum(y * w)`,
`w` a fixed random tensor, with respect to the logits) under `tf.function`,
for a batch of 1024 rows of K = 1000 classes and k = 10:

- `keras_gumbel`: `keras_gumbel.ops.relaxed_top_k` with a
  `keras.random.SeedGenerator`, as the `GumbelTopK` layer calls it;
- `tf_floor`: the same relaxation written directly in TensorFlow (the same
  noise distribution, the same stable `log(1 - a)`, none of the op's
  checks, masks or `-inf` handling): the floor, and the target's reference;
- `tf_clipped`: the form often written by hand, `log(max(1 - a, tiny))`,
  for information: it saves two reductions per step, and is wrong as
  tau -> 0 when logits lie more than about 87 apart (a chosen class is not
  removed).

Both `soft` and `hard` (straight-through k-hot) samples are timed. Every
side is traced and warmed up first, then timed in interleaved rounds: each
side once per round, in a fresh random order, after a short pause; medians
over rounds, ratios of medians. TensorFlow's threads are pinned to 2 and
recorded. Before timing, the floor is checked to compute the op's values
from the same noise.

Usage:
    python -m benchmarks.subsets.subsets                    # the committed results
    python -m benchmarks.subsets.subsets --smoke --out /tmp/subsets
"""

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.performance.perf_timing import TINY
from benchmarks.performance.perf_timing import PeakRss
from benchmarks.performance.perf_timing import add_ratios
from benchmarks.performance.perf_timing import calls_per_sample
from benchmarks.performance.perf_timing import interleaved
from benchmarks.performance.perf_timing import machine
from benchmarks.performance.perf_timing import ms
from benchmarks.performance.perf_timing import pin_tensorflow_threads
from benchmarks.performance.perf_timing import ratio_cell
from benchmarks.performance.perf_timing import time_calls

RESULTS = Path(__file__).resolve().parent / "results"
SIDES = ("keras_gumbel", "tf_floor", "tf_clipped")
TARGET = 1.10
# Scores of removed classes never fall below this (as in the op).
FLOOR = -3e30


@dataclasses.dataclass(frozen=True)
class Settings:
    batch: int = 1024
    classes: int = 1000
    k: int = 10
    temperature: float = 0.5
    reps: int = 41
    min_sample_s: float = 0.2  # each timed sample repeats calls up to this long
    threads: int = 2


SMOKE = Settings(batch=8, classes=50, k=3, reps=2, min_sample_s=0.0)


def floor_relaxation(logits, noise, k, tau, hard, clipped=False):
    """The relaxation written directly in TensorFlow, from given noise."""
    import tensorflow as tf

    z = (logits + noise) / tau
    total = tf.zeros_like(z)
    for step in range(k):
        a = tf.nn.softmax(z)
        total += a
        if step == k - 1:
            break
        if clipped:
            log_1m_a = tf.math.log(tf.maximum(1.0 - a, TINY))
        else:
            # log(1 - a) = log1p(-a) where a <= 1/2; for the leading class the
            # log of the others' total weight, or where that underflows the
            # gap to the second largest score.
            leading = a > 0.5
            others = tf.reduce_sum(tf.where(leading, 0.0, a), axis=-1, keepdims=True)
            second = tf.reduce_max(tf.where(leading, FLOOR, z), axis=-1, keepdims=True)
            gap = second - tf.reduce_max(z, axis=-1, keepdims=True)
            log_leading = tf.where(others > TINY, tf.math.log(tf.maximum(others, TINY)), gap)
            log_1m_a = tf.where(leading, log_leading, tf.math.log1p(-tf.minimum(a, 0.5)))
        z = tf.maximum(z + log_1m_a / tau, FLOOR)
    if hard:
        _, top = tf.math.top_k(logits + noise, k)
        k_hot = tf.reduce_sum(tf.one_hot(top, logits.shape[-1]), axis=-2)
        total = (total - tf.stop_gradient(total)) + k_hot
    return total


def floor_step(k, hard, clipped):
    import tensorflow as tf

    @tf.function
    def step(logits, weights, tau):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            u = tf.random.uniform(tf.shape(logits), minval=TINY, maxval=1.0)
            noise = -tf.math.log(-tf.math.log(u))
            y = floor_relaxation(logits, noise, k, tau, hard, clipped)
            loss = tf.reduce_sum(y * weights)
        return loss, tape.gradient(loss, logits)

    return step


def op_step(k, hard):
    import keras
    import tensorflow as tf

    from keras_gumbel.ops import relaxed_top_k

    seed = keras.random.SeedGenerator(0)

    @tf.function
    def step(logits, weights, tau):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            y = relaxed_top_k(logits, k, tau, hard=hard, seed=seed)
            loss = tf.reduce_sum(y * weights)
        return loss, tape.gradient(loss, logits)

    return step


def agreement(settings, arrays):
    """Largest differences between the op and the floor given the same noise."""
    import tensorflow as tf

    from keras_gumbel.ops import gumbel_noise
    from keras_gumbel.ops import relaxed_top_k

    logits = tf.constant(arrays[0])
    noise = gumbel_noise(logits.shape, seed=3)
    out = {}
    for hard in (False, True):
        ours = relaxed_top_k(logits, settings.k, settings.temperature, hard=hard, seed=3)
        floor = floor_relaxation(logits, noise, settings.k, settings.temperature, hard)
        out["hard" if hard else "soft"] = float(tf.reduce_max(tf.abs(ours - floor)))
    return out


def add_robust_ratios(sides, reference):
    """Two ratios less sensitive than medians to other work on the machine.

    `paired_ratio`: the median over rounds of the ratio of the two sides'
    times in the same round (timed within about a second of each other);
    `fastest_ratio`: the ratio of the 10th percentiles of the times, what
    each side takes when the machine is quiet (a single fastest time is
    too easily an outlier).
    """
    ref = sides[reference]["times_s"]
    for side in sides.values():
        times = side["times_s"]
        side["paired_ratio"] = statistics.median(t / r for t, r in zip(times, ref, strict=True))
        side["fastest_ratio"] = float(np.percentile(times, 10) / np.percentile(ref, 10))


def run(settings):
    import tensorflow as tf

    threads = pin_tensorflow_threads(settings.threads)
    rng = np.random.default_rng(0)
    shape = (settings.batch, settings.classes)
    arrays = [rng.standard_normal(shape, dtype=np.float32) for _ in range(2)]
    check = agreement(settings, arrays)
    logits, weights = (tf.constant(a) for a in arrays)
    tau = tf.constant(settings.temperature)
    peak_rss = PeakRss()
    rows = []
    for hard in (False, True):
        steps = {
            "keras_gumbel": op_step(settings.k, hard),
            "tf_floor": floor_step(settings.k, hard, clipped=False),
            "tf_clipped": floor_step(settings.k, hard, clipped=True),
        }
        samplers = {}
        for name, step in steps.items():

            def call(step=step):
                loss, gradient = step(logits, weights, tau)
                loss.numpy()  # Waits for the step (and its gradient) to finish.
                del gradient

            calls = calls_per_sample(call, settings.min_sample_s)  # also the warm-up
            samplers[name] = lambda call=call, calls=calls: time_calls(call, calls)
        sides = add_ratios(interleaved(samplers, settings.reps, peak_rss), "tf_floor")
        add_robust_ratios(sides, "tf_floor")
        mode = "hard" if hard else "soft"
        rows.append({"mode": mode, "sides": sides})
        print(
            f"{mode}: "
            + ", ".join(f"{n} {ms(s['median_s'])} ({s['ratio']:.3f}x)" for n, s in sides.items()),
            flush=True,
        )
    targets = [
        {
            "name": f"relaxed_top_k ({row['mode']}) <= {TARGET:.2f}x the TensorFlow floor",
            "measured": round(row["sides"]["keras_gumbel"]["ratio"], 3),
            "paired": round(row["sides"]["keras_gumbel"]["paired_ratio"], 3),
            "fastest": round(row["sides"]["keras_gumbel"]["fastest_ratio"], 3),
            "met": row["sides"]["keras_gumbel"]["ratio"] <= TARGET,
        }
        for row in rows
    ]
    return {
        "settings": dataclasses.asdict(settings),
        "threads": threads,
        "memory_method": peak_rss.method,
        "agreement_max_abs_difference": check,
        "rows": rows,
        "targets": targets,
    }


def markdown(results):
    settings = results["settings"]
    m = results["machine"]
    threads = results["threads"]
    lines = [
        "# relaxed_top_k against a hand-written TensorFlow expression",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; TensorFlow {m['versions']['tensorflow']}, "
        f"Keras {m['versions']['keras']}. Threads: TensorFlow intra-op "
        f"{threads['tensorflow_intra_op']}, inter-op {threads['tensorflow_inter_op']}.",
        "",
        f"Forward and backward (gradient of `sum(y * w)` with respect to the logits) under "
        f"`tf.function`, batch {settings['batch']}, K = {settings['classes']}, "
        f"k = {settings['k']}, tau = {settings['temperature']}. Medians over "
        f"{settings['reps']} interleaved rounds (every side once per round in a random order, "
        f"each sample at least {settings['min_sample_s']} s of calls); ratios are ratios of "
        "medians, to `tf_floor`.",
        "",
        "| mode | keras_gumbel | tf_floor | tf_clipped | keras_gumbel / tf_floor: medians "
        "/ paired / fastest | tf_clipped / tf_floor |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        sides = row["sides"]
        ours = sides["keras_gumbel"]
        lines.append(
            f"| {row['mode']} | {ms(ours['median_s'])} | "
            f"{ms(sides['tf_floor']['median_s'])} | {ms(sides['tf_clipped']['median_s'])} | "
            f"{ratio_cell(ours)} / {ratio_cell(ours, 'paired_ratio')} / "
            f"{ratio_cell(ours, 'fastest_ratio')} | {ratio_cell(sides['tf_clipped'])} |"
        )
    lines += [
        "",
        "Paired: the median over rounds of the ratio of the two times of the same round; "
        "fastest: the ratio of the 10th percentiles of the times. Both are less affected "
        "than the medians by other work on the machine.",
    ]
    lines += ["", "## Targets", ""]
    for target in results["targets"]:
        mark = "met" if target["met"] else "NOT met"
        lines.append(
            f"- {target['name']}: {target['measured']:.3f}x (ratio of medians), {mark}; "
            f"paired {target['paired']:.3f}x, fastest {target['fastest']:.3f}x."
        )
    check = results["agreement_max_abs_difference"]
    lines += [
        "",
        "## Notes",
        "",
        "- `tf_floor` computes the op's relaxation: from the same noise, the largest "
        f"difference between the two outputs was {check['soft']:.2e} (soft) and "
        f"{check['hard']:.2e} (hard).",
        "- `tf_floor` has none of the op's argument checks, mask and `-inf` handling "
        "(a `where` before and after), dtype casts or seed-generator update.",
        "- `tf_clipped` replaces the stable `log(1 - a)` by `log(max(1 - a, tiny))`: two "
        "reductions less per step, but a chosen class is removed by at most 87 (in logits) "
        "and is chosen again as tau -> 0 when its logit leads by more than that.",
        f"- Peak RSS: {results['memory_method']}; total wall time {results['wall_s']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a seconds-long run, tiny sizes")
    parser.add_argument("--reps", type=int, help="interleaved rounds")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    settings = SMOKE if args.smoke else Settings()
    if args.reps:
        settings = dataclasses.replace(settings, reps=args.reps)
    argv = sys.argv[1:] if argv is None else argv
    shown, skip = [], False
    for item in argv:  # where results go is not part of them
        if skip:
            skip = False
        elif item == "--out":
            skip = True
        elif not item.startswith("--out="):
            shown.append(item)
    command = " ".join(["python", "-m", "benchmarks.subsets.subsets", *shown])
    started = time.perf_counter()
    results = {"command": command, "smoke": args.smoke, **run(settings)}
    results["machine"] = machine()
    results["wall_s"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "subsets.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "subsets.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
