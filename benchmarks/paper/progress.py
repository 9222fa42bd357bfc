"""Carrying an unfinished training run from one machine to the next through git.

A unit longer than one sitting on a machine that does not outlive it would
start over every time. `save_progress` copies what `keras-gumbel train
--resume` needs (the run's config, its data description, its history and
its newest epoch checkpoint, with the best-validation weights that
checkpoint names when the run restores them) into a directory that is
committed; on a fresh clone `restore_progress` puts it back into the run
directory, and the unit's command resumes from that epoch. The copy is
the run's own files, so the resumed run is the one that was interrupted:
the same weights, optimizer state, step count and history.
"""

import json
import shutil
from pathlib import Path

from benchmarks.common import portable

CARRIED_FILES = ("config.json", "data.json", "history.json", "history.csv")


def save_progress(run_dir, progress_dir):
    """Replaces `progress_dir` with the newest checkpoint of an unfinished run.

    Returns:
        The epoch saved, or None when there is nothing to carry: the run
        has no checkpoint yet, or it has finished (`metrics.json`).
    """
    from keras_gumbel.training import load_config
    from keras_gumbel.training.checkpoints import best_checkpoint
    from keras_gumbel.training.checkpoints import latest_checkpoint
    from keras_gumbel.training.checkpoints import read_state

    run_dir, progress_dir = Path(run_dir), Path(progress_dir)
    latest = latest_checkpoint(run_dir)
    if latest is None or (run_dir / "metrics.json").is_file():
        return None
    checkpoints = [latest]
    if load_config(run_dir).restore_best:
        found = best_checkpoint(run_dir)
        if found is not None:
            checkpoints.append(found[0])
    # Built beside the old copy and swapped in, so that an interrupted save
    # leaves the previous copy whole.
    staging = progress_dir.with_name(progress_dir.name + ".incomplete")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "checkpoints").mkdir(parents=True)
    for name in CARRIED_FILES:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, staging / name)
    # The copy is committed: it names the data as a placeholder, not as this
    # machine's path (`restore_progress` writes the next machine's).
    data = json.loads((run_dir / "config.json").read_text()).get("data")
    for name in ("config.json", "data.json"):
        if (staging / name).is_file():
            carried = portable(json.loads((staging / name).read_text()), data)
            (staging / name).write_text(json.dumps(carried, indent=2))
    for checkpoint in checkpoints:
        shutil.copytree(checkpoint, staging / "checkpoints" / checkpoint.name)
    shutil.rmtree(progress_dir, ignore_errors=True)
    staging.rename(progress_dir)
    return read_state(latest)["epoch"]


def restore_progress(progress_dir, run_dir, data=None):
    """Copies carried progress into a run directory that has not started.

    `data`: where this machine holds the run's data (`--data`), written into
    the carried config, which a resumed run reads; the path of the machine
    that saved it may not exist here. None keeps the saved one.

    Returns:
        Whether anything was restored: False when there is no carried
        progress or the run directory already holds a run (its own
        checkpoints are at least as new as any copy of them).
    """
    progress_dir, run_dir = Path(progress_dir), Path(run_dir)
    if not (progress_dir / "config.json").is_file() or (run_dir / "config.json").is_file():
        return False
    shutil.copytree(progress_dir, run_dir, dirs_exist_ok=True)
    if data is not None:
        config = json.loads((run_dir / "config.json").read_text())
        (run_dir / "config.json").write_text(json.dumps({**config, "data": data}, indent=2))
    return True
