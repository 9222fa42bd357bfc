"""`RestServer`: TF Serving's REST API (`/v1/models/...`) on the standard library.

URLs, JSON bodies and the mapping of status codes to HTTP follow TF
Serving's `g3doc/api_rest.md` and `model_servers/http_*.cc`:

- `GET /v1/models/NAME[/versions/N | /labels/L]`: model status.
- `GET /v1/models/NAME[/versions/N | /labels/L]/metadata`: signatures.
- `POST /v1/models/NAME[/versions/N | /labels/L]:predict` with
  `{"signature_name": ..., "instances": [...]}` (row format, answered with
  `{"predictions": ...}`) or `{"inputs": ...}` (columnar, answered with
  `{"outputs": ...}`). Strings travel as `{"b64": ...}`.
- Errors: `{"error": "..."}` with 400 for INVALID_ARGUMENT,
  FAILED_PRECONDITION and OUT_OF_RANGE, 404 for NOT_FOUND, 429 for
  RESOURCE_EXHAUSTED, 501 for UNIMPLEMENTED, 504 for DEADLINE_EXCEEDED.

Each request runs in its own thread; predictions go through the same
`handlers.predict` as gRPC, so validation and errors are identical.
"""

import base64
import contextlib
import http.server
import json
import logging
import re
import socket
import threading
import time
import urllib.parse

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2

from keras_gumbel.serving import handlers
from keras_gumbel.serving import tensors
from keras_gumbel.serving.errors import ServingError

logger = logging.getLogger("keras_gumbel.serving")

_PREDICT_PATH = re.compile(
    r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
    r":(classify|regress|predict)"
)
_STATUS_PATH = re.compile(
    r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
    r"(?:/(metadata))?"
)

HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

_INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _invalid(message):
    return ServingError(_INVALID, message)


def _model_spec(name, version, label):
    spec = model_pb2.ModelSpec(name=urllib.parse.unquote(name))
    if version and label:
        raise _invalid(
            f"Both model version ({version}) and model version label ({label}) cannot be supplied."
        )
    if version:
        try:
            spec.version.value = int(version)
        except ValueError:
            raise _invalid(f"Failed to convert version: {version} to numeric.") from None
    if label:
        spec.version_label = urllib.parse.unquote(label)
    return spec


def _to_dict(message):
    return json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )


def _json_value(value, info):
    """A JSON value (nested lists, `{"b64": ...}`) as an array of the input's dtype."""

    def strings(item):
        if isinstance(item, list):
            return [strings(x) for x in item]
        if isinstance(item, dict) and set(item) == {"b64"}:
            try:
                return base64.b64decode(item["b64"], validate=True)
            except (ValueError, TypeError):
                raise _invalid(f"Unable to base64 decode: {item['b64']!r}") from None
        if isinstance(item, str):
            return item.encode()
        raise _invalid(f"Expected a string for input of type string, got: {item!r}")

    try:
        if info.dtype == types_pb2.DT_STRING:
            array = np.array(strings(value), dtype=object)
            if not all(isinstance(item, bytes) for item in array.ravel()):
                raise ValueError("the nested lists are ragged")
            return array
        dtype = tf.dtypes.as_dtype(info.dtype).as_numpy_dtype
        return np.array(value, dtype=dtype)
    except ServingError:
        raise
    except (ValueError, TypeError, OverflowError) as e:
        raise _invalid(
            f"Could not convert the JSON value of input of type "
            f"{tensors.dtype_name(info.dtype)}: {e}"
        ) from None


def _is_b64(value):
    return isinstance(value, dict) and set(value) == {"b64"}


def _row_inputs(instances, signature):
    if not isinstance(instances, list) or not instances:
        raise _invalid("'instances' must be a non-empty JSON list")
    inputs = signature.inputs
    if all(isinstance(row, dict) and not _is_b64(row) for row in instances):
        names = set(instances[0])
        for row in instances:
            if set(row) != names:
                raise _invalid(
                    "Expecting object with the same keys in every instance; got "
                    f"{sorted(row)} and {sorted(names)}"
                )
        columns = {name: [row[name] for row in instances] for name in names}
    elif len(inputs) == 1:
        columns = {next(iter(inputs)): instances}
    else:
        raise _invalid(
            "The signature has several inputs: every instance must be a JSON "
            f"object with the keys {sorted(inputs)}"
        )
    return columns


def _column_inputs(value, signature):
    if isinstance(value, dict) and not _is_b64(value):
        return dict(value)
    if len(signature.inputs) != 1:
        raise _invalid(
            "The signature has several inputs: 'inputs' must be a JSON object "
            f"with the keys {sorted(signature.inputs)}"
        )
    return {next(iter(signature.inputs)): value}


def _to_json(array, alias):
    if array.dtype == object:

        def convert(item):
            if alias.endswith("_bytes"):
                return {"b64": base64.b64encode(item).decode("ascii")}
            try:
                return item.decode()
            except UnicodeDecodeError:
                return {"b64": base64.b64encode(item).decode("ascii")}

        return np.vectorize(convert, otypes=[object])(array).tolist() if array.size else []
    if array.dtype.kind == "c":
        return np.stack([array.real, array.imag], axis=-1).tolist()
    return array.tolist()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "keras-gumbel-serving"
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 30

    def log_message(self, format, *args):
        logger.debug("REST %s: " + format, self.address_string(), *args)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method):
        rest = self.server.rest
        with rest.tracking():
            path = urllib.parse.urlsplit(self.path).path
            try:
                body = self._read_body(rest.max_body_bytes)
                status, payload = 200, rest.handle(method, path, body)
            except ServingError as e:
                status, payload = HTTP_STATUS.get(e.code, 500), {"error": e.details}
            except Exception as e:
                logger.exception("REST %s %s failed", method, path)
                status, payload = 500, {"error": f"{type(e).__name__}: {e}"}
            data = json.dumps(payload, indent=1).encode() + b"\n"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def _read_body(self, limit):
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            self.close_connection = True
            raise ServingError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"Request body of {length} bytes exceeds the limit of {limit} bytes",
            )
        return self.rfile.read(length) if length else b""


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class RestServer:
    """Serves TF Serving's REST API for a `ServerCore` from a background thread.

    Args:
        core: `ServerCore`.
        host: str. Address to bind, e.g. "127.0.0.1".
        port: int. Port to bind; 0 picks a free one (see `port`).
        max_body_bytes: int. Larger request bodies get HTTP 429.
    """

    def __init__(self, core, host="127.0.0.1", port=8501, max_body_bytes=2**31 - 1):
        self.core = core
        self.max_body_bytes = max_body_bytes
        server_class = _HTTPServer6 if ":" in host else _HTTPServer
        self._httpd = server_class((host, port), _Handler)
        self._httpd.rest = self
        self._thread = None
        self._inflight = 0
        self._idle = threading.Condition()

    @property
    def port(self):
        """The bound port."""
        return self._httpd.server_address[1]

    def start(self):
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            name="keras-gumbel-serving-rest",
            daemon=True,
        )
        self._thread.start()

    def stop(self, grace=None):
        """Stops accepting requests, waits up to `grace` seconds for running ones."""
        self._httpd.shutdown()
        deadline = None if grace is None else time.monotonic() + grace
        with self._idle:
            while self._inflight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._idle.wait(remaining)
        self._httpd.server_close()

    @contextlib.contextmanager
    def tracking(self):
        """Counts a request as running for the duration of the block."""
        with self._idle:
            self._inflight += 1
        try:
            yield
        finally:
            with self._idle:
                self._inflight -= 1
                self._idle.notify_all()

    def handle(self, method, path, body):
        """Answers one request; returns the JSON payload or raises `ServingError`."""
        match = _PREDICT_PATH.fullmatch(path) if method == "POST" else None
        if match:
            name, version, label, verb = match.groups()
            spec = _model_spec(name, version, label)
            if verb.lower() != "predict":
                raise ServingError(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"{verb} is not implemented by this server; use :predict.",
                )
            return self._predict(spec, body)
        match = _STATUS_PATH.fullmatch(path) if method == "GET" else None
        if match:
            name, version, label, metadata = match.groups()
            if not name:
                raise _invalid("Missing model name in request.")
            spec = _model_spec(name, version, label)
            if metadata:
                return self._metadata(spec)
            request = get_model_status_pb2.GetModelStatusRequest(model_spec=spec)
            return _to_dict(handlers.get_model_status(self.core, request))
        raise ServingError(
            grpc.StatusCode.NOT_FOUND if not path.lower().startswith("/v1/") else _INVALID,
            f"Malformed request: {method} {path}",
        )

    def _metadata(self, spec):
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=spec, metadata_field=[handlers.SIGNATURE_DEF_FIELD]
        )
        response = handlers.get_model_metadata(self.core, request)
        signature_def_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata[handlers.SIGNATURE_DEF_FIELD].Unpack(signature_def_map)
        return {
            "model_spec": _to_dict(response.model_spec),
            "metadata": {handlers.SIGNATURE_DEF_FIELD: _to_dict(signature_def_map)},
        }

    def _predict(self, spec, body):
        try:
            document = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError) as e:
            raise _invalid(f"JSON Parse error: {e}") from None
        if not isinstance(document, dict):
            raise _invalid("JSON Value: the request body is not a JSON object")
        signature_name = document.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise _invalid("'signature_name' must be a string")
        if "instances" in document and "inputs" in document:
            raise _invalid(
                "Not formatted correctly expecting only one of 'inputs' or "
                "'instances' keys to exist"
            )
        if "instances" not in document and "inputs" not in document:
            raise _invalid("Missing 'inputs' or 'instances' key")
        row_format = "instances" in document

        spec.signature_name = signature_name
        with self.core.servable(spec) as servable:
            key = signature_name or handlers.DEFAULT_SIGNATURE
            if key not in servable.signature_defs:
                raise _invalid(f'Serving signature name: "{key}" not found in signature def')
            signature = servable.signature_defs[key]
        if row_format:
            columns = _row_inputs(document["instances"], signature)
        else:
            columns = _column_inputs(document["inputs"], signature)
        request = predict_pb2.PredictRequest(model_spec=spec)
        for alias, value in columns.items():
            info = signature.inputs.get(alias)
            if info is None:
                # Let Predict report it with TF Serving's message.
                array = np.array(value)
            else:
                array = _json_value(value, info)
            request.inputs[alias].CopyFrom(tensors.content_tensor_proto(array))
        response = handlers.predict(self.core, request)
        outputs = {alias: tensors.to_ndarray(t) for alias, t in response.outputs.items()}
        if not row_format:
            if len(outputs) == 1:
                ((alias, value),) = outputs.items()
                return {"outputs": _to_json(value, alias)}
            return {"outputs": {a: _to_json(v, a) for a, v in sorted(outputs.items())}}
        sizes = {a: (v.shape[0] if v.ndim else None) for a, v in outputs.items()}
        batch = next(iter(sizes.values()))
        for alias, size in sizes.items():
            if size is None or size != batch:
                raise _invalid(
                    f"Tensor name: {alias} has inconsistent batch size: {size} expecting: {batch}"
                )
        if len(outputs) == 1:
            ((alias, value),) = outputs.items()
            return {"predictions": _to_json(value, alias)}
        converted = {a: _to_json(v, a) for a, v in sorted(outputs.items())}
        return {
            "predictions": [
                {alias: rows[i] for alias, rows in converted.items()} for i in range(batch)
            ]
        }
