"""Pieces the benchmark scripts share: the machine's CPU, resumable CLI runs, and
results that name no path of the machine that made them."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def cpu_model(default="unknown"):
    """The CPU's model name from /proc/cpuinfo, or `default` where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return default


def train_once(command, run_dir, label):
    """Runs a `keras-gumbel train` command unless its run has finished.

    A run directory with `metrics.json` is done and is never recomputed; one
    with only `config.json` was interrupted and continues with `--resume`.

    Args:
        command: The command as a user types it, starting with "keras-gumbel".
        run_dir: The run directory given to `--output`.
        label: What to call the run in the progress line.

    Returns:
        The run's metrics dict.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.json").is_file():
        resume = ["--resume"] if (run_dir / "config.json").is_file() else []
        started = time.time()
        subprocess.run(
            [sys.executable, "-m", "keras_gumbel.cli", *command[1:], *resume], check=True
        )
        print(f"{label}: {time.time() - started:.0f} s", flush=True)
    return json.loads((run_dir / "metrics.json").read_text())


# Flags whose value is a data directory: an absolute one is recorded as a
# placeholder named after the data set (the environment variable a reader sets).
DATA_FLAGS = ("--data", "--eval-data", "--fashion-mnist")


def data_placeholder(path):
    """The placeholder a result records for an absolute data directory.

    `FASHION_MNIST_DIR` for a directory whose name says Fashion-MNIST, else
    `MNIST_DIR`: the data sets these benchmarks read.
    """
    return "FASHION_MNIST_DIR" if "fashion" in Path(str(path)).name.lower() else "MNIST_DIR"


def placeholder(value, flag=None):
    """`value` as a result records it: as given, or a placeholder if it is absolute.

    A relative path or a data set's name ("mnist-sample") means the same on
    every machine and is kept; an absolute path is this machine's alone.

    Args:
        value: A command-line value.
        flag: The option it was given to ("--data", "--runs-dir"), if any:
            a data flag gives `data_placeholder(value)`, another flag its
            own name in capitals (`--runs-dir` -> `RUNS_DIR`), none `PATH`.

    Example:
        >>> placeholder("/usr/share/datasets/fashion-mnist", "--data")
        'FASHION_MNIST_DIR'
        >>> placeholder("/scratch/runs", "--runs-dir"), placeholder("mnist-sample", "--data")
        ('RUNS_DIR', 'mnist-sample')
    """
    value = str(value)
    if not os.path.isabs(value):
        return value
    if flag is None:
        return "PATH"
    if flag in DATA_FLAGS:
        return data_placeholder(value)
    return flag.lstrip("-").replace("-", "_").upper()


def shown_args(argv, drop=()):
    """Command-line arguments as a result records them.

    Absolute paths become placeholders (`placeholder`). Options in `drop`
    are left out: a dict maps each to how many values follow it
    (`{"--out": 1}`), any other collection names flags without a value.

    Example:
        >>> shown_args(["--data", "/data/mnist", "--out", "/tmp/x", "--epochs=3"], {"--out": 1})
        ['--data', 'MNIST_DIR', '--epochs=3']
    """
    drop = dict(drop) if isinstance(drop, dict) else dict.fromkeys(drop, 0)
    argv, shown, flag = list(argv), [], None
    while argv:
        arg = argv.pop(0)
        name, eq, value = arg.partition("=")
        if name in drop:
            if not eq:
                del argv[: drop[name]]
            continue
        if arg.startswith("--") and eq:
            shown.append(f"{name}={placeholder(value, name)}")
            flag = None
        elif arg.startswith("--"):
            shown.append(arg)
            flag = arg
        else:
            shown.append(placeholder(arg, flag))
            flag = None
    return shown


def portable(value, *paths):
    """`value` with every absolute path of `paths` replaced by its data placeholder.

    Walks dicts, lists and strings (a run's config, its data description,
    the commands it records), so that a result names the data as
    `MNIST_DIR` wherever the run wrote this machine's path. Relative paths
    and data set names are left alone.

    Example:
        >>> portable({"data": "(from: /data/mnist)"}, "/data/mnist", "mnist-sample")
        {'data': '(from: MNIST_DIR)'}
    """
    absolute = {
        str(p).rstrip("/"): data_placeholder(p) for p in paths if p and os.path.isabs(str(p))
    }
    if not absolute:
        return value

    def scrub(item):
        if isinstance(item, str):
            for path, name in sorted(absolute.items(), key=lambda kv: -len(kv[0])):
                item = item.replace(path, name)
            return item
        if isinstance(item, dict):
            return {key: scrub(v) for key, v in item.items()}
        if isinstance(item, (list, tuple)):
            return type(item)(scrub(v) for v in item)
        return item

    return scrub(value)
