"""TF Serving's error table: each status code and message, then a good request."""

import grpc
import numpy as np
import pytest
from serving_helpers import MODEL_NAME
from serving_helpers import predict_request
from serving_helpers import rpc_error
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import regression_pb2

from keras_gumbel.serving.fixture_model import D
from keras_gumbel.serving.fixture_model import N

pytestmark = pytest.mark.serving

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
X = np.zeros((2, D), np.float32)


def _spec(**kwargs):
    return model_pb2.ModelSpec(**kwargs)


def _bad_tensor():
    # Three bytes cannot hold one float32.
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"abc")
    proto.tensor_shape.dim.add(size=1)
    request = predict_request({})
    request.inputs["images"].CopyFrom(proto)
    return request


def _no_model_spec():
    request = predict_request({"images": X})
    request.ClearField("model_spec")
    return request


PREDICT_ERRORS = {
    "missing model_spec": (_no_model_spec, INVALID, "Missing ModelSpec"),
    "empty name": (
        lambda: predict_request({"images": X}, name=""),
        INVALID,
        "ModelSpec has no name specified.",
    ),
    "unknown model": (
        lambda: predict_request({"images": X}, name="nope"),
        NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    ),
    "unknown version": (
        lambda: predict_request({"images": X}, version=7),
        NOT_FOUND,
        f"Servable not found for request: Specific({MODEL_NAME}, 7)",
    ),
    "unknown label": (
        lambda: predict_request({"images": X}, version_label="nope"),
        INVALID,
        "Unrecognized servable version label: nope",
    ),
    "label of a version not loaded": (
        lambda: predict_request({"images": X}, version_label="future"),
        NOT_FOUND,
        f"Servable not found for request: Specific({MODEL_NAME}, 9)",
    ),
    "unknown signature": (
        lambda: predict_request({"images": X}, signature="nope"),
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "nope" not found.',
    ),
    "extra input": (
        lambda: predict_request({"images": X, "extra": X}, signature="encode"),
        INVALID,
        "input size does not match signature: 2!=1 len({extra,images}) != "
        "len({images}). Sent extra: {extra}. Missing but required: {}.",
    ),
    "no input": (
        lambda: predict_request({}, signature="encode"),
        INVALID,
        "input size does not match signature: 0!=1 len({}) != len({images}). "
        "Sent extra: {}. Missing but required: {images}.",
    ),
    "tensor parsing error": (_bad_tensor, INVALID, "tensor parsing error: images"),
    "unknown output_filter": (
        lambda: predict_request({"images": X}, output_filter=["nope"]),
        INVALID,
        "output tensor alias not found in signature: nope Outputs expected to be "
        "in the set {codes,one_hot}.",
    ),
    "duplicate output_filter": (
        lambda: predict_request({"images": X}, output_filter=["codes", "codes"]),
        INVALID,
        "duplicate output tensor alias: codes",
    ),
    "string for float": (
        lambda: predict_request({"images": np.array([[b"a"]])}),
        INVALID,
        "Expects arg[0] to be float but string is provided",
    ),
    "double for float": (
        lambda: predict_request({"images": X.astype(np.float64)}),
        INVALID,
        "Expects arg[0] to be float but double is provided",
    ),
    "int32 for int64": (
        lambda: predict_request({"codes": np.zeros((1, N), np.int32)}, signature="decode"),
        INVALID,
        "Expects arg[0] to be int64 but int32 is provided",
    ),
}


def _check_still_serving(stub):
    response = stub.prediction.Predict(predict_request({"images": X}), timeout=30)
    assert response.model_spec.version.value == 1
    assert len(response.outputs["codes"].int64_val) == 2 * N


@pytest.mark.parametrize("case", sorted(PREDICT_ERRORS))
def test_predict_error(case, shared_server, stubs):
    make_request, code, details = PREDICT_ERRORS[case]
    stub = stubs(shared_server.address)
    error = rpc_error(stub.prediction.Predict, make_request())
    assert (error.code(), error.details()) == (code, details)
    _check_still_serving(stub)


def test_renamed_input_names_feed_and_request_keys(shared_server, stubs):
    stub = stubs(shared_server.address)
    error = rpc_error(stub.prediction.Predict, predict_request({"pixels": X}, signature="encode"))
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=_spec(name=MODEL_NAME), metadata_field=["signature_def"]
    )
    signatures = get_model_metadata_pb2.SignatureDefMap()
    stub.prediction.GetModelMetadata(request, timeout=30).metadata["signature_def"].Unpack(
        signatures
    )
    feed = signatures.signature_def["encode"].inputs["images"].name
    assert error.code() == INVALID
    assert error.details() == (
        f"Signature input alias: images(feed name: {feed}) not found in request "
        "and no default value provided. Inputs expected to be in the request "
        "{pixels}, or default input alias set: "
    )
    _check_still_serving(stub)


def test_wrong_shape_is_left_to_the_op(shared_server, stubs):
    stub = stubs(shared_server.address)
    error = rpc_error(
        stub.prediction.Predict,
        predict_request({"images": np.zeros((3, 5), np.float32)}),
    )
    assert error.code() == INVALID
    assert error.details().startswith(f"Matrix size-incompatible: In[0]: [3,5], In[1]: [{D},")
    _check_still_serving(stub)


def test_oversized_request_is_resource_exhausted(shared_server, stubs):
    stub = stubs(shared_server.address)
    big = np.zeros((1400, D), np.float32)  # 4.4 MB > the 4 MiB limit
    error = rpc_error(stub.prediction.Predict, predict_request({"images": big}))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in error.details()
    _check_still_serving(stub)


def test_long_messages_are_truncated_like_tf_serving(shared_server, stubs):
    stub = stubs(shared_server.address)
    name = "m" * 2000
    error = rpc_error(stub.prediction.Predict, predict_request({"images": X}, name=name))
    full = f"Servable not found for request: Latest({name})"
    assert error.details() == full[:1024] + "...TRUNCATED"
    _check_still_serving(stub)


METADATA_ERRORS = {
    "no field": (
        [],
        _spec(name=MODEL_NAME),
        INVALID,
        "GetModelMetadataRequest must specify at least one metadata_field",
    ),
    "unsupported field": (
        ["signature_def", "nope"],
        _spec(name=MODEL_NAME),
        INVALID,
        "Metadata field nope is not supported",
    ),
    "missing model_spec": (["signature_def"], None, INVALID, "Missing ModelSpec"),
    "unknown model": (
        ["signature_def"],
        _spec(name="nope"),
        NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    ),
    "empty name": (
        ["signature_def"],
        _spec(name=""),
        INVALID,
        "ModelSpec has no name specified.",
    ),
}


@pytest.mark.parametrize("case", sorted(METADATA_ERRORS))
def test_metadata_error(case, shared_server, stubs):
    fields, spec, code, details = METADATA_ERRORS[case]
    stub = stubs(shared_server.address)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=fields)
    if spec is not None:
        request.model_spec.CopyFrom(spec)
    error = rpc_error(stub.prediction.GetModelMetadata, request)
    assert (error.code(), error.details()) == (code, details)
    _check_still_serving(stub)


def _status_request(name=MODEL_NAME, version=None, label=None):
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=_spec(name=name))
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    return request


STATUS_ERRORS = {
    "unknown model": (
        lambda: _status_request("nope"),
        NOT_FOUND,
        "Could not find any versions of model nope",
    ),
    "unknown version": (
        lambda: _status_request(version=7),
        NOT_FOUND,
        f"Could not find version 7 of model {MODEL_NAME}",
    ),
    "unknown label": (
        lambda: _status_request(label="nope"),
        INVALID,
        "Unrecognized servable version label: nope",
    ),
    "missing model_spec": (
        get_model_status_pb2.GetModelStatusRequest,
        INVALID,
        "Missing ModelSpec",
    ),
}


@pytest.mark.parametrize("case", sorted(STATUS_ERRORS))
def test_status_error(case, shared_server, stubs):
    request_fn, code, details = STATUS_ERRORS[case]
    stub = stubs(shared_server.address)
    error = rpc_error(stub.model.GetModelStatus, request_fn())
    assert (error.code(), error.details()) == (code, details)
    _check_still_serving(stub)


def test_classify_regress_multi_inference_are_unimplemented(shared_server, stubs):
    stub = stubs(shared_server.address)
    spec = _spec(name=MODEL_NAME)
    for call, request in [
        (
            stub.prediction.Classify,
            classification_pb2.ClassificationRequest(model_spec=spec),
        ),
        (stub.prediction.Regress, regression_pb2.RegressionRequest(model_spec=spec)),
    ]:
        assert rpc_error(call, request).code() == grpc.StatusCode.UNIMPLEMENTED
    _check_still_serving(stub)


def test_bad_requests_from_many_threads_never_break_the_server(shared_server, stubs):
    import concurrent.futures

    stub = stubs(shared_server.address)
    makers = [make for make, _, _ in PREDICT_ERRORS.values()] * 4

    def send(make):
        try:
            stub.prediction.Predict(make(), timeout=30)
        except grpc.RpcError as e:
            return e.code()
        return grpc.StatusCode.OK

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(send, makers))
    assert grpc.StatusCode.OK not in codes
    assert grpc.StatusCode.INTERNAL not in codes and grpc.StatusCode.UNKNOWN not in codes
    _check_still_serving(stub)
