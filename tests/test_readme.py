"""The README's quickstart runs as written, and CI runs the README's test command."""

import re
from pathlib import Path

import pytest
from testing import BACKEND

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


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


def test_test_command_runs_both_backends():
    command = _block("test-command")
    assert "pip install" in command and "python -m pytest" in command
    assert "KERAS_BACKEND=jax" in command


@pytest.mark.skipif(BACKEND != "tensorflow", reason="the example logs a TensorFlow-only metric")
def test_vector_quantizer_example_runs(capsys):
    namespace = {}
    exec(compile(_block("vector-quantizer"), "README vector quantizer", "exec"), namespace)
    out = capsys.readouterr().out
    history = namespace["history"].history
    assert history["loss"][-1] < history["loss"][0]
    # Perplexity lies between G = 2 and G * V = 64.
    assert 2.0 <= history["vq_perplexity"][-1] <= 64.0
    assert "perplexity of the codes" in out
