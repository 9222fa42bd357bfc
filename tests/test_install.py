"""The released wheel installs and works with Keras and JAX alone, without TensorFlow.

Builds the sdist and, from it, the wheel, as a release does (`python -m build`,
without build isolation, so that it needs no index), checks both, installs the
wheel (not editable) with JAX into a new virtual environment and runs there:
`import keras_gumbel` on the JAX backend, the README quickstart as written, a
TensorFlow-only feature (which must fail with one line naming its extra) and
`keras-gumbel --help`. pip uses its cache and skips byte-compiling.

Marked `install` (about 90 s on 2 CPU cores: build 10 s, venv 10 s, install
20 s, quickstart 35 s); CI runs it as its own step:
`python -m pytest -m install tests/test_install.py`.
"""

import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _run(args, timeout=300, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    pytest.importorskip("build", reason="needs the release extra (build)")
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)])
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return wheel, sdist


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory):
    """A new virtual environment with the wheel and JAX (Keras comes as a requirement)."""
    wheel, _ = dist
    path = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", str(path)])
    python = path / "bin" / "python"
    # With this checkout on PYTHONPATH, pip would take its egg-info for an installed copy.
    _run(
        [str(python), "-m", "pip", "install", "--no-compile", str(wheel), "jax"],
        env=_venv_env(), timeout=600,
    )  # fmt: skip
    return path


def _venv_env():
    # Nothing of this checkout or of the test's own environment may leak in.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["KERAS_BACKEND"] = "jax"
    return env


def test_wheel_and_sdist_pass_the_release_checks(dist):
    wheel, sdist = dist
    pytest.importorskip("twine", reason="needs the release extra (twine)")
    _run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)])
    _run(["check-wheel-contents", "--config", str(ROOT / "pyproject.toml"), str(wheel)])
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith("/METADATA"))).decode()
    assert {
        "keras_gumbel/py.typed",
        "keras_gumbel/datasets/data/mnist_sample.npz",
        "keras_gumbel/datasets/data/make_mnist_sample.py",
        "keras_gumbel_cli.py",
    } <= names
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        assert {f"{top}/CHANGELOG.md", f"{top}/keras_gumbel/py.typed"} <= set(archive.getnames())
    # Only keras and numpy are unconditional; TensorFlow comes with an extra.
    unconditional = [
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert sorted(re.split(r"[<>=!~ ]", r)[0] for r in unconditional) == ["keras", "numpy"]
    assert 'Requires-Dist: tensorflow>=2.16; extra == "tensorflow"' in metadata
    # One source of the version: setup.cfg reads it from the package, statically.
    version = re.search(r"^Version: (.+)$", metadata, re.M).group(1)
    init = (ROOT / "keras_gumbel" / "__init__.py").read_text()
    assert f'__version__ = "{version}"' in init


def test_import_and_a_tensorflow_only_feature_without_tensorflow(venv, tmp_path):
    code = r"""
import importlib.util, json, sys
assert importlib.util.find_spec("tensorflow") is None, "tensorflow is installed"
import keras, keras_gumbel
from keras_gumbel import callbacks, layers, ops, schedules
out = {"file": keras_gumbel.__file__, "backend": keras.backend.backend()}
out["names"] = [n for n in ("GumbelSoftmax", "TemperatureScheduler") if hasattr(keras_gumbel, n)]
try:
    import keras_gumbel.models
except ImportError as error:
    out["error"] = [type(error).__name__, str(error)]
print(json.dumps(out))
"""
    result = _run([str(venv / "bin" / "python"), "-c", code], env=_venv_env(), cwd=tmp_path)
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["file"].startswith(str(venv)), out["file"]
    assert out["backend"] == "jax"
    assert out["names"] == ["GumbelSoftmax", "TemperatureScheduler"]
    assert out["error"] == [
        "MissingExtraError",
        "keras_gumbel.models needs TensorFlow: pip install 'keras-gumbel[tensorflow]'",
    ]


def test_readme_quickstart_runs_without_tensorflow(venv, tmp_path):
    match = re.search(r"<!-- quickstart -->\n```\w*\n(.*?)```\n<!-- /quickstart -->", README, re.S)
    assert match, "README has no quickstart block"
    script = tmp_path / "quickstart.py"
    script.write_text(match.group(1))
    result = _run([str(venv / "bin" / "python"), str(script)], env=_venv_env(), cwd=tmp_path)
    assert "final temperature: 0.5" in result.stdout
    codes = re.search(r"codes of one digit: \[\[([\d ]+)\]\]", result.stdout)
    assert codes and len(codes.group(1).split()) == 20, result.stdout[-2000:]


def test_command_help_and_a_tensorflow_command_without_tensorflow(venv, tmp_path):
    command = str(venv / "bin" / "keras-gumbel")
    result = _run([command, "--help"], env=_venv_env(), cwd=tmp_path)
    assert result.stdout.startswith("usage: keras-gumbel")
    assert "train" in result.stdout and "serve" in result.stdout
    train = subprocess.run(
        [command, "train", "categorical-vae", "-o", str(tmp_path / "run")],
        env=_venv_env(), cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert train.returncode == 2
    assert train.stderr == (
        "keras-gumbel train: error: this command needs TensorFlow: "
        "pip install 'keras-gumbel[paper]'\n"
    )
    assert not (tmp_path / "run").exists()
