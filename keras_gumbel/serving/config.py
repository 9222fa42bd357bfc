"""Model configuration: TF Serving's `ModelServerConfig` and version policies.

The server keeps its configuration in TF Serving's own protos
(`tensorflow.serving.ModelConfig`), so a `--model_config_file` written for
`tensorflow_model_server` works here unchanged, and the Python arguments
(`base_path`, `model_name`, `version_policy`, `version_labels`) are turned
into the same protos.
"""

import os
import re

from google.protobuf import text_format
from tensorflow_serving.config import file_system_storage_path_source_pb2
from tensorflow_serving.config import model_server_config_pb2

_SourceConfig = file_system_storage_path_source_pb2.FileSystemStoragePathSourceConfig
VersionPolicy = _SourceConfig.ServableVersionPolicy

_POLICY_PATTERN = re.compile(r"^(latest)(?::(\d+))?$|^(all)$|^(specific):(\d+(?:,\d+)*)$")


def parse_version_policy(policy):
    """Builds a `ServableVersionPolicy` from a short string, as TF Serving's.

    Args:
        policy: One of
            - `None` or `"latest"`: serve the highest version (TF Serving's
              default);
            - `"latest:N"`: serve the N highest versions;
            - `"all"`: serve every version;
            - `"specific:1,4"`: serve exactly these versions;
            - a `ServableVersionPolicy` proto, returned as is.

    Returns:
        `tensorflow.serving.FileSystemStoragePathSourceConfig.ServableVersionPolicy`.

    Example:

    >>> parse_version_policy("specific:1,2").specific.versions
    [1, 2]
    """
    if isinstance(policy, VersionPolicy):
        return policy
    if policy is None:
        policy = "latest"
    match = _POLICY_PATTERN.match(policy) if isinstance(policy, str) else None
    if match is None or (match.group(1) and match.group(2) == "0"):
        raise ValueError(
            "Invalid value received for argument `version_policy`. Expected "
            '"latest", "latest:N" with N >= 1, "all" or "specific:V1,V2,...". '
            f"Received: version_policy={policy!r}"
        )
    proto = VersionPolicy()
    if match.group(1):
        proto.latest.num_versions = int(match.group(2) or 1)
    elif match.group(3):
        proto.all.SetInParent()
    else:
        proto.specific.versions.extend(int(v) for v in match.group(5).split(","))
    return proto


def make_model_config(base_path, model_name=None, version_policy=None, version_labels=None):
    """A `ModelConfig` for one model from Python arguments.

    Args:
        base_path: str or os.PathLike. The directory holding the numbered
            version directories, `base_path/<version>/saved_model.pb`.
        model_name: str or None. The name clients ask for; defaults to the
            last component of `base_path`.
        version_policy: See `parse_version_policy`.
        version_labels: dict of str to int, or None. Labels such as
            `{"stable": 1, "canary": 2}`.

    Returns:
        `tensorflow.serving.ModelConfig`.
    """
    base_path = os.path.abspath(os.fspath(base_path))
    if model_name is None:
        model_name = os.path.basename(base_path.rstrip(os.sep))
    if not isinstance(model_name, str) or not model_name:
        raise ValueError(
            "Invalid value received for argument `model_name`. Expected a "
            f"non-empty string. Received: model_name={model_name!r}"
        )
    config = model_server_config_pb2.ModelConfig(
        name=model_name, base_path=base_path, model_platform="tensorflow"
    )
    config.model_version_policy.CopyFrom(parse_version_policy(version_policy))
    for label, version in (version_labels or {}).items():
        if not isinstance(label, str) or not label or isinstance(version, bool):
            raise ValueError(
                "Invalid value received for argument `version_labels`. Expected "
                "a dict of non-empty label strings to integer versions. "
                f"Received: version_labels={version_labels!r}"
            )
        config.version_labels[label] = int(version)
    return config


def check_model_configs(configs):
    """Validates a list of `ModelConfig`s the way TF Serving's ServerCore does.

    Raises:
        ValueError: For a missing name or base path, a duplicate name, or a
            platform other than "tensorflow".
    """
    seen = set()
    for config in configs:
        if not config.name:
            raise ValueError("A model config has no name.")
        if not config.base_path:
            raise ValueError(f"Model {config.name!r} has no base_path.")
        if config.name in seen:
            raise ValueError(f"Illegal to list model {config.name} multiple times in config list")
        if config.model_platform not in ("", "tensorflow"):
            raise ValueError(
                f"Model {config.name!r} has model_platform "
                f'"{config.model_platform}"; only "tensorflow" is supported.'
            )
        seen.add(config.name)


def read_model_config_file(path):
    """Reads a text-format `ModelServerConfig` (`--model_config_file`).

    Only `model_config_list` is supported, as for TF Serving's config reload.
    Relative `base_path`s are taken relative to the current directory, as
    `tensorflow_model_server` does.

    Args:
        path: str or os.PathLike.

    Returns:
        A list of `tensorflow.serving.ModelConfig`.

    Raises:
        ValueError: If the file does not parse or holds no model list.
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        raise ValueError(f"Could not parse model config file {path}: {e}") from e
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError(
            f"Model config file {path} has no model_config_list; only ModelConfigList is supported."
        )
    configs = list(config.model_config_list.config)
    check_model_configs(configs)
    return configs
