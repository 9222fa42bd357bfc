"""Trains and evaluates the VAEs of the paper on a dataset and records the results.

Each entry of RUNS is one `keras-gumbel train` command; the script runs the
ones whose run directory has no metrics.json yet (a killed invocation
resumes where it stopped), then writes benchmarks/paper/results/<name>.json and
.md with every command, the test bound (m = 1000), epochs and wall time.

Usage:
    python -m benchmarks.paper.paper_models --data /usr/share/datasets/fashion-mnist \
        --name fashion_mnist_vaes --epochs 50
"""

import argparse
import json
import os
import platform
import shlex
import sys
from pathlib import Path

from benchmarks.common import portable
from benchmarks.common import shown_args
from benchmarks.common import train_once

RESULTS = Path(__file__).parent / "results"

# (label, model, extra arguments). The schedule is the paper's:
# tau = max(0.5, exp(-1e-4 t)) recomputed every 500 steps; Adam 1e-3 decayed
# by 0.9 every 1000 steps, batch 100, as in the reference implementation.
RUNS = [
    ("Categorical VAE 20x10, Gumbel-Softmax", "categorical-vae", ["--estimator", "gumbel_softmax"]),
    (
        "Categorical VAE 20x10, straight-through",
        "categorical-vae",
        ["--estimator", "straight_through"],
    ),
    ("Bernoulli VAE 200, Gumbel-Softmax", "bernoulli-vae", ["--estimator", "gumbel_softmax"]),
]
COMMON = [
    "--anneal-rate",
    "1e-4",
    "--anneal-interval",
    "500",
    "--tau-min",
    "0.5",
    "--learning-rate",
    "1e-3",
    "--lr-decay",
    "0.9",
    "--lr-decay-steps",
    "1000",
    "--batch-size",
    "100",
    "--eval-samples",
    "1000",
    "--quiet",
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--name", required=True, help="results file stem")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--runs-dir", default="runs/paper_models")
    args = parser.parse_args()
    rows = []
    for i, (label, model, extra) in enumerate(RUNS):
        run_dir = Path(args.runs_dir) / args.name / f"{i}-{model}-{extra[-1]}"
        command = [
            "keras-gumbel",
            "train",
            model,
            "--data",
            args.data,
            "--epochs",
            str(args.epochs),
            *COMMON,
            *extra,
            "--output",
            str(run_dir),
        ]
        metrics = train_once(command, run_dir, label)
        # The command names an absolute data or run directory by its placeholder;
        # the runs' metrics name the data as this machine holds it.
        row = {"label": label, "command": shlex.join(shown_args(command))}
        rows.append(portable({**row, **metrics}, args.data))
    payload = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "script": "python -m benchmarks.paper.paper_models " + shlex.join(shown_args(sys.argv[1:])),
        "runs": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(payload, indent=2))
    lines = [
        f"# {args.name}",
        "",
        f"Made by `{payload['script']}` on {payload['machine']}.",
        "",
        "| model | test -IW bound, m=1000 (nats, ± s.e.) | single-sample -ELBO "
        "| independent pixels "
        "| epochs | train time |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} "
            f"| {r['test_negative_bound']:.2f} ± {r['test_negative_bound_stderr']:.2f} "
            f"| {r['test_single_sample_loss']:.2f} | {r['test_independent_pixels_nll']:.2f} "
            f"| {r['epochs']} | {r['train_seconds'] / 60:.1f} min |"
        )
    lines += ["", "Commands:", ""] + [f"- `{r['command']}`" for r in rows]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
