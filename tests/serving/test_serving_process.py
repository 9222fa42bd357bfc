"""The server as a process and its transport: SIGTERM, grace, limits, TLS."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
from serving_helpers import MODEL_NAME
from serving_helpers import Stubs
from serving_helpers import predict_request
from serving_helpers import rpc_error

import keras_gumbel
from keras_gumbel.serving import ServingClient
from keras_gumbel.serving import ServingError

pytestmark = pytest.mark.serving

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(keras_gumbel.__file__)))


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def _wait_request(stub, seconds):
    request = predict_request({"seconds": np.float64(seconds)}, signature="wait")
    return stub.prediction.Predict.future(request, timeout=120)


def test_sigterm_finishes_requests_in_flight_then_exits_0(make_base):
    base = make_base(versions=(1,))
    command = [
        sys.executable,
        "-m",
        "keras_gumbel.serving",
        f"--model_base_path={base}",
        f"--model_name={MODEL_NAME}",
        "--port=0",
        "--grace_seconds=30",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("Running gRPC ModelServer at "), process.stderr.read()
        address = line.split()[-2]
        stub = Stubs(address)
        in_flight = _wait_request(stub, 2.0)
        time.sleep(0.7)  # the tiny request has long reached the server
        process.send_signal(signal.SIGTERM)
        response = in_flight.result()
        assert tf_float(response.outputs["elapsed"]) >= 2.0
        assert process.wait(timeout=60) == 0
        error = rpc_error(stub.prediction.Predict, predict_request({"seconds": 0.0}), 10)
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        stub.channel.close()
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=60)


def tf_float(proto):
    assert proto.tensor_content == b""
    return proto.double_val[0]


def test_the_server_module_never_imports_the_models_package():
    code = (
        "import sys, keras_gumbel.serving.server, keras_gumbel.serving.client; "
        "print(sorted(m for m in sys.modules if m.startswith('keras_gumbel.models')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_stop_waits_for_requests_in_flight(make_base, start_server, stubs):
    server = start_server(make_base(versions=(1,)))
    stub = stubs(server.address)
    _wait_request(stub, 0.0).result()  # connected
    in_flight = _wait_request(stub, 1.0)
    time.sleep(0.4)
    server.stop(grace=20)
    assert tf_float(in_flight.result().outputs["elapsed"]) >= 1.0
    assert server.wait(0)


def test_concurrent_rpc_limit_answers_resource_exhausted(make_base, start_server, stubs):
    server = start_server(make_base(versions=(1,)), max_workers=4, max_concurrent_rpcs=2)
    stub = stubs(server.address)
    _wait_request(stub, 0.0).result()  # connected
    busy = [_wait_request(stub, 1.5) for _ in range(2)]
    time.sleep(0.5)
    error = rpc_error(stub.prediction.Predict, predict_request({"seconds": 0.0}, signature="wait"))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert all(tf_float(f.result().outputs["elapsed"]) >= 1.5 for f in busy)
    stub.prediction.Predict(predict_request({"seconds": 0.0}, signature="wait"), timeout=30)


def _self_signed(directory, name):
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert),
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """Self-signed (cert, key) paths for a server and a client, for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    directory = tmp_path_factory.mktemp("tls")
    return _self_signed(directory, "server"), _self_signed(directory, "client")


def test_tls(make_base, start_server, certificates, images):
    (cert, key), _ = certificates
    server = start_server(make_base(versions=(1,)), tls_cert_file=cert, tls_key_file=key)
    with ServingClient(server.address, MODEL_NAME, root_certificates=cert) as client:
        assert client.encode(images[:2]).shape[0] == 2
    with ServingClient(server.address, MODEL_NAME, retries=0) as plain:
        with pytest.raises(ServingError) as info:
            plain.status()
        assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls(make_base, start_server, certificates):
    (cert, key), (client_cert, client_key) = certificates
    server = start_server(
        make_base(versions=(1,)),
        tls_cert_file=cert,
        tls_key_file=key,
        tls_client_ca_file=client_cert,
    )
    with ServingClient(
        server.address,
        MODEL_NAME,
        root_certificates=cert,
        private_key=client_key,
        certificate_chain=client_cert,
    ) as client:
        assert client.status()[0]["state"] == "AVAILABLE"
    with ServingClient(server.address, MODEL_NAME, root_certificates=cert, retries=0) as c:
        with pytest.raises(ServingError) as info:
            c.status()
        assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_busy_port_is_an_error(make_base, start_server):
    base = make_base(versions=(1,))
    server = start_server(base)
    with pytest.raises(OSError, match="Could not bind"):
        start_server(base, port=server.port)


def test_threads_stop_with_the_server(make_base, start_server):
    before = {t.name for t in threading.enumerate()}
    server = start_server(make_base(versions=(1,)), rest_port=0)
    assert "keras-gumbel-serving-poll" in {t.name for t in threading.enumerate()}
    server.stop(grace=0)
    time.sleep(0.2)
    left = {t.name for t in threading.enumerate()} - before
    assert not {n for n in left if n.startswith("keras-gumbel")}
