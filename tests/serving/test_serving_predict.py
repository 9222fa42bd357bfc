"""Predict over loopback: exact round trips, batching, wire format, model_spec."""

import importlib.util
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from serving_helpers import MODEL_NAME
from serving_helpers import predict_request

from keras_gumbel.serving import ServingClient
from keras_gumbel.serving.fixture_model import D
from keras_gumbel.serving.fixture_model import K
from keras_gumbel.serving.fixture_model import N

pytestmark = pytest.mark.serving


@pytest.fixture(scope="module")
def client(shared_server):
    with ServingClient(shared_server.address, MODEL_NAME, batch_size=10) as made:
        yield made


def test_encode_equals_in_process_signature(client, reference, images):
    expected = reference[1].signatures["encode"](images=tf.constant(images))
    codes = client.encode(images)
    assert codes.dtype == np.int64 and codes.shape == (len(images), N)
    np.testing.assert_array_equal(codes, expected["codes"].numpy())
    # Images of any trailing shape are flattened to [batch, D].
    np.testing.assert_array_equal(client.encode(images.reshape(-1, 28, 28)), codes)


def test_decode_equals_in_process_signature(client, reference, images):
    codes = client.encode(images)
    expected = reference[1].signatures["decode"](codes=tf.constant(codes))["means"]
    means = client.decode(codes)
    assert means.dtype == np.float32 and means.shape == (len(images), D)
    np.testing.assert_array_equal(means, expected.numpy())


def test_large_input_is_split_into_batches(client, reference):
    # batch_size=10: 95 rows go as 10 requests and come back in order.
    many = np.random.default_rng(3).random((95, D), dtype=np.float32)
    expected = reference[1].signatures["encode"](images=tf.constant(many))["codes"]
    np.testing.assert_array_equal(client.encode(many), expected.numpy())
    means = client.decode(expected.numpy())
    assert means.shape == (95, D)


def test_every_signature_matches_in_process(client, reference, images):
    for signature, inputs in [
        ("encode", {"images": images}),
        ("serving_default", {"images": images}),
        ("encode_probs", {"images": images}),
        ("reconstruct", {"images": images}),
        ("decode", {"codes": np.ones((3, N), np.int64)}),
    ]:
        expected = reference[1].signatures[signature](
            **{k: tf.constant(v) for k, v in inputs.items()}
        )
        outputs = client.predict(inputs, signature=signature)
        assert set(outputs) == set(expected)
        for alias, value in expected.items():
            np.testing.assert_array_equal(outputs[alias], value.numpy(), err_msg=alias)


def test_default_signature_and_output_filter(client, images):
    outputs = client.predict({"images": images[:4]})
    assert set(outputs) == {"codes", "one_hot"}
    assert outputs["one_hot"].shape == (4, N, K)
    np.testing.assert_array_equal(outputs["one_hot"].argmax(-1), outputs["codes"])
    only = client.predict({"images": images[:4]}, output_filter=["one_hot"])
    assert set(only) == {"one_hot"}


def test_response_uses_typed_fields_and_resolved_model_spec(shared_server, stubs, images):
    stub = stubs(shared_server.address)
    response = stub.prediction.Predict(predict_request({"images": images[:3]}), timeout=30)
    codes, one_hot = response.outputs["codes"], response.outputs["one_hot"]
    assert codes.tensor_content == b"" and len(codes.int64_val) == 3 * N
    assert codes.dtype == tf.int64.as_datatype_enum
    assert [d.size for d in codes.tensor_shape.dim] == [3, N]
    assert one_hot.tensor_content == b"" and len(one_hot.float_val) == 3 * N * K
    np.testing.assert_array_equal(tf.make_ndarray(codes), np.array(codes.int64_val).reshape(3, N))
    # An empty signature_name resolves to serving_default, the version to 1.
    assert response.model_spec.name == MODEL_NAME
    assert response.model_spec.signature_name == "serving_default"
    assert response.model_spec.version.value == 1
    labelled = stub.prediction.Predict(
        predict_request(
            {"codes": np.zeros((1, N), np.int64)},
            signature="decode",
            version_label="stable",
        ),
        timeout=30,
    )
    assert labelled.model_spec.version.value == 1
    assert labelled.model_spec.signature_name == "decode"


def test_empty_batch_round_trips(client):
    codes = client.encode(np.zeros((0, D), np.float32))
    assert codes.shape == (0, N) and codes.dtype == np.int64


def test_example_client_script(shared_server, images, tmp_path, capsys):
    script = pathlib.Path(__file__).parents[2] / "serving" / "example_client.py"
    spec = importlib.util.spec_from_file_location("example_client", script)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    np.save(tmp_path / "images.npy", images[:2].reshape(2, 28, 28))
    out = tmp_path / "means.npy"
    argv = [str(tmp_path / "images.npy"), "--address", shared_server.address]
    argv += ["--model", MODEL_NAME, "--label", "stable", "--decode", str(out)]
    assert example.main(argv) == 0
    printed = capsys.readouterr().out
    assert f"codes: int64 (2, {N})" in printed
    assert np.load(out).shape == (2, D)
    assert example.main(argv[:3] + ["--model", "nope"]) == 1
