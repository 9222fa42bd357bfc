"""GetModelMetadata and GetModelStatus, raw and through the client."""

import pytest
from serving_helpers import MODEL_NAME
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_pb2

from keras_gumbel.serving import ServingClient
from keras_gumbel.serving.fixture_model import D
from keras_gumbel.serving.fixture_model import K
from keras_gumbel.serving.fixture_model import N

pytestmark = pytest.mark.serving

AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE


def _dims(info):
    return [d.size for d in info.tensor_shape.dim]


def test_metadata_is_the_on_disk_signature_def_map(shared_server, stubs):
    stub = stubs(shared_server.address)
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=model_pb2.ModelSpec(name=MODEL_NAME, signature_name="ignored"),
        metadata_field=["signature_def"],
    )
    response = stub.prediction.GetModelMetadata(request, timeout=30)
    # name and version only, as TF Serving's get_model_metadata_impl.cc
    assert response.model_spec.name == MODEL_NAME
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == ""
    packed = response.metadata["signature_def"]
    assert packed.type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert packed.Unpack(signatures)
    defs = signatures.signature_def
    assert {
        "__saved_model_init_op",
        "serving_default",
        "encode",
        "encode_probs",
        "decode",
        "reconstruct",
    } <= set(defs)
    assert defs["__saved_model_init_op"].method_name == ""
    assert list(defs["__saved_model_init_op"].outputs) == ["__saved_model_init_op"]

    encode = defs["encode"]
    assert encode.method_name == "tensorflow/serving/predict"
    assert encode.inputs["images"].dtype == types_pb2.DT_FLOAT
    assert _dims(encode.inputs["images"]) == [-1, D]
    assert encode.outputs["codes"].dtype == types_pb2.DT_INT64
    assert _dims(encode.outputs["codes"]) == [-1, N]
    assert encode.outputs["one_hot"].dtype == types_pb2.DT_FLOAT
    assert _dims(encode.outputs["one_hot"]) == [-1, N, K]
    assert _dims(defs["encode_probs"].outputs["probs"]) == [-1, N, K]
    decode = defs["decode"]
    assert decode.inputs["codes"].dtype == types_pb2.DT_INT64
    assert _dims(decode.inputs["codes"]) == [-1, N]
    assert decode.outputs["means"].dtype == types_pb2.DT_FLOAT
    assert _dims(decode.outputs["means"]) == [-1, D]
    assert set(defs["reconstruct"].outputs) == {"means"}
    # Real graph tensor names, as saved.
    assert encode.inputs["images"].name.endswith(":0")


def test_client_metadata_and_status(shared_server):
    with ServingClient(shared_server.address, MODEL_NAME) as client:
        signatures = client.metadata()
        assert "__saved_model_init_op" in signatures
        assert set(signatures["decode"].inputs) == {"codes"}
        assert client.status() == [
            {
                "version": 1,
                "state": "AVAILABLE",
                "error_code": "OK",
                "error_message": "",
            }
        ]
    with ServingClient(shared_server.address, MODEL_NAME, version_label="stable") as c:
        assert [s["version"] for s in c.status()] == [1]


def test_status_reports_available_with_ok_status(shared_server, stubs):
    stub = stubs(shared_server.address)
    request = get_model_status_pb2.GetModelStatusRequest(
        model_spec=model_pb2.ModelSpec(name=MODEL_NAME)
    )
    response = stub.model.GetModelStatus(request, timeout=30)
    (entry,) = response.model_version_status
    assert entry.version == 1 and entry.state == AVAILABLE == 30
    assert entry.HasField("status") and entry.status.error_code == 0
    request.model_spec.version.value = 1
    (entry,) = stub.model.GetModelStatus(request, timeout=30).model_version_status
    assert entry.version == 1 and entry.state == AVAILABLE
