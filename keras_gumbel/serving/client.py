"""`ServingClient`: a small TF Serving gRPC client for keras-gumbel's signatures.

It uses only the official protos and stubs of the `tensorflow-serving-api`
wheel, sends inputs as `tensor_content` and decodes outputs whether the
server wrote typed fields (TF Serving's default) or `tensor_content`, so it
works unchanged against `tensorflow_model_server` and against
`keras_gumbel.serving.server`.
"""

import numbers
import os
import time

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from keras_gumbel.serving import tensors
from keras_gumbel.serving.errors import ServingError

_STATES = get_model_status_pb2.ModelVersionStatus.State


def _invalid(name, expected, value):
    return ValueError(
        f"Invalid value received for argument `{name}`. Expected {expected}. "
        f"Received: {name}={value!r}"
    )


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _code_name(status):
    codes = status.DESCRIPTOR.fields_by_name["error_code"].enum_type
    value = codes.values_by_number.get(status.error_code)
    return value.name if value is not None else str(status.error_code)


def _pem(value):
    if value is None or isinstance(value, bytes):
        return value
    with open(os.fspath(value), "rb") as f:
        return f.read()


def _fit(alias, array, dtype, shape):
    """`array` reshaped and cast to an input's `shape` and `dtype`."""
    if shape is not None and len(shape) >= 1:
        fits = array.ndim == len(shape) and all(
            want in (-1, got) for want, got in zip(shape[1:], array.shape[1:], strict=True)
        )
        known = all(d >= 0 for d in shape[1:])
        if not fits and known and array.ndim >= 1:
            per_row = int(np.prod(shape[1:], dtype=np.int64))
            if int(np.prod(array.shape[1:], dtype=np.int64)) == per_row:
                array = array.reshape((len(array),) + tuple(shape[1:]))
                fits = True
        if not fits:
            wanted = "[" + ", ".join("batch" if d < 0 else str(d) for d in shape) + "]"
            raise ValueError(
                f"Input {alias!r} of the encode signature takes shape {wanted}. "
                f"Received shape {array.shape}"
            )
    if array.dtype != dtype:
        if dtype.kind in "iub" and array.dtype.kind == "f":
            if not np.array_equal(array, np.round(array)):
                raise ValueError(
                    f"Input {alias!r} of the encode signature is {dtype}. Received "
                    f"{array.dtype} values that are not whole numbers"
                )
        elif dtype.kind == "b" and array.dtype.kind != "b":
            raise ValueError(
                f"Input {alias!r} of the encode signature is bool. Received {array.dtype}"
            )
        array = array.astype(dtype)
    return array


class ServingClient:
    """Calls a TF Serving (or compatible) server for one model.

    `predict` sends any inputs to any signature; `encode` and `decode` wrap
    the signatures of keras-gumbel's SavedModel export:

    - `encode`: the model's inputs -> `codes` int64, e.g. `images` float32
      [batch, D] -> [batch, N] for the package's VAEs, or any inputs of any
      shape and dtype for a model exported with `export_model`; `encode`
      reads the input names, shapes and dtypes from the server's metadata;
    - `decode`: `codes` int64 [batch, N] -> `means` float32 [batch, D].

    Both split large inputs into requests of at most `batch_size` rows and
    concatenate the answers. Calls that fail with UNAVAILABLE (server not up
    yet, restarting, connection lost) are retried `retries` times with
    exponential backoff; every other error is raised at once as a
    `ServingError` that keeps the gRPC `code` and `details`.

    Args:
        address: str. `host:port` of the gRPC endpoint, e.g.
            "localhost:8500".
        model_name: str. The served model's name.
        version: int or None. Pin a version; None asks for the latest.
        version_label: str or None. Ask for a labelled version instead,
            e.g. "stable". Not together with `version`.
        signature: str or None. Default signature of `predict`; None for the
            server's `serving_default`.
        timeout: float or None. Deadline of each call in seconds.
        tls: bool. Use TLS (implied by `root_certificates`).
        root_certificates: bytes, path or None. PEM roots to trust; None
            uses the system's.
        private_key: bytes, path or None. PEM client key, for mutual TLS.
        certificate_chain: bytes, path or None. PEM client certificate.
        max_message_bytes: int or None. Largest message sent or received;
            None for no limit (gRPC's default receive limit is 4 MiB, too
            small for large batches).
        batch_size: int or None. Rows per request in `encode`/`decode`; None
            sends everything at once.
        retries: int >= 0. Retries after UNAVAILABLE.
        backoff: float >= 0. Seconds before the first retry; doubles for
            each further one.
        channel_options: list of (key, value) or None. Extra gRPC channel
            arguments, e.g. `[("grpc.ssl_target_name_override", "host")]`.

    Example:

    ```python
    with ServingClient("localhost:8500", "vae") as client:
        codes = client.encode(images)          # int64 [batch, N]
        means = client.decode(codes)           # float32 [batch, D]
        codes = client.encode({"tokens": ids, "lengths": lengths})  # named inputs
        out = client.predict({"images": images}, signature="encode_probs")
    ```
    """

    def __init__(
        self,
        address,
        model_name,
        *,
        version=None,
        version_label=None,
        signature=None,
        timeout=10.0,
        tls=False,
        root_certificates=None,
        private_key=None,
        certificate_chain=None,
        max_message_bytes=None,
        batch_size=1024,
        retries=3,
        backoff=0.1,
        channel_options=None,
    ):
        if not isinstance(address, str) or not address:
            raise _invalid("address", "a 'host:port' string", address)
        if not isinstance(model_name, str) or not model_name:
            raise _invalid("model_name", "a non-empty string", model_name)
        if version is not None and version_label is not None:
            raise ValueError(
                "Pass `version` or `version_label`, not both. Received: "
                f"version={version!r}, version_label={version_label!r}"
            )
        if version is not None and (not _is_int(version) or version < 0):
            raise _invalid("version", "an integer >= 0 or None", version)
        if version_label is not None and (not isinstance(version_label, str) or not version_label):
            raise _invalid("version_label", "a non-empty string or None", version_label)
        if timeout is not None and (
            not isinstance(timeout, numbers.Real) or isinstance(timeout, bool) or timeout <= 0
        ):
            raise _invalid("timeout", "a number of seconds > 0 or None", timeout)
        if max_message_bytes is not None and (
            not _is_int(max_message_bytes) or max_message_bytes < 1
        ):
            raise _invalid("max_message_bytes", "an integer >= 1 or None", max_message_bytes)
        if batch_size is not None and (not _is_int(batch_size) or batch_size < 1):
            raise _invalid("batch_size", "an integer >= 1 or None", batch_size)
        if not _is_int(retries) or retries < 0:
            raise _invalid("retries", "an integer >= 0", retries)
        if not isinstance(backoff, numbers.Real) or isinstance(backoff, bool) or backoff < 0:
            raise _invalid("backoff", "a number of seconds >= 0", backoff)

        self.address = address
        self.model_name = model_name
        self.version = version
        self.version_label = version_label
        self.signature = signature
        self.timeout = timeout
        self.tls = bool(tls or root_certificates is not None or certificate_chain is not None)
        self.max_message_bytes = max_message_bytes
        self.batch_size = batch_size
        self.retries = retries
        self.backoff = backoff

        limit = -1 if max_message_bytes is None else max_message_bytes
        custom = list(channel_options or [])
        defaults = [
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
            # gRPC waits 1 s before reconnecting after a failed connection;
            # shorter, the retries below can reach a server that just started.
            ("grpc.initial_reconnect_backoff_ms", max(10, int(backoff * 1000))),
        ]
        given = {key for key, _ in custom}
        options = [item for item in defaults if item[0] not in given] + custom
        if self.tls:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_pem(root_certificates),
                private_key=_pem(private_key),
                certificate_chain=_pem(certificate_chain),
            )
            self._channel = grpc.secure_channel(address, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._prediction = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._model = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._encode_inputs = None

    def _model_spec(self, spec, signature=None):
        spec.name = self.model_name
        if self.version is not None:
            spec.version.value = self.version
        elif self.version_label is not None:
            spec.version_label = self.version_label
        if signature:
            spec.signature_name = signature

    def _call(self, name, method, request):
        attempt = 0
        while True:
            attempt += 1
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as e:
                code, details = e.code(), e.details() or ""
                if code == grpc.StatusCode.UNAVAILABLE and attempt <= self.retries:
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                    continue
                tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                message = (
                    f"{name} for model {self.model_name!r} at {self.address} failed "
                    f"with {code.name}{tries}: {details}"
                )
                raise ServingError(code, details, message) from None

    def predict(self, inputs, signature=None, output_filter=None):
        """Runs a signature on a dict of input arrays.

        Args:
            inputs: dict of input alias to array-like. Arrays are sent with
                their NumPy dtype, which must match the signature's.
            signature: str or None. Signature name; None for the client's
                default (else the server's `serving_default`).
            output_filter: list of str or None. Output aliases to return;
                None for all.

        Returns:
            dict of output alias to NumPy array.

        Raises:
            ServingError: If the server answers with an error.
        """
        request = predict_pb2.PredictRequest()
        self._model_spec(request.model_spec, signature or self.signature)
        for alias, value in inputs.items():
            request.inputs[alias].CopyFrom(tensors.content_tensor_proto(np.asarray(value)))
        request.output_filter.extend(output_filter or [])
        response = self._call("Predict", self._prediction.Predict, request)
        return {
            alias: np.require(tensors.to_ndarray(proto), requirements="W")
            for alias, proto in response.outputs.items()
        }

    def _batched(self, signature, inputs, output_alias):
        """Runs `signature` on `inputs` (dict of arrays) in requests of at
        most `batch_size` rows; returns the concatenated `output_alias`."""
        size = self.batch_size
        rows = len(next(iter(inputs.values())))
        if size is None or rows <= size:
            return self.predict(inputs, signature, [output_alias])[output_alias]
        parts = [
            self.predict(
                {alias: array[i : i + size] for alias, array in inputs.items()},
                signature,
                [output_alias],
            )[output_alias]
            for i in range(0, rows, size)
        ]
        return np.concatenate(parts)

    def encode_inputs(self):
        """The `encode` signature's inputs, from the server's metadata.

        Returns:
            dict of input alias to `(numpy dtype, shape)`, -1 for an unknown
            dimension (None for an unknown rank).
        """
        if self._encode_inputs is None:
            signature = self.metadata().get("encode")
            if signature is None:
                raise ServingError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "no encode signature",
                    f"model {self.model_name!r} at {self.address} has no `encode` signature",
                )
            self._encode_inputs = {
                alias: (
                    np.dtype(tf.dtypes.as_dtype(info.dtype).as_numpy_dtype),
                    None
                    if info.tensor_shape.unknown_rank
                    else [d.size for d in info.tensor_shape.dim],
                )
                for alias, info in signature.inputs.items()
            }
        return self._encode_inputs

    def encode(self, inputs, input_name=None):
        """Discrete codes, with the `encode` signature.

        Args:
            inputs: An array [batch, ...], sent as the signature's only input
                (or as `input_name`), or a dict of input name to array.
                Arrays are reshaped to the signature's shape when it is fully
                known and the sizes agree (images [batch, 28, 28] to
                [batch, 784] for the package's models) and cast to its dtype
                (integers to floats; floats to integers only when their
                values are whole numbers).
            input_name: str or None. The input to send an array as; default
                the signature's only input, read from the server's metadata.

        Returns:
            int64 array [batch, ...] of codes.

        Raises:
            ValueError: If the inputs do not fit the signature.
            ServingError: If the server answers with an error.
        """
        if not isinstance(inputs, dict) and np.ndim(inputs) < 1:
            # Checked before the server is asked anything.
            raise ValueError(
                f"`inputs` must be a batch of shape [batch, ...]. Received shape {np.shape(inputs)}"
            )
        try:
            specs = self.encode_inputs()
        except ServingError as error:
            if error.code == grpc.StatusCode.UNAVAILABLE:
                raise
            # No metadata (e.g. an unknown model): send as the package's
            # models take them, and let Predict report any error.
            specs = None
        if isinstance(inputs, dict):
            arrays = {str(k): np.asarray(v) for k, v in inputs.items()}
        else:
            array = np.asarray(inputs)
            if input_name is None and specs is not None and len(specs) != 1:
                raise ValueError(
                    f"The encode signature takes {len(specs)} inputs {sorted(specs)}; pass a "
                    "dict of arrays by input name"
                )
            name = input_name or (next(iter(specs)) if specs else "images")
            arrays = {name: array}
        for alias, array in arrays.items():
            if specs and alias in specs:
                arrays[alias] = _fit(alias, array, *specs[alias])
            elif specs is None and alias == "images":
                # The package's models: float32 images flattened to [batch, D].
                arrays[alias] = array.reshape(len(array), -1).astype(np.float32)
        return self._batched("encode", arrays, "codes")

    def decode(self, codes):
        """Bernoulli means of the images for codes, with the `decode` signature.

        Args:
            codes: integer array-like [batch, N]; sent as int64.

        Returns:
            float32 array [batch, D].
        """
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.dtype.kind not in "iu":
            raise ValueError(
                "`codes` must be an integer array of shape [batch, N]. Received "
                f"dtype {codes.dtype} and shape {codes.shape}"
            )
        return self._batched("decode", {"codes": codes.astype(np.int64)}, "means")

    def metadata(self):
        """The model's signatures, as TF Serving reports them.

        Returns:
            dict of signature name to `tensorflow.SignatureDef`, including
            `__saved_model_init_op`.
        """
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._model_spec(request.model_spec)
        response = self._call("GetModelMetadata", self._prediction.GetModelMetadata, request)
        signature_def_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_def_map)
        return dict(signature_def_map.signature_def)

    def status(self):
        """The state of each version the server knows of the model.

        Returns:
            list of dicts with keys `version` (int), `state` (e.g.
            "AVAILABLE", "END"), `error_code` (e.g. "OK") and
            `error_message`, newest version first.
        """
        request = get_model_status_pb2.GetModelStatusRequest()
        self._model_spec(request.model_spec)
        response = self._call("GetModelStatus", self._model.GetModelStatus, request)
        return [
            {
                "version": entry.version,
                "state": _STATES.Name(entry.state),
                "error_code": _code_name(entry.status),
                "error_message": entry.status.error_message,
            }
            for entry in response.model_version_status
        ]

    def close(self):
        """Closes the channel."""
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self):
        return f"ServingClient(address={self.address!r}, model_name={self.model_name!r})"
