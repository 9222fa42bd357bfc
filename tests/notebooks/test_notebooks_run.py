"""Runs every notebook top to bottom in a real kernel, in its small mode.

Marked `notebook` (excluded by default). Run with:

    python -m pytest -p no:cacheprovider -m notebook tests/notebooks

Needs `nbclient`, `nbformat` and `ipykernel`. Each notebook runs in a fresh
`python3` kernel whose working directory is a temporary directory, with
`KERAS_GUMBEL_NOTEBOOK_SMALL=1` and `KERAS_BACKEND=tensorflow`, offline:
package installs are disabled and HTTP(S) goes to a closed local port
(loopback, which the serving notebook uses, is exempt). The checkout comes
first on the kernel's `PYTHONPATH`, so the kernel imports the code under test
whether or not the package is installed.

When `KERAS_GUMBEL_EXECUTED_NOTEBOOKS` names a folder, each notebook that
runs cleanly is also written there with its outputs; the documentation build
renders those copies, figures included (see `docs/conf.py`).
"""

import os
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
# A port nothing listens on: a download attempt fails at once.
CLOSED_PROXY = "http://127.0.0.1:9"
CELL_TIMEOUT_S = 600
# A folder for the executed copies that the documentation renders (optional).
EXECUTED_DIR_VARIABLE = "KERAS_GUMBEL_EXECUTED_NOTEBOOKS"


def kernel_env():
    env = dict(os.environ)
    env.update(
        {
            "KERAS_GUMBEL_NOTEBOOK_SMALL": "1",
            "KERAS_BACKEND": "tensorflow",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
            # Colab's backend: figures are sent as PNG outputs.
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "PIP_NO_INDEX": "1",
            "no_proxy": "127.0.0.1,localhost",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env[name] = CLOSED_PROXY
    return env


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    started = time.perf_counter()
    try:
        client.execute(env=kernel_env())
    finally:
        # The executed copy, for a look after a failure.
        nbformat.write(nb, tmp_path / path.name)
    print(f"{path.name}: {time.perf_counter() - started:.0f} s")

    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert not [o for o in cell.outputs if o.output_type == "error"], f"cell {i}"
        if "plt.show()" in cell.source:
            images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
            assert images, f"cell {i} of {path.name} shows no figure"

    executed_dir = os.environ.get(EXECUTED_DIR_VARIABLE)
    if executed_dir:
        Path(executed_dir).mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, Path(executed_dir) / path.name)
