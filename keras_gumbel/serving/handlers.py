"""The RPCs on protos: Predict, GetModelMetadata, GetModelStatus, ReloadConfig.

Each function takes a `ServerCore` and a request proto and returns the
response proto or raises `ServingError` with TF Serving's status code and
message. The checks run in TF Serving's order (`predict_util.cc`,
`tensorflow/cc/saved_model/util.cc`, `get_model_metadata_impl.cc`,
`get_model_status_impl.cc`), so the first error a request hits is the one TF
Serving would report.
"""

import grpc
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import predict_pb2

from keras_gumbel.serving import tensors
from keras_gumbel.serving.errors import ServingError

DEFAULT_SIGNATURE = "serving_default"
SIGNATURE_DEF_FIELD = "signature_def"

_INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _join(names):
    return ",".join(sorted(names))


def _missing_model_spec(request):
    if not request.HasField("model_spec"):
        raise ServingError(_INVALID, "Missing ModelSpec")


def parse_inputs(signature, inputs):
    """Matches request tensors to signature inputs and decodes them.

    Args:
        signature: `SignatureDef`.
        inputs: mapping of input alias to `TensorProto`.

    Returns:
        A list of (alias, `TensorInfo`, NumPy array, request `DataType`), in
        alias order.

    Raises:
        ServingError: INVALID_ARGUMENT for extra, missing or renamed inputs,
            or an unparsable tensor.
    """
    expected = signature.inputs
    defaults = getattr(signature, "defaults", {})
    if len(inputs) > len(expected) or (len(inputs) < len(expected) and not defaults):
        raise ServingError(
            _INVALID,
            f"input size does not match signature: {len(inputs)}!={len(expected)} "
            f"len({{{_join(inputs)}}}) != len({{{_join(expected)}}}). "
            f"Sent extra: {{{_join(set(inputs) - set(expected))}}}. "
            f"Missing but required: {{{_join(set(expected) - set(inputs))}}}.",
        )
    parsed = []
    used = set()
    for alias in sorted(expected):
        info = expected[alias]
        if alias in inputs:
            proto = inputs[alias]
            used.add(alias)
        elif alias in defaults:
            proto = defaults[alias]
        else:
            raise ServingError(
                _INVALID,
                f"Signature input alias: {alias}(feed name: {info.name}) not found "
                "in request and no default value provided. Inputs expected to be "
                f"in the request {{{_join(inputs)}}}, or default input alias "
                f"set: {_join(defaults)}",
            )
        try:
            value = tensors.to_ndarray(proto)
        except ValueError:
            raise ServingError(_INVALID, f"tensor parsing error: {alias}") from None
        parsed.append((alias, info, value, proto.dtype))
    if inputs and len(used) != len(inputs):
        raise ServingError(
            _INVALID,
            f"Inputs contains invalid name. Used request inputs: {_join(used)}, "
            f"request input: {_join(inputs)}",
        )
    return parsed


def select_outputs(signature, output_filter):
    """The output aliases to fetch: `output_filter`, or all outputs if it is empty.

    Raises:
        ServingError: INVALID_ARGUMENT for an unknown or repeated alias.
    """
    selected = []
    for alias in output_filter:
        if alias not in signature.outputs:
            raise ServingError(
                _INVALID,
                f"output tensor alias not found in signature: {alias} Outputs "
                f"expected to be in the set {{{_join(signature.outputs)}}}.",
            )
        if alias in selected:
            raise ServingError(_INVALID, f"duplicate output tensor alias: {alias}")
        selected.append(alias)
    # Sorted: the response is a map, and one order per set of outputs keeps
    # the servable's cache of compiled run calls small.
    return sorted(selected or signature.outputs)


def check_dtypes(parsed):
    """Raises TensorFlow's INVALID_ARGUMENT for an input of the wrong dtype.

    The message is the runtime's `Expects arg[i] to be float but string is
    provided`; `i` counts inputs in alias order, which approximates (but need
    not equal) the argument order TF Serving's session would report.
    """
    for index, (_, info, _, dtype) in enumerate(parsed):
        if dtype != info.dtype:
            raise ServingError(
                _INVALID,
                f"Expects arg[{index}] to be {tensors.dtype_name(info.dtype)} but "
                f"{tensors.dtype_name(dtype)} is provided",
            )


def predict(core, request):
    """Runs a `PredictRequest`.

    Returns:
        `PredictResponse` with `model_spec` = {name, resolved version,
        resolved signature name} and every output as typed repeated fields.
    """
    _missing_model_spec(request)
    spec = request.model_spec
    with core.servable(spec) as servable:
        signature_name = spec.signature_name or DEFAULT_SIGNATURE
        signature = servable.signature(signature_name)
        parsed = parse_inputs(signature, request.inputs)
        aliases = select_outputs(signature, request.output_filter)
        check_dtypes(parsed)
        values = servable.run(
            [(info.name, value) for _, info, value, _ in parsed],
            [signature.outputs[alias].name for alias in aliases],
        )
        version = servable.version
    response = predict_pb2.PredictResponse()
    response.model_spec.name = spec.name
    response.model_spec.version.value = version
    response.model_spec.signature_name = signature_name
    for alias, value in zip(aliases, values, strict=True):
        response.outputs[alias].MergeFromString(tensors.typed_tensor_bytes(value))
    return response


def get_model_metadata(core, request):
    """Answers a `GetModelMetadataRequest` (only the `signature_def` field).

    Returns:
        `GetModelMetadataResponse` whose `metadata["signature_def"]` packs a
        `SignatureDefMap` of every signature in the MetaGraphDef on disk;
        `model_spec` holds the name and version only.
    """
    _missing_model_spec(request)
    if not request.metadata_field:
        raise ServingError(
            _INVALID, "GetModelMetadataRequest must specify at least one metadata_field"
        )
    for field in request.metadata_field:
        if field != SIGNATURE_DEF_FIELD:
            raise ServingError(_INVALID, f"Metadata field {field} is not supported")
    spec = request.model_spec
    with core.servable(spec) as servable:
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = spec.name
        response.model_spec.version.value = servable.version
        response.metadata[SIGNATURE_DEF_FIELD].CopyFrom(servable.signature_def_map)
    return response


def get_model_status(core, request):
    """Answers a `GetModelStatusRequest`.

    Returns:
        `GetModelStatusResponse` with one entry per version seen, newest
        first: AVAILABLE for served versions, END for unloaded ones or ones
        that failed to load (with the error), LOADING while loading.
    """
    _missing_model_spec(request)
    spec = request.model_spec
    manager = core.manager(spec.name)
    states = manager.version_states() if manager is not None else {}
    choice = spec.WhichOneof("version_choice")
    if choice is None:
        if not states:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"Could not find any versions of model {spec.name}",
            )
        versions = sorted(states, reverse=True)
    else:
        version = spec.version.value if choice == "version" else core.resolve_label(spec)
        if version not in states:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"Could not find version {version} of model {spec.name}",
            )
        versions = [version]
    response = get_model_status_pb2.GetModelStatusResponse()
    for version in versions:
        state, code, message = states[version]
        entry = response.model_version_status.add(version=version, state=state)
        entry.status.error_code = code.value[0]
        entry.status.error_message = message
    return response


def reload_config(core, request):
    """Answers a `ReloadConfigRequest`: serve exactly the listed models.

    Returns:
        `ReloadConfigResponse` with an OK status once the new configuration
        has been polled.
    """
    config = request.config
    if config.WhichOneof("config") != "model_config_list":
        raise ServingError(
            _INVALID,
            "ServerModelConfig type not supported by HandleReloadConfigRequest. "
            "Only ModelConfigList is currently supported",
        )
    try:
        core.reload(list(config.model_config_list.config))
    except (ValueError, OSError) as e:
        raise ServingError(_INVALID, str(e)) from e
    response = model_management_pb2.ReloadConfigResponse()
    response.status.SetInParent()
    return response
