"""Builds the documentation site once per test process, for the docs tests.

`KERAS_GUMBEL_DOCS_HTML` may name a site built already (for example by
`python docs/build.py`); the tests then check that one instead of building.
"""

import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
# What the site's build needs (the `docs` extra).
BUILD_MODULES = ("sphinx", "myst_parser", "myst_nb", "furo", "sphinx_copybutton")


def require_build_tools():
    for module in BUILD_MODULES:
        reason = f"building the site needs {module}: pip install -e .[docs]"
        pytest.importorskip(module, reason=reason)


@functools.cache
def _build():
    out = Path(tempfile.mkdtemp(prefix="keras-gumbel-docs-"))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q"]
    command += ["-d", str(out / "doctrees"), str(DOCS), str(out / "html")]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    return out / "html", result.returncode, result.stdout + result.stderr


def built_site():
    """The built site's folder; fails the test with Sphinx's output on a warning."""
    given = os.environ.get("KERAS_GUMBEL_DOCS_HTML")
    if given:
        return Path(given)
    require_build_tools()
    html, returncode, output = _build()
    assert returncode == 0, f"sphinx-build -W failed:\n{output[-6000:]}"
    return html
