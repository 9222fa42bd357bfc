"""gRPC servicers for `tensorflow.serving.PredictionService` and `ModelService`.

Thin shells over `handlers`: every RPC maps a `ServingError` to its status
code and TF Serving's truncated message, and any other exception to
INTERNAL, so no request can take the server down.
"""

import functools
import logging

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc

from keras_gumbel.serving import handlers
from keras_gumbel.serving.errors import ServingError
from keras_gumbel.serving.errors import truncate_details

logger = logging.getLogger("keras_gumbel.serving")


def _rpc(handler):
    """Wraps `handler(core, request)` as a servicer method mapping errors."""

    @functools.wraps(handler)
    def method(self, request, context):
        try:
            return handler(self.core, request)
        except ServingError as e:
            code, details = e.code, e.details
        except Exception as e:
            logger.exception("%s failed", handler.__name__)
            code, details = grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}"
        context.abort(code, truncate_details(details))

    return method


def _unimplemented(name):
    def method(self, request, context):
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{name} is not implemented by this server; keras-gumbel exports "
            "only predict signatures. Use Predict.",
        )

    method.__name__ = name
    return method


class _PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """`tensorflow.serving.PredictionService` on a `ServerCore`."""

    def __init__(self, core):
        self.core = core

    Predict = _rpc(handlers.predict)
    GetModelMetadata = _rpc(handlers.get_model_metadata)
    Classify = _unimplemented("Classify")
    Regress = _unimplemented("Regress")
    MultiInference = _unimplemented("MultiInference")


class _ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """`tensorflow.serving.ModelService` on a `ServerCore`."""

    def __init__(self, core):
        self.core = core

    GetModelStatus = _rpc(handlers.get_model_status)
    HandleReloadConfigRequest = _rpc(handlers.reload_config)


def add_services(server, core):
    """Registers both services on a `grpc.Server` with the generated helpers."""
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        _PredictionServicer(core), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelServicer(core), server)
