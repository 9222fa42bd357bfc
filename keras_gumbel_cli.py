"""Entry point of the `keras-gumbel` command.

Importing the `keras_gumbel` package imports Keras and, with it,
TensorFlow: seconds of start-up, and TensorFlow's C++ start-up logs
(oneDNN, CUDA drivers, CPU instructions), which it prints before any log
setting applies. This module lives outside the package so that it runs
first. It loads `keras_gumbel/cli.py` on its own (that file imports only
the standard library at module level), so `--help` and usage errors never
load TensorFlow, and the commands hide TensorFlow's start-up logs before
they load it (see `keras_gumbel.cli.quiet_tensorflow`).

`python -m keras_gumbel_cli ARGS` is the same as `keras-gumbel ARGS`.
"""

import importlib.util
import os
import sys


def _load_cli():
    """`keras_gumbel/cli.py` as a module, without importing the package."""
    loaded = sys.modules.get("keras_gumbel.cli")
    if loaded is not None:
        return loaded
    package = importlib.util.find_spec("keras_gumbel")
    if package is None or not package.submodule_search_locations:
        raise ImportError("the keras_gumbel package is not installed")
    path = os.path.join(list(package.submodule_search_locations)[0], "cli.py")
    spec = importlib.util.spec_from_file_location("keras_gumbel.cli", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    """Runs `keras-gumbel` with `argv` (default: the process's arguments)."""
    return _load_cli().main(argv)


if __name__ == "__main__":
    sys.exit(main())
