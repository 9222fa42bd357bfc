"""Configuration, argument checks and module boundaries (no server started)."""

import ast
import pathlib
import pickle

import grpc
import pytest

import keras_gumbel.serving
from keras_gumbel.serving import ServingClient
from keras_gumbel.serving import ServingError
from keras_gumbel.serving import parse_version_policy
from keras_gumbel.serving import read_model_config_file
from keras_gumbel.serving import serve
from keras_gumbel.serving.config import make_model_config
from keras_gumbel.serving.errors import truncate_details

PACKAGE = pathlib.Path(keras_gumbel.serving.__file__).parent
REPO = PACKAGE.parent.parent


def test_version_policies():
    assert parse_version_policy(None).latest.num_versions == 1
    assert parse_version_policy("latest").WhichOneof("policy_choice") == "latest"
    assert parse_version_policy("latest:3").latest.num_versions == 3
    assert parse_version_policy("all").WhichOneof("policy_choice") == "all"
    assert list(parse_version_policy("specific:4,2").specific.versions) == [4, 2]
    proto = parse_version_policy("all")
    assert parse_version_policy(proto) is proto


@pytest.mark.parametrize("policy", ["newest", "latest:0", "specific:", "specific:a", 3, ""])
def test_bad_version_policies(policy):
    with pytest.raises(ValueError, match="Invalid value received for argument `version_policy`"):
        parse_version_policy(policy)


def test_model_config_from_arguments(tmp_path):
    config = make_model_config(tmp_path / "vae", None, "all", {"stable": 3})
    assert config.name == "vae" and config.base_path == str(tmp_path / "vae")
    assert config.model_platform == "tensorflow"
    assert config.model_version_policy.WhichOneof("policy_choice") == "all"
    assert dict(config.version_labels) == {"stable": 3}
    with pytest.raises(ValueError, match="version_labels"):
        make_model_config(tmp_path, "m", None, {"": 1})
    with pytest.raises(ValueError, match="model_name"):
        make_model_config(tmp_path, "", None, None)


def test_the_shipped_model_config_parses():
    (config,) = read_model_config_file(REPO / "serving" / "models.config")
    assert config.name == "vae" and config.base_path == "/models/vae"
    assert list(config.model_version_policy.specific.versions) == [1, 2]
    assert dict(config.version_labels) == {"stable": 1, "canary": 2}


@pytest.mark.parametrize(
    "text, message",
    [
        ("model_config_list { config { name: 'a' } }", "has no base_path"),
        (
            "model_config_list { config { name: 'a' base_path: '/a' } "
            "config { name: 'a' base_path: '/b' } }",
            "multiple times",
        ),
        (
            "model_config_list { config { name: 'a' base_path: '/a' model_platform: 'onnx' } }",
            'only "tensorflow"',
        ),
        ("custom_model_config { }", "no model_config_list"),
        ("model_config_list { nonsense: 1 }", "Could not parse"),
    ],
)
def test_bad_model_config_files(tmp_path, text, message):
    path = tmp_path / "models.config"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_model_config_file(path)


def test_serve_argument_checks(tmp_path):
    with pytest.raises(ValueError, match="Pass `base_path` or `model_config_file`"):
        serve()
    with pytest.raises(ValueError, match="not both"):
        serve(tmp_path, model_config_file=tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="Could not find base path"):
        serve(tmp_path / "missing", port=0)
    for kwargs, name in [
        ({"port": -1}, "port"),
        ({"poll_seconds": -1}, "poll_seconds"),
        ({"max_message_bytes": 2**31}, "max_message_bytes"),
        ({"max_workers": 0}, "max_workers"),
        ({"host": ""}, "host"),
    ]:
        with pytest.raises(ValueError, match=f"argument `{name}`"):
            serve(tmp_path, port=kwargs.pop("port", 0), **kwargs)
    with pytest.raises(ValueError, match="needs both"):
        serve(tmp_path, port=0, tls_cert_file="cert.pem")


def test_client_argument_checks():
    with pytest.raises(ValueError, match="not both"):
        ServingClient("localhost:1", "m", version=1, version_label="stable")
    for kwargs, name in [
        ({"retries": -1}, "retries"),
        ({"backoff": -0.1}, "backoff"),
        ({"batch_size": 0}, "batch_size"),
        ({"timeout": 0}, "timeout"),
        ({"version": -2}, "version"),
        ({"max_message_bytes": 0}, "max_message_bytes"),
    ]:
        with pytest.raises(ValueError, match=f"argument `{name}`"):
            ServingClient("localhost:1", "m", **kwargs)
    client = ServingClient("localhost:1", "m")
    with pytest.raises(ValueError, match="integer array of shape"):
        client.decode([[0.5, 1.5]])
    with pytest.raises(ValueError, match="batch of shape"):
        client.encode(0.5)
    client.close()


def test_serving_error_keeps_code_and_details():
    error = ServingError(grpc.StatusCode.NOT_FOUND, "Servable not found")
    assert error.code == grpc.StatusCode.NOT_FOUND and error.details == "Servable not found"
    assert str(error) == "NOT_FOUND: Servable not found"
    copy = pickle.loads(pickle.dumps(ServingError(grpc.StatusCode.INTERNAL, "x", "msg")))
    assert (copy.code, copy.details, str(copy)) == (
        grpc.StatusCode.INTERNAL,
        "x",
        "msg",
    )
    with pytest.raises(TypeError, match="grpc.StatusCode"):
        ServingError(5, "not a code")


def test_truncation_matches_tf_serving():
    assert truncate_details("x" * 1024) == "x" * 1024
    assert truncate_details("x" * 1025) == "x" * 1024 + "...TRUNCATED"


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or ""


def test_serving_code_imports_neither_models_nor_keras():
    # The server serves any SavedModel; it must not depend on how one is built.
    for path in sorted(PACKAGE.glob("*.py")):
        for module in _imports(path):
            assert not module.startswith("keras_gumbel.models"), (path.name, module)
            assert module.split(".")[0] != "keras", (path.name, module)
            # `keras_gumbel._extras` (standard library only) names a missing extra.
            if module.startswith("keras_gumbel") and module != "keras_gumbel._extras":
                assert module.startswith("keras_gumbel.serving"), (path.name, module)
