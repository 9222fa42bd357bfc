"""Every public name has a docstring and a page in the built API reference.

The expected names come from each public package's `__all__` (for a module
without one, from what its source defines), computed here independently of
the generator in `docs/_ext/apigen.py`, so a name the generator misses fails.
The site is built with warnings as errors (`tests/docs_site_build.py`).
"""

import ast
import importlib
import inspect
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from docs_site_build import built_site

# Under pytest-xdist (`--dist loadgroup`) every test of the site runs in one worker,
# so the site is built once per run, not once per worker.
pytestmark = pytest.mark.xdist_group("docs_site")

PACKAGES = (
    "keras_gumbel",
    "keras_gumbel.ops",
    "keras_gumbel.layers",
    "keras_gumbel.schedules",
    "keras_gumbel.callbacks",
    "keras_gumbel.estimators",
    "keras_gumbel.models",
    "keras_gumbel.datasets",
    "keras_gumbel.training",
    "keras_gumbel.export",
    "keras_gumbel.serving",
    "keras_gumbel.diagnostics",
)


def public_names(module):
    if hasattr(module, "__all__"):
        return list(module.__all__)
    names = []
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
    return [name for name in names if not name.startswith("_")]


EXPECTED = [
    (package, name)
    for package in PACKAGES
    for name in public_names(importlib.import_module(package))
]


def doc_comment(package, name):
    """The `#:` comment of a constant, in the package or one of its submodules."""
    from sphinx.pycode import ModuleAnalyzer

    modules = [package] + sorted(m for m in sys.modules if m.startswith(package + "."))
    for module in modules:
        try:
            docs = ModuleAnalyzer.for_module(module).find_attr_docs()
        except Exception:  # noqa: BLE001 - compiled modules have no source to read
            continue
        if ("", name) in docs and "".join(docs[("", name)]).strip():
            return "".join(docs[("", name)])
    return None


def test_expected_names_are_many():
    # A broken `public_names` would make every test below pass on nothing.
    assert len(EXPECTED) > 100
    assert ("keras_gumbel.layers", "GumbelSoftmax") in EXPECTED
    assert ("keras_gumbel.schedules", "ExponentialDecay") in EXPECTED
    assert ("keras_gumbel.diagnostics", "exact_gradient") in EXPECTED
    assert ("keras_gumbel.schedules", "keras") not in EXPECTED  # imports are not public


@pytest.mark.parametrize("package, name", EXPECTED, ids=lambda x: x)
def test_public_name_has_docstring(package, name):
    obj = getattr(importlib.import_module(package), name)
    if inspect.ismodule(obj) or inspect.isclass(obj) or callable(obj):
        # A class's __doc__ is its own (never inherited), as is a function's.
        doc = obj.__doc__
    else:
        pytest.importorskip("sphinx", reason="reading doc comments needs sphinx")
        doc = doc_comment(package, name)
    assert doc and doc.strip(), f"{package}.{name} has no docstring"
    assert len(doc.strip().splitlines()[0]) >= 10, f"{package}.{name}: a one-line summary"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])
        if attrs.get("id"):
            self.ids.add(attrs["id"])


def _parse(path):
    parser = _Links()
    parser.feed(Path(path).read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def site():
    return built_site()


def test_every_public_name_has_a_page(site):
    missing = []
    for package in PACKAGES:
        page = site / "api" / f"{package}.html"
        assert page.exists(), f"no API page for {package}"
        hrefs = _parse(page).hrefs
        for pkg, name in EXPECTED:
            if pkg != package:
                continue
            obj = getattr(importlib.import_module(package), name)
            if inspect.ismodule(obj):
                if f"{obj.__name__}.html" not in hrefs:
                    missing.append(f"{package}.{name}: no link to its package page")
                continue
            # The package page links to the page that documents the name, where
            # an element carries the documented full name as its id.
            targets = [
                h for h in hrefs if re.search(rf"generated/[\w.]*\.{re.escape(name)}\.html$", h)
            ]
            if not targets:
                missing.append(f"{package}.{name}: not listed on api/{package}.html")
                continue
            target = (page.parent / targets[0]).resolve()
            full_name = target.name[: -len(".html")]
            if not target.exists() or full_name not in _parse(target).ids:
                missing.append(f"{package}.{name}: {target.name} does not document it")
    assert not missing, "\n".join(missing)


def test_cli_page_matches_the_parser(site):
    from keras_gumbel import cli

    text = (site / "cli.html").read_text(encoding="utf-8")
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for command, subparser in commands.items():
        assert f"keras-gumbel {command}" in text
        for action in subparser._actions:
            for option in action.option_strings:
                assert option in text, f"keras-gumbel {command} {option} is not on cli.html"
    assert "--model_base_path" in text  # the serve command's own parser


def test_each_page_has_one_title():
    # A second top-level heading makes a page show up twice in the navigation.
    docs = Path(__file__).resolve().parents[1] / "docs"
    for page in sorted(docs.rglob("*.md")):
        if "_build" in page.parts or page.read_text().startswith("```{include}"):
            continue
        prose = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        titles = re.findall(r"(?m)^# .+", prose)
        assert len(titles) == 1, f"{page.relative_to(docs)}: {titles}"
