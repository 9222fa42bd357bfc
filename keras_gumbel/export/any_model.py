"""The signatures of any Keras model that contains a codes layer.

```
encode (serving_default)  the model's inputs  ->  codes int64 [-1, ...],
                                                  one_hot float32 [-1, ..., K],
                                                  probs float32 [-1, ..., K]
predict                   the model's inputs  ->  the model's outputs
decode (with decoder=)    codes or one_hot    ->  the decoder's outputs
```

Inputs keep the model's names, dtypes and shapes, with the batch dimension
unknown. A functional or sequential model names them after its
`keras.Input`s (the keys of a dict of inputs; an unnamed input is
"inputs", or "inputs_0", "inputs_1", ... for several); a subclassed model
after the keys of a dict of sample inputs, else the same defaults, with
the sample's shapes and dtypes (floats as float32). Outputs are named by
the keys of a dict of outputs, else "output_0", "output_1", ... as Keras's
own `model.export` names them.
"""

import re

import keras
import numpy as np
import tensorflow as tf

from keras_gumbel.export.codes_layers import choose_codes_layer
from keras_gumbel.export.codes_layers import forward
from keras_gumbel.export.errors import ExportError
from keras_gumbel.export.errors import first_line
from keras_gumbel.export.errors import trace_signatures
from keras_gumbel.export.plan import ExportPlan

_AUTO_NAME = re.compile(r"keras_tensor(_\d+)?|input_layer(_\d+)?")


def _shape_text(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _wire_shape(shape):
    return [-1 if d is None else int(d) for d in shape]


def _model_inputs(model):
    """The model's Keras input structure, or None for a subclassed model."""
    try:
        structure = model.input
    except (AttributeError, ValueError):
        return None
    return structure


def _spec_of(tensor, name):
    shape = (None,) + tuple(tensor.shape[1:])
    return tf.TensorSpec(shape, tf.as_dtype(keras.backend.standardize_dtype(tensor.dtype)), name)


def _default_names(count):
    return ["inputs"] if count == 1 else [f"inputs_{i}" for i in range(count)]


def _input_specs(model, sample_inputs):
    """`(kind, {name: TensorSpec})`, kind being how the model is called:
    "single" (a tensor), "list" or "dict"."""
    structure = _model_inputs(model)
    if structure is None:
        return _specs_from_samples(sample_inputs)
    if isinstance(structure, dict):
        return "dict", {str(k): _spec_of(t, str(k)) for k, t in structure.items()}
    tensors = list(structure) if isinstance(structure, (list, tuple)) else [structure]
    names = [t.name for t in tensors]
    if any(_AUTO_NAME.fullmatch(n) for n in names) or len(set(names)) < len(names):
        names = _default_names(len(tensors))
    kind = "list" if isinstance(structure, (list, tuple)) else "single"
    return kind, {n: _spec_of(t, n) for n, t in zip(names, tensors, strict=True)}


def _sample_dtype(array):
    return tf.float32 if array.dtype.kind == "f" else tf.as_dtype(array.dtype)


def _specs_from_samples(sample_inputs):
    if isinstance(sample_inputs, dict):
        kind, items = "dict", [(str(k), v) for k, v in sample_inputs.items()]
    elif isinstance(sample_inputs, (list, tuple)):
        kind = "list"
        items = list(zip(_default_names(len(sample_inputs)), sample_inputs, strict=True))
    else:
        kind, items = "single", [("inputs", sample_inputs)]
    specs = {}
    for name, value in items:
        array = np.asarray(value)
        if array.ndim < 1:
            raise ExportError(
                f"sample input {name!r} must be a batch [n, ...]; received shape {array.shape}"
            )
        specs[name] = tf.TensorSpec((None,) + array.shape[1:], _sample_dtype(array), name)
    return kind, specs


def _fit_samples(kind, specs, sample_inputs):
    """The sample inputs as `{name: array}` of the specs' dtypes; raises
    ExportError when they do not fit the specs."""
    names = list(specs)
    if isinstance(sample_inputs, dict):
        given = {str(k): v for k, v in sample_inputs.items()}
        if set(given) != set(names):
            raise ExportError(
                f"sample_inputs do not fit the model: its inputs are {names}, "
                f"sample_inputs has {sorted(given)}"
            )
    elif isinstance(sample_inputs, (list, tuple)) and (kind != "single" or len(names) > 1):
        if len(sample_inputs) != len(names):
            raise ExportError(
                f"sample_inputs do not fit the model: it takes {len(names)} inputs {names}, "
                f"sample_inputs has {len(sample_inputs)}"
            )
        given = dict(zip(names, sample_inputs, strict=True))
    elif len(names) == 1:
        given = {names[0]: sample_inputs}
    else:
        raise ExportError(
            f"sample_inputs do not fit the model: it takes {len(names)} inputs {names}; "
            "pass a dict or a list of arrays"
        )
    samples, sizes = {}, set()
    for name, spec in specs.items():
        array = np.asarray(given[name])
        want = tuple(spec.shape.as_list())
        if array.ndim != len(want) or any(
            w is not None and w != a for w, a in zip(want, array.shape, strict=False)
        ):
            raise ExportError(
                f"sample_inputs do not fit the model: input {name!r} takes shape "
                f"{_shape_text(want)}, received {_shape_text(array.shape)}"
            )
        dtype = spec.dtype.as_numpy_dtype
        if array.dtype.kind == "f" and np.dtype(dtype).kind in "iub":
            raise ExportError(
                f"sample_inputs do not fit the model: input {name!r} is {spec.dtype.name}, "
                f"received {array.dtype} values"
            )
        samples[name] = array.astype(dtype)
        sizes.add(array.shape[0])
    if len(sizes) != 1 or 0 in sizes:
        raise ExportError(
            "sample_inputs do not fit the model: every input needs the same number (>= 1) of "
            f"examples; received {sorted(sizes)}"
        )
    return samples


def _named_outputs(outputs, what="the model's outputs"):
    if isinstance(outputs, dict):
        return {str(k): v for k, v in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        flat = list(outputs)
    else:
        flat = [outputs]
    if not all(keras.ops.is_tensor(t) for t in flat):
        raise ExportError(f"{what} must be a tensor, a list or a dict of tensors")
    return {f"output_{i}": t for i, t in enumerate(flat)}


def _numpy(tensors):
    return {k: np.asarray(keras.ops.convert_to_numpy(v)) for k, v in tensors.items()}


class AnyModelExport(ExportPlan):
    """The export plan of a model with a codes layer.

    Built before anything is written: it finds the codes layer, derives the
    input signature, checks that the sample inputs fit and runs the model
    on them, so every problem is found while nothing exists on disk.
    """

    def __init__(self, model, sample_inputs, codes_layer=None, decoder=None):
        if not isinstance(model, keras.Model):
            raise ExportError(f"expected a Keras model; received {type(model).__name__}")
        self.model = model
        self.path, self.layer = choose_codes_layer(model, codes_layer)
        self.kind, self.specs = _input_specs(model, sample_inputs)
        self.samples = _fit_samples(self.kind, self.specs, sample_inputs)
        self.num_examples = len(next(iter(self.samples.values())))
        self.expected = self._run_keras()
        self.decoder = decoder
        self.tracked = [model]
        self.signatures = ("encode", "predict")
        if decoder is not None:
            self._plan_decoder(decoder)
            self.tracked.append(decoder)
            self.signatures += ("decode",)

    def _call_args(self, tensors):
        if self.kind == "dict":
            return dict(tensors)
        if self.kind == "list":
            return [tensors[name] for name in self.specs]
        return tensors[next(iter(self.specs))]

    def _codes(self, layer_inputs, mask):
        try:
            out = self.layer.discrete_codes(layer_inputs, mask=mask)
        except (ValueError, TypeError) as e:
            raise ExportError(
                f"cannot compute the codes of layer {self.path!r} "
                f"({type(self.layer).__name__}): {first_line(e)}"
            ) from None
        return {
            "codes": keras.ops.cast(out["codes"], "int64"),
            "one_hot": keras.ops.cast(out["one_hot"], "float32"),
            "probs": keras.ops.cast(out["probs"], "float32"),
        }

    def _run_keras(self):
        """Runs the Keras model on the samples: `{"encode": ..., "predict": ...}`."""
        try:
            layer_inputs, mask, outputs = forward(
                self.model, self.layer, self._call_args(self.samples), self.path
            )
        except ExportError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure of the user's model is reported
            raise ExportError(f"sample_inputs do not fit the model: {first_line(e)}") from None
        return {
            "encode": _numpy(self._codes(layer_inputs, mask)),
            "predict": _numpy(_named_outputs(outputs)),
        }

    def _plan_decoder(self, decoder):
        if not isinstance(decoder, keras.Model):
            raise ExportError(f"decoder must be a Keras model; received {type(decoder).__name__}")
        encoded = self.expected["encode"]
        structure = _model_inputs(decoder)
        tensors = (
            None
            if structure is None
            else list(structure.values())
            if isinstance(structure, dict)
            else list(structure)
            if isinstance(structure, (list, tuple))
            else [structure]
        )
        if tensors is not None and len(tensors) != 1:
            raise ExportError(f"decoder must take one input; it takes {len(tensors)}")
        options = ("one_hot", "codes")
        if tensors is not None:
            dtype = keras.backend.standardize_dtype(tensors[0].dtype)
            options = ("one_hot",) if "float" in dtype else ("codes",)
        for alias in options:
            value = encoded[alias]
            if tensors is not None:
                want = tuple(tensors[0].shape[1:])
                fits = len(want) == value.ndim - 1 and all(
                    w is None or w == v for w, v in zip(want, value.shape[1:], strict=True)
                )
                if not fits:
                    continue
            try:
                outputs = decoder(value, training=False)
            except Exception:  # noqa: BLE001 - try the next encode output
                continue
            self.decode_alias = alias
            shape = (None,) + (tuple(tensors[0].shape[1:]) if tensors else value.shape[1:])
            self.decode_spec = tf.TensorSpec(shape, tf.as_dtype(value.dtype), alias)
            self.expected["decode"] = _numpy(_named_outputs(outputs, "the decoder's outputs"))
            return
        shapes = ", ".join(f"{k} {_shape_text((None,) + encoded[k].shape[1:])}" for k in options)
        raise ExportError(
            f"decoder does not take the codes of layer {self.path!r}: it accepts none of {shapes}"
        )

    def endpoints(self):
        """The traced signature functions; the first becomes `serving_default`.

        Raises:
            ExportError: If a signature cannot be traced, e.g. when the codes
                layer's class axis has no known size in the graph.
        """
        model, layer, path = self.model, self.layer, self.path

        def encode(inputs):
            # The pass ends at the codes layer: the graph holds only what its
            # input needs, and nothing random the layer or later ones may do.
            layer_inputs, mask, _ = forward(model, layer, self._call_args(inputs), path, stop=True)
            return self._codes(layer_inputs, mask)

        def predict(inputs):
            return _named_outputs(model(self._call_args(inputs), training=False))

        signature = [dict(self.specs)]
        functions = {
            "encode": tf.function(encode, input_signature=signature, autograph=False),
            "predict": tf.function(predict, input_signature=signature, autograph=False),
        }
        if self.decoder is not None:
            decoder, alias, spec = self.decoder, self.decode_alias, self.decode_spec
            target = keras.backend.standardize_dtype(_decoder_dtype(decoder, spec.dtype))

            def decode(inputs):
                value = keras.ops.cast(inputs[alias], target)
                return _named_outputs(decoder(value, training=False), "the decoder's outputs")

            functions["decode"] = tf.function(
                decode, input_signature=[{alias: spec}], autograph=False
            )
        return trace_signatures(functions)

    def cases(self):
        """`{signature: (inputs, expected outputs)}` on the sample inputs."""
        cases = {
            "encode": (self.samples, self.expected["encode"]),
            "predict": (self.samples, self.expected["predict"]),
        }
        if self.decoder is not None:
            value = self.expected["encode"][self.decode_alias]
            cases["decode"] = ({self.decode_alias: value}, self.expected["decode"])
        return cases

    def contract(self, endpoints):
        """What a client needs: names, shapes and dtypes of every signature."""

        def specs(tensors):
            return {
                k: {"shape": _wire_shape(t.shape), "dtype": t.dtype.name}
                for k, t in tensors.items()
            }

        encode = endpoints["encode"].get_concrete_function().structured_outputs
        contract = {
            "signatures": list(self.signatures),
            "inputs": specs(self.specs),
            "codes_layer": self.path,
            "codes_layer_class": type(self.layer).__name__,
            "codes_description": getattr(self.layer, "codes_description", None) or "",
            "codes": specs(encode)["codes"],
            "one_hot": specs(encode)["one_hot"],
            "probs": specs(encode)["probs"],
            "outputs": specs(endpoints["predict"].get_concrete_function().structured_outputs),
        }
        if self.decoder is not None:
            contract["decode"] = {
                "inputs": specs({self.decode_alias: self.decode_spec}),
                "outputs": specs(endpoints["decode"].get_concrete_function().structured_outputs),
            }
        return contract


def _decoder_dtype(decoder, default):
    structure = _model_inputs(decoder)
    if structure is None:
        return default.name
    tensor = (
        next(iter(structure.values()))
        if isinstance(structure, dict)
        else structure[0]
        if isinstance(structure, (list, tuple))
        else structure
    )
    return tensor.dtype
