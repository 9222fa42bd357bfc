"""The plan and the report of `benchmarks/paper/paper_mnist.py`: selection, cells, comparisons.

`plan(units)` lists every unit the grid needs, in the order to run them,
given what has finished (a unit's hyperparameters may depend on finished
selection units). `report(units)` writes `paper_mnist.{md,json,png}`:
every cell beside the paper's number, the selected hyperparameters, and
Gumbel-Softmax against each of the paper's other estimators with paired
standard errors.
"""

import json
import math
from pathlib import Path

import numpy as np

from benchmarks.paper import paper_mnist_protocol
from benchmarks.paper.paper_mnist_protocol import EPOCHS
from benchmarks.paper.paper_mnist_protocol import ESTIMATORS
from benchmarks.paper.paper_mnist_protocol import SBN_FINALISTS
from benchmarks.paper.paper_mnist_protocol import SBN_LEARNING_RATES
from benchmarks.paper.paper_mnist_protocol import SELECTION_EPOCHS
from benchmarks.paper.paper_mnist_protocol import annealed
from benchmarks.paper.paper_mnist_protocol import evaluation_current
from benchmarks.paper.paper_mnist_protocol import is_vae
from benchmarks.paper.paper_mnist_protocol import lr_label
from benchmarks.paper.paper_mnist_protocol import protocol_variant
from benchmarks.paper.paper_mnist_protocol import schedule_label
from benchmarks.paper.table1 import ESTIMATOR_LABELS
from benchmarks.paper.table1 import MODEL_LABELS
from benchmarks.paper.table1 import MODELS
from benchmarks.paper.table1 import PAPER
from benchmarks.paper.table1 import PAPER_ESTIMATORS
from benchmarks.paper.table1 import PAPER_VAE_SCHEDULES

VAE_CANDIDATES = tuple(schedule_label(r, n) for r, n in PAPER_VAE_SCHEDULES)
SBN_CANDIDATES = tuple(lr_label(lr) for lr in SBN_LEARNING_RATES)
# Cells run with three seeds, so that their differences are judged against
# the spread between training runs.
SEEDED = {
    ("categorical-vae", e) for e in ("gumbel_softmax", "st_gumbel_softmax", "straight_through")
}
SEEDS = (0, 1, 2)
PRIORITY = ("categorical-vae", "bernoulli-vae", "sbn-categorical", "sbn-bernoulli")


def _units_of(units, model, estimator, epochs, seed=0):
    return {
        u["candidate"]: u
        for u in units.values()
        if u["model"] == model
        and u["estimator"] == estimator
        and u["seed"] == seed
        and u["config"]["epochs"] == epochs
        and u.get("variant") == protocol_variant(model, estimator)
    }


def is_diagnosis(unit):
    """A unit that fills no cell: its variant is not the protocol's for its cell."""
    return unit.get("variant") != protocol_variant(unit["model"], unit["estimator"])


def _ranked(candidates):
    """Candidate labels by best validation loss, those without one left out."""
    finite = [k for k, u in candidates.items() if u["best_val_loss"] is not None]
    return sorted(finite, key=lambda k: candidates[k]["best_val_loss"])


def _best(candidates):
    ranked = _ranked(candidates)
    return ranked[0] if ranked else None


def selection(units, model, estimator):
    """How a cell's hyperparameter is chosen, and the choice if it can be made yet.

    Returns:
        `(candidate, how, needed)`: the chosen candidate label (None when
        pending, or when the cell has no hyperparameter), a sentence saying
        how it was chosen, and the selection units still to run as
        `(model, estimator, candidate, epochs)`.
    """
    if is_vae(model):
        if not annealed(model, estimator):
            return None, "no hyperparameter (temperature unused; Adam 1e-3)", []
        runs = _units_of(units, model, "gumbel_softmax", EPOCHS)
        needed = [(model, "gumbel_softmax", c, EPOCHS) for c in VAE_CANDIDATES if c not in runs]
        how = (
            "schedule (r, N) chosen on the best validation loss of full-length Gumbel-Softmax "
            "runs over the paper's grid, then used by every annealed estimator of this model"
        )
        return (None if needed else _best(runs)), how, needed
    runs = _units_of(units, model, estimator, SELECTION_EPOCHS)
    needed = [(model, estimator, c, SELECTION_EPOCHS) for c in SBN_CANDIDATES if c not in runs]
    how = (
        f"learning rate: the {SBN_FINALISTS} with the best validation loss after "
        f"{SELECTION_EPOCHS} epochs, over the paper's list times the batch size, trained for "
        f"{EPOCHS} epochs; the one with the lower m = 1000 validation NLL (each at the better "
        "of its best-validation-loss and last epochs)"
    )
    if needed:
        return None, how, needed
    finalists = finalist_candidates(runs)
    full = _units_of(units, model, estimator, EPOCHS)
    # A finalist evaluated by an older version runs its command again, which
    # brings its numbers up to date from its run directory without retraining.
    needed = [
        (model, estimator, c, EPOCHS)
        for c in finalists
        if c not in full or not evaluation_current(full[c])
    ]
    if needed:
        return None, how, needed
    return min(finalists, key=lambda c: full[c]["val_negative_bound"]), how, []


def finalist_candidates(runs):
    """The short runs' best `SBN_FINALISTS` rates, by best validation loss."""
    return _ranked(runs)[:SBN_FINALISTS]


def plan(units):
    """Every unit still to run, as `(model, estimator, candidate, seed, epochs)`."""
    todo = []
    for model in MODELS:
        for estimator in ESTIMATORS:
            candidate, _, needed = selection(units, model, estimator)
            todo += [(m, e, c, 0, ep) for m, e, c, ep in needed]
            if needed:
                continue
            seeds = SEEDS if (model, estimator) in SEEDED else (0,)
            for seed in seeds:
                if candidate not in _units_of(units, model, estimator, EPOCHS, seed):
                    todo.append((model, estimator, candidate, seed, EPOCHS))
    # Extra seeds last; the categorical VAE first; within a model, selection
    # runs before full-length ones.
    return sorted(
        dict.fromkeys(todo),
        key=lambda t: (t[3] > 0, PRIORITY.index(t[0]), t[4] == EPOCHS, ESTIMATORS.index(t[1])),
    )


def command(model, estimator, candidate, seed, epochs):
    text = f"python -m benchmarks.paper.paper_mnist unit {model} {estimator}"
    if candidate:
        text += f" --candidate {candidate}"
    if seed:
        text += f" --seed {seed}"
    if epochs != EPOCHS:
        text += f" --epochs {epochs}"
    if protocol_variant(model, estimator):
        text += f" --variant {protocol_variant(model, estimator)}"
    return text + " --data MNIST_DIR"


def _bounds(units_dir, unit):
    return np.load(Path(units_dir) / f"{unit['unit']}.bounds.npy").astype(np.float64)


def cells(units):
    """The selected unit of every (model, estimator) that has finished."""
    found = {}
    for model in MODELS:
        for estimator in ESTIMATORS:
            candidate, how, needed = selection(units, model, estimator)
            if needed:
                continue
            unit = _units_of(units, model, estimator, EPOCHS).get(candidate)
            if unit is not None:
                found[model, estimator] = {"unit": unit, "how": how}
    return found


def paired(units_dir, a, b):
    diff = _bounds(units_dir, a) - _bounds(units_dir, b)
    return float(diff.mean()), float(diff.std() / math.sqrt(len(diff)))


def seed_spread(units, model, estimator, candidate):
    runs = [_units_of(units, model, estimator, EPOCHS, seed).get(candidate) for seed in SEEDS]
    values = [u["test_negative_bound"] for u in runs if u is not None]
    if len(values) < 2:
        return None
    return {
        "seeds": len(values),
        "values": values,
        "mean": float(np.mean(values)),
        "std": float(np.std(values, ddof=1)),
    }


def report(units, units_dir, out_stem):
    """Writes `<out_stem>.{json,md,png}`; returns the JSON payload."""
    found = cells(units)
    rows = []
    for (model, estimator), cell in found.items():
        unit = cell["unit"]
        paper = PAPER[model].get(estimator)
        rows.append(
            {
                "model": model,
                "estimator": estimator,
                "unit": unit["unit"],
                "selected": unit["candidate"],
                "selection": cell["how"],
                "test_negative_bound": unit["test_negative_bound"],
                "test_negative_bound_stderr": unit["test_negative_bound_stderr"],
                "test_single_sample_loss": unit["test_single_sample_loss"],
                "test_relaxed_loss": unit.get("test_relaxed_loss"),
                "paper": paper,
                "difference": None if paper is None else unit["test_negative_bound"] - paper,
                "steps": unit["steps"],
                "best_epoch": unit["best_epoch"],
                "tested_epoch": unit.get("evaluated_epoch", unit["best_epoch"]),
                "train_cpu_minutes": unit["train_cpu_seconds"] / 60,
                "eval_cpu_minutes": unit["eval_cpu_seconds"] / 60,
                "seeds": seed_spread(units, model, estimator, unit["candidate"]),
            }
        )
    comparisons = {}
    for model in MODELS:
        if (model, "gumbel_softmax") not in found:
            continue
        gs = found[model, "gumbel_softmax"]["unit"]
        comparisons[model] = {
            other: dict(
                zip(("diff", "se"), paired(units_dir, gs, found[model, other]["unit"]), strict=True)
            )
            for other in PAPER_ESTIMATORS
            if other != "gumbel_softmax" and (model, other) in found
        }
    todo = plan(units)
    payload = {
        "protocol": paper_mnist_protocol.__doc__,
        "paper_table1": PAPER,
        "cells": rows,
        "gumbel_softmax_minus_other": comparisons,
        "pending_units": [command(*t) for t in todo],
        "units": sorted(units),
        "finished_units": [
            {
                k: u.get(k)
                for k in (
                    "unit",
                    "model",
                    "estimator",
                    "candidate",
                    "seed",
                    "best_val_loss",
                    "best_epoch",
                    "steps",
                    "test_negative_bound",
                    "test_negative_bound_stderr",
                    "test_single_sample_loss",
                )
            }
            | {
                "epochs": u["config"]["epochs"],
                "variant": u.get("variant"),
                "test_relaxed_loss": u.get("test_relaxed_loss"),
                "val_negative_bound": u.get("val_negative_bound"),
                "tested_epoch": u.get("evaluated_epoch", u["best_epoch"]),
            }
            for u in sorted(units.values(), key=lambda u: u["unit"])
        ],  # fmt: skip
    }
    Path(f"{out_stem}.json").write_text(json.dumps(payload, indent=1))
    Path(f"{out_stem}.md").write_text(markdown(payload, found))
    plot(found, f"{out_stem}.png")
    return payload


def _cell_text(row):
    text = f"{row['test_negative_bound']:.1f} ± {row['test_negative_bound_stderr']:.2f}"
    if row["paper"] is not None:
        text += f" ({row['paper']:.1f}, {row['difference']:+.1f})"
    return text


def _number(value):
    return "-" if value is None else f"{value:.2f}"


def _bound(unit):
    if unit.get("test_negative_bound") is None:
        return "-"
    return f"{unit['test_negative_bound']:.2f} ± {unit['test_negative_bound_stderr']:.2f}"


def markdown(payload, found):
    by_key = {(r["model"], r["estimator"]): r for r in payload["cells"]}
    lines = [
        "# Table 1 of Jang et al. (2017) on full MNIST",
        "",
        "Test nats, lower is better, on the 10,000 MNIST test digits (static binarization, "
        "seed 0; 50,000 / 10,000 / 10,000). Each cell: our m = 1000 bound ± its standard "
        "error over test images (the paper's value, our difference). SBN: negative "
        "log-likelihood of the lower half; VAE: negative importance-weighted bound. "
        "Protocol and selection: `benchmarks/paper/paper_mnist.py`; every unit's JSON, with its "
        "command, is in `benchmarks/paper/results/paper_mnist/units/`.",
        "",
        "| estimator | " + " | ".join(MODEL_LABELS[m] for m in MODELS) + " |",
        "|---|" + "---|" * len(MODELS),
    ]
    for estimator in ESTIMATORS:
        cells_text = [
            _cell_text(by_key[m, estimator]) if (m, estimator) in by_key else "pending"
            for m in MODELS
        ]
        lines.append(f"| {ESTIMATOR_LABELS[estimator]} | " + " | ".join(cells_text) + " |")
    lines += [
        "",
        "## Single-sample bound beside the m = 1000 bound",
        "",
        "The paper's caption calls the VAE numbers a negative variational lower bound; "
        "both readings are here: single sample is the discrete model's negative ELBO with "
        "one exact sample per digit. For the VAEs, relaxed is the training objective on the "
        "test digits (for Gumbel-Softmax the relaxed sample at the final temperature, which "
        "is not a value of the discrete latent; for the others it equals the single-sample "
        "loss in expectation). Selected hyperparameter, best-validation epoch, the epoch "
        "whose weights were tested (the best-validation one, or for an SBN the last when "
        "its validation NLL is lower), steps and CPU minutes (training + evaluation) per "
        "cell.",
        "",
        "| model | estimator | m = 1000 | single sample | relaxed | paper | selected | "
        "best epoch | tested epoch | steps | CPU min |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for row in payload["cells"]:
        paper = "" if row["paper"] is None else f"{row['paper']:.1f}"
        lines.append(
            f"| {MODEL_LABELS[row['model']]} | {ESTIMATOR_LABELS[row['estimator']]} | "
            f"{row['test_negative_bound']:.2f} ± {row['test_negative_bound_stderr']:.2f} | "
            f"{row['test_single_sample_loss']:.2f} | {_number(row['test_relaxed_loss'])} | "
            f"{paper} | {row['selected'] or '-'} | "
            f"{row['best_epoch']} | {row['tested_epoch']} | {row['steps']} | "
            f"{row['train_cpu_minutes'] + row['eval_cpu_minutes']:.0f} |"
        )
    lines += ["", "## Is Gumbel-Softmax the best of the paper's seven?", ""]
    if not payload["gumbel_softmax_minus_other"]:
        lines.append("No row has its Gumbel-Softmax cell yet.")
    for model, others in payload["gumbel_softmax_minus_other"].items():
        parts = [
            f"{ESTIMATOR_LABELS[o]} {d['diff']:+.2f} ± {d['se']:.2f}" for o, d in others.items()
        ]
        lines.append(
            f"- {MODEL_LABELS[model]}: Gumbel-Softmax minus "
            + ("; ".join(parts) if parts else "(no other cell yet)")
            + " (paired over test images; negative: Gumbel-Softmax is better)."
        )
    seeded = [r for r in payload["cells"] if r["seeds"]]
    if seeded:
        lines += ["", "## Spread between training runs", ""]
        for row in seeded:
            s = row["seeds"]
            lines.append(
                f"- {MODEL_LABELS[row['model']]}, {ESTIMATOR_LABELS[row['estimator']]}: "
                f"{s['seeds']} seeds, {', '.join(f'{v:.2f}' for v in s['values'])}; "
                f"mean {s['mean']:.2f}, standard deviation {s['std']:.2f}."
            )
    diagnoses = [u for u in payload["finished_units"] if is_diagnosis(u)]
    if diagnoses:
        lines += [
            "",
            "## Diagnoses: one change to the protocol",
            "",
            "Units run with one change (`--variant`, see `VARIANTS` in "
            "`benchmarks/paper/paper_mnist.py`); they fill no cell. Where the protocol "
            "prescribes a variant (`PROTOCOL_VARIANTS`: MuProp in the SBNs normalizes its "
            "learning signal alone), the units without it (variant: none, the first "
            "protocol's) are diagnoses.",
            "",
            "| model | estimator | candidate | variant | best val loss | best epoch | "
            "test, m = 1000 | single sample | relaxed |",
            "|---|---|---|---|---:|---:|---:|---:|---:|",
        ]
        for u in diagnoses:
            lines.append(
                f"| {MODEL_LABELS[u['model']]} | {ESTIMATOR_LABELS[u['estimator']]} | "
                f"{u['candidate'] or '-'} | {u['variant'] or 'none'} | "
                f"{_number(u['best_val_loss'])} | "
                f"{u['best_epoch']} | {_bound(u)} | {_number(u['test_single_sample_loss'])} | "
                f"{_number(u['test_relaxed_loss'])} |"
            )
    lines += [
        "",
        "## Every finished unit",
        "",
        "Selection runs included: a cell's hyperparameter is chosen on validation, never "
        "on a test number (best val loss: single-sample, nats; val, m = 1000: the SBNs' "
        "validation NLL, on which their full-length finalists are compared). SBN selection "
        "runs are not evaluated on the test digits.",
        "",
        "| model | estimator | candidate | seed | epochs | best val loss | best epoch | "
        "val, m = 1000 | test, m = 1000 | test, single sample |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for u in payload["finished_units"]:
        if is_diagnosis(u):
            continue
        lines.append(
            f"| {MODEL_LABELS[u['model']]} | {ESTIMATOR_LABELS[u['estimator']]} | "
            f"{u['candidate'] or '-'} | {u['seed']} | {u['epochs']} | "
            f"{_number(u['best_val_loss'])} | {u['best_epoch']} | "
            f"{_number(u.get('val_negative_bound'))} | {_bound(u)} | "
            f"{_number(u['test_single_sample_loss'])} |"
        )
    if payload["pending_units"]:
        lines += [
            "",
            f"## Pending: {len(payload['pending_units'])} units",
            "",
            "Run them in this order (selection units first; MNIST_DIR holds the four IDX "
            "files, e.g. from `keras.datasets` or `get-mnist`), committing each unit's JSON "
            "as it lands; this table is then remade with `python -m benchmarks.paper.paper_mnist "
            "report`.",
            "",
            "```",
            *payload["pending_units"],
            "```",
        ]
    return "\n".join(lines) + "\n"


def plot(found, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    for ax, model in zip(axes.ravel(), MODELS, strict=True):
        tails = []
        for i, estimator in enumerate(ESTIMATORS):
            if (model, estimator) not in found:
                continue
            curve = found[model, estimator]["unit"]["val_loss"]
            tails.extend(v for v in curve[len(curve) // 10 :] if math.isfinite(v))
            style = "-" if estimator in PAPER_ESTIMATORS else "--"
            ax.plot(range(1, len(curve) + 1), curve, style, color=f"C{i % 10}",
                    label=ESTIMATOR_LABELS[estimator])  # fmt: skip
        if tails:
            low, high = min(tails), max(tails)
            ax.set_ylim(low - 0.05 * (high - low + 1), high + 0.05 * (high - low + 1))
        else:
            ax.text(0.5, 0.5, "pending", ha="center", transform=ax.transAxes)
        ax.set_title(MODEL_LABELS[model])
        ax.set_xlabel("epoch (500 steps)")
        ax.set_ylabel("validation loss (nats)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle("Full MNIST: validation loss per epoch of each selected cell")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
