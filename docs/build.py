"""Builds the documentation site, in one command from the repository root.

    python docs/build.py [--execute] [--open]

Runs `sphinx-build -W --keep-going -b html docs docs/_build/html` (warnings are
errors). `--execute` first runs every notebook in its small mode through the
notebook test, which writes the executed copies that the notebook pages render
(`docs/_build/executed_notebooks/`); `--open` opens the built home page.
"""

import argparse
import os
import subprocess
import sys
import webbrowser
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
HTML = DOCS / "_build" / "html"
EXECUTED = DOCS / "_build" / "executed_notebooks"


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python docs/build.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--execute", action="store_true", help="run the notebooks first")
    parser.add_argument("--open", action="store_true", help="open the site in a browser")
    args = parser.parse_args(argv)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("KERAS_GUMBEL_EXECUTED_NOTEBOOKS", str(EXECUTED))
    if args.execute:
        test = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", "notebook"]
        subprocess.run([*test, "tests/notebooks"], cwd=REPO, env=env, check=True)
    build = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html"]
    subprocess.run([*build, str(DOCS), str(HTML)], cwd=REPO, env=env, check=True)
    index = HTML / "index.html"
    print(f"Built {index}")
    if args.open:
        webbrowser.open(index.as_uri())
    return 0


if __name__ == "__main__":
    sys.exit(main())
