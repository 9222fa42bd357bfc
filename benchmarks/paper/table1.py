"""Reproduces Table 1 of Jang et al. (2017): four models x every gradient estimator.

The grid: SBN (Bernoulli 392-200-200-392, categorical 392-(20x10)-(20x10)-392)
and VAE (200 Bernoulli units, 20x10 categorical) x the seven estimators of
the paper (SF, DARN, MuProp, ST, annealed ST, Gumbel-Softmax, ST
Gumbel-Softmax) and three later ones (ReinMax, Gumbel-Rao with K = 10,
GST-1.0). Each cell trains with `keras_gumbel.training.train`, one run per
candidate hyperparameter setting, keeps the setting with the lowest final
validation loss, and evaluates it on the test set with the m-sample bound
(negative importance-weighted ELBO for VAEs, `-log (1/m) sum_i p(x_lower|h_i)`
for SBNs), in nats.

Protocols:

- default (the paper's, section 4 and appendix): SGD with momentum 0.9,
  batch 100, learning rate chosen on validation from {3e-5, 1e-5, 3e-4,
  1e-4, 3e-3, 1e-3}; VAE temperature `max(0.5, exp(-r t))` recomputed every
  N steps with r in {1e-5, 1e-4} and N in {500, 1000} chosen on validation
  with the learning rate; SBN temperature fixed at 1; m = 1000. The paper
  does not state the training length; the default of 100 epochs is about
  the reference notebook's 50,000 steps of batch 100 on 50,000 digits.
  This is 40 cells x 6 (SBN) or 24 (VAE) runs: days of CPU.
- `--reduced`: for a 2-core CPU. 20 epochs, one learning rate (3e-3, the
  largest of the paper's list: in short runs the largest stable rate wins,
  so a second, smaller rate would double the cost for nothing), m = 100.
  The VAE schedule keeps the paper's shape but is compressed to the short
  run: `r = ln 2 / (0.75 T)` for T training steps, recomputed every T / 20
  steps, so the temperature reaches the floor 0.5 at three quarters of
  training as it does in the paper's long runs.

Temperatures per estimator (both protocols): Gumbel-Softmax, ST
Gumbel-Softmax, Gumbel-Rao and GST use the VAE schedule in VAEs and tau = 1
in SBNs, as the paper does for its Gumbel estimators; annealed ST uses the
VAE schedule in all four models (with a fixed slope it is plain ST);
ReinMax uses tau = 1 (it requires tau >= 1); SF, DARN, MuProp and ST ignore
the temperature.

Resumable: a cell whose `metrics.json` exists is never recomputed, and a
candidate run killed midway resumes from its last epoch checkpoint.

Outputs: benchmarks/paper/results/table1_<name>.json (every cell, the protocol,
CPU time), .md (the table beside the paper's numbers, with the orderings
compared pair by pair) and .png (validation loss per epoch, the analogue
of the paper's figures 3 and 4).

Usage:
    python -m benchmarks.paper.table1 --reduced --data mnist-sample
    python -m benchmarks.paper.table1 --data /path/to/mnist-idx --name mnist
"""

import argparse
import dataclasses
import itertools
import json
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import placeholder
from benchmarks.common import portable
from benchmarks.common import shown_args

RESULTS = Path(__file__).resolve().parent / "results"

MODELS = ("sbn-bernoulli", "sbn-categorical", "bernoulli-vae", "categorical-vae")
MODEL_LABELS = {
    "sbn-bernoulli": "SBN (Bern.)",
    "sbn-categorical": "SBN (Cat.)",
    "bernoulli-vae": "VAE (Bern.)",
    "categorical-vae": "VAE (Cat.)",
}
PAPER_ESTIMATORS = (
    "score_function",
    "darn",
    "muprop",
    "straight_through",
    "annealed_straight_through",
    "gumbel_softmax",
    "st_gumbel_softmax",
)
LATER_ESTIMATORS = ("reinmax", "gumbel_rao", "gapped_straight_through")
ESTIMATOR_LABELS = {
    "score_function": "SF",
    "darn": "DARN",
    "muprop": "MuProp",
    "straight_through": "ST",
    "annealed_straight_through": "Annealed ST",
    "gumbel_softmax": "Gumbel-S.",
    "st_gumbel_softmax": "ST Gumbel-S.",
    "reinmax": "ReinMax",
    "gumbel_rao": "Gumbel-Rao (K=10)",
    "gapped_straight_through": "GST-1.0",
}
# Table 1 of Jang et al. (2017): test nats, lower is better.
PAPER = {
    "sbn-bernoulli": (72.0, 59.7, 58.9, 58.9, 58.7, 58.5, 59.3),
    "sbn-categorical": (73.1, 67.9, 63.0, 61.8, 61.1, 59.0, 59.7),
    "bernoulli-vae": (112.2, 110.9, 109.7, 116.0, 111.5, 105.0, 111.5),
    "categorical-vae": (110.6, 128.8, 107.0, 110.9, 107.8, 101.5, 107.8),
}
PAPER = {model: dict(zip(PAPER_ESTIMATORS, values, strict=True)) for model, values in PAPER.items()}
PAPER_LEARNING_RATES = (3e-5, 1e-5, 3e-4, 1e-4, 3e-3, 1e-3)
PAPER_VAE_SCHEDULES = ((1e-5, 500), (1e-5, 1000), (1e-4, 500), (1e-4, 1000))
# Estimators whose temperature follows the VAE schedule in VAEs (tau = 1 in SBNs).
GUMBEL_FAMILY = ("gumbel_softmax", "st_gumbel_softmax", "gumbel_rao", "gapped_straight_through")


@dataclasses.dataclass(frozen=True)
class Protocol:
    name: str
    epochs: int
    learning_rates: tuple
    eval_samples: int
    # None: the compressed schedule of the reduced protocol.
    vae_schedules: tuple | None
    batch_size: int = 100


PAPER_PROTOCOL = Protocol("paper", 100, PAPER_LEARNING_RATES, 1000, PAPER_VAE_SCHEDULES)
REDUCED_PROTOCOL = Protocol("reduced", 20, (3e-3,), 100, None)


def schedules(protocol, model, estimator, total_steps):
    """Candidate temperature settings `(schedule, rate, interval)` of a cell."""
    annealed = estimator == "annealed_straight_through" or (
        estimator in GUMBEL_FAMILY and model.endswith("-vae")
    )
    if not annealed:
        return [("constant", 0.0, 1)]
    if protocol.vae_schedules is None:
        rate = math.log(2.0) / (0.75 * total_steps)
        return [("exponential", rate, max(1, total_steps // 20))]
    return [("exponential", r, n) for r, n in protocol.vae_schedules]


def candidate_label(learning_rate, schedule, rate, interval):
    label = f"lr{learning_rate:g}"
    if schedule != "constant":
        label += f"-r{rate:.3g}-n{interval}"
    return label


def cpu_seconds():
    return time.process_time()


def run_cell(protocol, model, estimator, cell_dir, args, steps_per_epoch):
    """Trains every candidate of a cell, selects one on validation, evaluates it."""
    import keras

    from keras_gumbel.models import importance_bound
    from keras_gumbel.models import independent_pixels_nll
    from keras_gumbel.training import RunConfig
    from keras_gumbel.training import builders
    from keras_gumbel.training import load_config
    from keras_gumbel.training import restore
    from keras_gumbel.training import train

    total_steps = protocol.epochs * steps_per_epoch
    candidates = {}
    cpu_start, wall_start = cpu_seconds(), time.time()
    for learning_rate, (schedule, rate, interval) in itertools.product(
        protocol.learning_rates, schedules(protocol, model, estimator, total_steps)
    ):
        label = candidate_label(learning_rate, schedule, rate, interval)
        run_dir = cell_dir / label
        config = RunConfig(
            model=model,
            data=args.data,
            binarization="static",
            epochs=protocol.epochs,
            batch_size=protocol.batch_size,
            optimizer="sgd",
            learning_rate=learning_rate,
            estimator=estimator,
            schedule=schedule,
            tau0=1.0,
            tau_min=0.5,
            anneal_rate=rate,
            anneal_interval=interval,
            eval_samples=protocol.eval_samples,
            seed=args.seed,
        )
        resume = (run_dir / "config.json").is_file()
        history = train(
            config, run_dir, resume=resume, overwrite=not resume, evaluate_after=False, verbose=0
        )
        candidates[label] = {
            "run_dir": str(run_dir),
            "final_val_loss": float(history["val_loss"][-1]),
            "val_loss": [float(v) for v in history["val_loss"]],
            "loss": [float(v) for v in history["loss"]],
        }
        keras.backend.clear_session()
    train_cpu = cpu_seconds() - cpu_start
    finite = {k: v for k, v in candidates.items() if math.isfinite(v["final_val_loss"])}
    selected = min(finite or candidates, key=lambda k: candidates[k]["final_val_loss"])
    run_dir = Path(candidates[selected]["run_dir"])

    eval_start = cpu_seconds()
    config = load_config(run_dir)
    data = builders.build_data(config)
    network, state = restore(run_dir, config, data)
    single = network.evaluate(data.test, verbose=0, return_dict=True)["loss"]
    bounds = importance_bound(network, data.test, num_samples=protocol.eval_samples)
    baseline = independent_pixels_nll(data.train_targets, data.test_arrays[-1])
    keras.backend.clear_session()
    np.save(cell_dir / "test_bounds.npy", bounds)
    metrics = {
        "model": model,
        "estimator": estimator,
        "selected": selected,
        "learning_rate": config.learning_rate,
        "schedule": config.schedule,
        "anneal_rate": config.anneal_rate,
        "anneal_interval": config.anneal_interval,
        "candidates": candidates,
        "epochs": state["epoch"],
        "steps": state["epoch"] * steps_per_epoch,
        "test_negative_bound": float(np.mean(bounds)),
        "test_negative_bound_stderr": float(np.std(bounds) / np.sqrt(len(bounds))),
        "test_bound_samples": protocol.eval_samples,
        "test_single_sample_loss": float(single),
        "test_independent_pixels_nll": float(np.mean(baseline)),
        "test_examples": int(len(bounds)),
        "train_cpu_seconds": train_cpu,
        "eval_cpu_seconds": cpu_seconds() - eval_start,
        "wall_seconds": time.time() - wall_start,
    }
    (cell_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def paired(cells, cell_dirs, model, a, b):
    """Mean of `bound_a - bound_b` over the test set and its standard error."""
    diff = np.load(cell_dirs[model, a] / "test_bounds.npy") - np.load(
        cell_dirs[model, b] / "test_bounds.npy"
    )
    return float(diff.mean()), float(diff.std() / np.sqrt(len(diff)))


def compare_orderings(cells, cell_dirs, models):
    """For each model, every pair the paper orders: agreed, reversed or unresolved.

    A difference counts when it exceeds 2 paired standard errors (the same
    test digits under both estimators).
    """
    report = {}
    for model in models:
        present = [e for e in PAPER_ESTIMATORS if (model, e) in cells]
        rows = []
        for a, b in itertools.combinations(present, 2):
            pa, pb = PAPER[model][a], PAPER[model][b]
            if pa == pb:
                continue
            better, worse = (a, b) if pa < pb else (b, a)
            diff, se = paired(cells, cell_dirs, model, better, worse)
            verdict = (
                "unresolved" if abs(diff) <= 2 * se else ("agrees" if diff < 0 else "reversed")
            )
            rows.append(
                {
                    "paper_better": better,
                    "paper_worse": worse,
                    "diff": diff,
                    "se": se,
                    "verdict": verdict,
                }
            )
        ours = sorted(present, key=lambda e: cells[model, e]["test_negative_bound"])
        paper = sorted(present, key=lambda e: PAPER[model][e])
        report[model] = {
            "pairs": rows,
            "our_order": ours,
            "paper_order": paper,
            "kendall_tau": kendall_tau(ours, paper),
        }
    return report


def kendall_tau(order_a, order_b):
    rank_b = {e: i for i, e in enumerate(order_b)}
    ranks = [rank_b[e] for e in order_a]
    n = len(ranks)
    if n < 2:
        return float("nan")
    concordant = sum(
        1 if ranks[i] < ranks[j] else -1 for i, j in itertools.combinations(range(n), 2)
    )
    return concordant / (n * (n - 1) / 2)


def categorical_vae_targets(cells, cell_dirs):
    """The targets on the categorical VAE.

    Gumbel-Softmax against SF, DARN, MuProp and ST; the later estimators
    against ST Gumbel-Softmax.
    """
    model = "categorical-vae"
    out = {"gumbel_softmax_vs": {}, "later_vs_st_gumbel_softmax": {}}
    if (model, "gumbel_softmax") in cells:
        for other in ("score_function", "darn", "muprop", "straight_through"):
            if (model, other) in cells:
                diff, se = paired(cells, cell_dirs, model, "gumbel_softmax", other)
                out["gumbel_softmax_vs"][other] = {"diff": diff, "se": se}
    if (model, "st_gumbel_softmax") in cells:
        for later in LATER_ESTIMATORS:
            if (model, later) in cells:
                diff, se = paired(cells, cell_dirs, model, later, "st_gumbel_softmax")
                out["later_vs_st_gumbel_softmax"][later] = {"diff": diff, "se": se}
    return out


def plot_curves(cells, models, estimators, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    for ax, model in zip(axes.ravel(), MODELS, strict=True):
        tails = []
        for i, estimator in enumerate(estimators):
            cell = cells.get((model, estimator))
            if cell is None:
                continue
            curve = cell["candidates"][cell["selected"]]["val_loss"]
            tails.extend(curve[len(curve) // 10 :])
            style = "-" if estimator in PAPER_ESTIMATORS else "--"
            ax.plot(
                np.arange(1, len(curve) + 1),
                curve,
                style,
                color=f"C{i % 10}",
                label=ESTIMATOR_LABELS[estimator],
            )
        if tails:
            # The first epochs drop steeply; the scale shows the rest.
            low, high = min(tails), max(tails)
            ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(MODEL_LABELS[model])
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation loss (nats, exact samples)")
        ax.grid(alpha=0.3)
        if model not in models:
            ax.text(0.5, 0.5, "not run", ha="center", transform=ax.transAxes)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for ax in axes.ravel()[1:]:
        if not handles:
            handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=9)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(diff, se):
    return f"{diff:+.2f} ± {se:.2f}"


def _verdict(d):
    if d["diff"] < -2 * d["se"]:
        return "beats"
    return "loses to" if d["diff"] > 2 * d["se"] else "ties"


def markdown(payload, cells, models, estimators, orderings, targets):
    protocol = payload["protocol"]
    lines = [
        f"# Table 1 of Jang et al. (2017), reproduced on `{payload['data']}`",
        "",
        f"Made by `{payload['command']}` ({payload['protocol_name']} protocol) on "
        f"{payload['machine']}; {payload['cpu_minutes']:.1f} CPU minutes in all.",
        "",
        f"Protocol: SGD with momentum 0.9, batch {protocol['batch_size']}, "
        f"{protocol['epochs']} epochs ({payload['steps_per_epoch']} steps each), learning rate "
        f"chosen on validation from {list(protocol['learning_rates'])}; test bound with "
        f"m = {protocol['eval_samples']} samples on {payload['test_examples']} test images; "
        f"seed {payload['seed']}. Temperatures per estimator: see `benchmarks/paper/table1.py`.",
        "",
        "Test nats, lower is better: ours ± standard error over test images (the paper's "
        "Table 1 in parentheses; it trained on 50,000 MNIST digits for far longer, so only "
        "orderings are comparable, not values). SBN: negative log-likelihood of the lower "
        "half; VAE: negative importance-weighted bound.",
        "",
        "| estimator | " + " | ".join(MODEL_LABELS[m] for m in models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for estimator in estimators:
        row = [ESTIMATOR_LABELS[estimator]]
        for model in models:
            cell = cells.get((model, estimator))
            if cell is None:
                row.append("-")
                continue
            text = f"{cell['test_negative_bound']:.1f} ± {cell['test_negative_bound_stderr']:.1f}"
            if estimator in PAPER[model]:
                text += f" ({PAPER[model][estimator]:.1f})"
            row.append(text)
        lines.append("| " + " | ".join(row) + " |")
    lines.append(
        "| independent pixels | "
        + " | ".join(
            f"{cells[model, estimators[0]]['test_independent_pixels_nll']:.1f}"
            if (model, estimators[0]) in cells
            else "-"
            for model in models
        )
        + " |"
    )
    lines += [
        "",
        "## Orderings compared with the paper",
        "",
        "For every pair of the paper's estimators that Table 1 orders, the paired difference "
        "of our test bounds (paper-better minus paper-worse, same test images) and whether "
        "it agrees with the paper's order (< -2 s.e.), reverses it (> +2 s.e.) or is "
        "unresolved at this budget.",
        "",
    ]
    for model in models:
        report = orderings[model]
        counts = {
            v: sum(r["verdict"] == v for r in report["pairs"])
            for v in ("agrees", "reversed", "unresolved")
        }
        lines.append(
            f"- **{MODEL_LABELS[model]}**: {counts['agrees']} pairs agree, {counts['reversed']} "
            f"reversed, {counts['unresolved']} unresolved; Kendall tau between the two "
            f"rankings {report['kendall_tau']:+.2f}. Ours, best first: "
            + ", ".join(ESTIMATOR_LABELS[e] for e in report["our_order"])
            + ". Paper: "
            + ", ".join(ESTIMATOR_LABELS[e] for e in report["paper_order"])
            + "."
        )
        reversed_pairs = [r for r in report["pairs"] if r["verdict"] == "reversed"]
        agreed = [r for r in report["pairs"] if r["verdict"] == "agrees"]
        if agreed:
            lines.append(
                "  Agrees: "
                + "; ".join(
                    f"{ESTIMATOR_LABELS[r['paper_better']]} < {ESTIMATOR_LABELS[r['paper_worse']]} "
                    f"({_fmt(r['diff'], r['se'])})"
                    for r in agreed
                )
                + "."
            )
        if reversed_pairs:
            lines.append(
                "  Reversed: "
                + "; ".join(
                    f"paper {ESTIMATOR_LABELS[r['paper_better']]} < "
                    f"{ESTIMATOR_LABELS[r['paper_worse']]}, ours {_fmt(r['diff'], r['se'])}"
                    for r in reversed_pairs
                )
                + "."
            )
    lines += ["", "## Targets on the categorical VAE", ""]
    for other, d in targets["gumbel_softmax_vs"].items():
        lines.append(
            f"- Gumbel-Softmax {_verdict(d)} {ESTIMATOR_LABELS[other]}: "
            f"{_fmt(d['diff'], d['se'])} nats."
        )
    for later, d in targets["later_vs_st_gumbel_softmax"].items():
        lines.append(
            f"- {ESTIMATOR_LABELS[later]} {_verdict(d)} ST Gumbel-Softmax at equal budget: "
            f"{_fmt(d['diff'], d['se'])} nats."
        )
    lines += [
        "",
        "Differences are paired over the test images (mean ± standard error); one seed, so "
        "the variation between training runs is not in these errors.",
        "",
        f"Learning curves: `table1_{payload['name']}.png`.",
    ]
    if payload.get("notes"):
        lines += ["", "## Notes", "", payload["notes"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist-sample")
    parser.add_argument("--name", help="results file stem (default: from --data)")
    parser.add_argument("--reduced", action="store_true", help="the 2-core CPU protocol")
    parser.add_argument("--epochs", type=int, help="override the protocol's epochs")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument(
        "--estimators",
        nargs="+",
        choices=PAPER_ESTIMATORS + LATER_ESTIMATORS,
        default=list(PAPER_ESTIMATORS + LATER_ESTIMATORS),
    )
    parser.add_argument("--runs-dir", default="runs/table1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--notes", help="a file whose text is appended to the markdown")
    args = parser.parse_args(argv)

    from keras_gumbel import datasets

    protocol = REDUCED_PROTOCOL if args.reduced else PAPER_PROTOCOL
    if args.epochs:
        protocol = dataclasses.replace(protocol, epochs=args.epochs)
    name = args.name or args.data.strip("/").split("/")[-1].replace("-", "_")
    runs = Path(args.runs_dir) / name
    data = datasets.load(args.data, binarization="static", seed=args.seed)
    steps_per_epoch = math.ceil(len(data.x_train) / protocol.batch_size)
    cpu_start = cpu_seconds()
    cells, cell_dirs = {}, {}
    previous_cpu = 0.0
    for model, estimator in itertools.product(args.models, args.estimators):
        cell_dir = runs / model / estimator
        cell_dirs[model, estimator] = cell_dir
        if (cell_dir / "metrics.json").is_file():
            cells[model, estimator] = json.loads((cell_dir / "metrics.json").read_text())
        else:
            cell_dir.mkdir(parents=True, exist_ok=True)
            cells[model, estimator] = run_cell(
                protocol, model, estimator, cell_dir, args, steps_per_epoch
            )
            cell = cells[model, estimator]
            print(
                f"{model:16s} {estimator:26s} {cell['test_negative_bound']:8.2f} nats  "
                f"{cell['train_cpu_seconds'] + cell['eval_cpu_seconds']:6.0f} CPU s",
                flush=True,
            )
        cell = cells[model, estimator]
        previous_cpu += cell["train_cpu_seconds"] + cell["eval_cpu_seconds"]
    orderings = compare_orderings(cells, cell_dirs, args.models)
    targets = categorical_vae_targets(cells, cell_dirs)
    payload = {
        "name": name,
        "data": placeholder(args.data, "--data"),
        "data_description": data.summary(),
        "protocol_name": protocol.name,
        "protocol": dataclasses.asdict(protocol),
        "steps_per_epoch": steps_per_epoch,
        "seed": args.seed,
        "command": "python -m benchmarks.paper.table1 "
        + shlex.join(shown_args(argv or sys.argv[1:])),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "cpu_minutes": previous_cpu / 60.0,
        "cpu_minutes_this_invocation": (cpu_seconds() - cpu_start) / 60.0,
        "test_examples": next(iter(cells.values()))["test_examples"],
        "paper_table1": PAPER,
        "cells": [
            {k: v for k, v in cell.items() if k != "candidates"}
            | {"val_loss": cell["candidates"][cell["selected"]]["val_loss"]}
            for cell in cells.values()
        ],
        "orderings": orderings,
        "targets": targets,
        "notes": Path(args.notes).read_text().strip() if args.notes else "",
    }
    payload = portable(payload, args.data)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"table1_{name}"
    Path(f"{stem}.json").write_text(json.dumps(payload, indent=2))
    title = f"Validation loss per epoch ({payload['data']}, {protocol.name} protocol)"
    plot_curves(cells, args.models, args.estimators, f"{stem}.png", title)
    text = markdown(payload, cells, args.models, args.estimators, orderings, targets)
    text = portable(text, args.data)
    Path(f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
