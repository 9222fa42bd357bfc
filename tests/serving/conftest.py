"""Fixtures for the serving tests: fixture SavedModels, base paths, servers, stubs.

The fixture model (see `keras_gumbel.serving.fixture_model`) is written once per test
session in two versions with different weights; each test copies what it
needs into its own base path `tmp/models/gumbel/<version>/`.
"""

import numpy as np
import pytest
import tensorflow as tf
from serving_helpers import MODEL_NAME
from serving_helpers import Stubs
from serving_helpers import add_version

from keras_gumbel.serving import serve
from keras_gumbel.serving.fixture_model import D
from keras_gumbel.serving.fixture_model import save_fixture_model


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory):
    """{version: path} of the fixture SavedModel, version 1 and 2 (other weights)."""
    root = tmp_path_factory.mktemp("fixture_models")
    return {v: save_fixture_model(root / str(v), seed=v - 1) for v in (1, 2)}


@pytest.fixture(scope="session")
def reference(saved_models):
    """In-process `tf.saved_model.load` of each version: {version: loaded}."""
    return {v: tf.saved_model.load(str(path)) for v, path in saved_models.items()}


@pytest.fixture(scope="session")
def images():
    """32 random images [32, D] float32 in [0, 1), fixed seed."""
    return np.random.default_rng(7).random((32, D), dtype=np.float32)


@pytest.fixture
def make_base(tmp_path, saved_models):
    """`make_base(versions=(1,))` builds `tmp/models/gumbel` with these versions."""

    def make(versions=(1,)):
        base = tmp_path / "models" / MODEL_NAME
        base.mkdir(parents=True, exist_ok=True)
        for version in versions:
            add_version(saved_models, base, version, source=version)
        return base

    return make


@pytest.fixture
def start_server():
    """`start_server(base_path, **serve_kwargs)` on a free port, stopped afterwards."""
    servers = []

    def start(base_path=None, **kwargs):
        kwargs.setdefault("port", 0)
        kwargs.setdefault("poll_seconds", 0.2)
        kwargs.setdefault("grace_seconds", 2.0)
        if base_path is not None:
            kwargs.setdefault("model_name", MODEL_NAME)
        server = serve(base_path, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(grace=0)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory, saved_models):
    """One server per test module with version 1 (gRPC and REST), for read-only tests.

    Its message limit is 4 MiB, and the labels are `stable` -> 1 and
    `future` -> 9 (not on disk).
    """
    base = tmp_path_factory.mktemp("shared") / MODEL_NAME
    base.mkdir()
    add_version(saved_models, base, 1)
    server = serve(
        base,
        MODEL_NAME,
        port=0,
        rest_port=0,
        poll_seconds=0,
        max_message_bytes=4 * 1024 * 1024,
        version_labels={"stable": 1, "future": 9},
    )
    yield server
    server.stop(grace=0)


@pytest.fixture
def stubs():
    """`stubs(address)` gives raw `PredictionService`/`ModelService` stubs."""
    made = []

    def make(address):
        made.append(Stubs(address))
        return made[-1]

    yield make
    for stub in made:
        stub.channel.close()
