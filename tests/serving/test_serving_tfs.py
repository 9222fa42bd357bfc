"""Opt-in checks against a real TF Serving (`tensorflow_model_server`).

Skipped unless `TFS_ADDRESS` (host:port of its gRPC endpoint) is set. The
served model, named by `TFS_MODEL` (default "model"), must be a keras-gumbel
export (signatures `encode` and `decode`). If `TFS_MODEL_BASE_PATH` is also
set to the base path TF Serving serves (readable from here), the same
requests go to this package's server on that path and the answers are
compared. Example:

    docker run -d -p 8500:8500 -v $PWD/exported/vae:/models/model \\
        tensorflow/serving:2.21.0
    TFS_ADDRESS=localhost:8500 TFS_MODEL_BASE_PATH=$PWD/exported/vae \\
        pytest -m serving tests/serving/test_serving_tfs.py
"""

import os

import grpc
import numpy as np
import pytest
from serving_helpers import Stubs
from serving_helpers import predict_request
from serving_helpers import rpc_error
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import model_pb2

from keras_gumbel.serving import ServingClient
from keras_gumbel.serving import serve

ADDRESS = os.environ.get("TFS_ADDRESS")
MODEL = os.environ.get("TFS_MODEL", "model")
BASE_PATH = os.environ.get("TFS_MODEL_BASE_PATH")

pytestmark = [
    pytest.mark.serving,
    pytest.mark.skipif(not ADDRESS, reason="set TFS_ADDRESS=host:port of a TF Serving"),
]


@pytest.fixture(scope="module")
def client():
    with ServingClient(ADDRESS, MODEL, timeout=60) as made:
        yield made


@pytest.fixture(scope="module")
def input_size(client):
    images = client.metadata()["encode"].inputs["images"]
    assert images.dtype == types_pb2.DT_FLOAT
    return images.tensor_shape.dim[-1].size


def test_metadata_and_status(client):
    signatures = client.metadata()
    assert {"encode", "decode", "serving_default", "__saved_model_init_op"} <= set(signatures)
    assert signatures["encode"].outputs["codes"].dtype == types_pb2.DT_INT64
    assert signatures["encode"].inputs["images"].tensor_shape.dim[0].size == -1
    assert any(s["state"] == "AVAILABLE" for s in client.status())


def test_encode_decode_round_trip(client, input_size):
    images = np.random.default_rng(0).random((5, input_size), dtype=np.float32)
    codes = client.encode(images)
    assert codes.dtype == np.int64 and codes.shape[0] == 5
    means = client.decode(codes)
    assert means.dtype == np.float32 and means.shape == (5, input_size)


def test_typed_fields_and_model_spec(input_size):
    stub = Stubs(ADDRESS)
    request = predict_request({"images": np.zeros((2, input_size), np.float32)}, name=MODEL)
    response = stub.prediction.Predict(request, timeout=60)
    assert response.model_spec.signature_name == "serving_default"
    assert response.model_spec.version.value > 0
    codes = response.outputs["codes"]
    assert codes.tensor_content == b"" and len(codes.int64_val) > 0
    stub.channel.close()


def test_error_codes(input_size):
    stub = Stubs(ADDRESS)
    images = {"images": np.zeros((1, input_size), np.float32)}
    error = rpc_error(stub.prediction.Predict, predict_request(images, name="nope"), 60)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "Servable not found for request: Latest(nope)" in error.details()
    error = rpc_error(
        stub.prediction.Predict,
        predict_request(images, name=MODEL, signature="nope"),
        60,
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    bad = {"images": np.zeros((1, input_size), np.float64)}
    error = rpc_error(stub.prediction.Predict, predict_request(bad, name=MODEL), 60)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "to be float but double is provided" in error.details()
    stub.channel.close()


@pytest.mark.skipif(not BASE_PATH, reason="set TFS_MODEL_BASE_PATH to compare")
def test_same_answers_as_this_server(client, input_size):
    server = serve(BASE_PATH, MODEL, port=0, poll_seconds=0)
    try:
        with ServingClient(server.address, MODEL) as ours:
            images = np.random.default_rng(1).random((8, input_size), dtype=np.float32)
            np.testing.assert_array_equal(ours.encode(images), client.encode(images))
            assert set(ours.metadata()) == set(client.metadata())
        theirs_stub, ours_stub = Stubs(ADDRESS), Stubs(server.address)
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=model_pb2.ModelSpec(name=MODEL), metadata_field=["signature_def"]
        )
        answers = [
            stub.prediction.GetModelMetadata(request, timeout=60)
            for stub in (theirs_stub, ours_stub)
        ]
        assert answers[0].model_spec == answers[1].model_spec
        maps = [get_model_metadata_pb2.SignatureDefMap() for _ in answers]
        for answer, unpacked in zip(answers, maps, strict=True):
            assert answer.metadata["signature_def"].Unpack(unpacked)
        assert maps[0] == maps[1]
        theirs_stub.channel.close()
        ours_stub.channel.close()
    finally:
        server.stop(grace=0)
