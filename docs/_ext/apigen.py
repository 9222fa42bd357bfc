"""Writes the API and command-line reference pages before Sphinx reads the sources.

The API pages list what each public package exports (its `__all__`, or for a
module without one the classes, functions and constants it defines), so a name
added to an `__all__` gets its page without an edit here. The command-line page
is the real `argparse` help of `keras-gumbel` and `keras-gumbel serve`.
"""

import argparse
import ast
import importlib
import inspect
import os
from pathlib import Path

#: The packages and modules whose public names the reference documents, in
#: order: a name re-exported by the top-level package is documented where it
#: is defined among the later ones.
PACKAGES = (
    "keras_gumbel",
    "keras_gumbel.ops",
    "keras_gumbel.layers",
    "keras_gumbel.schedules",
    "keras_gumbel.callbacks",
    "keras_gumbel.estimators",
    "keras_gumbel.diagnostics",
    "keras_gumbel.models",
    "keras_gumbel.datasets",
    "keras_gumbel.training",
    "keras_gumbel.export",
    "keras_gumbel.serving",
)

#: One line on each package, the index of the API reference.
SUMMARIES = {
    "keras_gumbel": "the layers and the callback at the top level",
    "keras_gumbel.ops": "pure functions on `keras.ops`: noise, relaxed samples, subsets, codebooks",
    "keras_gumbel.layers": "Keras layers that sample discrete variables",
    "keras_gumbel.schedules": "temperature schedules, pure functions of the global step",
    "keras_gumbel.callbacks": "the callback that anneals every temperature of a model",
    "keras_gumbel.estimators": "gradient estimators for discrete latent variables",
    "keras_gumbel.diagnostics": "bias and variance of estimators against exact gradients",
    "keras_gumbel.models": "the paper's models and their importance-weighted bounds",
    "keras_gumbel.datasets": "binarized MNIST-family data",
    "keras_gumbel.training": "run configuration, checkpoints, train, resume, evaluate",
    "keras_gumbel.export": "SavedModels in TF Serving's layout, verified",
    "keras_gumbel.serving": "the TF-Serving-compatible server and its client",
}


def public_names(module):
    """The public names of `module`: its `__all__`, else what its source defines."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    tree = ast.parse(inspect.getsource(module))
    found = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found.extend(t.id for t in targets if isinstance(t, ast.Name))
    return [name for name in found if not name.startswith("_")]


def api_entries():
    """`{package: [(name, target, kind)]}` for every public name.

    `kind` is "module" for an exported subpackage (its target is that package),
    "alias" for a name documented under another package (its target is the
    documented full name), and "object" for a name documented on this
    package's own page (its target is `package.name`).
    """
    modules = {name: importlib.import_module(name) for name in PACKAGES}
    entries = {}
    for package, module in modules.items():
        rows = []
        for name in public_names(module):
            obj = getattr(module, name)
            if inspect.ismodule(obj):
                rows.append((name, obj.__name__, "module"))
                continue
            home = None
            if package == "keras_gumbel":
                for other, other_module in modules.items():
                    if other != package and name in public_names(other_module):
                        if getattr(other_module, name) is obj:
                            home = f"{other}.{name}"
                            break
            if home:
                rows.append((name, home, "alias"))
            else:
                rows.append((name, f"{package}.{name}", "object"))
        entries[package] = rows
    return entries


def attribute_doc(module_name, name):
    """The `#:` comment of constant `name` exported by `module_name`, or None.

    A constant's value has no docstring of its own; its doc comment sits where
    it is assigned, in the module or in one of the package's submodules.
    """
    import sys

    from sphinx.pycode import ModuleAnalyzer

    importlib.import_module(module_name)
    prefix = module_name + "."
    for candidate in [module_name, *sorted(m for m in sys.modules if m.startswith(prefix))]:
        try:
            docs = ModuleAnalyzer.for_module(candidate).find_attr_docs()
        except Exception:  # noqa: BLE001 - modules without source have no comments
            continue
        if ("", name) in docs:
            return [line for line in docs[("", name)]]
    return None


def _title(text, char="="):
    return f"{text}\n{char * len(text)}\n"


def write_api_pages(api_dir):
    """Writes `api_dir/index.rst` and one page per package; returns the entries."""
    api_dir = Path(api_dir)
    api_dir.mkdir(parents=True, exist_ok=True)
    entries = api_entries()
    index = [
        ".. This file is generated by docs/_ext/apigen.py at build time; do not edit.\n",
        _title("API reference"),
        "Every public name of the package, one page each, made from its docstring. "
        "Each section lists what one package exports in ``__all__``.\n",
        ".. toctree::\n   :maxdepth: 1\n",
    ]
    index += [f"   {package}" for package in PACKAGES]
    index.append("")
    index.append(".. list-table::\n   :header-rows: 0\n")
    for package in PACKAGES:
        index.append(f"   * - :doc:`{package}`\n     - {SUMMARIES[package].replace('`', '``')}")
    _write(api_dir / "index.rst", "\n".join(index) + "\n")

    for package, rows in entries.items():
        lines = [
            ".. This file is generated by docs/_ext/apigen.py at build time; do not edit.\n",
            _title(package),
            f".. automodule:: {package}\n   :no-members:\n",
        ]
        own = [target for _, target, kind in rows if kind == "object"]
        if own:
            lines.append(".. autosummary::\n   :toctree: generated\n   :nosignatures:\n")
            lines += [f"   {target[len(package) + 1 :]}" for target in own]
            lines.append("")
        aliases = [target for _, target, kind in rows if kind == "alias"]
        if aliases:
            lines.append(_title("Also exported here", "-"))
            lines.append("Importable from this package; documented where they are defined.\n")
            lines.append(".. currentmodule:: None\n")
            lines.append(".. autosummary::\n   :nosignatures:\n")
            lines += [f"   {target}" for target in aliases]
            lines.append("")
        subpackages = [(name, target) for name, target, kind in rows if kind == "module"]
        if subpackages:
            lines.append(_title("Subpackages", "-"))
            lines += [f"- :doc:`{target}`" for _, target in subpackages]
            lines.append("")
        _write(api_dir / f"{package}.rst", "\n".join(lines) + "\n")
    return entries


def _help(parser):
    text = parser.format_help()
    return "\n".join("   " + line if line else "" for line in text.splitlines())


def write_cli_page(path):
    """Writes the command-line reference from the parsers `keras-gumbel` runs."""
    os.environ["COLUMNS"] = "88"  # argparse wraps to the terminal; this fits the page
    from keras_gumbel import cli
    from keras_gumbel.serving import server

    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in commands._choices_actions}
    lines = [
        ".. This file is generated by docs/_ext/apigen.py at build time; do not edit.\n",
        _title("Command line"),
        "The ``keras-gumbel`` command (``python -m keras_gumbel_cli`` is the same). "
        "This page is the help the installed command prints, made from its argument "
        "parser (``keras_gumbel.cli.build_parser`` and, for ``serve``, "
        "``keras_gumbel.serving.server.build_parser``) when the site is built. "
        "The :doc:`guide/paper_models` and :doc:`guide/export_serving` guides show "
        "the commands at work.\n",
        ".. code-block:: text\n",
        _help(parser),
        "",
    ]
    for name, subparser in commands.choices.items():
        lines.append(_title(f"keras-gumbel {name}", "-"))
        if helps.get(name):
            lines.append(helps[name].capitalize().split(" (keras-gumbel")[0] + ".\n")
        if name == "serve":
            subparser = server.build_parser(prog="keras-gumbel serve")
        lines += [".. code-block:: text\n", _help(subparser), ""]
    _write(Path(path), "\n".join(lines) + "\n")


def _write(path, text):
    # Unchanged files keep their time stamps, so incremental builds stay incremental.
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
