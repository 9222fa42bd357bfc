"""Optional dependencies: setup.cfg's extras, and one-line errors that name them.

The subprocess tests hide TensorFlow (or another extra's module) from a fresh
interpreter with `sys.modules[name] = None`, the standard way to make an
import fail, so they run wherever the full stack is installed.
tests/test_install.py checks the same in a real environment without TensorFlow.
"""

import configparser
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from keras_gumbel import _extras
from keras_gumbel import cli

ROOT = Path(__file__).resolve().parents[1]

# The distribution that provides each module of keras_gumbel/_extras.py.
DISTRIBUTIONS = {
    "tensorflow": "tensorflow",
    "tensorflow_probability": "tensorflow-probability",
    "tf_keras": "tf-keras",
    "tensorboard": "tensorboard",
    "matplotlib": "matplotlib",
    "grpc": "grpcio",
    "tensorflow_serving": "tensorflow-serving-api",
}


def _setup_cfg():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


def _requirement_names(value):
    lines = [line.strip() for line in value.splitlines()]
    return {re.split(r"[<>=!~\[; ]", line)[0].lower() for line in lines if line}


def test_hard_requirements_are_keras_and_numpy():
    requires = _requirement_names(_setup_cfg()["options"]["install_requires"])
    assert requires == {"keras", "numpy"}


def test_every_extra_installs_the_modules_it_is_named_for():
    extras = _setup_cfg()["options.extras_require"]
    for extra, modules in _extras.EXTRA_MODULES.items():
        listed = _requirement_names(extras[extra])
        assert {DISTRIBUTIONS[m] for m in modules} <= listed, extra
    # `all` and `test` hold every runtime extra except hf (a CUDA torch wheel).
    runtime = set()
    for extra in ("tensorflow", "serving", "paper", "jax", "notebooks"):
        runtime |= _requirement_names(extras[extra])
    assert runtime <= _requirement_names(extras["all"])
    # The docs site imports every subpackage for its API reference and runs the notebooks.
    assert runtime - {"jax", "jaxlib"} <= _requirement_names(extras["docs"])
    assert runtime <= _requirement_names(extras["test"])
    assert _requirement_names(extras["release"]) <= _requirement_names(extras["test"])


def test_require_extra_names_the_extra_in_one_line():
    with pytest.raises(_extras.MissingExtraError) as info:
        _extras.require_extra("keras_gumbel.models", "tensorflow", modules=("no_such_module_kg",))
    assert str(info.value) == (
        "keras_gumbel.models needs no_such_module_kg: pip install 'keras-gumbel[tensorflow]'"
    )
    assert isinstance(info.value, ImportError)
    assert info.value.name == "no_such_module_kg"
    # Several extras, as pip takes them: the modules of both are checked.
    with pytest.raises(_extras.MissingExtraError, match=r"\[paper,serving\]'$"):
        _extras.require_extra("x", "paper,serving", modules=("json", "no_such_module_kg"))
    assert _extras._modules_of("paper,serving")[-2:] == ["grpc", "tensorflow_serving"]
    assert len(set(_extras._modules_of("paper,serving"))) == len(
        _extras._modules_of("paper,serving")
    )
    # Installed modules pass; the first missing one is named.
    _extras.require_extra("x", "paper", modules=("json", "os"))
    assert _extras.missing_module("paper", ("json", "no_such_module_kg", "os")) == (
        "no_such_module_kg"
    )


def _without(modules, code):
    """Runs `code` on the JAX backend in a fresh interpreter where `modules` cannot be imported."""
    prelude = f"import sys\nfor name in {list(modules)!r}:\n    sys.modules[name] = None\n"
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", prelude + code],
        env=env, capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_without_tensorflow_the_core_works_and_the_rest_names_its_extra():
    pytest.importorskip("jax")
    code = r"""
import json
import keras
import numpy as np
import keras_gumbel as kg
from keras_gumbel import datasets

out = {"backend": keras.backend.backend()}
sample = kg.GumbelSoftmax(hard=True, seed=1)(np.zeros((2, 3), "float32"), training=True)
out["row_sums"] = np.asarray(sample).sum(-1).tolist()
out["sample_shape"] = list(datasets.load("mnist-sample").x_train.shape)
for module in ("keras_gumbel.models", "keras_gumbel.export", "keras_gumbel.serving",
               "keras_gumbel.training", "keras_gumbel.demo"):
    try:
        __import__(module)
    except ImportError as error:
        out[module] = [type(error).__name__, str(error)]
try:
    datasets.make_dataset(np.zeros((4, 28, 28)), batch_size=2)
except ImportError as error:
    out["make_dataset"] = str(error)
out["tensorflow_loaded"] = "tensorflow" in sys.modules and sys.modules["tensorflow"] is not None
print(json.dumps(out))
"""
    out = _without(["tensorflow"], code)
    assert out["backend"] == "jax"
    assert out["row_sums"] == [1.0, 1.0]
    assert out["sample_shape"] == [3500, 28, 28]
    assert not out["tensorflow_loaded"]
    expected = {
        "keras_gumbel.models": "keras_gumbel.models needs TensorFlow: "
        "pip install 'keras-gumbel[tensorflow]'",
        "keras_gumbel.export": "keras_gumbel.export needs TensorFlow: "
        "pip install 'keras-gumbel[serving]'",
        "keras_gumbel.serving": "keras_gumbel.serving needs TensorFlow: "
        "pip install 'keras-gumbel[serving]'",
        "keras_gumbel.training": "keras_gumbel.training needs TensorFlow: "
        "pip install 'keras-gumbel[paper]'",
        # The demo trains: training's check speaks for it.
        "keras_gumbel.demo": "keras_gumbel.training needs TensorFlow: "
        "pip install 'keras-gumbel[paper]'",
    }
    for module, message in expected.items():
        assert out[module] == ["MissingExtraError", message]
    assert out["make_dataset"] == (
        "keras_gumbel.datasets.make_dataset needs TensorFlow: "
        "pip install 'keras-gumbel[tensorflow]'"
    )


def test_with_tensorflow_but_without_grpc_serving_names_its_extra():
    code = r"""
import json
out = {}
import keras_gumbel.models  # The tensorflow extra is enough here.
out["models"] = True
for module in ("keras_gumbel.serving", "keras_gumbel.plots"):
    try:
        __import__(module)
    except ImportError as error:
        out[module] = str(error)
print(json.dumps(out))
"""
    out = _without(["grpc", "matplotlib"], code)
    assert out["models"]
    assert out["keras_gumbel.serving"] == (
        "keras_gumbel.serving needs grpcio: pip install 'keras-gumbel[serving]'"
    )
    assert out["keras_gumbel.plots"] == (
        "keras_gumbel.plots needs matplotlib: pip install 'keras-gumbel[paper]'"
    )


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["train", "categorical-vae", "-o", "unused"], "paper"),
        (["demo"], "paper,serving"),
        (["export", "unused", "--base-path", "unused"], "serving"),
        (["serve", "--port", "0"], "serving"),
    ],
)
def test_cli_commands_name_their_extra_before_loading_anything(argv, extra, monkeypatch, capsys):
    monkeypatch.setattr(_extras, "missing_module", lambda extra, modules=None: "tensorflow")
    monkeypatch.setattr(cli, "quiet_tensorflow", lambda *a, **k: pytest.fail("loaded TensorFlow"))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        f"keras-gumbel {argv[0]}: error: this command needs TensorFlow: "
        f"pip install 'keras-gumbel[{extra}]'\n"
    )
