"""The export plan: one interface, built once per export, and models that
declare their own signatures with `export_signatures`."""

import ast
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from testing import BACKEND

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="SavedModel export uses the TensorFlow backend"
)

if BACKEND == "tensorflow":
    import tensorflow as tf

    import keras_gumbel as kg
    from keras_gumbel.datasets import split_halves
    from keras_gumbel.export import SIGNATURES
    from keras_gumbel.export import ExportError
    from keras_gumbel.export import ExportPlan
    from keras_gumbel.export import export_model
    from keras_gumbel.export import export_plan
    from keras_gumbel.export import verify
    from keras_gumbel.export.any_model import AnyModelExport
    from keras_gumbel.export.model_signatures import ModelSignaturesExport
    from keras_gumbel.models import BernoulliVAE
    from keras_gumbel.models import CategoricalVAE
    from keras_gumbel.models import StochasticBinaryNetwork

EXPORT_DIR = Path(__file__).resolve().parents[1] / "keras_gumbel" / "export"


class DeclaredSignatures(keras.Model):
    """A model with a Gumbel layer that declares its own signatures.

    `encode` takes `features` and returns 2 codes of 3 classes; `embed`
    takes those `codes` (an output of `encode`); `predict` takes `features`
    again (a sample input). It counts the calls of `export_signatures`.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(6)
        self.codes = kg.GumbelSoftmax(hard=True, name="codes")
        self.embedding = keras.layers.Embedding(3, 5)
        self.declarations = 0

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.embedding.build((None, 2))

    def logits(self, features):
        return keras.ops.reshape(self.dense(features), (-1, 2, 3))

    def call(self, features, training=False):
        return self.codes(self.logits(features), training=training)

    def export_signatures(self, sample_inputs):
        self.declarations += 1

        def encode(features):
            return {"codes": tf.argmax(self.logits(features), axis=-1)}

        def embed(codes):
            return {"vectors": self.embedding(codes)}

        def predict(features):
            return {"one_hot": self(features, training=False)}

        return {
            "signatures": {
                "encode": (encode, {"features": tf.TensorSpec([None, 4], tf.float32)}),
                "embed": (embed, {"codes": tf.TensorSpec([None, 2], tf.int64)}),
                "predict": (predict, {"features": tf.TensorSpec([None, 4], tf.float32)}),
            },
            "contract": {"codes_per_example": 2, "classes": 3},
        }


class Declares(keras.Model):
    """A model whose `export_signatures` returns what it is given."""

    def __init__(self, declaration, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(2)
        self.declaration = declaration

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, x):
        return self.dense(x)

    def export_signatures(self, sample_inputs):
        return self.declaration(self)


def _features(n=16):
    return np.random.default_rng(0).normal(size=(n, 4)).astype("float32")


def _signature_inputs(function):
    return {
        name: (spec.shape.as_list(), spec.dtype.name)
        for name, spec in function.structured_input_signature[1].items()
    }


def _count_plans(monkeypatch):
    """Counts the constructions of both plans: a list that grows with each."""
    built = []
    for cls in (AnyModelExport, ModelSignaturesExport):

        def counting(self, *args, _original=cls.__init__, **kwargs):
            built.append(type(self).__name__)
            _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counting)
    return built


def test_a_user_model_exports_the_signatures_it_declares(tmp_path):
    model = DeclaredSignatures()
    x = _features()
    model(x)
    path = export_model(model, tmp_path, "declared", x, verify_with_cli=False)
    # Declared once per export, and declared signatures win over the codes
    # layer's (which would be encode and predict on "inputs").
    assert model.declarations == 1
    loaded = tf.saved_model.load(str(path))
    assert set(loaded.signatures) == {"serving_default", "encode", "embed", "predict"}
    assert _signature_inputs(loaded.signatures["serving_default"]) == {
        "features": ([None, 4], "float32")
    }
    assert _signature_inputs(loaded.signatures["embed"]) == {"codes": ([None, 2], "int64")}
    codes = loaded.signatures["serving_default"](features=tf.constant(x))["codes"]
    expected = np.argmax(keras.ops.convert_to_numpy(model.logits(x)), axis=-1)
    assert codes.dtype == tf.int64
    np.testing.assert_array_equal(codes.numpy(), expected)
    vectors = loaded.signatures["embed"](codes=codes)["vectors"].numpy()
    np.testing.assert_allclose(vectors, keras.ops.convert_to_numpy(model.embedding(expected)))
    one_hot = loaded.signatures["predict"](features=tf.constant(x))["one_hot"].numpy()
    np.testing.assert_array_equal(one_hot.argmax(-1), expected)
    report = json.loads((path / "assets.extra" / "verification.json").read_text())
    assert report["examples"] == 16
    assert report["checked_with"] == {
        "encode": ["tf.saved_model.load"],
        "embed": ["tf.saved_model.load"],
        "predict": ["tf.saved_model.load"],
    }
    assert report["contract"] == {
        "codes_per_example": 2,
        "classes": 3,
        "signatures": ["encode", "embed", "predict"],
    }


def test_declared_signatures_verify_against_the_model(tmp_path):
    model = DeclaredSignatures()
    x = _features()
    model(x)
    path = export_model(model, tmp_path, "declared", x, verify_with_cli=False)
    assert verify(path, model, x, use_cli=False)["checked_with"]["embed"] == ["tf.saved_model.load"]
    # Other weights: the embedding's vectors no longer match the export's.
    model.embedding.embeddings.assign(model.embedding.embeddings + 1.0)
    with pytest.raises(ExportError, match="output 'vectors' of signature 'embed' differs"):
        verify(path, model, x, use_cli=False)


@pytest.mark.parametrize("kind", ["any model", "declared", "package model"])
def test_a_plan_is_built_once_per_export(kind, tmp_path, monkeypatch):
    x = _features()
    if kind == "any model":
        inputs = keras.Input(shape=(4,))
        codes = kg.GumbelSoftmax(hard=True)(keras.layers.Reshape((2, 2))(inputs))
        model = keras.Model(inputs, codes)
        plan = "AnyModelExport"
    elif kind == "declared":
        model = DeclaredSignatures()
        model(x)
        plan = "ModelSignaturesExport"
    else:
        model = CategoricalVAE(num_vars=3, num_classes=4, seed=0)
        x = np.random.default_rng(0).random((8, 12), dtype=np.float32)
        model(x)
        plan = "ModelSignaturesExport"
    built = _count_plans(monkeypatch)
    path = export_model(model, tmp_path, "once", x, verify_with_cli=False)
    assert built == [plan]
    # Called alone, verify builds its own plan.
    verify(path, model, x, use_cli=False)
    assert built == [plan, plan]


def test_the_package_models_declare_their_signatures_through_the_same_protocol():
    images = np.random.default_rng(0).random((4, 28, 28)).astype("float32")
    flat = images.reshape(4, -1)
    upper, _ = split_halves(images)
    for model, x, sizes in [
        (CategoricalVAE(num_vars=3, num_classes=4, seed=0), flat, (784, 3, 4, 784)),
        (BernoulliVAE(num_vars=5, seed=0), flat, (784, 5, 2, 784)),
        (
            StochasticBinaryNetwork("bernoulli", num_vars=6, output_dim=392, seed=0),
            upper,
            (392, 6, 2, 392),
        ),
    ]:
        # Unbuilt: the declaration builds the model from the sample inputs.
        declared = model.export_signatures(x)
        assert tuple(declared["signatures"]) == SIGNATURES
        assert declared["contract"] == dict(zip(("D", "N", "K", "D_out"), sizes, strict=True))
        plan = export_plan(model, x)
        assert isinstance(plan, ModelSignaturesExport) and isinstance(plan, ExportPlan)
        assert plan.signatures == SIGNATURES and plan.tracked == [model]
        cases = plan.cases()
        # `decode` is checked on the codes `encode` gives.
        np.testing.assert_array_equal(cases["decode"][0]["codes"], model.encode(x).numpy())
        np.testing.assert_array_equal(cases["encode"][1]["codes"], model.encode(x).numpy())
        probs = cases["encode_probs"][1]["probs"]
        assert probs.shape == (4, sizes[1], sizes[2])
        np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
        # The served code of each variable is its most probable class.
        np.testing.assert_array_equal(probs.argmax(-1), cases["encode"][1]["codes"])


def test_export_does_not_import_the_models():
    # The plan modules find a model's signatures by its method alone.
    # (keras_file.py imports keras_gumbel.models only to register the
    # package's classes before it loads a .keras file.)
    for path in sorted(EXPORT_DIR.glob("*.py")):
        if path.name == "keras_file.py":
            continue
        modules = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules.add(node.module)
        assert not [m for m in modules if m.startswith("keras_gumbel.models")], path.name


def test_every_plan_implements_the_interface():
    assert issubclass(AnyModelExport, ExportPlan)
    assert issubclass(ModelSignaturesExport, ExportPlan)
    with pytest.raises(TypeError, match="abstract"):
        ExportPlan()


def _spec(shape, dtype="float32"):
    return tf.TensorSpec(shape, dtype)


@pytest.mark.parametrize(
    "declaration, message",
    [
        (lambda m: None, r"Declares.export_signatures must return a dict with 'signatures'"),
        (
            lambda m: {
                "signatures": {"f": (lambda x: {"y": m(x)}, {"x": _spec([None, 3])})},
                "x": 1,
            },
            r"returned unknown keys \['x'\]",
        ),
        (
            lambda m: {"signatures": {"f": (lambda y: {"y": m(y)}, {"x": _spec([None, 3])})}},
            r"signature 'f': the function's arguments \['y'\] must be its inputs \['x'\]",
        ),
        (
            lambda m: {"signatures": {"f": (lambda x: {"y": m(x)}, {"x": _spec([8, 3])})}},
            r"input 'x' must be batch first with an unknown batch dimension",
        ),
        (
            lambda m: {"signatures": {"f": (lambda x: m(x), {"x": _spec([None, 3])})}},
            r"signature 'f' must return a dict of tensors by output name",
        ),
        (
            lambda m: {
                "signatures": {
                    "f": (lambda x: {"y": m(x)}, {"x": _spec([None, 3])}),
                    "g": (lambda z: {"w": z}, {"z": _spec([None, 2])}),
                }
            },
            r"signature 'g' takes 'z', which is neither a sample input nor an output of an "
            r"earlier signature \(those are \['x', 'y'\]\)",
        ),
        (
            lambda m: {
                "signatures": {
                    "f": (lambda x: {"y": m(x)}, {"x": _spec([None, 3])}),
                    "g": (lambda y: {"w": y}, {"y": _spec([None, 2], "int64")}),
                }
            },
            r"signature 'g' takes 'y' as int64 \(None, 2\); output 'y' of signature 'f' gives "
            r"float32 \[4, 2\]",
        ),
        (
            lambda m: {
                "signatures": {"f": (lambda x: {"y": m(x)}, {"x": _spec([None, 3])})},
                "contract": {"signatures": []},
            },
            r"'contract' must be a dict without a 'signatures' key",
        ),
    ],
)
def test_malformed_declarations_publish_nothing(declaration, message, tmp_path):
    model = Declares(declaration)
    x = np.ones((4, 3), "float32")
    model(x)
    with pytest.raises(ExportError, match=message):
        export_model(model, tmp_path, "bad", x)
    assert list(tmp_path.iterdir()) == []


def test_samples_that_do_not_fit_the_first_signature_publish_nothing(tmp_path):
    model = DeclaredSignatures()
    model(_features())
    with pytest.raises(ExportError, match=r"input 'features' takes shape \(None, 4\), received"):
        export_model(model, tmp_path, "declared", np.ones((4, 5), "float32"))
    with pytest.raises(ExportError, match="exports with its own fixed signatures; codes_layer="):
        export_model(model, tmp_path, "declared", _features(), codes_layer="codes")
    assert list(tmp_path.iterdir()) == []
