"""The notebooks are committed clean and follow the notebook conventions.

Fast checks on the JSON files only (no kernel); `test_notebooks_run.py`
executes them.
"""

import ast
import json
import re
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = {
    "01_gumbel_softmax_basics.ipynb",
    "02_categorical_vae.ipynb",
    "03_structured_output_sbn.ipynb",
    "04_gradient_estimators.ipynb",
    "05_semi_supervised.ipynb",
    "06_export_and_serve.ipynb",
    "07_subsets_and_feature_selection.ipynb",
    "08_serve_your_own_codes.ipynb",
    "09_permutations_jigsaw.ipynb",
}
COLAB_URL = (
    "https://colab.research.google.com/github/keras-gumbel/keras-gumbel/blob/main/notebooks/"
)
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
SMALL_SWITCH = 'os.environ.get("KERAS_GUMBEL_NOTEBOOK_SMALL") == "1"'
# Cell metadata that Colab and Jupyter write when they run a cell.
RUN_METADATA = {"executionInfo", "outputId", "colab", "execution", "scrolled"}


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell):
    text = cell["source"]
    return text if isinstance(text, str) else "".join(text)


def python_source(cell):
    """Cell source with IPython magics commented out, so `ast` can parse it."""
    return re.sub(r"(?m)^(\s*)%", r"\1pass  # %", source(cell))


def test_expected_notebooks_exist():
    assert EXPECTED <= {p.name for p in NOTEBOOKS}, sorted(p.name for p in NOTEBOOKS)
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", p.name) for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = load(path)
    assert nb["nbformat"] == 4
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert "widgets" not in nb["metadata"]
    for i, cell in enumerate(nb["cells"]):
        assert cell["cell_type"] in ("markdown", "code"), i
        assert not RUN_METADATA & set(cell.get("metadata", {})), (i, cell["metadata"])
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"cell {i} has outputs"
            assert cell["execution_count"] is None, f"cell {i} has an execution count"
        else:
            assert "outputs" not in cell and "attachments" not in cell, i


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_title_badge_setup_and_parameters(path):
    cells = load(path)["cells"]
    assert 8 <= len(cells) <= 22, f"{len(cells)} cells; notebooks stay short"
    title, setup, params = cells[:3]

    assert title["cell_type"] == "markdown"
    text = source(title)
    assert text.startswith("# ")
    badge = f"[![Open in Colab]({BADGE_IMAGE})]({COLAB_URL}{path.name})"
    assert badge in text
    assert len(text.split(badge, 1)[1].strip()) > 100, "a paragraph on what it shows"

    assert setup["cell_type"] == "code"
    setup_text = source(setup)
    assert len(setup_text.splitlines()) <= 6
    assert re.search(
        r"try:\s+import keras_gumbel\b.*\nexcept ImportError:\s+%pip install", setup_text, re.S
    )

    assert params["cell_type"] == "code"
    params_text = source(params)
    assert "# @title" in params_text
    assert re.search(r"(?m)^[A-Z_]+ = .+# @param", params_text)
    assert SMALL_SWITCH in params_text
    ast.parse(python_source(params))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_cells(path):
    cells = load(path)["cells"]
    code = [(i, c) for i, c in enumerate(cells) if c["cell_type"] == "code"]
    for i, cell in code:
        tree = ast.parse(python_source(cell))
        # The notebooks use the package's layers and models, never their own.
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)], f"cell {i}"
        # One switch for the small mode, read in the parameters cell only.
        if i != 2:
            assert "KERAS_GUMBEL_NOTEBOOK_SMALL" not in source(cell), f"cell {i}"
            assert "SMALL" not in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}, i
    assert any("keras_gumbel" in source(c) for _, c in code[2:])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_is_described(path):
    cells = load(path)["cells"]
    figures = [
        i for i, c in enumerate(cells) if c["cell_type"] == "code" and "plt.show()" in source(c)
    ]
    assert figures, "a notebook shows at least one figure"
    for i in figures:
        before = cells[i - 1]
        assert before["cell_type"] == "markdown" and source(before).strip(), f"cell {i}"
