"""What `benchmarks/paper/progress.py` carries of a run directory, on hand-made runs."""

import json

from benchmarks.paper.progress import restore_progress
from benchmarks.paper.progress import save_progress


def _run(run_dir, epochs, best, restore_best):
    """A run directory as `RunCheckpoint` leaves it after `epochs` epochs."""
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"restore_best": restore_best}))
    (run_dir / "history.json").write_text("{}")
    for epoch in epochs:
        checkpoint = run_dir / "checkpoints" / f"epoch-{epoch:04d}"
        checkpoint.mkdir(parents=True)
        (checkpoint / "model.weights.h5").write_text(f"weights {epoch}")
        state = {"epoch": epoch, "best": {"epoch": best, "val_loss": 1.0}}
        (checkpoint / "state.json").write_text(json.dumps(state))
    best_dir = run_dir / "checkpoints" / f"best-{best:04d}"
    best_dir.mkdir()
    (best_dir / "model.weights.h5").write_text(f"weights {best}")


def _names(directory):
    return sorted(p.name for p in (directory / "checkpoints").iterdir())


def test_the_newest_checkpoint_is_carried_with_the_best_weights_only_when_restored(tmp_path):
    _run(tmp_path / "plain", [6, 7], best=3, restore_best=False)
    assert save_progress(tmp_path / "plain", tmp_path / "plain.progress") == 7
    assert _names(tmp_path / "plain.progress") == ["epoch-0007"]
    assert not (tmp_path / "plain.progress" / "logs").exists()

    _run(tmp_path / "best", [6, 7], best=3, restore_best=True)
    assert save_progress(tmp_path / "best", tmp_path / "best.progress") == 7
    assert _names(tmp_path / "best.progress") == ["best-0003", "epoch-0007"]


def test_a_newer_save_replaces_the_old_copy(tmp_path):
    _run(tmp_path / "run", [6], best=6, restore_best=False)
    progress = tmp_path / "run.progress"
    save_progress(tmp_path / "run", progress)
    newer = tmp_path / "run" / "checkpoints" / "epoch-0007"
    newer.mkdir()
    (newer / "model.weights.h5").write_text("weights 7")
    (newer / "state.json").write_text(json.dumps({"epoch": 7, "best": None}))
    assert save_progress(tmp_path / "run", progress) == 7
    assert _names(progress) == ["epoch-0007"]
    assert not progress.with_name("run.progress.incomplete").exists()


def test_nothing_is_carried_from_a_run_without_checkpoint_or_a_finished_one(tmp_path):
    (tmp_path / "new").mkdir()
    assert save_progress(tmp_path / "new", tmp_path / "new.progress") is None
    _run(tmp_path / "done", [50], best=40, restore_best=False)
    (tmp_path / "done" / "metrics.json").write_text("{}")
    assert save_progress(tmp_path / "done", tmp_path / "done.progress") is None
    assert not (tmp_path / "new.progress").exists() and not (tmp_path / "done.progress").exists()


def test_progress_is_restored_only_into_a_run_that_has_not_started(tmp_path):
    _run(tmp_path / "run", [7], best=7, restore_best=False)
    progress = tmp_path / "run.progress"
    save_progress(tmp_path / "run", progress)
    assert restore_progress(progress, tmp_path / "fresh")
    assert _names(tmp_path / "fresh") == ["epoch-0007"]
    assert json.loads((tmp_path / "fresh" / "config.json").read_text())["restore_best"] is False
    # The data as this machine names it replaces the saving machine's path.
    assert restore_progress(progress, tmp_path / "moved", data="/here/mnist")
    config = json.loads((tmp_path / "moved" / "config.json").read_text())
    assert config == {"restore_best": False, "data": "/here/mnist"}
    # A run directory of its own is never overwritten by a copy.
    assert not restore_progress(progress, tmp_path / "run")
    assert not restore_progress(tmp_path / "missing", tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_the_carried_copy_names_the_data_by_a_placeholder(tmp_path):
    _run(tmp_path / "run", [7], best=7, restore_best=False)
    config = {"restore_best": False, "data": "/work/data/mnist"}
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    description = {"summary": "70,000 images (from: /work/data/mnist)"}
    (tmp_path / "run" / "data.json").write_text(json.dumps(description))
    save_progress(tmp_path / "run", tmp_path / "run.progress")
    carried = json.loads((tmp_path / "run.progress" / "config.json").read_text())
    assert carried == {"restore_best": False, "data": "MNIST_DIR"}
    carried = json.loads((tmp_path / "run.progress" / "data.json").read_text())
    assert carried == {"summary": "70,000 images (from: MNIST_DIR)"}
    # The next machine's path replaces the placeholder.
    assert restore_progress(tmp_path / "run.progress", tmp_path / "here", data="/here/mnist")
    assert json.loads((tmp_path / "here" / "config.json").read_text())["data"] == "/here/mnist"
