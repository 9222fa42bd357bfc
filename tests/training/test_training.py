"""Tests of training runs: outputs, resume after SIGKILL, strategies, errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from testing import BACKEND
from testing import write_idx_dir

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="training runs use the TensorFlow backend"
)

if BACKEND == "tensorflow":
    from keras_gumbel import schedules
    from keras_gumbel.training import RunConfig
    from keras_gumbel.training import RunError
    from keras_gumbel.training import evaluate
    from keras_gumbel.training import train

ROOT = Path(__file__).resolve().parents[2]
FAST = dict(batch_size=500, eval_samples=20, anneal_rate=2e-2, anneal_interval=4, num_vars=8)
PNG = b"\x89PNG\r\n\x1a\n"


def test_a_run_writes_everything_a_user_needs(tmp_path):
    run = tmp_path / "run"
    metrics = train(RunConfig(epochs=2, **FAST), run, verbose=0)
    for name in ("config.json", "history.csv", "history.json", "metrics.json", "model.keras"):
        assert (run / name).is_file(), name
    assert list((run / "logs").rglob("events.out.tfevents*"))
    for name in ("training", "reconstructions", "samples", "code_usage"):
        assert (run / "figures" / f"{name}.png").read_bytes()[:8] == PNG
    history = json.loads((run / "history.json").read_text())
    assert len(history["loss"]) == 2 and len(history["temperature"]) == 2
    assert metrics["steps"] == 14 and metrics["epochs"] == 2
    assert metrics["temperature"] == pytest.approx(
        schedules.ExponentialDecay(1.0, 2e-2, 0.5, 4)(14)
    )
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk["test_negative_bound"] == metrics["test_negative_bound"]
    # The m-sample bound is tighter than one sample, and both beat nothing
    # worse than chance: independent pixels are the baseline to compare.
    assert metrics["test_negative_bound"] < metrics["test_single_sample_loss"]
    again = evaluate(run, num_samples=20, figures=False)
    assert again["steps"] == 14


def test_an_existing_run_is_never_overwritten_unless_asked(tmp_path):
    run = tmp_path / "run"
    train(RunConfig(epochs=1, **FAST), run, verbose=0, evaluate_after=False)
    before = (run / "history.json").read_text()
    with pytest.raises(RunError, match="already exists.*--resume.*--overwrite"):
        train(RunConfig(epochs=1, **FAST), run, verbose=0)
    assert (run / "history.json").read_text() == before
    train(RunConfig(epochs=1, **FAST), run, overwrite=True, verbose=0, evaluate_after=False)


def test_unwritable_run_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RunError, match="cannot write to run directory"):
        train(RunConfig(epochs=1, **FAST), blocker / "run", verbose=0)


def _cli(*args):
    return [sys.executable, "-m", "keras_gumbel.cli", *args]


def _env():
    return {
        **os.environ,
        "KERAS_BACKEND": "tensorflow",
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


def test_sigkill_then_resume_continues_at_the_same_step_and_temperature(tmp_path):
    run = tmp_path / "run"
    args = [
        "train", "categorical-vae", "--epochs", "40", "--batch-size", "500", "--num-vars", "8",
        "--anneal-rate", "2e-2", "--anneal-interval", "4", "--eval-samples", "10", "--quiet",
        "--output", str(run),
    ]  # fmt: skip
    process = subprocess.Popen(
        _cli(*args), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 240
    while not (run / "checkpoints" / "epoch-0003").exists():
        assert process.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_state = sorted((run / "checkpoints").glob("epoch-*"))[-1]
    epochs_done = int(killed_state.name.split("-")[1])
    assert 3 <= epochs_done < 40

    resumed = subprocess.run(
        _cli(*[a if a != "40" else str(epochs_done + 2) for a in args], "--resume"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    history = json.loads((run / "history.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    # Every epoch exactly once, the step count of epochs_done + 2 epochs of 7
    # steps, and the temperature the schedule gives at that step.
    assert len(history["loss"]) == epochs_done + 2
    assert metrics["epochs"] == epochs_done + 2
    assert metrics["steps"] == 7 * (epochs_done + 2)
    expected_tau = schedules.ExponentialDecay(1.0, 2e-2, 0.5, 4)
    assert metrics["temperature"] == pytest.approx(expected_tau(metrics["steps"]))
    assert history["temperature"] == pytest.approx(
        [expected_tau(7 * (e + 1)) for e in range(epochs_done + 2)]
    )
    csv_rows = (run / "history.csv").read_text().strip().splitlines()
    assert [int(r.split(",")[0]) for r in csv_rows[1:]] == list(range(1, epochs_done + 3))


def test_mirrored_strategy_trains_to_the_same_quality(tmp_path):
    # Two logical CPU devices (tests/conftest.py). Same data, seed and number
    # of steps; each replica sees half of every batch. The runs differ in
    # their random streams, so the check is the quality: within 6% of the
    # loss. After 6 epochs single-device runs of seeds 0 to 2 spread over
    # 176 to 188 nats (+-3.5%), and mirrored runs fell inside that range.
    config = RunConfig(
        epochs=6, batch_size=100, eval_samples=50, num_vars=10, anneal_rate=1e-3, anneal_interval=50
    )
    single = train(config, tmp_path / "one", verbose=0)
    mirrored = train(config.replace(strategy="mirrored"), tmp_path / "two", verbose=0)
    assert mirrored["steps"] == single["steps"] == 210
    assert mirrored["temperature"] == pytest.approx(single["temperature"])
    for key in ("test_single_sample_loss", "test_negative_bound"):
        assert abs(mirrored[key] - single[key]) < 0.06 * single[key], (
            key,
            single[key],
            mirrored[key],
        )
    assert mirrored["test_negative_bound"] < 0.9 * mirrored["test_independent_pixels_nll"]


def test_resume_rejects_data_that_no_longer_matches(tmp_path):
    data = write_idx_dir(tmp_path / "idx", height=8, width=8)
    run = tmp_path / "run"
    train(
        RunConfig(data=str(data), epochs=1, batch_size=20, eval_samples=5, num_vars=4),
        run,
        verbose=0,
        evaluate_after=False,
    )
    write_idx_dir(tmp_path / "idx", height=10, width=10)
    with pytest.raises(RunError, match=r"images are \(10, 10\).*trained on \(8, 8\)"):
        train(RunConfig(epochs=2), run, resume=True, verbose=0)
    assert np.all(np.isfinite(json.loads((run / "history.json").read_text())["loss"]))


def _free_ports(n):
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_training_through_tf_config(tmp_path):
    # Two worker processes on loopback form one cluster from TF_CONFIG; the
    # chief (worker 0) writes the run directory, the other only trains.
    run = tmp_path / "run"
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    args = [
        "train", "categorical-vae", "--strategy", "multi-worker", "--epochs", "2",
        "--batch-size", "250", "--num-vars", "6", "--eval-samples", "10", "--quiet",
        "--output", str(run),
    ]  # fmt: skip
    workers = [
        subprocess.Popen(
            _cli(*args),
            env={
                **_env(),
                "TF_CONFIG": json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": i}}
                ),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results = [w.communicate(timeout=300) for w in workers]
    for worker, (_, err) in zip(workers, results, strict=False):
        assert worker.returncode == 0, err[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    # 3,500 images in global batches of 250: 14 synchronized steps an epoch.
    assert metrics["epochs"] == 2 and metrics["steps"] == 28
    assert np.isfinite(metrics["test_negative_bound"])
    assert len(json.loads((run / "history.json").read_text())["loss"]) == 2
    assert not list(run.glob(".worker*"))


def test_semi_supervised_run_resumes_and_reports_accuracy(tmp_path):
    run = tmp_path / "m2"
    # Small random digits: 100 of the 200 are labelled, 10 a class.
    data = str(write_idx_dir(tmp_path / "idx", n_train=200, n_test=50, height=8, width=8))
    config = RunConfig(
        model="semi-supervised", data=data, epochs=1, batch_size=50, binarization="dynamic"
    )
    train(config, run, verbose=0, evaluate_after=False)
    metrics = train(config.replace(epochs=2), run, resume=True, verbose=0)
    history = json.loads((run / "history.json").read_text())
    assert len(history["loss"]) == 2 and len(history["val_accuracy"]) == 2
    # 100 unlabelled digits in batches of 50: 2 steps an epoch.
    assert metrics["steps"] == 4 and metrics["epochs"] == 2
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["test_negative_elbo_unlabelled"] > 0
    for name in ("training", "reconstructions", "samples", "confusion"):
        assert (run / "figures" / f"{name}.png").read_bytes()[:8] == PNG


def test_the_seed_makes_a_run_repeatable(tmp_path):
    config = RunConfig(epochs=1, **FAST)
    first = train(config, tmp_path / "a", verbose=0, evaluate_after=False)
    second = train(config, tmp_path / "b", verbose=0, evaluate_after=False)
    other = train(config.replace(seed=1), tmp_path / "c", verbose=0, evaluate_after=False)
    assert first["loss"] == second["loss"] and first["val_loss"] == second["val_loss"]
    assert first["loss"] != other["loss"]


def test_data_seed_keeps_the_bits_across_seeds(tmp_path):
    # An IDX directory is binarized with the run's seed (the shipped
    # sample's bits are fixed), unless a data seed holds the bits still.
    from keras_gumbel.training import ConfigError
    from keras_gumbel.training import builders

    images = write_idx_dir(tmp_path / "idx", n_train=60, n_test=30)

    def test_bits(**seeds):
        config = RunConfig(**{**FAST, "batch_size": 10}, data=str(images), **seeds)
        return builders.build_data(config).test_arrays[0]

    base = test_bits(seed=0)
    np.testing.assert_array_equal(test_bits(seed=1, data_seed=0), base)
    assert not np.array_equal(test_bits(seed=1), base)
    with pytest.raises(ConfigError, match="`data_seed` must be None or an integer >= 0"):
        RunConfig(data_seed=-1)


def test_estimator_options_reach_the_model_and_survive_a_restore(tmp_path):
    from keras_gumbel.training import ConfigError
    from keras_gumbel.training import builders
    from keras_gumbel.training import restore

    config = RunConfig(epochs=1, **FAST, estimator="muprop", estimator_options={"normalize": False})
    assert builders.build_model(config).sampler._estimator.normalize is False
    assert builders.build_model(config.replace(estimator_options=None)).sampler._estimator.normalize
    train(config, tmp_path / "run", verbose=0, evaluate_after=False)
    stored = RunConfig.from_dict(json.loads((tmp_path / "run" / "config.json").read_text()))
    assert stored.estimator_options == {"normalize": False}
    model, _ = restore(tmp_path / "run", stored, builders.build_data(stored))
    assert model.sampler._estimator.normalize is False

    with pytest.raises(ConfigError, match="`estimator_options` of muprop: .*nrmalize"):
        RunConfig(estimator="muprop", estimator_options={"nrmalize": False})
    with pytest.raises(ConfigError, match="Expected a boolean"):
        RunConfig(estimator="darn", estimator_options={"normalize": "no"})
    with pytest.raises(ConfigError, match="does not apply to the semi-supervised model"):
        RunConfig(model="semi-supervised", estimator="marginalize", estimator_options={"x": 1})
