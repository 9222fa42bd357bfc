"""ModelManager and Servable without a server: policies, swaps, retries, lifetimes."""

import shutil

import grpc
import numpy as np
import pytest
from serving_helpers import MODEL_NAME
from tensorflow_serving.apis import get_model_status_pb2

from keras_gumbel.serving import ServingError
from keras_gumbel.serving import parse_version_policy
from keras_gumbel.serving.config import make_model_config
from keras_gumbel.serving.fixture_model import D
from keras_gumbel.serving.model_manager import ModelManager
from keras_gumbel.serving.model_manager import aspired_versions
from keras_gumbel.serving.model_manager import list_versions
from keras_gumbel.serving.servable import Servable

State = get_model_status_pb2.ModelVersionStatus.State


def test_list_versions_skips_what_is_not_a_numbered_directory(tmp_path):
    for name in ("1", "10", "007", "export", "3.5", "-2", "+4", " 5"):
        (tmp_path / name).mkdir()
    (tmp_path / "8").write_text("a file")
    assert sorted(list_versions(tmp_path)) == [1, 7, 10]


@pytest.mark.parametrize(
    "policy, expected",
    [
        ("latest", {9}),
        ("latest:2", {4, 9}),
        ("all", {1, 4, 9}),
        ("specific:1,5", {1}),
    ],
)
def test_aspired_versions(policy, expected):
    versions = {1: "a", 4: "b", 9: "c"}
    assert aspired_versions(parse_version_policy(policy), versions) == expected


def _encode(servable, images):
    signature = servable.signature("encode")
    (codes,) = servable.run(
        [(signature.inputs["images"].name, images)], [signature.outputs["codes"].name]
    )
    return codes


def test_swap_keeps_the_old_version_alive_for_its_users(tmp_path, saved_models, monkeypatch):
    base = tmp_path / MODEL_NAME
    shutil.copytree(saved_models[1], base / "1")
    manager = ModelManager(make_model_config(base, MODEL_NAME))
    manager.poll()
    images = np.random.default_rng(0).random((3, D), dtype=np.float32)
    old = manager.acquire()
    assert old.version == 1

    loads = []
    real_load = Servable.load.__func__
    monkeypatch.setattr(
        Servable,
        "load",
        classmethod(lambda cls, *a, **k: loads.append(a[1]) or real_load(cls, *a, **k)),
    )
    # Half-written version 2: tried once, not again while unchanged.
    shutil.copytree(saved_models[2] / "variables", base / "2" / "variables")
    manager.poll()
    manager.poll()
    assert loads == [2]
    state, code, message = manager.version_states()[2]
    assert state == State.END and code != grpc.StatusCode.OK and message
    assert manager.versions() == [1]

    shutil.copy(saved_models[2] / "saved_model.pb", base / "2")
    manager.poll()
    assert loads == [2, 2] and manager.versions() == [2]
    assert manager.version_states()[1][0] == State.END
    assert manager.version_states()[2][0] == State.AVAILABLE
    # The retired version still answers the request holding it ...
    assert _encode(old, images).shape == (3, 20)
    assert not old.session._closed
    old.release()
    # ... and is closed once released; it cannot be acquired again.
    assert old.session._closed and not old.acquire()
    new = manager.acquire()
    assert new.version == 2 and manager.acquire(1) is None
    new.release()
    manager.shutdown()
    assert new.session._closed and manager.acquire() is None


def test_servable_errors(saved_models):
    servable = Servable.load(MODEL_NAME, 1, str(saved_models[1]))
    with pytest.raises(ServingError) as info:
        servable.signature("nope")
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(ServingError, match="Matrix size-incompatible") as info:
        _encode(servable, np.zeros((2, 3), np.float32))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    servable.retire()


def test_missing_tags_and_files(tmp_path, saved_models):
    with pytest.raises(ValueError, match="could not be found"):
        Servable.load(MODEL_NAME, 1, str(saved_models[1]), tags=("gpu",))
    with pytest.raises(FileNotFoundError, match="SavedModel file does not exist"):
        Servable.load(MODEL_NAME, 1, str(tmp_path))
    (tmp_path / "saved_model.pb").write_bytes(b"\x0a\xff garbage")
    with pytest.raises(ValueError, match="Could not parse"):
        Servable.load(MODEL_NAME, 1, str(tmp_path))
