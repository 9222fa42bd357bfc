"""Models of every kind, exported and served by `keras-gumbel serve`, give over
gRPC exactly the codes computed in process, for 1,000 inputs each.

One server (a `keras-gumbel serve` process with a model config file) serves
every model of this module; each test exports its model into its base path
and waits until the server has loaded it.
"""

import os
import subprocess
import sys

import grpc
import numpy as np
import pytest
from any_model_zoo import ROOT
from any_model_zoo import conv_model
from any_model_zoo import permutation_model
from any_model_zoo import quickstart_model
from any_model_zoo import subclassed_model
from any_model_zoo import token_model
from any_model_zoo import train_on_jax
from any_model_zoo import vector_quantizer_model
from serving_helpers import wait_until

from keras_gumbel.export import export_model
from keras_gumbel.serving import ServingClient
from keras_gumbel.serving import ServingError

pytestmark = pytest.mark.serving

MODELS = ("quickstart", "conv", "tokens", "subclassed", "jax", "vq", "perm")
N = 1000


def _env():
    env = {
        **os.environ,
        "KERAS_BACKEND": "tensorflow",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return env


def _cli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "keras_gumbel_cli", *args],
        env=_env(), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`(address, base)`: a `keras-gumbel serve` process for every model name,
    each under `base/<name>`, polled every 0.2 s."""
    base = tmp_path_factory.mktemp("any_models")
    entries = []
    for name in MODELS:
        (base / name).mkdir()
        entries.append(
            f'  config {{ name: "{name}" base_path: "{base / name}" model_platform: "tensorflow" }}'
        )
    config = base / "models.config"
    config.write_text("model_config_list {\n" + "\n".join(entries) + "\n}\n")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "keras_gumbel_cli", "serve", f"--model_config_file={config}",
            "--port=0", "--file_system_poll_wait_seconds=0.2",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        assert line.startswith("Running gRPC ModelServer at "), process.stderr.read()
        yield line.split()[-2], base
    finally:
        process.terminate()
        process.communicate(timeout=60)


def _wait_until_served(client):
    def available():
        try:
            return [s for s in client.status() if s["state"] == "AVAILABLE"]
        except ServingError as error:  # NOT_FOUND until the first version loads
            assert error.code == grpc.StatusCode.NOT_FOUND, error
            return []

    wait_until(available, 120)


def _served_codes(address, name, inputs):
    with ServingClient(address, name, timeout=120) as client:
        _wait_until_served(client)
        return client.encode(inputs)


def _check(server, name, model, inputs, codes_fn):
    address, base = server
    sample = {k: v[:64] for k, v in inputs.items()} if isinstance(inputs, dict) else inputs[:64]
    export_model(model, base, name, sample, verify_with_cli=False)
    served = _served_codes(address, name, inputs)
    expected = codes_fn(inputs)
    assert served.dtype == np.int64 and served.shape == expected.shape
    np.testing.assert_array_equal(served, expected)


def test_the_readme_quickstart(server):
    model, inputs_fn, codes_fn = quickstart_model()
    _check(server, "quickstart", model, inputs_fn(N), codes_fn)


def test_a_convolutional_image_encoder(server):
    model, inputs_fn, codes_fn = conv_model()
    images = inputs_fn(N)
    _check(server, "conv", model, images, codes_fn)
    # The client shapes [n, 28, 28] to the signature's [n, 28, 28, 1].
    squeezed = _served_codes(server[0], "conv", images[..., 0])
    np.testing.assert_array_equal(squeezed, codes_fn(images))


def test_a_masked_token_model_with_two_named_inputs(server):
    model, inputs_fn, codes_fn = token_model()
    inputs = inputs_fn(N)
    assert (inputs["tokens"] == 0).any()  # padded, masked steps included
    _check(server, "tokens", model, inputs, codes_fn)


def test_a_subclassed_model(server):
    model, inputs_fn, codes_fn = subclassed_model()
    _check(server, "subclassed", model, inputs_fn(N), codes_fn)


def test_a_jax_trained_model_from_the_command_line(server, tmp_path):
    address, base = server
    model_path, inputs, jax_codes = train_on_jax(tmp_path)
    np.save(tmp_path / "sample.npy", inputs[:64])
    np.save(tmp_path / "inputs.npy", inputs)
    exported = _cli(
        "export", str(model_path), "--base-path", str(base), "--name", "jax",
        "--sample-inputs", str(tmp_path / "sample.npy"), "--skip-cli-check",
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert exported.stdout.startswith(f"Exported and verified: {base / 'jax' / '1'}")
    with ServingClient(address, "jax", timeout=120) as client:
        _wait_until_served(client)
    encoded = _cli(
        "encode", str(tmp_path / "inputs.npy"), "--server", address, "--model", "jax",
        "-o", str(tmp_path / "codes.npy"),
    )  # fmt: skip
    assert encoded.returncode == 0, encoded.stderr[-2000:]
    assert encoded.stdout == f"Wrote the codes of {N} examples to {tmp_path / 'codes.npy'}\n"
    np.testing.assert_array_equal(np.load(tmp_path / "codes.npy"), jax_codes)


def test_a_vector_quantizer_model(server):
    built = vector_quantizer_model()
    if built is None:
        pytest.skip("keras_gumbel.layers.GumbelVectorQuantizer is not available")
    model, inputs_fn, codes_fn = built
    inputs = inputs_fn(N)
    _check(server, "vq", model, inputs, codes_fn)
    assert codes_fn(inputs[:2]).shape == (2, 28, 2)


def test_a_gumbel_sinkhorn_model_serves_permutations(server):
    model, inputs_fn, codes_fn = permutation_model()
    inputs = inputs_fn(N)
    _check(server, "perm", model, inputs, codes_fn)
    codes = codes_fn(inputs)
    # Each served code row is a permutation of the 4 positions, and not always the same.
    np.testing.assert_array_equal(np.sort(codes, axis=1), np.tile(np.arange(4), (N, 1)))
    assert len({tuple(row) for row in codes}) > 1
