"""The Python examples of the documentation's Markdown pages run as written.

Each page's ```python blocks run in order in one namespace (a later block may
use an earlier one's names), in a temporary working directory. A block right
after `<!-- docs-test: slow (why) -->` runs only with `-m slow`; one after
`<!-- docs-test: skip (why) -->` never runs (it needs files the tests do not
have). Pages that include the README's quickstart leave it to
`tests/test_readme.py`.
"""

import re
from pathlib import Path

import pytest
from testing import BACKEND

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"(?:<!-- docs-test: (\w+) \(([^)]+)\) -->\n)?```python\n(.*?)```", re.S)
PAGES = sorted(
    p
    for p in DOCS.rglob("*.md")
    if "_build" not in p.parts and "```python" in p.read_text(encoding="utf-8")
)
# What a page's run must leave behind, beyond running without an error.
CHECKS = {
    "guide/vector_quantizer.md": lambda ns: (
        2.0 <= ns["history"].history["vq_perplexity"][-1] <= 64
        and ns["history"].history["loss"][-1] < ns["history"].history["loss"][0]
    ),
    "guide/temperature.md": lambda ns: (
        [round(float(ns["paper"](s)), 3) for s in (999, 1000, 20000)] == [1.0, 0.97, 0.549]
    ),
    "getting_started.md": lambda ns: ns["served"].shape == (10, 8),
}


def blocks(page):
    return [m.groups() for m in BLOCK.finditer(page.read_text(encoding="utf-8"))]


def test_pages_have_examples():
    # A broken pattern would find nothing and pass every page.
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert {"getting_started.md", "guide/samples.md", "guide/subsets.md"} <= names
    for page in PAGES:
        for mark, _reason, _ in blocks(page):
            assert mark in (None, "slow", "skip"), (page, mark)


def _run(page, wanted, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    ran = 0
    for mark, _, code in blocks(page):
        if mark == "skip" or (mark == "slow" and wanted != "slow"):
            continue
        exec(compile(code, f"{page.name} example", "exec"), namespace)
        ran += 1
    return namespace, ran


@pytest.mark.skipif(BACKEND != "tensorflow", reason="the examples use the default backend")
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_examples_run(page, monkeypatch, tmp_path):
    namespace, ran = _run(page, "fast", monkeypatch, tmp_path)
    check = CHECKS.get(page.relative_to(DOCS).as_posix())
    if ran and check:
        assert check(namespace), f"{page.name}: the example's result is off"


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "tensorflow", reason="the examples use the default backend")
@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if any(mark == "slow" for mark, _, _ in blocks(p))],
    ids=lambda p: p.relative_to(DOCS).as_posix(),
)
def test_page_examples_run_slow(page, monkeypatch, tmp_path):
    _, ran = _run(page, "slow", monkeypatch, tmp_path)
    assert ran
