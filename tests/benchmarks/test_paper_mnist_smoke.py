"""Smoke tests of the full-MNIST Table 1 runner (`benchmarks.paper.paper_mnist`): one real
unit, and the plan and report logic."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from testing import BACKEND

from benchmarks.paper import paper_mnist
from benchmarks.paper import paper_mnist_protocol as protocol
from benchmarks.paper import paper_mnist_report as pmr
from benchmarks.paper.table1 import MODELS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="training runs use the TensorFlow backend"
)


def test_one_unit_trains_evaluates_and_writes_its_result(tmp_path):
    command = [
        sys.executable, "-m", "benchmarks.paper.paper_mnist", "unit", "categorical-vae",
        "gumbel_softmax", "--candidate", "r1e-4-n500", "--epochs", "1", "--data", "mnist-sample",
        "--eval-samples", "5", "--units-dir", str(tmp_path / "units"),
        "--runs-dir", str(tmp_path / "runs"),
    ]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]

    # The candidate is spelled one way whatever the command line said.
    name = "categorical-vae__gumbel_softmax__r0.0001-n500__s0__e1"
    unit = json.loads((tmp_path / "units" / f"{name}.json").read_text())
    bounds = np.load(tmp_path / "units" / f"{name}.bounds.npy")
    assert unit["steps"] == 35 and unit["best_epoch"] == 1
    assert unit["config"]["anneal_rate"] == 1e-4 and unit["config"]["restore_best"] is True
    assert unit["test_examples"] == len(bounds) == 1000
    assert unit["test_negative_bound"] == pytest.approx(float(bounds.mean()), rel=1e-6)
    # One epoch already beats fair coins for every pixel (784 ln 2 = 543.4 nats).
    assert unit["test_negative_bound"] < 784 * np.log(2)
    # The training objective on the test digits (relaxed samples at tau ~ 1)
    # is a finite number of nats, reported beside the discrete losses.
    assert 0 < unit["test_relaxed_loss"] < 784 * np.log(2)
    assert len(unit["data_sha256"]) == 64 and unit["data_split"] == [3500, 500, 1000]
    assert "--candidate r1e-4-n500" in unit["command"]

    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert again.returncode == 0 and "done" in again.stdout  # never recomputed


def test_an_sbn_unit_reports_its_validation_nll(tmp_path):
    command = [
        sys.executable, "-m", "benchmarks.paper.paper_mnist", "unit", "sbn-bernoulli",
        "straight_through", "--candidate", "lr0.1", "--epochs", "1", "--data", "mnist-sample",
        "--eval-samples", "5",
        "--units-dir", str(tmp_path / "units"), "--runs-dir", str(tmp_path / "runs"),
    ]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    unit = json.loads(
        (tmp_path / "units" / "sbn-bernoulli__straight_through__lr0.1__s0__e1.json").read_text()
    )
    # The m-sample NLL of the 500 validation lower halves (392 pixels): below
    # fair coins, and in expectation (Jensen) below the single-sample loss on
    # the same digits. Measured: 103.2 against 105.6, a gap of about four
    # standard errors of the two sampled means (each about 0.6 nats), with
    # the samples seeded.
    assert 0 < unit["val_negative_bound"] < 392 * np.log(2)
    assert unit["val_negative_bound"] < unit["best_val_loss"]
    assert unit["config"]["learning_rate"] == 0.1
    # One epoch: the best epoch is the last, so one checkpoint is considered.
    assert unit["evaluated_epoch"] == 1
    assert unit["checkpoint_val_negative_bounds"] == {
        "best": {"epoch": 1, "val_negative_bound": unit["val_negative_bound"]}
    }

    # A unit written before the checkpoint choice is brought up to date by
    # its own command, from its run directory, without training again.
    path = tmp_path / "units" / "sbn-bernoulli__straight_through__lr0.1__s0__e1.json"
    old = {
        k: v
        for k, v in unit.items()
        if k not in ("evaluated_epoch", "checkpoint_val_negative_bounds")
    }
    path.write_text(json.dumps(old))
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "epoch 1: validation NLL" in again.stdout
    assert json.loads(path.read_text()) == unit


def test_an_sbn_is_tested_at_the_checkpoint_with_the_lower_validation_nll(monkeypatch):
    """Of the best-validation-loss epoch and the last, the lower validation NLL wins."""

    import keras_gumbel.training

    def check(best_nll, last_nll, known=None):
        calls = []

        def restore(run_dir, config, data, best=None):
            epoch = 42 if best else 100
            state = {"epoch": 100, **({"restored_epoch": 42} if best else {})}
            return f"weights of epoch {epoch}", state

        def validation_bound(model, data, eval_samples):
            calls.append(model)
            return best_nll if model.endswith("42") else last_nll

        monkeypatch.setattr(keras_gumbel.training, "restore", restore)
        monkeypatch.setattr(paper_mnist, "validation_bound", validation_bound)
        return paper_mnist.choose_sbn_checkpoint("run", None, None, 1000, known), calls

    (model, chosen), calls = check(60.1, 59.8)
    assert model == "weights of epoch 100" and chosen["evaluated_epoch"] == 100
    assert chosen["val_negative_bound"] == 59.8 and len(calls) == 2
    assert chosen["checkpoint_val_negative_bounds"] == {
        "best": {"epoch": 42, "val_negative_bound": 60.1},
        "last": {"epoch": 100, "val_negative_bound": 59.8},
    }
    (model, chosen), _ = check(59.5, 59.8)
    assert model == "weights of epoch 42" and chosen["evaluated_epoch"] == 42
    # A validation NLL already measured (an older unit's) is not measured again.
    (model, chosen), calls = check(99.0, 59.8, known={42: 60.1})
    assert calls == ["weights of epoch 100"] and chosen["evaluated_epoch"] == 100
    assert chosen["checkpoint_val_negative_bounds"]["best"]["val_negative_bound"] == 60.1


def _unit(units_dir, model, estimator, candidate, val, bounds, seed=0, epochs=100, variant=None):

    name = protocol.unit_name(model, estimator, candidate, seed, epochs, variant)
    np.save(units_dir / f"{name}.bounds.npy", np.asarray(bounds, np.float32))
    unit = {
        "unit": name, "model": model, "estimator": estimator, "candidate": candidate,
        "seed": seed, "variant": variant, "config": {"epochs": epochs}, "best_val_loss": val,
        "val_loss": [val + 1, val],
        "test_negative_bound": float(np.mean(bounds)),
        "test_negative_bound_stderr": float(np.std(bounds) / np.sqrt(len(bounds))),
        "test_single_sample_loss": float(np.mean(bounds)) + 10, "steps": 50000, "best_epoch": 2,
        "train_cpu_seconds": 60.0, "eval_cpu_seconds": 6.0,
    }  # fmt: skip
    (units_dir / f"{name}.json").write_text(json.dumps(unit))
    return name


def test_selection_plan_and_report(tmp_path):

    units_dir = tmp_path / "units"
    units_dir.mkdir()
    base = np.linspace(90.0, 110.0, 50)
    model = "categorical-vae"
    # Gumbel-Softmax over the paper's schedule grid: the second has the lowest validation loss.
    for candidate, val in zip(pmr.VAE_CANDIDATES, [3.0, 1.0, 2.0, 4.0], strict=True):
        _unit(units_dir, model, "gumbel_softmax", candidate, val, base + val)
    chosen = pmr.VAE_CANDIDATES[1]
    _unit(units_dir, model, "straight_through", None, 5.0, base + 3.0)
    # A diagnosis with a lower validation loss never fills a cell or selects.
    _unit(units_dir, model, "gumbel_softmax", pmr.VAE_CANDIDATES[0], 0.5, base - 5,
          variant="lr-decay")  # fmt: skip
    units = paper_mnist.load_units(units_dir)

    assert pmr.selection(units, model, "st_gumbel_softmax")[0] == chosen
    assert pmr.selection(units, model, "straight_through")[0] is None
    todo = [t for t in pmr.plan(units) if t[0] == model]
    # Annealed estimators get the chosen schedule; ST needs no hyperparameter;
    # the three-seed cells get seeds 1 and 2; nothing finished is planned again.
    assert (model, "st_gumbel_softmax", chosen, 0, 100) in todo
    assert (model, "gumbel_softmax", chosen, 1, 100) in todo
    assert (model, "straight_through", None, 2, 100) in todo
    assert (model, "gumbel_softmax", chosen, 0, 100) not in todo
    assert (model, "straight_through", None, 0, 100) not in todo
    # SBNs first select a learning rate on short runs.
    sbn = [t for t in pmr.plan(units) if t[:2] == ("sbn-bernoulli", "darn")]
    assert {t[2] for t in sbn} == set(pmr.SBN_CANDIDATES) and {t[4] for t in sbn} == {10}

    payload = pmr.report(units, units_dir, tmp_path / "paper_mnist")
    cells = {(c["model"], c["estimator"]): c for c in payload["cells"]}
    assert cells[model, "gumbel_softmax"]["selected"] == chosen
    assert cells[model, "gumbel_softmax"]["difference"] == pytest.approx(100.0 + 1.0 - 101.5)
    # Paired over images: the ST bounds are the GS bounds + 2 nats, exactly.
    st = payload["gumbel_softmax_minus_other"][model]["straight_through"]
    assert st["diff"] == pytest.approx(-2.0, abs=1e-4) and st["se"] == pytest.approx(0, abs=1e-4)
    text = (tmp_path / "paper_mnist.md").read_text()
    assert "101.0 ± " in text and "(101.5, -0.5)" in text and "pending" in text
    assert "## Diagnoses" in text and "| lr-decay | 0.50 |" in text
    assert (tmp_path / "paper_mnist.png").read_bytes()[:4] == b"\x89PNG"


def test_sbn_learning_rate_two_stages(tmp_path):
    """Short runs pick the finalists; their full-length runs' validation NLL picks the cell."""

    units_dir = tmp_path / "units"
    units_dir.mkdir()
    model, estimator = "sbn-categorical", "gumbel_softmax"
    short = dict(zip(pmr.SBN_CANDIDATES, [90.0, 85.0, 80.0, 76.0, 74.0, 79.0], strict=True))
    for candidate, val in short.items():
        _unit(units_dir, model, estimator, candidate, val, [val], epochs=10)
    units = paper_mnist.load_units(units_dir)
    best_two = ["lr0.1", "lr0.03"]
    assert pmr.finalist_candidates(pmr._units_of(units, model, estimator, 10)) == best_two
    todo = [t for t in pmr.plan(units) if t[:2] == (model, estimator)]
    assert todo == [(model, estimator, c, 0, 100) for c in best_two]
    assert pmr.selection(units, model, estimator)[0] is None

    # The short runs' favourite has the better single-sample validation loss at
    # full length but the worse validation NLL: the NLL decides.
    a = _unit(units_dir, model, estimator, "lr0.1", 74.6, np.full(4, 61.6))
    b = _unit(units_dir, model, estimator, "lr0.03", 75.3, np.full(4, 59.8))
    for name, nll in ((a, 62.0), (b, 60.0)):
        path = units_dir / f"{name}.json"
        chosen = {"best": {"epoch": 2, "val_negative_bound": nll}}
        unit = {**json.loads(path.read_text()), "val_negative_bound": nll}
        path.write_text(json.dumps({**unit, "checkpoint_val_negative_bounds": chosen}))
    units = paper_mnist.load_units(units_dir)
    assert pmr.selection(units, model, estimator)[0] == "lr0.03"
    assert not [t for t in pmr.plan(units) if t[:2] == (model, estimator)]
    cells = pmr.cells(units)
    assert cells[model, estimator]["unit"]["candidate"] == "lr0.03"

    # A finalist evaluated by an older version (no checkpoint choice) is
    # planned again, its command bringing it up to date, and the cell waits.
    path = units_dir / f"{a}.json"
    old = json.loads(path.read_text())
    del old["checkpoint_val_negative_bounds"]
    path.write_text(json.dumps(old))
    units = paper_mnist.load_units(units_dir)
    assert pmr.selection(units, model, estimator)[0] is None
    assert [t for t in pmr.plan(units) if t[:2] == (model, estimator)] == [
        (model, estimator, "lr0.1", 0, 100)
    ]


def test_sbn_selection_units_skip_the_test_evaluation(tmp_path):

    short, full = protocol.SELECTION_EPOCHS, protocol.EPOCHS
    assert protocol.is_selection_only("sbn-bernoulli", "darn", short)
    assert not protocol.is_selection_only("sbn-bernoulli", "darn", full)
    assert not protocol.is_selection_only("categorical-vae", "darn", short)
    assert not protocol.is_selection_only("sbn-bernoulli", "darn", short, "long")
    # MuProp's SBN selection runs are the signal-normalized variant's; the plain form's are not.
    variant = "signal-normalized"
    assert protocol.is_selection_only("sbn-bernoulli", "muprop", short, variant)
    assert not protocol.is_selection_only("sbn-bernoulli", "muprop", short)
    units_dir = tmp_path / "units"
    units_dir.mkdir()
    name = protocol.unit_name("sbn-bernoulli", "darn", "lr0.001", 0, 10)
    unit = {
        "unit": name, "model": "sbn-bernoulli", "estimator": "darn", "candidate": "lr0.001",
        "seed": 0, "variant": None, "config": {"epochs": 10}, "best_val_loss": 61.0,
        "val_loss": [62.0, 61.0], "steps": 5000, "best_epoch": 10, "test_evaluated": False,
    }  # fmt: skip
    (units_dir / f"{name}.json").write_text(json.dumps(unit))
    units = paper_mnist.load_units(units_dir)
    pmr.report(units, units_dir, tmp_path / "paper_mnist")
    text = (tmp_path / "paper_mnist.md").read_text()
    assert "| lr0.001 | 0 | 10 | 61.00 | 10 | - | - | - |" in text
    long = protocol.run_config("sbn-bernoulli", "darn", "lr0.001", 0, 100, "x", variant="long")
    assert long.epochs == 2 * protocol.EPOCHS and long.learning_rate == 0.001
    with pytest.raises(ValueError, match="VAEs only"):
        protocol.run_config("sbn-bernoulli", "darn", "lr0.001", 0, 10, "x", variant="learned-prior")
    plain = protocol.run_config(
        "categorical-vae", "muprop", None, 0, 100, "x", variant="unnormalized"
    )
    assert plain.estimator_options == {"normalize": False}
    with pytest.raises(ValueError, match="score_function, darn, muprop only"):
        protocol.run_config(
            "categorical-vae", "straight_through", None, 0, 100, "x", variant="unnormalized"
        )
    slow = protocol.run_config(
        "sbn-categorical", "annealed_straight_through", "lr0.03", 0, 100, "x", variant="slow-slope"
    )
    assert slow.anneal_rate == 1e-5 and slow.learning_rate == 0.03
    with pytest.raises(ValueError, match="annealed ST in the SBNs only"):
        protocol.run_config(
            "sbn-categorical", "gumbel_softmax", "lr0.03", 0, 100, "x", variant="slow-slope"
        )
    mean_field = protocol.run_config(
        "sbn-bernoulli", "muprop", "lr0.01", 0, 100, "x", variant="mean-field"
    )
    assert mean_field.estimator_options == {"mean_field": True}
    with pytest.raises(ValueError, match="MuProp in the SBNs only"):
        protocol.run_config("categorical-vae", "muprop", None, 0, 100, "x", variant="mean-field")
    signal = protocol.run_config(
        "sbn-categorical", "muprop", "lr0.03", 0, 100, "x", variant="signal-normalized"
    )
    assert signal.estimator_options == {"scale_expansion": False}
    with pytest.raises(ValueError, match="MuProp in the SBNs only"):
        protocol.run_config(
            "sbn-bernoulli", "darn", "lr0.01", 0, 100, "x", variant="signal-normalized"
        )
    floor = protocol.run_config(
        "bernoulli-vae", "gumbel_softmax", "r0.0001-n500", 0, 100, "x", variant="low-floor"
    )
    assert floor.tau_min == 0.1 and floor.anneal_rate == 1e-4
    with pytest.raises(ValueError, match="Gumbel family in the VAEs only"):
        protocol.run_config(
            "sbn-categorical", "gumbel_softmax", "lr0.03", 0, 100, "x", variant="low-floor"
        )


def test_sbn_muprop_cells_are_the_signal_normalized_variant(tmp_path):
    """The protocol's MuProp SBN units carry the variant; the plain form's are diagnoses."""

    units_dir = tmp_path / "units"
    units_dir.mkdir()
    model, estimator, variant = "sbn-bernoulli", "muprop", "signal-normalized"
    # The first protocol's units (no variant) rank and test best: they must not count.
    for candidate in pmr.SBN_CANDIDATES:
        _unit(units_dir, model, estimator, candidate, 50.0, [50.0], epochs=10)
    _unit(units_dir, model, estimator, "lr0.01", 50.0, np.full(4, 50.0))
    units = paper_mnist.load_units(units_dir)
    todo = [t for t in pmr.plan(units) if t[:2] == (model, estimator)]
    assert {t[2] for t in todo} == set(pmr.SBN_CANDIDATES) and {t[4] for t in todo} == {10}
    assert pmr.command(*todo[0]).endswith(f"--epochs 10 --variant {variant} --data MNIST_DIR")
    short = dict(zip(pmr.SBN_CANDIDATES, [90.0, 85.0, 80.0, 76.0, 74.0, 79.0], strict=True))
    for candidate, val in short.items():
        _unit(units_dir, model, estimator, candidate, val, [val], epochs=10, variant=variant)
    for candidate, nll in (("lr0.1", 62.0), ("lr0.03", 60.0)):
        name = _unit(units_dir, model, estimator, candidate, 75.0, np.full(4, nll), variant=variant)
        path = units_dir / f"{name}.json"
        chosen = {"best": {"epoch": 2, "val_negative_bound": nll}}
        unit = {**json.loads(path.read_text()), "val_negative_bound": nll}
        path.write_text(json.dumps({**unit, "checkpoint_val_negative_bounds": chosen}))
    units = paper_mnist.load_units(units_dir)
    assert not [t for t in pmr.plan(units) if t[:2] == (model, estimator)]
    cell = pmr.cells(units)[model, estimator]["unit"]
    assert (cell["candidate"], cell["variant"]) == ("lr0.03", variant)
    pmr.report(units, units_dir, tmp_path / "paper_mnist")
    text = (tmp_path / "paper_mnist.md").read_text()
    assert "| 60.0 ± 0.00 (58.9, +1.1) |" in text
    # The plain form's full-length unit is listed with the diagnoses, as variant none.
    diagnoses = text.split("## Diagnoses")[1].split("## Every finished unit")[0]
    assert "| SBN (Bern.) | MuProp | lr0.01 | none | 50.00 |" in diagnoses


def test_every_planned_unit_has_a_valid_run_config():
    """The plan of an empty grid names only units whose command can run."""

    planned = pmr.plan({})
    assert {t[0] for t in planned} == set(MODELS)
    for model, estimator, candidate, seed, epochs in planned:
        variant = protocol.protocol_variant(model, estimator)
        config = protocol.run_config(
            model, estimator, candidate, seed, epochs, "x", variant=variant
        )
        assert config.estimator == estimator and config.epochs == epochs
        if (model, estimator) in (("sbn-bernoulli", "muprop"), ("sbn-categorical", "muprop")):
            assert config.estimator_options == {"scale_expansion": False}
    # Slope-annealed ST in an SBN: the learning rate is the candidate's, the
    # slope schedule the fixed one.
    config = protocol.run_config(
        "sbn-categorical", "annealed_straight_through", "lr0.003", 0, 10, "x"
    )
    assert config.learning_rate == 0.003 and config.schedule == "exponential"
    assert (config.anneal_rate, config.anneal_interval) == (1e-4, 500)
