"""Sphinx configuration of the keras-gumbel documentation site.

Build it from the repository root with `python docs/build.py` (see that file),
or directly: `sphinx-build -W --keep-going -b html docs docs/_build/html`.
"""

import inspect
import json
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(DOCS / "_ext"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import apigen  # noqa: E402
import mddocstrings  # noqa: E402

import keras_gumbel  # noqa: E402

project = "keras-gumbel"
author = "The keras-gumbel authors"
copyright = "the keras-gumbel authors, Apache License 2.0"
release = keras_gumbel.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
    "myst_nb",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "_ext", "_templates", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]

# Google-style docstrings, as the package writes them.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_custom_sections = [("Call arguments", "params_style"), ("Reference", "notes_style")]
autosummary_generate = True
autosummary_imported_members = True
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Keras's own methods carry Keras's docstrings, written for keras.io; a method of
# ours documents itself or is left out.
autodoc_inherit_docstrings = False
autodoc_default_options = {"exclude-members": "__init__"}

myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3
# The notebooks are rendered from executed copies when there are some (see
# `prepare_notebooks`); the build itself never runs them.
nb_execution_mode = "off"
nb_merge_streams = True

html_theme = "furo"
html_title = f"keras-gumbel {release}"
html_static_path = []
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True

# Executed notebooks: the folder named by this variable, else this default one,
# which `python docs/build.py --execute` fills through the notebook test.
EXECUTED_VARIABLE = "KERAS_GUMBEL_EXECUTED_NOTEBOOKS"
EXECUTED_DEFAULT = DOCS / "_build" / "executed_notebooks"
STRIPPED_NOTE = (
    "```{note}\nThis page shows the notebook without its outputs: the site was built "
    "without executed copies. `python docs/build.py --execute` runs every notebook "
    "(small mode, a few minutes) and renders it with its figures.\n```"
)


def prepare_notebooks():
    """Copies the notebooks into `docs/notebooks/`, executed where a copy exists."""
    target = DOCS / "notebooks"
    target.mkdir(exist_ok=True)
    executed = Path(os.environ.get(EXECUTED_VARIABLE) or EXECUTED_DEFAULT)
    for source in sorted((REPO / "notebooks").glob("*.ipynb")):
        copy = executed / source.name
        if copy.exists() and copy.stat().st_mtime >= source.stat().st_mtime:
            text = copy.read_text(encoding="utf-8")
        else:
            nb = json.loads(source.read_text(encoding="utf-8"))
            nb["cells"].insert(
                1,
                {
                    "cell_type": "markdown",
                    "id": "stripped-note",
                    "metadata": {},
                    "source": STRIPPED_NOTE,
                },
            )
            text = json.dumps(nb, indent=1, ensure_ascii=False)
        path = target / source.name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    for stale in target.glob("*.ipynb"):
        if not (REPO / "notebooks" / stale.name).exists():
            stale.unlink()


def generate_reference():
    apigen.write_api_pages(DOCS / "api")
    apigen.write_cli_page(DOCS / "cli.rst")


def constant_docstring(app, what, name, obj, options, lines):
    """A constant shows its `#:` comment, not the docstring of its value's type."""
    if what == "data":
        module_name, _, attribute = name.rpartition(".")
        doc = apigen.attribute_doc(module_name, attribute)
        if doc:
            lines[:] = doc


def class_signature(app, what, name, obj, options, signature, return_annotation):
    """A Keras class shows its `__init__` arguments, not `Layer.__new__`'s `*args`."""
    if what == "class" and signature == "(*args, **kwargs)" and "__init__" in vars(obj):
        parameters = list(inspect.signature(obj.__init__).parameters.values())[1:]
        return str(inspect.Signature(parameters)), return_annotation
    return None


def setup(app):
    app.connect("autodoc-process-docstring", constant_docstring, priority=300)
    app.connect("autodoc-process-signature", class_signature)
    mddocstrings.setup(app)


# Generated sources are written when the configuration is read: Sphinx lists the
# source files before any event, so they must exist by then.
generate_reference()
prepare_notebooks()
