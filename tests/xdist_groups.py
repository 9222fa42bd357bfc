"""Keeps each test module that shares a module-scoped fixture on one xdist worker.

Under `pytest -n 2 --dist loadgroup`, xdist hands out ungrouped tests one at a
time, so the tests of one module land on both workers and a fixture of module
scope (a trained model, a benchmark's smoke run, a built site) is made once
per worker. This hook puts such a module in an `xdist_group` of its own, so it
is made once; a module that names its group keeps it. It must run before
xdist's own `pytest_collection_modifyitems`, which reads the groups.

`tests/test_xdist_groups.py` checks that the grouping takes effect: xdist
3.8 with pytest 9.2 silently ignores every group (pytest-xdist issue #1386),
hence the `pytest<9.2` pin of the `test` extra.
"""

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        if any(defs and defs[-1].scope == "module" for defs in info.name2fixturedefs.values()):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
