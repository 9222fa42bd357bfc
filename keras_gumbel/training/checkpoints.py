"""Crash-safe epoch checkpoints and history files of a run directory.

Layout under the run directory:

```
checkpoints/epoch-0007/model.weights.h5   weights, optimizer state (global step),
                                          temperature and random-generator state
checkpoints/epoch-0007/state.json         {"epoch": 7, "history": {...}, "train_seconds": ...,
                                           "best": {"epoch": 5, "val_loss": ...}}
checkpoints/best-0005/model.weights.h5    the weights of the epoch with the lowest
                                          validation loss so far
history.json, history.csv                 copies of the newest state's history
```

A checkpoint is written into a temporary directory and renamed into place,
which is atomic: a run killed at any moment (SIGKILL included) leaves either
the previous checkpoint or the new one, never half of one. The history lives
inside the checkpoint, so a resumed run starts from exactly the epochs whose
weights it restores: no epoch is lost and none is counted twice.

The best epoch (lowest `val_loss`, as Keras's `EarlyStopping` with
`restore_best_weights=True` picks it) is tracked the same way: a new best is
written to its own `best-NNNN` directory before the epoch checkpoint that
names it, and a `best-NNNN` directory is removed only once no kept epoch
checkpoint names it, so the best that a restored checkpoint names always
exists.
"""

import csv
import io
import json
import math
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import keras

_NAME = re.compile(r"^epoch-(\d+)$")
_BEST_NAME = re.compile(r"^best-(\d+)$")
MONITOR = "val_loss"
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


def best_checkpoint(run_dir):
    """The best-validation weights named by the newest checkpoint, or None.

    Returns:
        `(directory, best)`, where `best` is `{"epoch": ..., "val_loss": ...}`,
        or None when the run has no checkpoint or none with a validation loss.
    """
    latest = latest_checkpoint(run_dir)
    if latest is None:
        return None
    best = read_state(latest).get("best")
    if not best:
        return None
    directory = Path(run_dir) / "checkpoints" / f"best-{best['epoch']:04d}"
    if not (directory / WEIGHTS).is_file():
        return None
    return directory, best


def _write_weights_atomic(model, root, name):
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".incomplete-"))
    model.save_weights(tmp / WEIGHTS)
    return tmp, root / name


class RunCheckpoint(keras.callbacks.Callback):
    """Saves weights, optimizer state and history atomically after each epoch.

    Args:
        run_dir: The run directory.
        history: The history restored from a checkpoint (empty for a new run).
        train_seconds: Training time already spent by earlier attempts.
        keep: Number of checkpoints to keep.
        write: Whether this process writes (False on non-chief workers).
    """

    def __init__(self, run_dir, history=None, train_seconds=0.0, keep=2, write=True, best=None):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.history = {k: list(v) for k, v in (history or {}).items()}
        self.train_seconds = train_seconds
        self.keep = keep
        self.write = write
        # {"epoch", "val_loss"} of the best epoch so far (from the restored state).
        self.best = dict(best) if best else None
        self._started = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.train_seconds += time.perf_counter() - self._started
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        value = (logs or {}).get(MONITOR)
        improved = (
            value is not None
            and math.isfinite(value)
            and (self.best is None or value < self.best["val_loss"])
        )
        if improved:
            self.best = {"epoch": epoch + 1, "val_loss": float(value)}
        if not self.write:
            return
        root = self.run_dir / "checkpoints"
        root.mkdir(parents=True, exist_ok=True)
        if improved:
            # Written before the epoch checkpoint that names it.
            tmp, final = _write_weights_atomic(self.model, root, f"best-{epoch + 1:04d}")
            _replace_dir(tmp, final)
        tmp, final = _write_weights_atomic(self.model, root, f"epoch-{epoch + 1:04d}")
        state = {
            "epoch": epoch + 1,
            "history": self.history,
            "train_seconds": self.train_seconds,
            "best": self.best,
        }
        (tmp / STATE).write_text(json.dumps(state))
        _replace_dir(tmp, final)
        write_history(self.run_dir, self.history)
        for old in sorted(p for p in root.iterdir() if _NAME.match(p.name))[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        named = set()
        for kept in root.iterdir():
            if _NAME.match(kept.name) and (kept / STATE).is_file():
                best = read_state(kept).get("best")
                if best:
                    named.add(f"best-{best['epoch']:04d}")
        for old in root.iterdir():
            if _BEST_NAME.match(old.name) and old.name not in named:
                shutil.rmtree(old, ignore_errors=True)
        for stale in root.glob(".incomplete-*"):
            if stale != tmp:
                shutil.rmtree(stale, ignore_errors=True)


def _replace_dir(tmp, final):
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
