"""Every public name is documented; every public layer, op, schedule and
callback has a runnable `Example:` section.

Public names are those listed in an `__all__` of `keras_gumbel` and of its
public subpackages and modules. The examples themselves are executed by
`pytest --doctest-modules keras_gumbel` (see `keras_gumbel/conftest.py`);
this test makes sure there is one to execute.
"""

import importlib
import inspect
import pkgutil
import re

import pytest

import keras_gumbel

# The backend-agnostic core, whose every public class and function carries
# an example: layers, ops, schedules and callbacks.
EXAMPLE_PACKAGES = (
    "keras_gumbel.ops",
    "keras_gumbel.layers",
    "keras_gumbel.schedules",
    "keras_gumbel.callbacks",
)

# "Example:" (or "Examples:") as a section header on a line of its own, then
# a doctest prompt before the next section header (a line ending in ":"
# with nothing else, at the header's indentation or less).
_EXAMPLE_HEADER = re.compile(r"^(?P<indent>[ ]*)Examples?:[ ]*$", re.MULTILINE)


def public_modules():
    """`keras_gumbel` and its public direct submodules that define `__all__`."""
    modules = [keras_gumbel]
    for info in pkgutil.iter_modules(keras_gumbel.__path__):
        if info.name.startswith("_") or info.name == "conftest":
            continue
        module = importlib.import_module(f"keras_gumbel.{info.name}")
        if hasattr(module, "__all__"):
            modules.append(module)
    return modules


def own_docstring(obj):
    """The docstring written on `obj` itself, not inherited; None if absent."""
    if inspect.isclass(obj):
        doc = vars(obj).get("__doc__")
    else:
        doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else None


def has_runnable_example(doc):
    """Whether `doc` has an `Example:` section with at least one `>>>` line."""
    if not doc:
        return False
    lines = doc.splitlines()
    for match in _EXAMPLE_HEADER.finditer(doc):
        start = doc.count("\n", 0, match.start()) + 1
        indent = len(match.group("indent"))
        for line in lines[start:]:
            stripped = line.strip()
            line_indent = len(line) - len(line.lstrip())
            if stripped.endswith(":") and " " not in stripped and line_indent <= indent:
                break  # the next section, e.g. "Reference:"
            if stripped.startswith(">>>"):
                return True
    return False


def _documentable(obj):
    # Constants (tuples, dicts) cannot carry a docstring of their own.
    return inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj)


def _public_names(modules):
    return [
        (module.__name__, name)
        for module in modules
        for name in module.__all__
        if _documentable(getattr(module, name))
    ]


PUBLIC = _public_names(public_modules())
CORE = [
    (module, name)
    for module, name in PUBLIC
    if module in EXAMPLE_PACKAGES
    and not inspect.ismodule(getattr(importlib.import_module(module), name))
]


def test_public_modules_are_discovered():
    names = {module.__name__ for module in public_modules()}
    assert set(EXAMPLE_PACKAGES) <= names
    assert {"keras_gumbel", "keras_gumbel.models", "keras_gumbel.export"} <= names


def test_core_has_names_to_check():
    # A walk that found nothing would make the tests below pass vacuously.
    assert len(CORE) >= 30
    assert ("keras_gumbel.ops", "gumbel_softmax") in CORE
    assert ("keras_gumbel.callbacks", "TemperatureScheduler") in CORE


@pytest.mark.parametrize(("module", "name"), PUBLIC, ids=[f"{m}.{n}" for m, n in PUBLIC])
def test_public_name_has_docstring(module, name):
    obj = getattr(importlib.import_module(module), name)
    assert own_docstring(obj), f"{module}.{name} is public (in __all__) but has no docstring."


@pytest.mark.parametrize(("module", "name"), CORE, ids=[f"{m}.{n}" for m, n in CORE])
def test_core_name_has_runnable_example(module, name):
    obj = getattr(importlib.import_module(module), name)
    assert has_runnable_example(own_docstring(obj)), (
        f"{module}.{name} has no `Example:` section with a `>>>` example."
    )


def test_checks_reject_what_they_should():
    class Undocumented:
        pass

    class Inherits(keras_gumbel.layers.GumbelSoftmax):
        pass

    def prose_example():
        """Does something.

        Example:

        ```python
        f(x)
        ```

        Reference:
            >>> not_an_example()
        """

    def runnable():
        """Does something.

        Example:

        >>> 1 + 1
        2
        """

    assert own_docstring(Undocumented) is None
    assert own_docstring(Inherits) is None  # an inherited docstring does not count
    assert own_docstring(runnable)
    assert not has_runnable_example(own_docstring(prose_example))
    assert not has_runnable_example("Does something.\n\n>>> 1 + 1\n2")  # no section
    assert has_runnable_example(own_docstring(runnable))
