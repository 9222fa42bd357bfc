"""The README's quickstart runs as written, CI runs its test command, and its numbers
and links point to committed files."""

import re
from pathlib import Path

import pytest
from testing import BACKEND

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _block(marker):
    match = re.search(rf"<!-- {marker} -->\n```\w*\n(.*?)```\n<!-- /{marker} -->", README, re.S)
    assert match, f"README has no {marker} block"
    return match.group(1)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="the quickstart uses the default backend")
def test_quickstart_runs(capsys):
    namespace = {}
    exec(compile(_block("quickstart"), "README quickstart", "exec"), namespace)
    out = capsys.readouterr().out
    assert "final temperature: 0.5" in out
    assert namespace["history"].history["loss"][-1] < namespace["history"].history["loss"][0]


def test_test_command_runs_every_backend_and_check():
    command = _block("test-command")
    assert "pip install" in command and "python -m pytest" in command
    assert "KERAS_BACKEND=jax" in command and "KERAS_BACKEND=torch" in command
    assert "--doctest-modules tests keras_gumbel" in command
    # The docstring examples of the backend-agnostic modules run on every backend.
    for backend in ("jax", "torch"):
        run = re.search(rf"KERAS_BACKEND={backend} python -m pytest ([^&]*)", command)
        assert run and "--doctest-modules" in run.group(1), backend
        modules = ("ops", "layers", "schedules.py", "callbacks")
        for module in (f"keras_gumbel/{name}" for name in modules):
            assert module in run.group(1), (backend, module)
    # The TensorFlow run takes the notebooks (marked `notebook`, which pytest's
    # configured default leaves out) and the JAX run the installed-wheel test.
    tensorflow_run = re.search(r'-m "([^"]*)" --doctest-modules tests keras_gumbel', command)
    assert tensorflow_run and "notebook" not in tensorflow_run.group(1)
    assert "tests/test_install.py" in command
    assert "twine check" in command and "hf" in command and "docs" in command


def _numbers(text):
    return re.findall(r"\d+(?:\.\d+)?%?", text)


def test_headline_numbers_come_from_committed_results():
    # Each headline table names its results file; every number it quotes is in that file.
    tables = re.findall(
        r"<!-- headline-results (\S+) -->\n(.*?)<!-- /headline-results -->", README, re.S
    )
    assert len(tables) >= 2
    for source, table in tables:
        results = (ROOT / source).read_text()
        known = set(_numbers(results))
        rows = [line for line in table.splitlines() if line.startswith("|")][2:]
        assert rows, source
        for row in rows:
            for number in _numbers(row.split("|", 2)[2]):
                assert number in known, f"README quotes {number}, not in {source}"


def test_links_point_to_files():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


def test_documentation_build_command():
    assert "python docs/build.py" in README
