"""Helpers shared by the serving tests (fixtures are in conftest.py)."""

import shutil
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

MODEL_NAME = "gumbel"


def add_version(saved_models, base_path, version, source=1):
    """Copies fixture model `source` into `base_path/<version>`; returns the path."""
    return shutil.copytree(saved_models[source], base_path / str(version))


class Stubs:
    """The raw official stubs for a server address."""

    def __init__(self, address):
        options = [("grpc.max_receive_message_length", -1)]
        self.channel = grpc.insecure_channel(address, options=options)
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model = model_service_pb2_grpc.ModelServiceStub(self.channel)


def predict_request(inputs, name=MODEL_NAME, signature="", output_filter=(), **spec):
    """A `PredictRequest` with `tf.make_tensor_proto` inputs; `spec` sets
    `version` (int) or `version_label` (str)."""
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=name, signature_name=signature),
        output_filter=list(output_filter),
    )
    if "version" in spec:
        request.model_spec.version.value = spec["version"]
    if "version_label" in spec:
        request.model_spec.version_label = spec["version_label"]
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
    return request


def rpc_error(call, request, timeout=30):
    """Calls `call(request)`, expecting a `grpc.RpcError`; returns it."""
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=timeout)
    return info.value


def wait_until(condition, timeout=30.0, interval=0.05):
    """Polls `condition()` until it is truthy; returns it or fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)
