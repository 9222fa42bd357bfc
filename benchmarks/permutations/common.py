"""What the permutation experiments share: resumable units and their results.

A unit is one cell of an experiment's table (one n, one k, one method). It
trains in chunks of steps with a compiled `fit`, saves the weights and the
optimizer's state after every chunk (so a killed unit resumes where its last
chunk ended, with the temperature schedule at the same step), evaluates, and
writes one JSON into `results/<experiment>/units/`. A unit whose JSON exists
is not run again.
"""

import datetime
import json
import os
import platform
import shlex
import time
from pathlib import Path

import keras
import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_RUNS = Path("runs") / "permutations"


def units_dir(experiment, results=RESULTS):
    return Path(results) / experiment / "units"


def portable(value, placeholder):
    """A path as a result may record it: absolute paths become a placeholder."""
    text = os.fspath(value)
    return placeholder if os.path.isabs(text) else text


def command_line(module, subcommand, options):
    """The command that runs a unit, with `options` a list of (flag, value) pairs."""
    parts = ["python", "-m", module, subcommand]
    for flag, value in options:
        if value is None or value is False:
            continue
        parts.append(flag)
        if value is not True:
            parts.append(str(value))
    return shlex.join(parts)


def write_json(path, payload):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_units(experiment, results=RESULTS):
    folder = units_dir(experiment, results)
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]


def environment():
    return {
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


class _ChunkLog(keras.callbacks.Callback):
    """Keeps the last loss of a chunk (one `fit` epoch)."""

    def __init__(self):
        super().__init__()
        self.loss = None

    def on_epoch_end(self, epoch, logs=None):
        self.loss = float((logs or {}).get("loss", float("nan")))


def train_resumable(model, run_dir, num_chunks, chunk_data, callbacks=(), log=print):
    """Trains `model` for `num_chunks` chunks, checkpointing after each.

    Args:
        model: A compiled Keras model.
        run_dir: Path. Holds `checkpoint.weights.h5` (weights and optimizer
            state) and `state.json` (chunks done, seconds, losses).
        num_chunks: Integer. Chunks to train in all.
        chunk_data: Callable mapping a chunk index to the keyword arguments
            of `fit` that give its data (`x`, `y`, `batch_size`); it must be a
            pure function of the index, so that a resumed unit sees the data
            it would have seen.
        callbacks: Further `fit` callbacks (a temperature scheduler).
        log: Callable for progress lines.

    Returns:
        The final state: a dict with `chunks_done`, `train_seconds`, `losses`.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / "state.json"
    weights = run_dir / "checkpoint.weights.h5"
    state = {"chunks_done": 0, "train_seconds": 0.0, "losses": [], "resumed_at": []}
    if state_path.exists() and weights.exists():
        state = json.loads(state_path.read_text(encoding="utf-8"))
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(weights)
        state["resumed_at"].append(state["chunks_done"])
        log(f"resumed after chunk {state['chunks_done']} of {num_chunks}")
    chunk_log = _ChunkLog()
    for chunk in range(state["chunks_done"], num_chunks):
        data = chunk_data(chunk)
        started = time.perf_counter()
        model.fit(
            **data,
            epochs=chunk + 1,
            initial_epoch=chunk,
            shuffle=False,
            verbose=0,
            callbacks=[*callbacks, chunk_log],
        )
        state["train_seconds"] += time.perf_counter() - started
        state["chunks_done"] = chunk + 1
        state["losses"].append(chunk_log.loss)
        tmp = run_dir / "checkpoint.tmp.weights.h5"
        model.save_weights(tmp)
        os.replace(tmp, weights)
        state["optimizer_steps"] = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        write_json(state_path, state)
        log(
            f"chunk {chunk + 1}/{num_chunks}: loss {chunk_log.loss:.5f}, "
            f"{state['train_seconds']:.0f} s"
        )
    return state


def finish_unit(experiment, unit, config, metrics, state, command, results=RESULTS, extra=None):
    """Writes the unit's result JSON and returns its path."""
    payload = {
        "experiment": experiment,
        "unit": unit,
        "config": config,
        "metrics": metrics,
        "train_seconds": round(state["train_seconds"], 1),
        "steps": config["steps"],
        "loss_per_chunk": [round(v, 6) for v in state["losses"]],
        "resumed_after_chunks": state.get("resumed_at", []),
        "optimizer_steps": state.get("optimizer_steps"),
        "command": command,
        "environment": environment(),
        "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if extra:
        payload.update(extra)
    path = units_dir(experiment, results) / f"{unit}.json"
    write_json(path, payload)
    return path


def rank_metrics(predicted, true):
    """Exact-match and element-wise accuracy of integer permutations `[N, n]`."""
    predicted = np.asarray(predicted)
    true = np.asarray(true)
    right = predicted == true
    return {
        "exact": float(np.mean(np.all(right, axis=-1))),
        "elementwise": float(np.mean(right)),
        "num_test": int(len(true)),
    }


def fmt(value, digits=3):
    return "n/a" if value is None else f"{value:.{digits}f}"


def add_training_arguments(parser, steps, chunk_steps, batch_size, learning_rate):
    """The arguments every unit takes, with the experiment's defaults."""
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--chunk-steps", type=int, default=chunk_steps)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--learning-rate", type=float, default=learning_rate)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tag", default=None, help="a suffix of the unit's name, for a variant of a cell"
    )
    parser.add_argument("--runs-dir", default=str(DEFAULT_RUNS))
    parser.add_argument("--results", default=str(RESULTS))


TRAINING_KEYS = ("steps", "chunk_steps", "batch_size", "learning_rate", "seed", "tag")


def config_of(args, keys):
    return {key: getattr(args, key) for key in (*keys, *TRAINING_KEYS)}


def unit_command(module, args, keys, data_key=None):
    """The portable command of a unit: data paths as `MNIST_DIR`, run dirs as `RUNS_DIR`."""
    options = []
    for key in (*keys, *TRAINING_KEYS):
        value = getattr(args, key)
        if key == data_key:
            value = portable(value, "MNIST_DIR")
        options.append(("--" + key.replace("_", "-"), value))
    if os.path.normpath(args.runs_dir) != os.path.normpath(DEFAULT_RUNS):
        options.append(("--runs-dir", portable(args.runs_dir, "RUNS_DIR")))
    return command_line(module, "unit", options)


def tagged(name, args):
    """A unit's name with its seed and tag, when they are not the defaults."""
    return name + (f"__s{args.seed}" if args.seed else "") + (f"__{args.tag}" if args.tag else "")


def num_chunks(args):
    return -(-args.steps // args.chunk_steps)
