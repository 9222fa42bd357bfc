"""Model M2 with 100 labels: test accuracy and bound of the three y-estimators.

Each estimator is one `keras-gumbel train semi-supervised` command and one
unit: its result lands in benchmarks/paper/results/<name>/<estimator>-seed<S>.json
as soon as it finishes (commit it then: a unit with a result is never run
again, so the rows can be finished over several sittings on fresh machines),
and a killed run resumes from its run directory. A row longer than one
sitting is carried to the next machine through git: `--save-progress`
copies each unfinished run's newest checkpoint into
benchmarks/paper/results/<name>/<estimator>-seed<S>.progress/ (commit it), from
which the same command resumes on a fresh clone (`progress.py`); the copy
is removed when the row lands. The script then writes
benchmarks/paper/results/<name>.json and .md with every command, the test
accuracy, the unlabelled test bound (y marginalized, one z sample), the
wall time and each estimator's speed-up over marginalization. All runs
share the data, the labelled subset (the seed) and the training budget.
The sampled estimators anneal tau = max(0.5, exp(-r t)):
`--anneal paper` uses the paper's r = 3e-5 recomputed every 2000 steps (tau
hardly moves in runs of a few thousand steps); `--anneal compressed` keeps
the schedule's shape in a short run, as the reduced protocol of
`table1.py` does: r = ln 2 / (0.75 T) for T training steps, recomputed
every T / 20 steps, so tau reaches 0.5 at three quarters of training.

Usage:
    python -m benchmarks.paper.semisupervised_accuracy --data /usr/share/datasets/fashion-mnist \
        --name semisupervised_fashion_mnist --epochs 10
    # beside a long run, from time to time, then commit the .progress directories:
    python -m benchmarks.paper.semisupervised_accuracy --data DIR --name NAME --save-progress
"""

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import sys
from pathlib import Path

from benchmarks.common import portable
from benchmarks.common import shown_args
from benchmarks.common import train_once
from benchmarks.paper.progress import restore_progress
from benchmarks.paper.progress import save_progress

RESULTS = Path(__file__).parent / "results"
ESTIMATORS = ("marginalize", "gumbel_softmax", "st_gumbel_softmax")
# Table 2 of Jang et al. (2017): binarized MNIST, 100 labels.
PAPER = {
    "marginalize": (92.6, 106.8),
    "gumbel_softmax": (92.4, 109.6),
    "st_gumbel_softmax": (93.6, 110.7),
}


def anneal_arguments(anneal, data, epochs, batch_size=100, num_labels=100):
    """`--anneal-rate` and `--anneal-interval` of the chosen schedule."""
    if anneal == "paper":
        return ["--anneal-rate", "3e-5", "--anneal-interval", "2000"]
    from keras_gumbel import datasets

    unlabelled = len(datasets.load(data, binarization="dynamic").x_train) - num_labels
    steps = epochs * math.ceil(unlabelled / batch_size)
    rate = math.log(2) / (0.75 * steps)
    return ["--anneal-rate", f"{rate:.4g}", "--anneal-interval", str(max(1, steps // 20))]


def run_one(data, epochs, estimator, seed, run_dir, anneal):
    command = [
        "keras-gumbel",
        "train",
        "semi-supervised",
        "--data",
        data,
        "--epochs",
        str(epochs),
        "--estimator",
        estimator,
        "--num-labels",
        "100",
        "--seed",
        str(seed),
        # Marginalization has no temperature to anneal.
        *(anneal if estimator != "marginalize" else []),
        "--quiet",
        "--output",
        str(run_dir),
    ]
    metrics = train_once(command, run_dir, estimator)
    # The command names the data and the run directory by placeholders where
    # they are absolute; the run's own metrics name the data as this machine
    # holds it.
    row = {"estimator": estimator, "seed": seed, "command": shlex.join(shown_args(command))}
    return portable({**row, **metrics}, data)


def run_unit(units_dir, data, epochs, estimator, seed, run_dir, anneal):
    """One row: its committed result if it has one, else the run's (written at once)."""
    path = Path(units_dir) / f"{estimator}-seed{seed}.json"
    if path.is_file():
        row = json.loads(path.read_text())
        if row["epochs"] != epochs:
            sys.exit(
                f"{path} was trained for {row['epochs']} epochs, not {epochs}: "
                "rows of one table share their budget (use another --name)"
            )
        return row
    progress = progress_dir(units_dir, estimator, seed)
    if restore_progress(progress, run_dir, data):
        print(f"{estimator}: resuming from the progress carried in {progress}", flush=True)
    row = run_one(data, epochs, estimator, seed, run_dir, anneal)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row, indent=2) + "\n")
    shutil.rmtree(progress, ignore_errors=True)
    return row


def progress_dir(units_dir, estimator, seed):
    """Where an unfinished row's checkpoint is carried through git."""
    return Path(units_dir) / f"{estimator}-seed{seed}.progress"


def run_dir_of(runs_dir, name, estimator, seed):
    """Where a row trains on this machine (not committed)."""
    return Path(runs_dir) / name / f"{estimator}-seed{seed}"


def speedups(rows):
    """Training wall time of marginalization over each row's, or None without it."""
    reference = {r["seed"]: r["train_seconds"] for r in rows if r["estimator"] == "marginalize"}
    return [
        reference[r["seed"]] / r["train_seconds"] if r["seed"] in reference else None for r in rows
    ]


def write(rows, name, script, anneal, results=RESULTS):
    payload = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "script": script,
        "anneal": anneal,
        "runs": rows,
    }
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        f"# {name}",
        "",
        f"Made by `{script}` on {payload['machine']}.",
        "",
        f"Data: {rows[0]['data']}. Temperature schedule of the sampled estimators: "
        f"{anneal} (see the script's docstring). Test accuracy over "
        f"{rows[0]['test_examples']:,} test images, one training run each.",
        "",
        "| y-estimator | test accuracy | test -ELBO, unlabelled (nats) | epochs | train time "
        "| speed-up over marginalization | paper (MNIST): accuracy, -ELBO |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r, speedup in zip(rows, speedups(rows), strict=True):
        accuracy, elbo = PAPER[r["estimator"]]
        lines.append(
            f"| {r['estimator']} | {100 * r['test_accuracy']:.2f}% "
            f"| {r['test_negative_elbo_unlabelled']:.2f} | {r['epochs']} "
            f"| {r['train_seconds'] / 60:.1f} min "
            f"| {'-' if speedup is None else f'{speedup:.1f}x'} | {accuracy}%, {elbo} |"
        )
    lines += ["", "Commands:", ""] + [f"- `{r['command']}`" for r in rows]
    (results / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--name", required=True, help="results file stem")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--estimators", nargs="+", choices=ESTIMATORS, default=list(ESTIMATORS))
    parser.add_argument("--anneal", choices=("paper", "compressed"), default="paper")
    parser.add_argument("--runs-dir", default="runs/semisupervised")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where results go")
    parser.add_argument(
        "--save-progress",
        action="store_true",
        help="copy each unfinished run's newest checkpoint beside the results (to commit) "
        "and exit; the same command without it resumes from there on a fresh clone",
    )
    args = parser.parse_args(argv)
    units_dir = args.results / args.name
    if args.save_progress:
        for estimator in args.estimators:
            run_dir = run_dir_of(args.runs_dir, args.name, estimator, args.seed)
            progress = progress_dir(units_dir, estimator, args.seed)
            epoch = save_progress(run_dir, progress)
            saved = "nothing to carry" if epoch is None else f"epoch {epoch} saved in {progress}"
            print(f"{estimator}: {saved}")
        return
    anneal = anneal_arguments(args.anneal, args.data, args.epochs)
    for estimator in args.estimators:
        run_unit(
            units_dir,
            args.data,
            args.epochs,
            estimator,
            args.seed,
            run_dir_of(args.runs_dir, args.name, estimator, args.seed),
            anneal,
        )
    # The table holds every row that has landed, whichever invocation ran it.
    paths = [units_dir / f"{estimator}-seed{args.seed}.json" for estimator in ESTIMATORS]
    rows = [json.loads(path.read_text()) for path in paths if path.is_file()]
    script = "python -m benchmarks.paper.semisupervised_accuracy " + shlex.join(
        shown_args(sys.argv[1:] if argv is None else argv)
    )
    write(rows, args.name, script, args.anneal, args.results)


if __name__ == "__main__":
    main()
