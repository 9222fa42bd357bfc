"""Exporting a saved `.keras` file, as `keras-gumbel export MODEL.keras` does."""

from pathlib import Path

import keras
import numpy as np

from keras_gumbel.export.errors import ExportError

# Rows of made-up sample inputs, and the length given to dimensions (other
# than the batch) that the model leaves unknown.
_ROWS = 64
_UNKNOWN_LENGTH = 8


def _first_line(error):
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def load_keras_file(path):
    """Loads a `.keras` file with every keras-gumbel class registered."""
    # Importing the layers and models registers their classes with Keras.
    import keras_gumbel.layers  # noqa: F401
    import keras_gumbel.models  # noqa: F401

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"no such model file: {path}")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001 - one line for the command line
        raise ExportError(f"cannot load {path}: {_first_line(e)}") from None


def read_inputs(path):
    """Arrays from a `.npy` file (one input) or a `.npz` file (by input name)."""
    path = str(path)
    if path.endswith(".npz"):
        with np.load(path) as arrays:
            return {name: arrays[name] for name in arrays.files}
    return np.load(path)


def made_up_inputs(model, seed=0):
    """Sample inputs for a model's `keras.Input`s, when none are given.

    Floats uniform in [0, 1); integers 0 or 1 (valid token ids for any
    vocabulary); booleans at random; unknown dimensions of length 8. They
    check that the export reproduces the model, not what it has learnt:
    pass real inputs where the model's behaviour matters.
    """
    try:
        structure = model.input
    except (AttributeError, ValueError):
        raise ExportError(
            "the model has no keras.Input to make sample inputs from (a subclassed model); "
            "pass sample inputs (.npy, or .npz by input name)"
        ) from None
    rng = np.random.default_rng(seed)

    def make(tensor):
        shape = (_ROWS,) + tuple(_UNKNOWN_LENGTH if d is None else d for d in tensor.shape[1:])
        dtype = np.dtype(keras.backend.standardize_dtype(tensor.dtype))
        if dtype.kind == "f":
            return rng.random(shape).astype(dtype)
        if dtype.kind == "b":
            return rng.random(shape) < 0.5
        return rng.integers(0, 2, size=shape).astype(dtype)

    if isinstance(structure, dict):
        return {name: make(tensor) for name, tensor in structure.items()}
    if isinstance(structure, (list, tuple)):
        return [make(tensor) for tensor in structure]
    return make(structure)


def export_keras_file(
    path,
    base_path,
    name=None,
    sample_inputs=None,
    codes_layer=None,
    version=None,
    verify_with_cli=True,
):
    """Exports the model saved in a `.keras` file; see `export_model`.

    A model trained on any backend exports this way from a TensorFlow
    process: the file holds the architecture and weights, not the backend.

    Args:
        path: The `.keras` file.
        base_path: The model base path a server watches.
        name: The model name; default the file name without `.keras`.
        sample_inputs: Inputs to verify the export on (an array, a list or
            a dict of arrays, or a `.npy`/`.npz` path); default made up from
            the model's `keras.Input`s.
        codes_layer: The codes layer, when the model has several.
        version: Optional integer version; default the next free one.
        verify_with_cli: Whether to also run TensorFlow's `saved_model_cli`.

    Returns:
        The path of the new version directory.
    """
    from keras_gumbel.export import export_model

    model = load_keras_file(path)
    if sample_inputs is None:
        sample_inputs = made_up_inputs(model)
    elif isinstance(sample_inputs, (str, Path)):
        sample_inputs = read_inputs(sample_inputs)
    return export_model(
        model,
        base_path,
        name or Path(path).name.removesuffix(".keras"),
        sample_inputs,
        codes_layer=codes_layer,
        version=version,
        verify_with_cli=verify_with_cli,
    )
