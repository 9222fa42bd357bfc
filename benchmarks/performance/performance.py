"""Speed and memory of keras_gumbel against hand-written floors, TFP and PyTorch.

Three sub-benchmarks, each selectable with `--only`:

- `layer`: the `GumbelSoftmax` layer (soft and hard, sampling), forward and
  backward (the gradient of `sum(y * w)`, `w` a fixed random tensor, with
  respect to the logits) under `tf.function`, for batch x 20 variables x K
  classes, against a minimal hand-written TensorFlow expression (the floor),
  TFP's `RelaxedOneHotCategorical`, and `torch.nn.functional.gumbel_softmax`;
  both with and without XLA for TensorFlow. The JAX backend (the layer under
  `jax.jit` against a `jax.numpy` floor) runs in a subprocess, since the Keras
  backend is fixed per process.
- `training`: steady-state steps per second of `CategoricalVAE.fit` with a
  `TemperatureScheduler` attached, against hand-written `tf.function` loops of
  the same network, loss and Keras Adam over an in-memory `tf.data` pipeline
  (without XLA, with the optimizer update compiled by XLA as the models do,
  and with the whole step in XLA) and a PyTorch loop.
- `evaluation`: images per second of `importance_bound` (m = 1000) on
  Fashion-MNIST (or `--eval-data`) test images, the time for all 10,000 of
  them, and peak memory for several m.

Rules shared by every comparison: all sides run in the same process, warmed up
(traced, compiled) first, then timed in interleaved rounds, every side once
per round in a fresh random order after a 0.1 s pause, so that a slow spell of
the machine or threads left spinning by the previous side hit every side
alike; medians over rounds; ratios are ratios of medians. Thread counts are
pinned and recorded. The peak resident set size (RSS) is recorded next to
every time.

This file is the runner; the parts live next to it: `perf_layer.py`,
`perf_training.py`, `perf_evaluation.py`, and what they share (settings,
timing, memory, the machine) in `perf_timing.py`.

Usage:
    python -m benchmarks.performance.performance                        # the committed results
    python -m benchmarks.performance.performance --smoke --out /tmp/perf
    python -m benchmarks.performance.performance --only layer,training
    python -m benchmarks.performance.performance --only training --merge  # rerun one part
"""

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from benchmarks.common import shown_args
from benchmarks.performance.perf_evaluation import FASHION_MNIST
from benchmarks.performance.perf_evaluation import evaluation_markdown
from benchmarks.performance.perf_evaluation import evaluation_targets
from benchmarks.performance.perf_evaluation import run_evaluation
from benchmarks.performance.perf_layer import jax_worker
from benchmarks.performance.perf_layer import layer_markdown
from benchmarks.performance.perf_layer import layer_targets
from benchmarks.performance.perf_layer import run_layer
from benchmarks.performance.perf_timing import SMOKE
from benchmarks.performance.perf_timing import PeakRss
from benchmarks.performance.perf_timing import Settings
from benchmarks.performance.perf_timing import machine
from benchmarks.performance.perf_timing import pin_tensorflow_threads
from benchmarks.performance.perf_timing import pin_torch_threads
from benchmarks.performance.perf_training import run_training
from benchmarks.performance.perf_training import training_markdown
from benchmarks.performance.perf_training import training_targets

RESULTS = Path(__file__).resolve().parent / "results"
SUB_BENCHMARKS = ("layer", "training", "evaluation")


def targets(results):
    found = []
    for name, fn in (
        ("layer", layer_targets),
        ("training", training_targets),
        ("evaluation", evaluation_targets),
    ):
        if name in results:
            found += fn(results[name])
    return found


# Report.


def markdown(results, settings):
    m = results["machine"]
    v = m["versions"]
    threads = results["threads"]
    runs = part_runs(results)
    load = (
        f"load average {results['load_average']['start']} at the start, "
        f"{results['load_average']['end']} at the end (the machine is shared)"
    )
    lines = [
        "# keras_gumbel performance",
        "",
        f"Command: `{results['command']}`"
        + (" (smoke mode: tiny sizes)" if results["smoke"] else ""),
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']:.1f} GiB; {m['platform']}; "
        + (f"{load}." if len(runs) == 1 else "the machine is shared."),
        "",
    ]
    if len(runs) > 1:
        lines += ["Parts measured by separate runs, merged with `--merge`:", ""]
        for command, (names, run) in runs.items():
            lines.append(
                f"- {', '.join(names)}: `{command}`, load average {run['load_average']['start']} "
                f"at the start, {run['load_average']['end']} at the end, "
                f"{run['wall_s'] / 60:.1f} min."
            )
        lines.append("")
    lines += [
        f"Versions: keras_gumbel {v['keras_gumbel']}, TensorFlow {v['tensorflow']}, Keras "
        f"{v['keras']}, TFP {v['tensorflow_probability']}, NumPy {v['numpy']}, PyTorch "
        f"{v['torch']}, JAX {v['jax']}, Python {m['python']}.",
        "",
        f"Threads: {threads_text(threads)}. Peak RSS: {results['memory_method']}."
        + (f" Wall time of the run: {results['wall_s'] / 60:.1f} min." if len(runs) == 1 else ""),
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for target in results["targets"]:
        met = {True: "yes", False: "**no**", None: "not measured"}[target["met"]]
        lines.append(f"| {target['name']} | {target['measured']} | {met} |")
    lines.append("")
    if "layer" in results:
        lines += layer_markdown(results["layer"], settings)
    if "training" in results:
        lines += training_markdown(results["training"], settings)
    if "evaluation" in results:
        lines += evaluation_markdown(results["evaluation"])
    return "\n".join(lines)


def part_runs(results):
    """Command -> (the parts it measured, its run record), in the parts' order."""
    runs = {}
    for name in SUB_BENCHMARKS:
        if name in results:
            run = results[name].get("run") or results
            runs.setdefault(run["command"], ([], run))[0].append(name)
    return runs


def threads_text(threads):
    parts = [
        f"TensorFlow intra-op {threads['tensorflow_intra_op']}, "
        f"inter-op {threads['tensorflow_inter_op']}"
    ]
    if "torch_intra_op" in threads:
        parts.append(f"torch {threads['torch_intra_op']} (inter-op {threads['torch_inter_op']})")
    else:
        parts.append("torch not installed")
    parts.append(f"JAX: {threads['jax']}")
    return "; ".join(parts)


def write(results, settings, out):
    out.mkdir(parents=True, exist_ok=True)
    (out / "performance.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "performance.md").write_text(markdown(results, settings))


# Main.


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        default=",".join(SUB_BENCHMARKS),
        help="comma-separated sub-benchmarks: layer, training, evaluation",
    )
    parser.add_argument("--smoke", action="store_true", help="seconds-long run, tiny sizes")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="threads of every framework"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the parts of OUT/performance.json that this run does not measure",
    )
    parser.add_argument(
        "--eval-data",
        "--fashion-mnist",
        type=Path,
        default=FASHION_MNIST,
        help="directory of the evaluation's test images (default: Fashion-MNIST)",
    )
    parser.add_argument("--jax-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(SUB_BENCHMARKS))
    if unknown:
        parser.error(f"unknown sub-benchmarks {unknown}; choose from {SUB_BENCHMARKS}")
    args.only = only
    return args


def command_args(argv=None):
    """The command-line arguments that shape the results (all but `--out`), paths portable."""
    return shown_args(sys.argv[1:] if argv is None else argv, {"--out": 1})


def load_average():
    return [round(x, 2) for x in os.getloadavg()]


def measure_part(measure, command):
    """Runs `measure()`, a part; adds what ran it, the load around it and its wall time."""
    load_start, start = load_average(), time.perf_counter()
    part = measure()
    part["run"] = {
        "command": command,
        "load_average": {"start": load_start, "end": load_average()},
        "wall_s": time.perf_counter() - start,
    }
    return part


def run(args):
    settings = SMOKE if args.smoke else Settings()
    threads = {**pin_tensorflow_threads(args.threads), **pin_torch_threads(args.threads)}
    threads["jax"] = "XLA CPU default (all cores the process may use)"
    peak_rss = PeakRss()
    command = "python -m benchmarks.performance.performance" + "".join(
        f" {a}" for a in command_args()
    )
    start = time.perf_counter()
    load_start = load_average()
    results = {"command": command, "smoke": args.smoke, "settings": dataclasses.asdict(settings)}
    if "layer" in args.only:
        results["layer"] = measure_part(
            lambda: run_layer(settings, peak_rss, args.threads), command
        )
        if results["layer"]["jax"].get("status") == "ok":
            threads["jax"] = results["layer"]["jax"]["threads"]
    if "training" in args.only:
        results["training"] = measure_part(lambda: run_training(settings, peak_rss), command)
    if "evaluation" in args.only:
        results["evaluation"] = measure_part(
            lambda: run_evaluation(settings, peak_rss, args.eval_data, args.smoke), command
        )
    results.update(
        {
            "machine": machine(),
            "threads": threads,
            "memory_method": peak_rss.method,
            "load_average": {"start": load_start, "end": load_average()},
            "wall_s": time.perf_counter() - start,
        }
    )
    results["targets"] = targets(results)
    return results, settings


def merge_problem(previous, smoke, machine):
    """Why a run cannot be merged into `previous`, or None."""
    if previous.get("smoke") != smoke:
        return "a smoke run and a full run cannot be merged"
    if any(previous["machine"][key] != machine[key] for key in ("cpu", "cores", "versions")):
        return "runs on different machines or library versions cannot be merged"
    return None


def merge(previous, results):
    """`results` with the parts of `previous` (an earlier run's JSON) that it did not measure.

    A kept part keeps the record of the run that measured it (`run`: command,
    load average, wall time); the rest (settings, machine, threads) is this
    run's, except the JAX thread count, which the layer part measures.
    """
    problem = merge_problem(previous, results["smoke"], results["machine"])
    if problem:
        raise ValueError(problem)
    merged = {key: results[key] for key in ("command", "smoke", "settings")}
    for name in SUB_BENCHMARKS:
        if name in results:
            merged[name] = results[name]
        elif name in previous:
            part = merged[name] = previous[name]
            part.setdefault(
                "run", {key: previous[key] for key in ("command", "load_average", "wall_s")}
            )
    merged.update({key: value for key, value in results.items() if key not in merged})
    if "layer" not in results and "layer" in merged:
        merged["threads"]["jax"] = previous["threads"]["jax"]
    merged["targets"] = targets(merged)
    return merged


def main(argv=None):
    args = parse_args(argv)
    if args.jax_worker:
        jax_worker(json.loads(args.jax_worker))
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    previous = args.out / "performance.json"
    if args.merge:
        if not previous.is_file():
            sys.exit(f"--merge: no {previous} to merge with")
        problem = merge_problem(json.loads(previous.read_text()), args.smoke, machine())
        if problem:
            sys.exit(f"--merge: {problem} ({previous})")
    results, settings = run(args)
    if args.merge:
        results = merge(json.loads(previous.read_text()), results)
    write(results, settings, args.out)
    print((args.out / "performance.md").read_text())


if __name__ == "__main__":
    main()
