"""Crash-safe epoch checkpoints and history files of a run directory.

Layout under the run directory:

```
checkpoints/epoch-0007/model.weights.h5   weights, optimizer state (global step),
                                          temperature and random-generator state
checkpoints/epoch-0007/state.json         {"epoch": 7, "history": {...}, "train_seconds": ...}
history.json, history.csv                 copies of the newest state's history
```

A checkpoint is written into a temporary directory and renamed into place,
which is atomic: a run killed at any moment (SIGKILL included) leaves either
the previous checkpoint or the new one, never half of one. The history lives
inside the checkpoint, so a resumed run starts from exactly the epochs whose
weights it restores: no epoch is lost and none is counted twice.
"""

import csv
import io
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import keras

_NAME = re.compile(r"^epoch-(\d+)$")
WEIGHTS = "model.weights.h5"
STATE = "state.json"


def write_text_atomic(path, text):
    """Writes `text` to `path` through a temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def history_csv(history):
    keys = sorted(history)
    rows = max((len(v) for v in history.values()), default=0)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["epoch", *keys])
    for i in range(rows):
        writer.writerow([i + 1, *(history[k][i] if i < len(history[k]) else "" for k in keys)])
    return out.getvalue()


def write_history(run_dir, history):
    run_dir = Path(run_dir)
    write_text_atomic(run_dir / "history.json", json.dumps(history, indent=1))
    write_text_atomic(run_dir / "history.csv", history_csv(history))


def latest_checkpoint(run_dir):
    """The newest complete checkpoint directory of a run, or None."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return None
    found = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := _NAME.match(p.name)) and (p / STATE).is_file() and (p / WEIGHTS).is_file()
    ]
    return max(found)[1] if found else None


def read_state(checkpoint_dir):
    return json.loads((Path(checkpoint_dir) / STATE).read_text())


class RunCheckpoint(keras.callbacks.Callback):
    """Saves weights, optimizer state and history atomically after each epoch.

    Args:
        run_dir: The run directory.
        history: The history restored from a checkpoint (empty for a new run).
        train_seconds: Training time already spent by earlier attempts.
        keep: Number of checkpoints to keep.
        write: Whether this process writes (False on non-chief workers).
    """

    def __init__(self, run_dir, history=None, train_seconds=0.0, keep=2, write=True):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.history = {k: list(v) for k, v in (history or {}).items()}
        self.train_seconds = train_seconds
        self.keep = keep
        self.write = write
        self._started = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.train_seconds += time.perf_counter() - self._started
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        if not self.write:
            return
        root = self.run_dir / "checkpoints"
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".incomplete-"))
        self.model.save_weights(tmp / WEIGHTS)
        state = {"epoch": epoch + 1, "history": self.history, "train_seconds": self.train_seconds}
        (tmp / STATE).write_text(json.dumps(state))
        final = root / f"epoch-{epoch + 1:04d}"
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        write_history(self.run_dir, self.history)
        for old in sorted(p for p in root.iterdir() if _NAME.match(p.name))[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        for stale in root.glob(".incomplete-*"):
            if stale != tmp:
                shutil.rmtree(stale, ignore_errors=True)
