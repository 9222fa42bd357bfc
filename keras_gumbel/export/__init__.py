"""Keras models to SavedModels in TensorFlow Serving's layout, verified.

`export_model(model, base_path, name, sample_inputs)` writes
`base_path/name/<version>/`, the next integer version (a new version never
overwrites an old one). Every signature has method
`tensorflow/serving/predict` and the batch as its first, unknown dimension.

Any Keras model that contains a layer with discrete codes (`GumbelSoftmax`,
`GumbelSigmoid`, `GumbelVectorQuantizer`, or any layer that implements
`discrete_codes`), nested models included, exports with:

```
encode (serving_default)  the model's inputs  ->  codes int64, one_hot float32,
                                                  probs float32
predict                   the model's inputs  ->  the model's outputs
decode (with decoder=)    codes or one_hot    ->  the decoder's outputs
```

`encode` returns the chosen layer's `discrete_codes` of the tensor that
layer receives in a deterministic (`training=False`) forward pass: for a
`GumbelSoftmax` on logits `[-1, N, K]`, codes `[-1, N]` (the index of the
largest logit) and one-hot vectors and probabilities `[-1, N, K]`. Names,
shapes and dtypes of the inputs are the model's own (see `any_model`).

A model that declares its own signatures, with a public
`export_signatures(sample_inputs)` method, exports with those instead (see
`model_signatures`). The package's `CategoricalVAE`, `BernoulliVAE` and
`StochasticBinaryNetwork` do so, with the signatures `encode`,
`encode_probs`, `decode` and `reconstruct` on flattened `images` (see
`keras_gumbel.models.latent_signatures`):

```
encode (serving_default)  images float32 [-1, D]  ->  codes int64 [-1, N],
                                                      one_hot float32 [-1, N, K]
encode_probs              images float32 [-1, D]  ->  probs float32 [-1, N, K]
decode                    codes int64 [-1, N]     ->  means float32 [-1, D_out]
reconstruct               images float32 [-1, D]  ->  means float32 [-1, D_out]
```

Either way the export follows one plan (`ExportPlan`: its endpoints, what
to track, the verification cases and the contract), built once per export.

Every signature is deterministic: it contains no random op, so a request
always gets the same answer. Endpoints are plain graphs (no XLA-only
functions, only core TensorFlow ops), which TensorFlow Serving of the
exporting TensorFlow version or newer runs.

Nothing is written until the plan is built (the model, its codes layer or
declared signatures and the sample inputs checked, the Keras model run on
the sample inputs) and every signature traced. The version directory is
then written under a temporary name and renamed into place, so a server
polling the base path never sees half of it. Before the rename it is
verified against the same plan: reloaded with `tf.saved_model.load` and run through TensorFlow's
`saved_model_cli`, each signature must reproduce the Keras model's outputs
on the sample inputs (codes exactly). `assets.extra/verification.json`
records the checks and the contract (for a model with a codes layer: names,
shapes, dtypes, codes layer; for a model with its own signatures: what it
declares, with the signature names).

Export runs on the TensorFlow backend. A model trained on another backend
exports from a TensorFlow process: save it as a `.keras` file and load it
there (or run `keras-gumbel export MODEL.keras`).
"""

from keras_gumbel._extras import require_extra

# Exporting the package's own models imports them, hence TensorFlow Probability.
require_extra(
    "keras_gumbel.export", "serving", modules=("tensorflow", "tensorflow_probability", "tf_keras")
)

import json
import os
import shutil
import tempfile
from pathlib import Path

import keras

from keras_gumbel.export.any_model import AnyModelExport
from keras_gumbel.export.checks import verify_export
from keras_gumbel.export.codes_layers import codes_layers
from keras_gumbel.export.codes_layers import model_codes
from keras_gumbel.export.errors import ExportError
from keras_gumbel.export.keras_file import export_keras_file
from keras_gumbel.export.model_signatures import ModelSignaturesExport
from keras_gumbel.export.model_signatures import has_export_signatures
from keras_gumbel.export.plan import ExportPlan

#: The signatures an export of the package's VAEs and stochastic binary
#: networks serves, as their `export_signatures` declares them (export does
#: not import models).
SIGNATURES = ("encode", "encode_probs", "decode", "reconstruct")

__all__ = [
    "ExportError",
    "ExportPlan",
    "SIGNATURES",
    "codes_layers",
    "export_keras_file",
    "export_model",
    "export_plan",
    "model_codes",
    "next_version",
    "verify",
]


def next_version(model_dir):
    """1 + the largest integer version under `model_dir` (1 if none)."""
    model_dir = Path(model_dir)
    versions = (
        [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        if model_dir.is_dir()
        else []
    )
    return max(versions, default=0) + 1


def export_plan(model, sample_inputs, codes_layer=None, decoder=None):
    """The `ExportPlan` of `model`: what exporting it writes and checks.

    A Keras model with an `export_signatures` method exports with the
    signatures it declares (`ModelSignaturesExport`); any other with those
    of its codes layer (`AnyModelExport`). Building the plan checks the
    model and the sample inputs and runs the model on them; nothing is
    written.

    Args:
        model: The Keras model.
        sample_inputs: As given to `export_model`.
        codes_layer: As given to `export_model`.
        decoder: As given to `export_model`.

    Raises:
        ExportError: With a one-line message, as `export_model`.
    """
    if keras.backend.backend() != "tensorflow":
        raise ExportError(
            f"export runs on the TensorFlow backend, not {keras.backend.backend()!r}: save the "
            "model (model.save('model.keras')) and export it from a process with "
            "KERAS_BACKEND=tensorflow, e.g. keras-gumbel export model.keras"
        )
    if isinstance(model, keras.Model) and has_export_signatures(model):
        return ModelSignaturesExport(model, sample_inputs, codes_layer, decoder)
    return AnyModelExport(model, sample_inputs, codes_layer, decoder)


def verify(directory, model, sample_inputs, use_cli=True, codes_layer=None, decoder=None):
    """Checks a SavedModel against the Keras model; raises ExportError.

    Builds the model's export plan (see `export_plan`) and checks the
    SavedModel against it, as `export_model` does before it publishes a
    version.

    Args:
        directory: The SavedModel (version) directory.
        model: The Keras model it was exported from.
        sample_inputs: Inputs to compare the outputs on.
        use_cli: Whether to also run TensorFlow's `saved_model_cli`.
        codes_layer: As given to `export_model`.
        decoder: As given to `export_model`.

    Returns:
        A dict describing the checks, written next to the export as
        `assets.extra/verification.json`.
    """
    plan = export_plan(model, sample_inputs, codes_layer, decoder)
    return verify_export(directory, plan, use_cli)


def export_model(
    model,
    base_path,
    name,
    sample_inputs,
    codes_layer=None,
    decoder=None,
    version=None,
    verify_with_cli=True,
):
    """Exports `model` as `base_path/name/<version>`, verified before it appears.

    Args:
        model: A Keras model with a layer that has discrete codes (any kind:
            functional, sequential, subclassed, nested), or one that
            declares its own signatures with an `export_signatures` method,
            as the package's `CategoricalVAE`, `BernoulliVAE` and
            `StochasticBinaryNetwork` do.
        base_path: The model base path a server watches.
        name: The model name (a directory under `base_path`).
        sample_inputs: Real inputs used to check the export: an array, a
            list or a dict of arrays (by input name), batch first; for the
            package's models, float images `[n, D]`. A subclassed model's
            input signature is taken from them; for a model with its own
            signatures they are the first signature's inputs.
        codes_layer: The layer whose codes `encode` serves, by name, path
            ("encoder/codes") or as the layer; needed when the model has
            several.
        decoder: Optional Keras model that takes the codes (int) or the
            one-hot codes (float) of the codes layer; exported as `decode`.
        version: Optional integer version; default the next free one. An
            existing version is never replaced.
        verify_with_cli: Whether to also run TensorFlow's `saved_model_cli`.

    Returns:
        The path of the new version directory.

    Raises:
        ExportError: With a one-line message if the model has no (or no
            chosen) codes layer or declares malformed signatures, the
            sample inputs do not fit it, a signature cannot be traced or
            the export does not verify. Then no version is published.

    Example:

    ```python
    path = export_model(model, "exported", "my_model", x_test[:64])
    ```
    """
    plan = export_plan(model, sample_inputs, codes_layer, decoder)
    endpoints = plan.endpoints()
    model_dir = Path(base_path) / name
    version = version or next_version(model_dir)
    final = model_dir / str(version)
    if final.exists():
        raise ExportError(
            f"version {version} of model {name!r} already exists at {final}; "
            "versions are never overwritten"
        )
    model_dir.mkdir(parents=True, exist_ok=True)
    archive = keras.export.ExportArchive()
    for tracked in plan.tracked:
        archive.track(tracked)
    # The first endpoint becomes serving_default.
    for endpoint, function in endpoints.items():
        archive.add_endpoint(endpoint, function)
    tmp = Path(tempfile.mkdtemp(dir=model_dir, prefix=".export-"))
    try:
        archive.write_out(str(tmp), verbose=False)
        report = verify_export(tmp, plan, use_cli=verify_with_cli)
        extra = tmp / "assets.extra"
        extra.mkdir(exist_ok=True)
        report["contract"] = plan.contract(endpoints)
        (extra / "verification.json").write_text(json.dumps(report, indent=2))
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
