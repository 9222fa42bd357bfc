"""Export of any Keras model with a Gumbel layer: signatures, contract, errors."""

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
    from any_model_zoo import conv_model
    from any_model_zoo import quickstart_model
    from any_model_zoo import subclassed_model
    from any_model_zoo import token_model
    from any_model_zoo import train_on_jax

    import keras_gumbel as kg
    from keras_gumbel.export import ExportError
    from keras_gumbel.export import export_keras_file
    from keras_gumbel.export import export_model
    from keras_gumbel.export import model_codes


def _signature_inputs(function):
    return {
        name: (spec.shape.as_list(), spec.dtype.name)
        for name, spec in function.structured_input_signature[1].items()
    }


def _contract(path):
    return json.loads((path / "assets.extra" / "verification.json").read_text())


def _nothing_published(tmp_path, name):
    assert not (tmp_path / name).exists()
    assert list(tmp_path.iterdir()) == []


def test_the_readme_quickstart_exports(tmp_path):
    model, inputs_fn, codes_fn = quickstart_model()
    x = inputs_fn(64)
    path = export_model(model, tmp_path, "quickstart", x, verify_with_cli=False)
    assert path == tmp_path / "quickstart" / "1"
    loaded = tf.saved_model.load(str(path))
    assert set(loaded.signatures) == {"serving_default", "encode", "predict"}
    encode = loaded.signatures["serving_default"]
    assert _signature_inputs(encode) == {"inputs": ([None, 784], "float32")}
    out = encode(inputs=tf.constant(x))
    assert out["codes"].dtype == tf.int64 and out["codes"].shape == (64, 20)
    np.testing.assert_array_equal(out["codes"].numpy(), codes_fn(x))
    np.testing.assert_array_equal(out["one_hot"].numpy().argmax(-1), out["codes"].numpy())
    np.testing.assert_allclose(out["probs"].numpy().sum(-1), 1.0, rtol=1e-5)
    predicted = loaded.signatures["predict"](inputs=tf.constant(x))["output_0"].numpy()
    np.testing.assert_allclose(predicted, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    report = _contract(path)
    assert report["checked_with"] == {
        "encode": ["tf.saved_model.load"],
        "predict": ["tf.saved_model.load"],
    }
    assert report["contract"] == {
        "signatures": ["encode", "predict"],
        "inputs": {"inputs": {"shape": [-1, 784], "dtype": "float32"}},
        "codes_layer": "codes",
        "codes_layer_class": "GumbelSoftmax",
        "codes_description": kg.GumbelSoftmax.codes_description,
        "codes": {"shape": [-1, 20], "dtype": "int64"},
        "one_hot": {"shape": [-1, 20, 10], "dtype": "float32"},
        "probs": {"shape": [-1, 20, 10], "dtype": "float32"},
        "outputs": {"output_0": {"shape": [-1, 784], "dtype": "float32"}},
    }
    # The in-process helper gives what the signature serves.
    np.testing.assert_array_equal(model_codes(model, x)["codes"], out["codes"].numpy())


def test_named_token_inputs_verify_with_saved_model_cli(tmp_path):
    model, inputs_fn, codes_fn = token_model()
    x = inputs_fn(32)
    path = export_model(model, tmp_path, "tokens", x)
    report = _contract(path)
    assert report["checked_with"]["encode"] == ["saved_model_cli", "tf.saved_model.load"]
    assert report["checked_with"]["predict"] == ["saved_model_cli", "tf.saved_model.load"]
    assert report["contract"]["inputs"] == {
        "tokens": {"shape": [-1, -1], "dtype": "int32"},
        "context": {"shape": [-1, 4], "dtype": "float32"},
    }
    assert report["contract"]["codes"] == {"shape": [-1, -1], "dtype": "int64"}
    encode = tf.saved_model.load(str(path)).signatures["encode"]
    # Any sequence length: the time axis is unknown in the signature.
    longer = inputs_fn(5, seed=3, length=20)
    out = encode(**{k: tf.constant(v) for k, v in longer.items()})
    assert out["codes"].shape == (5, 20)
    np.testing.assert_array_equal(out["codes"].numpy(), codes_fn(longer))


def test_images_and_a_nested_model_with_its_decoder(tmp_path):
    encoder, inputs_fn, codes_fn = conv_model()
    images = keras.Input(shape=(28, 28, 1), name="images")
    one_hot_in = keras.Input(shape=(16, 8))
    decoder = keras.Model(
        one_hot_in, keras.layers.Dense(3)(keras.layers.Flatten()(one_hot_in)), name="decoder"
    )
    # The whole model calls the encoder (a nested model) then the decoder.
    inner = keras.Model(encoder.input, encoder.get_layer("codes").output, name="encoder")
    model = keras.Model(images, decoder(inner(images)))
    x = inputs_fn(48)
    with pytest.raises(ExportError, match=r"no layer 'nope'; its codes layers are encoder/codes"):
        export_model(model, tmp_path, "conv", x, codes_layer="nope", decoder=decoder)
    path = export_model(
        model, tmp_path, "conv", x, codes_layer="encoder/codes", decoder=decoder,
        verify_with_cli=False,
    )  # fmt: skip
    loaded = tf.saved_model.load(str(path))
    assert set(loaded.signatures) == {"serving_default", "encode", "predict", "decode"}
    assert _signature_inputs(loaded.signatures["encode"]) == {
        "images": ([None, 28, 28, 1], "float32")
    }
    out = loaded.signatures["encode"](images=tf.constant(x))
    np.testing.assert_array_equal(out["codes"].numpy(), codes_fn(x))
    assert _signature_inputs(loaded.signatures["decode"]) == {"one_hot": ([None, 16, 8], "float32")}
    decoded = loaded.signatures["decode"](one_hot=out["one_hot"])["output_0"].numpy()
    np.testing.assert_allclose(
        decoded, decoder.predict(out["one_hot"].numpy(), verbose=0), atol=1e-5
    )
    contract = _contract(path)["contract"]
    assert contract["codes_layer"] == "encoder/codes"
    assert contract["decode"]["inputs"] == {"one_hot": {"shape": [-1, 16, 8], "dtype": "float32"}}


def test_a_subclassed_model_with_the_gumbel_layer_inside_a_layer(tmp_path):
    model, inputs_fn, codes_fn = subclassed_model()
    x = inputs_fn(40)
    path = export_model(model, tmp_path, "sub", x, verify_with_cli=False)
    loaded = tf.saved_model.load(str(path))
    assert _signature_inputs(loaded.signatures["encode"]) == {"inputs": ([None, 10], "float32")}
    out = loaded.signatures["encode"](inputs=tf.constant(x))
    np.testing.assert_array_equal(out["codes"].numpy(), codes_fn(x))
    bits = out["codes"].numpy()
    np.testing.assert_array_equal(out["one_hot"].numpy(), np.stack([1 - bits, bits], -1))
    # Keras makes layer names unique within a process: the test reads the given one.
    assert _contract(path)["contract"]["codes_layer"] == f"{model.bottleneck.name}/bits"


def test_a_sequential_model_with_the_class_axis_first(tmp_path):
    model = keras.Sequential(
        [
            keras.Input(shape=(6,)),
            keras.layers.Dense(15),
            keras.layers.Reshape((5, 3)),
            kg.GumbelSoftmax(axis=1, name="codes"),  # 5 classes along axis 1
            keras.layers.Flatten(),
            keras.layers.Dense(2),
        ]
    )
    x = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
    path = export_model(model, tmp_path, "seq", x, verify_with_cli=False)
    out = tf.saved_model.load(str(path)).signatures["encode"](inputs=tf.constant(x))
    logits = keras.Model(model.inputs[0], model.layers[1].output)(x).numpy()
    assert out["codes"].shape == (16, 3) and out["one_hot"].shape == (16, 3, 5)
    np.testing.assert_array_equal(out["codes"].numpy(), logits.argmax(1))


def test_a_top_k_layer_exports_the_indices_of_its_k_largest_logits(tmp_path):
    inputs = keras.Input(shape=(6,))
    logits = keras.layers.Dense(12, name="scores")(inputs)
    picked = kg.GumbelTopK(k=3, hard=True, name="top3")(logits)
    model = keras.Model(inputs, keras.layers.Dense(2)(picked))
    x = np.random.default_rng(1).normal(size=(32, 6)).astype("float32")
    path = export_model(model, tmp_path, "topk", x, verify_with_cli=False)
    out = tf.saved_model.load(str(path)).signatures["encode"](inputs=tf.constant(x))
    scores = keras.Model(inputs, logits)(x).numpy()
    # The k indices in decreasing order of logit, and their k-hot.
    expected = np.argsort(-scores, axis=-1)[:, :3]
    assert out["codes"].dtype == tf.int64 and out["codes"].shape == (32, 3)
    np.testing.assert_array_equal(out["codes"].numpy(), expected)
    k_hot = np.zeros_like(scores)
    np.put_along_axis(k_hot, expected, 1.0, axis=-1)
    np.testing.assert_array_equal(out["one_hot"].numpy(), k_hot)


def test_a_concrete_select_layer_exports_its_selected_features(tmp_path):
    select = kg.ConcreteSelect(4, name="select")
    model = keras.Sequential([keras.Input(shape=(10,)), select, keras.layers.Dense(10)])
    x = np.random.default_rng(2).normal(size=(16, 10)).astype("float32")
    path = export_model(model, tmp_path, "select", x, verify_with_cli=False)
    out = tf.saved_model.load(str(path)).signatures["encode"](inputs=tf.constant(x))
    chosen = np.asarray(select.selected_indices())
    assert out["codes"].dtype == tf.int64 and out["codes"].shape == (16, 4)
    np.testing.assert_array_equal(out["codes"].numpy(), np.tile(chosen, (16, 1)))
    # At inference the layer passes exactly the selected features on.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(select(x)), x[:, chosen])


def test_several_gumbel_layers_need_a_choice(tmp_path):
    inputs = keras.Input(shape=(8,), name="x")
    a = kg.GumbelSoftmax(hard=True, name="categories")(
        keras.layers.Reshape((2, 4))(keras.layers.Dense(8, name="dense")(inputs))
    )
    b = kg.GumbelSigmoid(hard=True, name="bits")(keras.layers.Dense(3, name="log_odds")(inputs))
    model = keras.Model(inputs, [keras.layers.Flatten()(a), b])
    x = np.random.default_rng(1).normal(size=(8, 8)).astype("float32")
    listed = r"categories \(GumbelSoftmax\), bits \(GumbelSigmoid\); pass codes_layer="
    with pytest.raises(ExportError, match="has 2 layers with discrete codes: " + listed):
        export_model(model, tmp_path, "two", x)
    _nothing_published(tmp_path, "two")
    with pytest.raises(ExportError, match=r"layer 'dense' \(Dense\) has no discrete codes"):
        export_model(model, tmp_path, "two", x, codes_layer=model.get_layer("dense"))
    _nothing_published(tmp_path, "two")
    path = export_model(model, tmp_path, "two", x, codes_layer="bits", verify_with_cli=False)
    loaded = tf.saved_model.load(str(path))
    out = loaded.signatures["encode"](x=tf.constant(x))
    bits = keras.Model(inputs, model.get_layer("log_odds").output)(x).numpy() > 0
    np.testing.assert_array_equal(out["codes"].numpy(), bits.astype("int64"))
    predicted = loaded.signatures["predict"](x=tf.constant(x))
    assert sorted(predicted) == ["output_0", "output_1"]


def test_a_model_without_a_gumbel_layer_publishes_nothing(tmp_path):
    inputs = keras.Input(shape=(4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs), name="plain")
    with pytest.raises(ExportError, match="model 'plain' has no layer with discrete codes"):
        export_model(model, tmp_path, "plain", np.zeros((2, 4), "float32"))
    _nothing_published(tmp_path, "plain")


def test_sample_inputs_that_do_not_fit_publish_nothing(tmp_path):
    model, inputs_fn, _ = conv_model()
    flat = inputs_fn(4).reshape(4, 784)
    message = r"input 'images' takes shape \(None, 28, 28, 1\), received \(4, 784\)"
    with pytest.raises(ExportError, match="sample_inputs do not fit the model: " + message):
        export_model(model, tmp_path, "conv", flat)
    tokens, token_inputs, _ = token_model()
    x = token_inputs(4)
    with pytest.raises(ExportError, match=r"its inputs are \['tokens', 'context'\]"):
        export_model(tokens, tmp_path, "tokens", {"tokens": x["tokens"]})
    with pytest.raises(ExportError, match="input 'tokens' is int32, received float64 values"):
        export_model(tokens, tmp_path, "tokens", {**x, "tokens": x["tokens"] * 1.0})
    sub, sub_inputs, _ = subclassed_model()
    expected = "sample_inputs do not fit the model: ValueError: .*expected axis -1 of input shape"
    with pytest.raises(ExportError, match=expected):
        export_model(sub, tmp_path, "sub", np.zeros((4, 7), "float32"))
    assert list(tmp_path.iterdir()) == []


class DynamicLogits(keras.Model):
    """Logits reshaped with a size only known at run time."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(8)
        self.codes = kg.GumbelSoftmax(name="codes")

    def call(self, x):
        h = self.dense(x)
        return self.codes(tf.reshape(h, tf.stack([tf.shape(h)[0], 2, -1])))


def test_an_unknown_class_axis_publishes_nothing(tmp_path):
    model = DynamicLogits()
    x = np.ones((3, 5), "float32")
    model(x)
    with pytest.raises(ExportError, match="codes of layer 'codes' .*class axis must have a known"):
        export_model(model, tmp_path, "dynamic", x)
    _nothing_published(tmp_path, "dynamic")


def test_a_layer_called_twice_is_ambiguous(tmp_path):
    inputs = keras.Input(shape=(2, 3))
    shared = kg.GumbelSoftmax(name="shared")
    model = keras.Model(inputs, keras.layers.Add()([shared(inputs), shared(-inputs)]))
    with pytest.raises(ExportError, match="layer 'shared' is called 2 times in one forward pass"):
        export_model(model, tmp_path, "twice", np.ones((2, 2, 3), "float32"))
    _nothing_published(tmp_path, "twice")


def test_random_ops_in_a_signature_fail_verification(tmp_path):
    # A second Gumbel layer that samples at inference makes `predict`
    # random; `encode` stops at the codes layer and stays deterministic.
    inputs = keras.Input(shape=(4,))
    codes = kg.GumbelSoftmax(hard=True, name="codes")(keras.layers.Dense(4)(inputs))
    noisy = kg.GumbelSoftmax(sample_at_inference=True, name="noisy")(codes)
    model = keras.Model(inputs, noisy)
    with pytest.raises(ExportError, match=r"signature 'predict' contains ops .*StatelessRandom"):
        export_model(model, tmp_path, "noisy", np.ones((2, 4), "float32"), codes_layer="codes")
    assert list((tmp_path / "noisy").iterdir()) == []


def test_a_model_trained_on_jax_exports_with_the_jax_codes(tmp_path):
    model_path, inputs, jax_codes = train_on_jax(tmp_path / "jax")
    path = export_keras_file(
        model_path, tmp_path / "models", sample_inputs=inputs[:64], verify_with_cli=False
    )
    assert path == tmp_path / "models" / "jax_model" / "1"
    encode = tf.saved_model.load(str(path)).signatures["encode"]
    assert _signature_inputs(encode) == {"pixels": ([None, 784], "float32")}
    np.testing.assert_array_equal(encode(pixels=tf.constant(inputs))["codes"].numpy(), jax_codes)
