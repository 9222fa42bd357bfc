"""TF Serving's REST API: status, metadata, predict (row and columnar), errors."""

import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from serving_helpers import MODEL_NAME

from keras_gumbel.serving.fixture_model import D

pytestmark = pytest.mark.serving


def _call(server, path, body=None, method=None):
    """(HTTP status, parsed JSON body) of a request to the server's REST port."""
    url = f"http://127.0.0.1:{server.rest_port}{path}"
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_status(shared_server):
    expected = {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert _call(shared_server, f"/v1/models/{MODEL_NAME}") == (200, expected)
    assert _call(shared_server, f"/v1/models/{MODEL_NAME}/versions/1") == (
        200,
        expected,
    )
    assert _call(shared_server, f"/v1/models/{MODEL_NAME}/labels/stable") == (
        200,
        expected,
    )


def test_metadata(shared_server):
    status, body = _call(shared_server, f"/v1/models/{MODEL_NAME}/metadata")
    assert status == 200
    assert body["model_spec"] == {
        "name": MODEL_NAME,
        "signature_name": "",
        "version": "1",
    }
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert "__saved_model_init_op" in signatures
    images = signatures["encode"]["inputs"]["images"]
    assert images["dtype"] == "DT_FLOAT"
    assert images["tensor_shape"]["dim"] == [
        {"size": "-1", "name": ""},
        {"size": str(D), "name": ""},
    ]
    assert signatures["encode"]["outputs"]["codes"]["dtype"] == "DT_INT64"


def test_predict_row_and_columnar_formats(shared_server, reference, images):
    batch = images[:3]
    expected = reference[1].signatures["encode"](images=tf.constant(batch))
    codes = expected["codes"].numpy().tolist()
    one_hot = expected["one_hot"].numpy()
    path = f"/v1/models/{MODEL_NAME}:predict"

    status, body = _call(shared_server, path, {"instances": batch.tolist()})
    assert status == 200
    assert [row["codes"] for row in body["predictions"]] == codes
    np.testing.assert_array_equal([row["one_hot"] for row in body["predictions"]], one_hot)

    status, body = _call(shared_server, path, {"inputs": {"images": batch.tolist()}})
    assert status == 200 and body["outputs"]["codes"] == codes

    # Single output: the name is dropped. Objects per instance also work.
    decode = {
        "signature_name": "decode",
        "instances": [{"codes": row} for row in codes],
    }
    status, body = _call(shared_server, f"/v1/models/{MODEL_NAME}/versions/1:predict", decode)
    means = reference[1].signatures["decode"](codes=tf.constant(codes, tf.int64))["means"]
    assert status == 200
    np.testing.assert_allclose(body["predictions"], means.numpy(), rtol=1e-6)
    status, body = _call(
        shared_server,
        f"/v1/models/{MODEL_NAME}/labels/stable:predict",
        {"signature_name": "decode", "inputs": codes},
    )
    assert status == 200 and np.shape(body["outputs"]) == (3, D)


PREDICT = f"/v1/models/{MODEL_NAME}:predict"
ROW = {"instances": [[0.0] * D]}
ERRORS = {
    "unknown model": (
        "/v1/models/nope:predict",
        ROW,
        404,
        "Servable not found for request: Latest(nope)",
    ),
    "unknown version": (
        f"/v1/models/{MODEL_NAME}/versions/7:predict",
        ROW,
        404,
        f"Servable not found for request: Specific({MODEL_NAME}, 7)",
    ),
    "unknown label": (
        f"/v1/models/{MODEL_NAME}/labels/nope:predict",
        ROW,
        400,
        "Unrecognized servable version label: nope",
    ),
    "wrong shape": (
        PREDICT,
        {"instances": [[0.0] * 5]},
        400,
        "Matrix size-incompatible",
    ),
    "strings for floats": (
        PREDICT,
        {"instances": [["a"] * D]},
        400,
        "Could not convert",
    ),
    "unknown signature": (
        PREDICT,
        {"signature_name": "nope", "instances": [[0.0]]},
        400,
        'Serving signature name: "nope" not found',
    ),
    "no inputs": (PREDICT, {}, 400, "Missing 'inputs' or 'instances' key"),
    "both formats": (
        PREDICT,
        {"inputs": [], "instances": []},
        400,
        "Not formatted correctly",
    ),
    "not json": (PREDICT, b"{not json", 400, "JSON Parse error"),
    "classify": (
        f"/v1/models/{MODEL_NAME}:classify",
        {"examples": []},
        501,
        "classify is not implemented",
    ),
    "status of unknown model": (
        "/v1/models/nope",
        None,
        404,
        "Could not find any versions of model nope",
    ),
    "status of unknown version": (
        f"/v1/models/{MODEL_NAME}/versions/7",
        None,
        404,
        f"Could not find version 7 of model {MODEL_NAME}",
    ),
    "metadata of unknown model": (
        "/v1/models/nope/metadata",
        None,
        404,
        "Servable not found for request: Latest(nope)",
    ),
    "malformed": ("/v1/other", None, 400, "Malformed request: GET /v1/other"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_errors_are_json_with_tf_serving_http_status(shared_server, case):
    path, body, http_status, prefix = ERRORS[case]
    status, payload = _call(shared_server, path, body)
    assert status == http_status
    assert set(payload) == {"error"} and payload["error"].startswith(prefix)
    assert _call(shared_server, f"/v1/models/{MODEL_NAME}")[0] == 200
