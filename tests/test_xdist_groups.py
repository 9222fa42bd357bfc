"""The test command's `--dist loadgroup` keeps a group on one worker.

The docs tests share one site build and several modules share a trained
model or a benchmark's smoke run; if xdist stopped honouring groups (as it
silently does with pytest 9.2, pytest-xdist issue #1386), they would all be
made once per worker and the suite would only get slower. This runs a small
suite of its own on two workers and reads which worker set up what.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("xdist", reason="pytest-xdist is in the test extra")

TESTS = Path(__file__).resolve().parent

SHARED = """
import os
import pytest

@pytest.fixture(scope="module")
def shared():
    with open({log!r}, "a") as f:
        f.write("{name} " + os.environ["PYTEST_XDIST_WORKER"] + "\\n")

@pytest.mark.parametrize("i", range(8))
def test_uses_it(shared, i):
    pass
"""


def test_a_module_fixture_and_a_named_group_are_each_set_up_once(tmp_path):
    log = tmp_path / "setups.log"
    (tmp_path / "conftest.py").write_text(
        "from xdist_groups import pytest_collection_modifyitems  # noqa: F401\n"
    )
    (tmp_path / "test_module_fixture.py").write_text(SHARED.format(log=str(log), name="fixture"))
    named = 'pytestmark = __import__("pytest").mark.xdist_group("named")\n'
    (tmp_path / "test_named_group.py").write_text(named + SHARED.format(log=str(log), name="named"))
    (tmp_path / "test_plain.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.parametrize("i", range(16))
            def test_plain(i):
                pass
            """
        )
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-n",
            "2",
            "--dist",
            "loadgroup",
            "-q",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "32 passed" in result.stdout, result.stdout
    setups = sorted(line.split()[0] for line in log.read_text().splitlines())
    # Ungrouped, each module's fixture would be set up on both workers.
    assert setups == ["fixture", "named"], log.read_text()
