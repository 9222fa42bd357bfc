"""Tests of SavedModel export in TensorFlow Serving's layout."""

import json

import keras
import numpy as np
import pytest
from testing import BACKEND

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="SavedModel export uses the TensorFlow backend"
)

if BACKEND == "tensorflow":
    import tensorflow as tf

    from keras_gumbel.datasets import load
    from keras_gumbel.datasets import split_halves
    from keras_gumbel.export import ExportError
    from keras_gumbel.export import export_model
    from keras_gumbel.models import BernoulliVAE
    from keras_gumbel.models import CategoricalVAE
    from keras_gumbel.models import StochasticBinaryNetwork


@pytest.fixture(scope="module")
def images():
    return load("mnist-sample").x_test[:64].reshape(64, -1)


def _trained(model, x, y=None):
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    return model


def test_export_layout_signatures_and_outputs(images, tmp_path):
    model = _trained(CategoricalVAE(num_vars=6, num_classes=5, seed=0), images)
    first = export_model(model, tmp_path, "vae", images)
    second = export_model(model, tmp_path, "vae", images[:8], verify_with_cli=False)
    assert first == tmp_path / "vae" / "1" and second == tmp_path / "vae" / "2"
    assert sorted(p.name for p in (tmp_path / "vae").iterdir()) == [
        "1",
        "2",
    ]  # no temporary leftovers
    report = json.loads((first / "assets.extra" / "verification.json").read_text())
    assert report["checked_with"]["encode"] == ["saved_model_cli", "tf.saved_model.load"]
    assert report["contract"] == {
        "D": 784,
        "N": 6,
        "K": 5,
        "D_out": 784,
        "signatures": ["encode", "encode_probs", "decode", "reconstruct"],
    }

    loaded = tf.saved_model.load(str(first))
    assert set(loaded.signatures) == {
        "serving_default",
        "encode",
        "encode_probs",
        "decode",
        "reconstruct",
    }
    encode = loaded.signatures["serving_default"]
    assert encode.structured_input_signature[1]["images"].shape.as_list() == [None, 784]
    out = encode(images=tf.constant(images))
    assert out["codes"].dtype == tf.int64 and out["codes"].shape == (64, 6)
    np.testing.assert_array_equal(out["codes"].numpy(), model.encode(images).numpy())
    np.testing.assert_array_equal(out["one_hot"].numpy().argmax(-1), out["codes"].numpy())
    probs = loaded.signatures["encode_probs"](images=tf.constant(images))["probs"].numpy()
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    means = loaded.signatures["decode"](codes=out["codes"])["means"].numpy()
    np.testing.assert_allclose(means, model.decode(out["codes"]).numpy(), rtol=1e-5, atol=1e-6)
    # Deterministic: two calls give identical answers.
    np.testing.assert_array_equal(
        encode(images=tf.constant(images))["codes"].numpy(), out["codes"].numpy()
    )


def test_binary_models_export(images, tmp_path):
    vae = _trained(BernoulliVAE(num_vars=12, seed=0), images)
    path = export_model(vae, tmp_path, "bits", images, verify_with_cli=False)
    out = tf.saved_model.load(str(path)).signatures["encode"](images=tf.constant(images))
    assert out["one_hot"].shape == (64, 12, 2)
    upper, lower = split_halves(images.reshape(-1, 28, 28))
    sbn = _trained(StochasticBinaryNetwork("bernoulli", num_vars=10, seed=0), upper, lower)
    path = export_model(sbn, tmp_path, "sbn", upper, verify_with_cli=False)
    means = tf.saved_model.load(str(path)).signatures["reconstruct"](images=tf.constant(upper))[
        "means"
    ]
    assert means.shape == (64, 392)


def test_versions_are_never_overwritten(images, tmp_path):
    model = _trained(CategoricalVAE(num_vars=4, num_classes=3, seed=0), images)
    export_model(model, tmp_path, "vae", images, version=3, verify_with_cli=False)
    before = sorted(p.name for p in (tmp_path / "vae" / "3").rglob("*"))
    with pytest.raises(ExportError, match="version 3 of model 'vae' already exists"):
        export_model(model, tmp_path, "vae", images, version=3, verify_with_cli=False)
    assert sorted(p.name for p in (tmp_path / "vae" / "3").rglob("*")) == before
    assert export_model(model, tmp_path, "vae", images, verify_with_cli=False).name == "4"


def test_a_failed_verification_publishes_nothing(images, tmp_path, monkeypatch):
    import keras_gumbel.export as export_module

    model = _trained(CategoricalVAE(num_vars=4, num_classes=3, seed=0), images)

    def failing_verify(*args, **kwargs):
        raise ExportError("outputs differ")

    monkeypatch.setattr(export_module, "verify_export", failing_verify)
    with pytest.raises(ExportError, match="outputs differ"):
        export_model(model, tmp_path, "vae", images)
    assert list((tmp_path / "vae").iterdir()) == []


def test_verification_catches_a_model_that_disagrees(images, tmp_path):
    from keras_gumbel.export import verify

    model = _trained(CategoricalVAE(num_vars=4, num_classes=3, seed=0), images)
    path = export_model(model, tmp_path, "vae", images, verify_with_cli=False)
    other = _trained(CategoricalVAE(num_vars=4, num_classes=3, seed=1), images)
    with pytest.raises(ExportError, match="differs from the Keras model"):
        verify(path, other, images, use_cli=False)
