"""Tests of the `keras-gumbel` command line: one-line errors, non-zero exits,
no TensorFlow start-up logs and no TensorFlow at all for help and errors.

What only a fresh process shows (which modules `--help` loads, TensorFlow's
start-up logs, the entry point itself) runs the entry point in a subprocess;
everything else calls `keras_gumbel.cli.main(argv)` in the test process,
which already has TensorFlow loaded, with standard output and error captured
at the file-descriptor level, so that stray C++ or absl lines still count.
"""

import collections
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from testing import BACKEND

from keras_gumbel import cli

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="the command line uses the TensorFlow backend"
)

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra):
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": str(ROOT), **extra}
    # The command line's own default, not the test session's.
    if "TF_CPP_MIN_LOG_LEVEL" not in extra:
        env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return env


def run_cli(*args, timeout=120, **env):
    """Runs the `keras-gumbel` entry point (`keras_gumbel_cli`) in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "keras_gumbel_cli", *args],
        env=_env(**env), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


Result = collections.namedtuple("Result", "returncode stdout stderr")


@pytest.fixture
def call_cli(capfd):
    """`call_cli(*args)`: `keras-gumbel ARGS` in this process, as a `Result`."""

    def call(*args):
        capfd.readouterr()  # drop what earlier code printed
        try:
            code = cli.main([str(arg) for arg in args])
        except SystemExit as exit:  # argparse's usage errors and --help
            code = exit.code
        out, err = capfd.readouterr()
        return Result(code or 0, out, err)

    return call


def _error_line(result):
    # The error is all there is on stderr: TensorFlow's start-up logs are hidden.
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _loaded_after(*args):
    """Which of tensorflow and keras are loaded after `keras-gumbel ARGS`."""
    code = (
        "import sys, keras_gumbel_cli\n"
        "try:\n"
        f"    keras_gumbel_cli.main({list(args)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('modules', 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120
    )
    return result.stdout.strip().splitlines()[-1], result


def test_help_and_usage_errors_are_ours_and_do_not_load_tensorflow():
    for args in (["--help"], ["export", "--help"], ["train", "--epochs", "0"], ["nope"]):
        last, result = _loaded_after(*args)
        assert last == "modules False False", (args, result.stderr)
    helped = run_cli("--help")
    assert helped.returncode == 0 and helped.stderr == ""
    assert helped.stdout.startswith("usage: keras-gumbel ")
    assert "--verbose" in helped.stdout
    error = run_cli("train", "categorical-vae", "--epochs", "0", "-o", "x")
    assert error.returncode == 2 and error.stdout == ""
    assert error.stderr.startswith("keras-gumbel train: error: argument --epochs")


def test_tensorflow_logs_only_with_verbose_or_the_users_own_level(tmp_path):
    # `evaluate` of a missing run loads TensorFlow, then fails with one line.
    quiet = run_cli("evaluate", str(tmp_path))
    assert quiet.returncode == 2
    assert _error_line(quiet).startswith("keras-gumbel evaluate: error:")
    # --verbose before the command parses as after it (one start-up less).
    assert cli.build_parser().parse_args(["--verbose", "evaluate", str(tmp_path)]).verbose
    for result in (
        run_cli("evaluate", str(tmp_path), "--verbose"),
        run_cli("evaluate", str(tmp_path), TF_CPP_MIN_LOG_LEVEL="0"),
    ):
        assert result.returncode == 2
        # TensorFlow's own start-up lines (absl, oneDNN, CUDA) come first.
        first = result.stderr.splitlines()[0]
        assert not first.startswith("keras-gumbel"), result.stderr
        assert "keras-gumbel evaluate: error:" in result.stderr.splitlines()[-1]


def test_serve_output_starts_with_our_line(tmp_path):
    (tmp_path / "empty").mkdir()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "keras_gumbel_cli", "serve",
            f"--model_base_path={tmp_path / 'empty'}", "--port=0",
        ],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        assert line.startswith("Running gRPC ModelServer at 127.0.0.1:")
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    # Only the server's own log lines ("<time> INFO keras_gumbel...: ...").
    for log in stderr.splitlines():
        assert " keras_gumbel." in log and "absl" not in log, stderr


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["train", "gaussian-vae", "-o", "x"], "argument model: invalid choice: 'gaussian-vae'"),
        (
            ["train", "categorical-vae", "--epochs", "ten", "-o", "x"],
            "argument --epochs: expected a positive integer, got 'ten'",
        ),
        (
            ["train", "categorical-vae", "--learning-rate", "-1", "-o", "x"],
            "argument --learning-rate: expected a finite positive number",
        ),
        (["train", "categorical-vae"], "the following arguments are required: --output"),
        (
            ["train", "categorical-vae", "--estimator-option", "normalize", "-o", "x"],
            "argument --estimator-option: expected NAME=VALUE, got 'normalize'",
        ),
        (["evaluate"], "the following arguments are required: run_dir"),
    ],
)
def test_bad_arguments_fail_with_one_line(call_cli, args, pattern):
    result = call_cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    line = _error_line(result)
    assert line.startswith("keras-gumbel ") and pattern in line


def test_errors_from_the_library_are_one_line(call_cli, tmp_path):
    missing = call_cli(
        "train", "categorical-vae", "--data", str(tmp_path / "nowhere"), "-o", str(tmp_path / "r")
    )
    assert missing.returncode == 2
    assert "keras-gumbel train: error:" in _error_line(missing)
    assert "nowhere" in _error_line(missing) and "mnist-sample" in _error_line(missing)
    assert "Traceback" not in missing.stderr

    blocker = tmp_path / "file"
    blocker.write_text("")
    unwritable = call_cli("train", "categorical-vae", "--epochs", "1", "-o", str(blocker / "run"))
    assert unwritable.returncode == 2 and "cannot write to run directory" in _error_line(unwritable)

    estimator = call_cli(
        "train", "categorical-vae", "--estimator", "magic", "-o", str(tmp_path / "r2")
    )
    assert estimator.returncode == 2 and "`estimator` must be one of" in _error_line(estimator)

    option = call_cli(
        "train", "categorical-vae", "--estimator", "muprop",
        "--estimator-option", "nrmalize=false", "-o", str(tmp_path / "r3"),
    )  # fmt: skip
    assert option.returncode == 2
    assert "`estimator_options` of muprop" in _error_line(option)
    assert "nrmalize" in _error_line(option)

    not_a_run = call_cli("evaluate", str(tmp_path))
    assert not_a_run.returncode == 2 and "is not a run directory" in _error_line(not_a_run)


def test_train_then_evaluate(call_cli, tmp_path):
    run = tmp_path / "run"
    common = [
        "--batch-size",
        "500",
        "--num-vars",
        "6",
        "--eval-samples",
        "10",
        "--quiet",
        "-o",
        str(run),
    ]
    trained = call_cli("train", "sbn-bernoulli", "--epochs", "1", *common)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert trained.stdout.startswith("keras-gumbel train: sbn-bernoulli on mnist-sample, 1 epoch")
    assert trained.stderr == ""
    assert "test_negative_bound" in trained.stdout
    again = call_cli("train", "sbn-bernoulli", "--epochs", "1", *common)
    assert again.returncode == 2 and "already exists" in _error_line(again)
    evaluated = call_cli("evaluate", str(run), "--samples", "5")
    assert evaluated.returncode == 0
    assert re.search(r"test_bound_samples\s+5\n", evaluated.stdout)


@pytest.mark.serving
def test_export_serve_and_encode_from_the_command_line(call_cli, tmp_path):
    import numpy as np

    from keras_gumbel.serving import serve
    from keras_gumbel.training import RunConfig
    from keras_gumbel.training import restore
    from keras_gumbel.training import train

    run = tmp_path / "run"
    train(
        RunConfig(epochs=1, batch_size=500, num_vars=5, eval_samples=5),
        run,
        verbose=0,
        evaluate_after=False,
    )
    exported = call_cli(
        "export", str(run), "--base-path", str(tmp_path / "exported"), "--name", "vae"
    )
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert "exported" in exported.stdout and (tmp_path / "exported" / "vae" / "1").is_dir()

    model, _ = restore(run)
    images = (np.random.default_rng(0).uniform(size=(7, 784)) > 0.7).astype("float32")
    np.save(tmp_path / "images.npy", images)
    server = serve(tmp_path / "exported" / "vae", "vae", port=0)
    try:
        encoded = call_cli(
            "encode", str(tmp_path / "images.npy"), "--server", server.address, "--model", "vae"
        )
        missing = call_cli(
            "encode", str(tmp_path / "images.npy"), "--server", server.address, "--model", "nope"
        )
    finally:
        server.stop()
    assert encoded.returncode == 0, encoded.stderr[-2000:]
    printed = np.array(
        [[int(c) for c in line.split()] for line in encoded.stdout.strip().splitlines()]
    )
    np.testing.assert_array_equal(printed, model.encode(images).numpy())
    assert missing.returncode == 2
    assert "NOT_FOUND" in _error_line(
        missing
    ) and "Servable not found for request: Latest(nope)" in _error_line(missing)


def test_serve_help_uses_tf_serving_flag_names(call_cli):
    result = call_cli("serve", "--help")
    assert result.returncode == 0
    assert "--model_base_path" in result.stdout and "--rest_api_port" in result.stdout


def test_semi_supervised_train_reports_accuracy_and_refuses_export(call_cli, tmp_path):
    run = tmp_path / "m2"
    trained = call_cli(
        "train", "semi-supervised", "--epochs", "1", "--batch-size", "500",
        "--estimator", "st_gumbel_softmax", "--quiet", "-o", str(run),
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert re.search(r"test_accuracy\s+0\.\d+\n", trained.stdout)
    assert "figure confusion" in trained.stdout
    config = (run / "config.json").read_text()
    # The paper's settings for M2: dynamic binarization, tau recomputed every 2000 steps.
    assert '"binarization": "dynamic"' in config and '"anneal_interval": 2000' in config
    exported = call_cli("export", str(run), "--base-path", str(tmp_path / "models"))
    assert exported.returncode == 2 and "semi-supervised run" in _error_line(exported)
    wrong = call_cli("train", "semi-supervised", "--estimator", "darn", "-o", str(tmp_path / "x"))
    assert wrong.returncode == 2
    assert "`estimator` must be one of marginalize, gumbel_softmax" in _error_line(wrong)


def test_export_a_keras_model_file(call_cli, tmp_path):
    import keras

    import keras_gumbel as kg

    inputs = keras.Input(shape=(6,), name="features")
    logits = keras.layers.Reshape((2, 3))(keras.layers.Dense(6)(inputs))
    keras.Model(inputs, kg.GumbelSoftmax(hard=True, name="codes")(logits)).save(
        tmp_path / "tiny.keras"
    )
    keras.Model(inputs, logits).save(tmp_path / "plain.keras")
    models = tmp_path / "models"
    exported = call_cli(
        "export", str(tmp_path / "tiny.keras"), "--base-path", str(models), "--skip-cli-check"
    )
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert exported.stdout == f"Exported and verified: {models / 'tiny' / '1'}\n"
    assert exported.stderr == ""
    plain = call_cli("export", str(tmp_path / "plain.keras"), "--base-path", str(models))
    assert plain.returncode == 2
    assert "has no layer with discrete codes" in _error_line(plain)
    missing = call_cli("export", str(tmp_path / "nope.keras"), "--base-path", str(models))
    assert missing.returncode == 2 and "no such model file" in _error_line(missing)
    assert sorted(p.name for p in models.iterdir()) == ["tiny"]
