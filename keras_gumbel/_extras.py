"""Optional dependencies: which extra provides what, and a one-line error without it.

The core (`ops`, `layers`, `schedules`, `callbacks`, `datasets.load`) needs
Keras and NumPy alone. What is TensorFlow's own (the paper's models, export,
serving, `tf.data` pipelines, training runs) needs an extra:

```
tensorflow  tensorflow, tensorflow-probability, tf-keras
serving     the tensorflow extra, tensorflow-serving-api, grpcio
paper       the tensorflow extra, tensorboard, matplotlib
```

This module imports only the standard library: the `keras-gumbel` command
loads it before Keras or TensorFlow, to name a missing extra without
starting either. It looks modules up without importing them.
"""

import importlib.util

# Modules each extra provides, in the order they are checked.
EXTRA_MODULES = {
    "tensorflow": ("tensorflow", "tensorflow_probability", "tf_keras"),
    "serving": ("tensorflow", "tensorflow_probability", "tf_keras", "grpc", "tensorflow_serving"),
    # Training runs log through keras.callbacks.TensorBoard, whose tf.summary.scalar
    # imports the tensorboard package.
    "paper": ("tensorflow", "tensorflow_probability", "tf_keras", "tensorboard", "matplotlib"),
}

# What a user knows a module as.
_DISPLAY_NAMES = {
    "tensorflow": "TensorFlow",
    "tensorflow_probability": "TensorFlow Probability",
    "tf_keras": "tf-keras",
    "grpc": "grpcio",
    "tensorflow_serving": "tensorflow-serving-api",
    "tensorboard": "TensorBoard",
    "matplotlib": "matplotlib",
}


class MissingExtraError(ImportError):
    """A feature was used without the optional dependencies it needs.

    An `ImportError`, so code that already handles a failed import handles
    it too. The message is one line that names the extra to install.
    """


def _modules_of(extra):
    """The modules of `extra`, or of every extra in a list such as `"paper,serving"`."""
    modules = []
    for name in extra.split(","):
        modules += [m for m in EXTRA_MODULES[name] if m not in modules]
    return modules


def missing_module(extra, modules=None):
    """The first of `modules` (default: all of `extra`'s) that is not installed, or None."""
    for name in _modules_of(extra) if modules is None else modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            # ValueError: `sys.modules[name] = None`, the standard way to block an import.
            found = False
        if not found:
            return name
    return None


def require_extra(feature, extra, modules=None):
    """Raises `MissingExtraError` unless `modules` of `extra` are installed.

    Args:
        feature: str. What needs them, as the user called it, e.g.
            `"keras_gumbel.models"` or `"keras-gumbel train"`.
        extra: str. The extra that installs them: a key of `EXTRA_MODULES`,
            or several, comma-separated, as pip takes them (`"paper,serving"`).
        modules: Sequence of top-level module names, or None for every
            module of `extra`.

    Raises:
        MissingExtraError: If one is missing, e.g. "keras_gumbel.models needs
            TensorFlow: pip install 'keras-gumbel[tensorflow]'".

    Example:

    >>> require_extra("keras_gumbel.plots", "paper", modules=["json"])
    """
    missing = missing_module(extra, modules)
    if missing is not None:
        raise MissingExtraError(
            f"{feature} needs {_DISPLAY_NAMES.get(missing, missing)}: "
            f"pip install 'keras-gumbel[{extra}]'",
            name=missing,
        )


def import_tensorflow(feature):
    """`tensorflow`, imported, or `MissingExtraError` naming the `tensorflow` extra.

    For functions in otherwise backend-agnostic modules that use TensorFlow
    only when called (`datasets.make_dataset`).
    """
    require_extra(feature, "tensorflow", modules=("tensorflow",))
    import tensorflow

    return tensorflow
