"""ServingClient: retries on UNAVAILABLE only, error fields, pinned versions."""

import socket
import threading
import time

import grpc
import numpy as np
import pytest
from serving_helpers import MODEL_NAME

from keras_gumbel.serving import ServingClient
from keras_gumbel.serving import ServingError
from keras_gumbel.serving.fixture_model import D

pytestmark = pytest.mark.serving


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unavailable_is_retried_then_raised():
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    client = ServingClient(address, MODEL_NAME, retries=3, backoff=0.1, timeout=5)
    start = time.monotonic()
    with pytest.raises(ServingError) as info:
        client.status()
    elapsed = time.monotonic() - start
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert "(after 4 attempts)" in str(info.value)
    assert address in str(info.value) and "GetModelStatus" in str(info.value)
    assert elapsed >= 0.1 + 0.2 + 0.4  # the three backoffs were slept
    client.close()


def test_other_errors_are_not_retried(shared_server):
    client = ServingClient(shared_server.address, "nope", retries=5, backoff=10.0)
    start = time.monotonic()
    with pytest.raises(ServingError) as info:
        client.encode(np.zeros((1, D), np.float32))
    assert time.monotonic() - start < 10.0  # no backoff was slept
    error = info.value
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert error.details == "Servable not found for request: Latest(nope)"
    assert "attempts" not in str(error)
    assert str(error).startswith("Predict for model 'nope' at ")
    client.close()


def test_retries_bridge_a_server_that_starts_late(make_base, start_server):
    port = _free_port()
    result = {}

    def call():
        with ServingClient(f"127.0.0.1:{port}", MODEL_NAME, retries=4, backoff=0.2) as c:
            try:
                result["status"] = c.status()
            except ServingError as e:
                result["error"] = e

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.3)
    start_server(make_base(versions=(1,)), port=port)
    thread.join(60)
    assert result.get("status", result.get("error"))[0]["state"] == "AVAILABLE"


def test_pinned_version_and_label(make_base, start_server):
    base = make_base(versions=(1, 2))
    server = start_server(base, version_policy="all", version_labels={"stable": 1})
    x = np.random.default_rng(0).random((3, D), dtype=np.float32)
    latest = ServingClient(server.address, MODEL_NAME)
    pinned = ServingClient(server.address, MODEL_NAME, version=1)
    labelled = ServingClient(server.address, MODEL_NAME, version_label="stable")
    np.testing.assert_array_equal(pinned.encode(x), labelled.encode(x))
    assert not np.array_equal(pinned.encode(x), latest.encode(x))
    missing = ServingClient(server.address, MODEL_NAME, version=5)
    with pytest.raises(ServingError, match=r"Specific\(gumbel, 5\)"):
        missing.decode(np.zeros((1, 20), np.int64))
    for client in (latest, pinned, labelled, missing):
        client.close()
