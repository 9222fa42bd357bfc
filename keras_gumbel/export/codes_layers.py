"""A model's discrete-codes layer, and the tensor that layer receives.

Backend-agnostic (Keras and NumPy only), so a model's codes can be computed
in process on any backend with `model_codes`, exactly as the exported
`encode` signature computes them.

A codes layer is any layer that implements the discrete-codes protocol:
a `discrete_codes(inputs, mask=None)` method returning `codes`, `one_hot`
and `probs` from exactly what the layer's `call` receives (see
`keras_gumbel.layers.TemperatureLayer.discrete_codes`). To find what it
receives in any model (functional, sequential, subclassed, nested), the
forward pass runs with the layer's `call` temporarily wrapped so that it
records its `inputs` and `mask`; the wrapper can also stop the pass right
there, so an `encode` graph holds only the ops up to the layer's input.
"""

import contextlib
import inspect

import keras
import numpy as np

from keras_gumbel.export.errors import ExportError
from keras_gumbel.layers.discrete_codes import all_layers
from keras_gumbel.layers.discrete_codes import codes_layers
from keras_gumbel.layers.discrete_codes import has_discrete_codes

_MISSING = object()

__all__ = [
    "all_layers",
    "choose_codes_layer",
    "codes_layers",
    "forward",
    "has_discrete_codes",
    "model_codes",
    "recording_calls",
]


def _describe(candidates):
    return ", ".join(f"{path} ({type(layer).__name__})" for path, layer in candidates)


def choose_codes_layer(model, codes_layer=None):
    """The `(path, layer)` whose codes an export serves.

    Args:
        model: A Keras model.
        codes_layer: None (the model's only codes layer), a layer name or
            path ("encoder/codes"), or the layer itself.

    Raises:
        ExportError: If there is no such layer, or several and no choice.
    """
    name = getattr(model, "name", type(model).__name__)
    candidates = codes_layers(model)
    if codes_layer is None:
        if not candidates:
            raise ExportError(
                f"model {name!r} has no layer with discrete codes (a GumbelSoftmax, "
                "GumbelSigmoid, GumbelVectorQuantizer or other layer with a "
                "`discrete_codes` method); there is nothing to export"
            )
        if len(candidates) > 1:
            raise ExportError(
                f"model {name!r} has {len(candidates)} layers with discrete codes: "
                f"{_describe(candidates)}; pass codes_layer= one of these names"
            )
        return candidates[0]
    if isinstance(codes_layer, keras.layers.Layer):
        matches = [(path, layer) for path, layer in all_layers(model) if layer is codes_layer]
        label = codes_layer.name
    elif isinstance(codes_layer, str) and codes_layer:
        matches = [
            (path, layer) for path, layer in all_layers(model) if codes_layer in (path, layer.name)
        ]
        label = codes_layer
    else:
        raise ExportError(
            f"codes_layer must be a layer name, a layer path or a layer; received {codes_layer!r}"
        )
    if not matches:
        choices = f"; its codes layers are {_describe(candidates)}" if candidates else ""
        raise ExportError(f"model {name!r} has no layer {label!r}{choices}")
    if len(matches) > 1:
        raise ExportError(
            f"model {name!r} has {len(matches)} layers named {label!r}: "
            f"{_describe(matches)}; pass the path of one"
        )
    path, layer = matches[0]
    if not has_discrete_codes(layer):
        raise ExportError(
            f"layer {path!r} ({type(layer).__name__}) has no discrete codes (no "
            "`discrete_codes` method)"
            + (f"; the model's codes layers are {_describe(candidates)}" if candidates else "")
        )
    return path, layer


class _Reached(BaseException):
    """Ends a forward pass once the codes layer has its inputs.

    A BaseException, so that no `except Exception` in a model or in Keras's
    call wrappers catches it on its way out.
    """


@contextlib.contextmanager
def recording_calls(layer, stop=False):
    """Wraps `layer.call` so that it records `(inputs, mask)` of each call.

    Yields the list of records. With `stop=True` the first call ends the
    forward pass (see `forward`) instead of running the layer. The wrapper
    is an instance attribute set with `object.__setattr__`, so Keras neither
    tracks nor saves it, and it is removed on exit; the model must not be
    called from another thread meanwhile.
    """
    records = []
    saved = vars(layer).get("call", _MISSING)
    original = layer.call
    first = next(iter(inspect.signature(original).parameters))

    def call(*args, **kwargs):
        # Keras passes the inputs positionally and the mask by keyword.
        records.append((args[0] if args else kwargs.get(first), kwargs.get("mask")))
        if stop:
            raise _Reached
        return original(*args, **kwargs)

    object.__setattr__(layer, "call", call)
    try:
        yield records
    finally:
        if saved is _MISSING:
            object.__delattr__(layer, "call")
        else:
            object.__setattr__(layer, "call", saved)


def forward(model, layer, inputs, path=None, stop=False):
    """Runs `model(inputs, training=False)`, recording what `layer` receives.

    Args:
        model: The Keras model.
        layer: Its codes layer.
        inputs: What the model is called with.
        path: The layer's path, for messages.
        stop: Whether to end the pass at the layer (then `outputs` is None).

    Returns:
        `(layer_inputs, mask, outputs)`.

    Raises:
        ExportError: If the layer is not called exactly once.
    """
    with recording_calls(layer, stop=stop) as records:
        try:
            outputs = model(inputs, training=False)
        except _Reached:
            outputs = None
    label = path or layer.name
    if not records:
        raise ExportError(
            f"layer {label!r} is not called when the model runs on its inputs, so it has "
            "no codes to export"
        )
    if len(records) > 1:
        raise ExportError(
            f"layer {label!r} is called {len(records)} times in one forward pass, so its "
            "codes are ambiguous; export a model that calls it once"
        )
    layer_inputs, mask = records[0]
    return layer_inputs, mask, outputs


def model_codes(model, inputs, codes_layer=None):
    """The deterministic codes of a model's codes layer, in process.

    What the exported `encode` signature returns for the same inputs: the
    layer's `discrete_codes` applied to the tensor it receives in a
    deterministic (`training=False`) forward pass. Works on every backend.

    Args:
        model: A Keras model with a codes layer (see `export_model`).
        inputs: What the model takes: an array, a list or a dict of arrays.
        codes_layer: Optional layer name, path or layer; needed when the
            model has several codes layers.

    Returns:
        A dict of NumPy arrays: `codes` (int64), `one_hot` and `probs`
        (float32).

    Example:

    ```python
    codes = model_codes(model, x)["codes"]
    ```
    """
    path, layer = choose_codes_layer(model, codes_layer)
    layer_inputs, mask, _ = forward(model, layer, inputs, path, stop=True)
    out = layer.discrete_codes(layer_inputs, mask=mask)
    return {
        "codes": np.asarray(keras.ops.convert_to_numpy(out["codes"]), np.int64),
        "one_hot": np.asarray(keras.ops.convert_to_numpy(out["one_hot"]), np.float32),
        "probs": np.asarray(keras.ops.convert_to_numpy(out["probs"]), np.float32),
    }
