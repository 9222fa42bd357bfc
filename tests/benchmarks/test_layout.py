"""The benchmarks package: its modules import, in one direction, and its
committed results travel.

Results are committed to be read and rerun on other machines, so they name
the data as given on the command line or as a placeholder (`MNIST_DIR`),
never by a path that exists only where they were made.
"""

import ast
import importlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
# Every folder of benchmarks/ is a group (a new one is held to the same rules).
GROUPS = sorted(
    p.name for p in BENCHMARKS.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))
)
# An absolute path of a machine: a root folder that holds data, homes,
# scratch or system files, after anything but a path or name character
# (so that "benchmarks/paper/results/..." does not match).
ABSOLUTE = re.compile(
    r"(?<![\w.:/~-])/(?:work|tmp|root|home|Users|usr|mnt|data|scratch|opt|var|srv|nfs)/"
)


def _modules():
    """Every module of the package, by dotted name, with its path."""
    return {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for path in sorted(BENCHMARKS.rglob("*.py"))
        if "results" not in path.parts
    }


def _imports(path):
    """The modules a file imports anywhere in it (functions and `__import__` included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None))
            in ("__import__", "import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(node.args[0].value)
    return found


def test_every_group_is_a_package_with_a_readme_and_results():
    known = {"paper", "performance", "permutations", "quantizer", "serving", "subsets"}
    assert known <= set(GROUPS)
    for group in GROUPS:
        assert (BENCHMARKS / group / "__init__.py").is_file(), group
        assert (BENCHMARKS / group / "README.md").is_file(), group
        assert (BENCHMARKS / group / "results").is_dir(), group
    assert (BENCHMARKS / "__init__.py").is_file()
    assert not (BENCHMARKS / "results").exists()


def test_imports_go_one_way_and_never_through_tests_or_path_edits():
    modules = _modules()
    assert "benchmarks.paper.paper_mnist" in modules and len(modules) > 20
    graph = {}
    for name, path in modules.items():
        imported = _imports(path)
        assert not {m for m in imported if m.split(".")[0] in ("tests", "testing")}, name
        # A bare sibling name ("import table1") works only with a path edit.
        assert not {m for m in imported if f"benchmarks.{m}" in modules}, name
        assert not any(f"benchmarks.{g}.{m}" in modules for g in GROUPS for m in imported), name
        assert "sys.path" not in path.read_text(), f"{name} edits sys.path"
        graph[name] = {m for m in imported if m in modules and m != name}

    # Depth-first search for a cycle, lazy imports inside functions included.
    state = {}

    def visit(name, stack):
        state[name] = "open"
        for other in sorted(graph[name]):
            assert state.get(other) != "open", " -> ".join([*stack, name, other])
            if other not in state:
                visit(other, [*stack, name])
        state[name] = "done"

    for name in graph:
        if name not in state:
            visit(name, [])


def test_every_module_imports():
    path = list(sys.path)
    for name in _modules():
        importlib.import_module(name)
    assert sys.path == path


def test_no_committed_result_names_a_path_of_the_machine_that_made_it():
    files = [
        path
        for path in sorted(BENCHMARKS.glob("*/results/**/*"))
        if path.is_file() and path.suffix in (".json", ".md", ".txt", ".csv")
    ]
    assert len(files) > 100
    offenders = {}
    for path in files:
        found = ABSOLUTE.findall(path.read_text())
        if found:
            offenders[str(path.relative_to(ROOT))] = sorted(set(found))
    assert not offenders, offenders


def test_the_absolute_path_pattern_finds_what_it_must():
    for text in ('"data": "/work/data/mnist"', "--data /usr/share/datasets/x", "(from: /tmp/a)"):
        assert ABSOLUTE.search(text), text
    for text in (
        "benchmarks/paper/results/x.md",
        "MNIST_DIR",
        "runs/tmp/x",
        "see http://a.b/usr/x",
    ):
        assert not ABSOLUTE.search(text), text
