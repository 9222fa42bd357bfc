"""The export plan of a model that declares its own signatures.

A model declares its signatures with a public method, found by name on any
model as a codes layer's `discrete_codes` is found on any layer:

```python
def export_signatures(self, sample_inputs):
    return {
        "signatures": {
            "encode": (encode, {"images": tf.TensorSpec([None, 784], tf.float32)}),
            "decode": (decode, {"codes": tf.TensorSpec([None, 20], tf.int64)}),
        },
        "contract": {"N": 20, "K": 10},  # optional
    }
```

- `signatures`: `{name: (function, {input name: tf.TensorSpec})}`, in
  order; the first becomes `serving_default`. Each spec is batch first,
  with the batch dimension unknown (`None`). Each function takes one
  argument per input, named and ordered as its specs, and returns a dict of
  tensors by output name; it must be deterministic (no random op) and read
  only variables of the model.
- `contract`: an optional JSON-serializable dict, recorded with the
  signature names as the contract in `assets.extra/verification.json`.

`sample_inputs` are what `export_model` received; the method may use them,
e.g. to build an unbuilt model. They are the inputs of the first signature
(an array for a single input, a list in order or a dict by name). Every
other signature takes the sample input of the same name or, failing that,
the output of that name of an earlier signature (a `decode` takes the
`codes` that `encode` returns). The plan runs every function eagerly on
these inputs, in order, before anything is written; the SavedModel must
reproduce the outputs.
"""

import inspect
import json

import keras
import numpy as np
import tensorflow as tf

from keras_gumbel.export.any_model import _fit_samples
from keras_gumbel.export.errors import ExportError
from keras_gumbel.export.errors import first_line
from keras_gumbel.export.errors import trace_signatures
from keras_gumbel.export.plan import ExportPlan

METHOD = "export_signatures"
_KEYS = ("signatures", "contract")


def has_export_signatures(model):
    """Whether `model` declares its own signatures (an `export_signatures` method)."""
    return callable(getattr(model, METHOD, None))


def _check_spec(signature, alias, spec):
    if not isinstance(alias, str) or not alias:
        raise ExportError(f"signature {signature!r}: input names must be strings; got {alias!r}")
    if not isinstance(spec, tf.TensorSpec):
        raise ExportError(
            f"signature {signature!r}: input {alias!r} must be a tf.TensorSpec; "
            f"got {type(spec).__name__}"
        )
    if spec.shape.rank is None or spec.shape.rank < 1 or spec.shape[0] is not None:
        raise ExportError(
            f"signature {signature!r}: input {alias!r} must be batch first with an unknown "
            f"batch dimension, e.g. [None, ...]; got {spec.shape}"
        )
    return tf.TensorSpec(spec.shape, spec.dtype, name=alias)


def _read_signature(name, entry):
    if not isinstance(name, str) or not name:
        raise ExportError(f"signature names must be non-empty strings; got {name!r}")
    if not (isinstance(entry, (tuple, list)) and len(entry) == 2 and callable(entry[0])):
        raise ExportError(
            f"signature {name!r} must be a pair (function, {{input name: tf.TensorSpec}})"
        )
    function, specs = entry
    if not isinstance(specs, dict) or not specs:
        raise ExportError(f"signature {name!r} must take a dict of one or more input specs")
    specs = {alias: _check_spec(name, alias, spec) for alias, spec in specs.items()}
    parameters = list(inspect.signature(function).parameters)
    if parameters != list(specs):
        raise ExportError(
            f"signature {name!r}: the function's arguments {parameters} must be its inputs "
            f"{list(specs)}, in that order"
        )
    return function, specs


def _read_declaration(model, declared):
    """`(functions, specs, contract)` from what `export_signatures` returned."""
    label = f"{type(model).__name__}.{METHOD}"
    if not isinstance(declared, dict) or "signatures" not in declared:
        raise ExportError(f"{label} must return a dict with 'signatures'")
    unknown = sorted(set(declared) - set(_KEYS))
    if unknown:
        raise ExportError(f"{label} returned unknown keys {unknown}; expected {list(_KEYS)}")
    signatures = declared["signatures"]
    if not isinstance(signatures, dict) or not signatures:
        raise ExportError(f"{label} must declare one or more signatures")
    functions, specs = {}, {}
    for name, entry in signatures.items():
        functions[name], specs[name] = _read_signature(name, entry)
    contract = declared.get("contract") or {}
    if not isinstance(contract, dict) or "signatures" in contract:
        raise ExportError(f"{label}: 'contract' must be a dict without a 'signatures' key")
    try:
        json.dumps(contract)
    except (TypeError, ValueError) as e:
        raise ExportError(f"{label}: 'contract' must be JSON-serializable: {e}") from None
    return functions, specs, dict(contract)


def _fit_spec(value, spec, signature, alias, source):
    """`value` as the spec's dtype; raises ExportError when it does not fit."""
    target = np.dtype(spec.dtype.as_numpy_dtype)
    if not spec.shape.is_compatible_with(value.shape) or not np.can_cast(
        value.dtype, target, casting="same_kind"
    ):
        raise ExportError(
            f"signature {signature!r} takes {alias!r} as {spec.dtype.name} "
            f"{spec.shape}; {source} gives {value.dtype} {list(value.shape)}"
        )
    return value.astype(target, copy=False)


class ModelSignaturesExport(ExportPlan):
    """The export plan of a model that declares its own signatures.

    Built before anything is written: it reads the model's
    `export_signatures`, checks that the sample inputs fit the first
    signature and runs every signature eagerly, so every problem is found
    while nothing exists on disk.
    """

    def __init__(self, model, sample_inputs, codes_layer=None, decoder=None):
        if codes_layer is not None or decoder is not None:
            raise ExportError(
                f"{type(model).__name__} exports with its own fixed signatures; codes_layer= "
                "and decoder= apply to other models"
            )
        self.model = model
        try:
            declared = getattr(model, METHOD)(sample_inputs)
        except ExportError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure of the model is reported
            raise ExportError(f"{type(model).__name__}.{METHOD} failed: {first_line(e)}") from None
        self.functions, self.specs, self._contract = _read_declaration(model, declared)
        self.signatures = tuple(self.functions)
        self.tracked = [model]
        first = self.specs[self.signatures[0]]
        kind = "single" if len(first) == 1 else "list"
        self.samples = _fit_samples(kind, first, sample_inputs)
        self.num_examples = len(next(iter(self.samples.values())))
        self._cases = self._run_keras()

    def _run_keras(self):
        """Runs every signature eagerly, in order: `{name: (inputs, outputs)}`."""
        available = {alias: (value, "sample_inputs") for alias, value in self.samples.items()}
        cases = {}
        for name in self.signatures:
            inputs = {}
            for alias, spec in self.specs[name].items():
                if alias not in available:
                    raise ExportError(
                        f"signature {name!r} takes {alias!r}, which is neither a sample input "
                        f"nor an output of an earlier signature (those are {sorted(available)})"
                    )
                value, source = available[alias]
                inputs[alias] = _fit_spec(value, spec, name, alias, source)
            outputs = self._call(name, inputs)
            cases[name] = (inputs, outputs)
            for key, value in outputs.items():
                available.setdefault(key, (value, f"output {key!r} of signature {name!r}"))
        return cases

    def _call(self, name, inputs):
        try:
            outputs = self.functions[name](**{k: tf.constant(v) for k, v in inputs.items()})
        except ExportError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure of the model is reported
            raise ExportError(
                f"cannot run signature {name!r} on the sample inputs: {first_line(e)}"
            ) from None
        if (
            not isinstance(outputs, dict)
            or not outputs
            or not all(isinstance(k, str) and keras.ops.is_tensor(v) for k, v in outputs.items())
        ):
            raise ExportError(
                f"signature {name!r} must return a dict of tensors by output name; "
                f"it returned {type(outputs).__name__}"
            )
        return {k: np.asarray(keras.ops.convert_to_numpy(v)) for k, v in outputs.items()}

    def endpoints(self):
        """The traced signature functions; the first becomes `serving_default`.

        Raises:
            ExportError: If a signature cannot be traced.
        """
        functions = {
            name: tf.function(
                self.functions[name],
                input_signature=list(self.specs[name].values()),
                autograph=False,
            )
            for name in self.signatures
        }
        return trace_signatures(functions)

    def cases(self):
        """`{signature: (inputs, expected outputs)}`, from the eager run."""
        return dict(self._cases)

    def contract(self, endpoints):
        """The model's own contract, with the signature names."""
        return {**self._contract, "signatures": list(self.signatures)}
