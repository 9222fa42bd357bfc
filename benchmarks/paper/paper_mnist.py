"""Table 1 of Jang et al. (2017) on full, statically binarized MNIST, unit by unit.

Every unit is one resumable command whose result JSON lands in
`benchmarks/paper/results/paper_mnist/units/` (with the per-image test bounds
beside it, for paired standard errors), so the grid can be finished over
several sittings on fresh machines: commit each JSON as it lands.

    python -m benchmarks.paper.paper_mnist unit MODEL ESTIMATOR [--candidate C] [--seed S]
    python -m benchmarks.paper.paper_mnist plan      # the units still to run, in order
    python -m benchmarks.paper.paper_mnist report    # paper_mnist.{md,json,png} from the units

The protocol, and what the paper leaves open fixed here, is in
`paper_mnist_protocol.py` (and `README.md` of this folder).
"""

import argparse
import hashlib
import json
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import cpu_model
from benchmarks.common import placeholder
from benchmarks.common import portable
from benchmarks.common import shown_args
from benchmarks.paper import paper_mnist_report
from benchmarks.paper.paper_mnist_protocol import BATCH_SIZE
from benchmarks.paper.paper_mnist_protocol import DATA_SEED
from benchmarks.paper.paper_mnist_protocol import EPOCHS
from benchmarks.paper.paper_mnist_protocol import ESTIMATORS
from benchmarks.paper.paper_mnist_protocol import EVAL_SAMPLES
from benchmarks.paper.paper_mnist_protocol import SPLITS
from benchmarks.paper.paper_mnist_protocol import VARIANTS
from benchmarks.paper.paper_mnist_protocol import canonical_candidate
from benchmarks.paper.paper_mnist_protocol import evaluation_current
from benchmarks.paper.paper_mnist_protocol import is_selection_only
from benchmarks.paper.paper_mnist_protocol import is_vae
from benchmarks.paper.paper_mnist_protocol import run_config
from benchmarks.paper.paper_mnist_protocol import unit_name
from benchmarks.paper.table1 import MODELS

RESULTS = Path(__file__).resolve().parent / "results"
UNITS = RESULTS / "paper_mnist" / "units"


def data_fingerprint(data):
    digest = hashlib.sha256()
    for array in (getattr(data, split) for split in SPLITS):
        digest.update(np.packbits(np.asarray(array, np.uint8)).tobytes())
    return digest.hexdigest()


def _save_bits(images, runs_dir):
    path = Path(runs_dir) / f"binarized_mnist_seed{DATA_SEED}.npz"
    if not path.is_file():
        np.savez_compressed(
            path,
            **{k: np.packbits(getattr(images, k).astype(np.uint8)) for k in SPLITS},
            shape=np.asarray(images.image_shape),
        )


def relaxed_test_loss(model, dataset):
    """Mean of a VAE's training objective (`relaxed_loss`) over a dataset, in nats."""
    import tensorflow as tf

    step = tf.function(model.relaxed_loss, reduce_retracing=True)
    return float(np.mean(np.concatenate([step(batch).numpy() for batch in dataset])))


def evaluate_unit(model, data, config, eval_samples, selection_only, chosen=None):
    """The test numbers of a restored unit (none for a selection-only unit).

    `chosen`: an SBN's checkpoint choice (`choose_sbn_checkpoint`), whose
    validation NLL is reported with the test numbers.
    """
    from keras_gumbel.models import importance_bound
    from keras_gumbel.models import independent_pixels_nll

    if selection_only:
        return {"test_evaluated": False}, None
    bounds = importance_bound(model, data.test, num_samples=eval_samples)
    baseline = independent_pixels_nll(data.train_targets, data.test_arrays[-1])
    numbers = {
        "test_negative_bound": float(np.mean(bounds)),
        "test_negative_bound_stderr": float(np.std(bounds) / np.sqrt(len(bounds))),
        "test_bound_samples": eval_samples,
        "test_single_sample_loss": float(
            model.evaluate(data.test, verbose=0, return_dict=True)["loss"]
        ),
        "test_independent_pixels_nll": float(np.mean(baseline)),
        "test_examples": int(len(bounds)),
    }
    if is_vae(config.model):
        numbers["test_relaxed_loss"] = relaxed_test_loss(model, data.test)
    else:
        numbers.update(chosen)
    return numbers, bounds


def validation_bound(model, data, eval_samples):
    """An SBN's m-sample NLL on the validation digits: what its learning rate is chosen on."""
    from keras_gumbel.models import importance_bound

    return float(np.mean(importance_bound(model, data.validation, num_samples=eval_samples)))


def choose_sbn_checkpoint(run_dir, config, data, eval_samples, known=None):
    """An SBN's weights to test: the best-validation-loss epoch's or the last's.

    The single-sample validation loss turns up long before the m-sample
    NLL stops falling, so the epoch it picks is not the one with the best
    NLL; of the two, the one with the lower validation NLL is tested.
    `known` maps epochs to validation NLLs already measured.

    Returns:
        `(model, chosen)`: the restored model and a dict with
        `val_negative_bound` (the chosen weights' validation NLL),
        `evaluated_epoch` and `checkpoint_val_negative_bounds` (epoch and
        validation NLL of each checkpoint considered).
    """
    from keras_gumbel.training import restore

    considered, models = {}, {}
    for which, best in (("best", True), ("last", False)):
        model, state = restore(run_dir, config, data, best=best)
        epoch = state["restored_epoch"] if best else state["epoch"]
        if which == "last" and epoch == considered["best"]["epoch"]:
            break
        if epoch not in (known or {}):
            known = {**(known or {}), epoch: validation_bound(model, data, eval_samples)}
        considered[which] = {"epoch": epoch, "val_negative_bound": known[epoch]}
        models[which] = model
    which = min(considered, key=lambda k: considered[k]["val_negative_bound"])
    chosen = {
        "val_negative_bound": considered[which]["val_negative_bound"],
        "evaluated_epoch": considered[which]["epoch"],
        "checkpoint_val_negative_bounds": considered,
    }
    return models[which], chosen


def update_evaluation(args, out, run_dir):
    """Brings a finished unit's evaluation up to date from its run directory:
    adds a VAE's relaxed test loss; makes a full-length SBN's test numbers
    those of its checkpoint choice (`choose_sbn_checkpoint`), re-testing
    when the choice is not the epoch tested before."""
    import keras

    from keras_gumbel.training import RunConfig
    from keras_gumbel.training import builders
    from keras_gumbel.training import restore

    result = json.loads(out.read_text())
    vae = is_vae(result["model"])
    if evaluation_current(result):
        print(f"{result['unit']}: nothing to add")
        return result
    if not (run_dir / "config.json").is_file():
        sys.exit(f"{result['unit']}: no run directory {run_dir} to bring its evaluation up to date")
    config = RunConfig(**{**result["config"], "data": args.data})
    data = builders.build_data(config)
    if vae:
        model, _ = restore(run_dir, config, data)
        result["test_relaxed_loss"] = relaxed_test_loss(model, data.test)
        summary = f"relaxed test loss {result['test_relaxed_loss']:.2f}"
    else:
        tested = result.get("evaluated_epoch", result["best_epoch"])
        known = {tested: result["val_negative_bound"]} if "val_negative_bound" in result else None
        model, chosen = choose_sbn_checkpoint(
            run_dir, config, data, result["test_bound_samples"], known
        )
        if chosen["evaluated_epoch"] != tested:
            numbers, bounds = evaluate_unit(
                model, data, config, result["test_bound_samples"], False, chosen
            )
            result.update(numbers)
            np.save(out.with_suffix(".bounds.npy"), bounds.astype(np.float32))
        else:
            result.update(chosen)
        summary = (
            f"epoch {result['evaluated_epoch']}: validation NLL "
            f"{result['val_negative_bound']:.2f}, test {result['test_negative_bound']:.2f}"
        )
    keras.backend.clear_session()
    out.write_text(json.dumps(result, indent=1))
    print(f"{result['unit']}: {summary}")
    return result


def run_unit(args, argv=None):
    """Trains (or resumes) one unit, evaluates its chosen weights, writes its JSON."""
    import keras
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from keras_gumbel import datasets
    from keras_gumbel.training import builders
    from keras_gumbel.training import restore
    from keras_gumbel.training import train

    args.candidate = canonical_candidate(args.candidate)
    name = unit_name(
        args.model, args.estimator, args.candidate, args.seed, args.epochs, args.variant
    )
    units_dir = Path(args.units_dir)
    out = units_dir / f"{name}.json"
    run_dir = Path(args.runs_dir) / name
    if out.is_file() and (args.update_eval or not evaluation_current(json.loads(out.read_text()))):
        return update_evaluation(args, out, run_dir)
    if out.is_file() and not args.force:
        print(f"{name}: done ({out})")
        return json.loads(out.read_text())
    config = run_config(
        args.model, args.estimator, args.candidate, args.seed, args.epochs, args.data,
        args.eval_samples, args.variant,
    )  # fmt: skip
    selection_only = is_selection_only(args.model, args.estimator, args.epochs, args.variant)
    images = datasets.load(args.data, binarization="static", seed=DATA_SEED)
    fingerprint = data_fingerprint(images)
    if args.save_data:
        _save_bits(images, args.runs_dir)
    # The unit's own seed sets weights and sampling; the bits are fixed by DATA_SEED.
    assert config.seed == args.seed
    resume = (run_dir / "config.json").is_file()
    cpu, wall = time.process_time(), time.time()
    history = train(
        config, run_dir, resume=resume, overwrite=not resume, evaluate_after=False, verbose=0
    )
    train_cpu, train_wall = time.process_time() - cpu, time.time() - wall
    keras.backend.clear_session()

    cpu, wall = time.process_time(), time.time()
    data = builders.build_data(config)
    model, state = restore(run_dir, config, data)
    chosen = None
    if not (selection_only or is_vae(config.model)):
        model, chosen = choose_sbn_checkpoint(run_dir, config, data, args.eval_samples)
    numbers, bounds = evaluate_unit(model, data, config, args.eval_samples, selection_only, chosen)
    eval_cpu, eval_wall = time.process_time() - cpu, time.time() - wall
    units_dir.mkdir(parents=True, exist_ok=True)
    if bounds is not None:
        np.save(out.with_suffix(".bounds.npy"), bounds.astype(np.float32))
    val = [float(v) for v in history["val_loss"]]
    result = {
        "unit": name,
        "model": args.model,
        "estimator": args.estimator,
        "candidate": args.candidate,
        "seed": args.seed,
        "variant": args.variant,
        "config": json.loads(config.to_json()),
        "epochs": state["epoch"],
        "steps_per_epoch": math.ceil(len(images.x_train) / BATCH_SIZE),
        "steps": state["epoch"] * math.ceil(len(images.x_train) / BATCH_SIZE),
        "best_epoch": state["restored_epoch"],
        "best_val_loss": min((v for v in val if math.isfinite(v)), default=None),
        "val_loss": val,
        "loss": [float(v) for v in history["loss"]],
        **numbers,
        # Process CPU time of this invocation (a resumed unit counts only its own part),
        # plus the training time the run's checkpoints recorded across attempts.
        "train_cpu_seconds": train_cpu,
        "train_wall_seconds_all_attempts": state.get("train_seconds"),
        "train_wall_seconds": train_wall,
        "eval_cpu_seconds": eval_cpu,
        "eval_wall_seconds": eval_wall,
        "data": placeholder(args.data, "--data"),
        "data_sha256": fingerprint,
        "data_split": [len(images.x_train), len(images.x_val), len(images.x_test)],
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, {platform.machine()}",
        "command": "python -m benchmarks.paper.paper_mnist "
        + shlex.join(shown_args(argv or sys.argv[1:], drop=("--force",))),
    }
    # The run's config names the data as this machine holds it.
    result = portable(result, args.data)
    out.write_text(json.dumps(result, indent=1))
    if bounds is None:
        summary = f"best validation loss {result['best_val_loss']:.2f} (selection only)"
    else:
        summary = (
            f"test {result['test_negative_bound']:.2f} +- "
            f"{result['test_negative_bound_stderr']:.2f} nats "
            f"(single sample {result['test_single_sample_loss']:.2f})"
        )
    tested = f", tested epoch {result['evaluated_epoch']}" if "evaluated_epoch" in result else ""
    print(
        f"{name}: {summary}, best epoch {result['best_epoch']}{tested}, "
        f"{train_wall / 60:.1f} + {eval_wall / 60:.1f} min"
    )
    return result


def load_units(units_dir):
    units = {}
    for path in sorted(Path(units_dir).glob("*.json")):
        unit = json.loads(path.read_text())
        units[unit["unit"]] = unit
    return units


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    unit = commands.add_parser("unit", help="train and evaluate one unit")
    unit.add_argument("model", choices=MODELS)
    unit.add_argument("estimator", choices=ESTIMATORS)
    unit.add_argument("--candidate", help="lr<rate> (SBNs) or r<rate>-n<interval> (annealed)")
    unit.add_argument("--seed", type=int, default=0)
    unit.add_argument("--epochs", type=int, default=EPOCHS)
    unit.add_argument("--data", default=os.environ.get("MNIST_DIR", "mnist"))
    unit.add_argument("--runs-dir", default="runs/paper_mnist")
    unit.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0: default)")
    unit.add_argument("--save-data", action="store_true", help="write the binarized bits")
    unit.add_argument("--force", action="store_true", help="recompute a finished unit")
    unit.add_argument("--eval-samples", type=int, default=EVAL_SAMPLES, help="m of the test bound")
    unit.add_argument("--units-dir", default=str(UNITS), help="where result JSONs go")
    unit.add_argument("--variant", choices=sorted(VARIANTS), help="one change, for a diagnosis")
    unit.add_argument(
        "--update-eval",
        action="store_true",
        help="bring a finished unit's numbers up to this version's evaluation, from its run "
        "(done without asking for a unit that lacks them)",
    )
    for name, text in (("plan", "print the units still to run"), ("report", "write the table")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--units-dir", default=str(UNITS))
        if name == "report":
            sub.add_argument("--out", default=str(RESULTS / "paper_mnist"), help="file stem")
    args = parser.parse_args(argv)
    if args.command == "unit":
        Path(args.runs_dir).mkdir(parents=True, exist_ok=True)
        run_unit(args, argv)
        return
    units = load_units(args.units_dir)
    if args.command == "plan":
        for todo in paper_mnist_report.plan(units):
            print(paper_mnist_report.command(*todo))
    else:
        payload = paper_mnist_report.report(units, args.units_dir, args.out)
        print(f"{len(payload['cells'])} cells, {len(payload['pending_units'])} units pending")


if __name__ == "__main__":
    main()
