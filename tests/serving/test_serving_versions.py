"""Version policy, hot swaps under load, half-written versions, labels, reloads."""

import shutil
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from serving_helpers import MODEL_NAME
from serving_helpers import add_version
from serving_helpers import predict_request
from serving_helpers import rpc_error
from serving_helpers import wait_until
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_pb2

pytestmark = pytest.mark.serving

State = get_model_status_pb2.ModelVersionStatus.State


def _served_version(stub, images, **spec):
    response = stub.prediction.Predict(predict_request({"images": images}, **spec), timeout=30)
    return response.model_spec.version.value, tf.make_ndarray(response.outputs["codes"])


def _codes(reference, version, images):
    return reference[version].signatures["encode"](images=tf.constant(images))["codes"].numpy()


def _states(stub, name=MODEL_NAME):
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name=name))
    response = stub.model.GetModelStatus(request, timeout=30)
    return [(s.version, s.state, s.status.error_code) for s in response.model_version_status]


def test_latest_version_is_served_and_non_numeric_dirs_are_skipped(
    make_base, start_server, stubs, reference, images
):
    base = make_base(versions=(1, 2))
    (base / "export_3").mkdir()
    (base / "tmp").mkdir()
    (base / "7").write_text("a file, not a version directory")
    server = start_server(base)
    stub = stubs(server.address)
    version, codes = _served_version(stub, images)
    assert version == 2
    np.testing.assert_array_equal(codes, _codes(reference, 2, images))
    assert not np.array_equal(codes, _codes(reference, 1, images))
    # Latest policy: version 1 was never loaded.
    assert _states(stub) == [(2, State.AVAILABLE, 0)]
    assert _served_version(stub, images, version=2)[0] == 2
    error = rpc_error(stub.prediction.Predict, predict_request({"images": images}, version=1))
    assert error.details() == f"Servable not found for request: Specific({MODEL_NAME}, 1)"


def test_new_version_swaps_in_without_failing_requests(
    make_base, saved_models, start_server, stubs, reference, images
):
    base = make_base(versions=(1,))
    server = start_server(base, poll_seconds=0.1)
    stub = stubs(server.address)
    batch = images[:4]
    expected = {v: _codes(reference, v, batch) for v in (1, 2)}
    seen, failures = [], []
    swapped = threading.Event()
    stop = threading.Event()

    def send():
        after_swap = 0
        # Bounded: at most 2,000 requests per thread, 20 after the swap.
        for _ in range(2000):
            if stop.is_set() or after_swap >= 20:
                return
            try:
                version, codes = _served_version(stub, batch)
            except grpc.RpcError as e:
                failures.append(e)
                continue
            seen.append(version)
            if not np.array_equal(codes, expected[version]):
                failures.append(f"version {version} answered with other codes")
            if version == 2:
                swapped.set()
                after_swap += 1

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(seen) >= 20)
        # Copied in place, not renamed: the poller may see it half-written.
        add_version(saved_models, base, 2, source=2)
        swapped_in_time = swapped.wait(60)
    finally:
        if not swapped.is_set():
            stop.set()
        for thread in threads:
            thread.join(60)
    assert swapped_in_time, "version 2 was never served"
    assert failures == []
    assert seen[0] == 1 and seen.count(2) >= 4 * 20
    # Once a thread saw version 2 it never saw version 1 again.
    first_two = seen.index(2)
    assert seen[first_two:].count(1) <= len(threads)
    wait_until(lambda: _states(stub) == [(2, State.AVAILABLE, 0), (1, State.END, 0)])


def test_half_written_versions_are_retried_and_never_break_serving(
    make_base, saved_models, start_server, stubs, images
):
    base = make_base(versions=(1,))
    server = start_server(base, poll_seconds=0.1)
    stub = stubs(server.address)
    source = saved_models[2]

    # Version 2 without saved_model.pb: its load fails, version 1 keeps serving.
    shutil.copytree(source / "variables", base / "2" / "variables")
    wait_until(lambda: (2, State.END) in [s[:2] for s in _states(stub)])
    status = dict((v, c) for v, _, c in _states(stub))
    assert status[2] != 0 and status[1] == 0
    assert _served_version(stub, images[:2])[0] == 1
    # Completing it gets it loaded on a later poll.
    shutil.copy(source / "saved_model.pb", base / "2" / "saved_model.pb")
    wait_until(lambda: _served_version(stub, images[:2])[0] == 2)

    # Version 3 with its graph but only part of its variables.
    (base / "3" / "variables").mkdir(parents=True)
    shutil.copy(source / "saved_model.pb", base / "3" / "saved_model.pb")
    shutil.copy(source / "variables" / "variables.index", base / "3" / "variables")
    wait_until(lambda: (3, State.END) in [s[:2] for s in _states(stub)])
    assert _served_version(stub, images[:2])[0] == 2
    for data in (source / "variables").glob("variables.data-*"):
        shutil.copy(data, base / "3" / "variables" / data.name)
    wait_until(lambda: _served_version(stub, images[:2])[0] == 3)
    assert _states(stub)[0] == (3, State.AVAILABLE, 0)


def test_removing_the_latest_version_falls_back(make_base, start_server, stubs, images):
    base = make_base(versions=(1, 2))
    server = start_server(base, poll_seconds=0.1)
    stub = stubs(server.address)
    assert _served_version(stub, images[:2])[0] == 2
    shutil.rmtree(base / "2")
    wait_until(lambda: _served_version(stub, images[:2])[0] == 1)


def test_labels_and_specific_policy_from_a_model_config_file(
    make_base, start_server, stubs, reference, images, tmp_path
):
    base = make_base(versions=(1, 2))
    config_file = tmp_path / "models.config"
    config_file.write_text(
        f"""
        model_config_list {{
          config {{
            name: "{MODEL_NAME}"
            base_path: "{base}"
            model_platform: "tensorflow"
            model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
            version_labels {{ key: "stable" value: 1 }}
            version_labels {{ key: "canary" value: 2 }}
          }}
        }}
        """
    )
    server = start_server(model_config_file=config_file)
    stub = stubs(server.address)
    for label, version in [("stable", 1), ("canary", 2)]:
        served, codes = _served_version(stub, images, version_label=label)
        assert served == version
        np.testing.assert_array_equal(codes, _codes(reference, version, images))
    assert _served_version(stub, images)[0] == 2
    assert _served_version(stub, images, version=1)[0] == 1
    assert _states(stub) == [(2, State.AVAILABLE, 0), (1, State.AVAILABLE, 0)]
    error = rpc_error(
        stub.prediction.Predict,
        predict_request({"images": images}, version_label="beta"),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_all_policy_and_labels_argument(make_base, start_server, stubs, images):
    base = make_base(versions=(1, 2))
    server = start_server(base, version_policy="all", version_labels={"old": 1})
    stub = stubs(server.address)
    assert _served_version(stub, images[:2], version=1)[0] == 1
    assert _served_version(stub, images[:2], version_label="old")[0] == 1
    assert _served_version(stub, images[:2])[0] == 2


def test_reload_config_serves_exactly_the_new_models(make_base, start_server, stubs, images):
    base = make_base(versions=(1,))
    server = start_server(base)
    stub = stubs(server.address)
    request = model_management_pb2.ReloadConfigRequest()
    config = request.config.model_config_list.config.add(
        name="other", base_path=str(base), model_platform="tensorflow"
    )
    config.version_labels["stable"] = 1
    response = stub.model.HandleReloadConfigRequest(request, timeout=60)
    assert response.status.error_code == 0
    assert _served_version(stub, images[:2], name="other", version_label="stable")[0] == 1
    error = rpc_error(stub.prediction.Predict, predict_request({"images": images[:2]}))
    assert error.code() == grpc.StatusCode.NOT_FOUND

    other = model_management_pb2.ReloadConfigRequest()
    other.config.custom_model_config.type_url = "type.googleapis.com/some.Config"
    error = rpc_error(stub.model.HandleReloadConfigRequest, other)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("ServerModelConfig type not supported")
