"""Pieces the benchmark scripts share: the machine's CPU and resumable CLI runs."""

import json
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
