"""`ModelManager`: the versions of one model, kept in step with its base path."""

import logging
import os
import re
import threading

import grpc
from tensorflow_serving.apis import get_model_status_pb2

from keras_gumbel.serving.servable import Servable

logger = logging.getLogger("keras_gumbel.serving")

State = get_model_status_pb2.ModelVersionStatus.State

# TF Serving reads version directory names as int64 and skips the rest.
_VERSION_PATTERN = re.compile(r"^\d+$")
_MAX_VERSION = 2**63 - 1


def list_versions(base_path):
    """Maps version number to directory for the numeric subdirectories of `base_path`.

    Names that are not non-negative integers are skipped silently, as by TF
    Serving's file system source.

    Raises:
        OSError: If `base_path` cannot be listed.
    """
    versions = {}
    for entry in sorted(os.listdir(base_path)):
        path = os.path.join(base_path, entry)
        if _VERSION_PATTERN.match(entry) and os.path.isdir(path):
            version = int(entry)
            if version <= _MAX_VERSION:
                versions.setdefault(version, path)
    return versions


def aspired_versions(policy, versions):
    """The versions a `ServableVersionPolicy` asks to serve, out of `versions`."""
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return set(versions)
    if choice == "specific":
        return set(versions) & set(policy.specific.versions)
    num_versions = max(policy.latest.num_versions, 1)
    return set(sorted(versions)[-num_versions:])


def _fingerprint(path):
    # Name, size and modification time of every file: a version directory
    # that is still being written changes between polls, a broken one does
    # not, so only the former is loaded again.
    entries = []
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                stat = os.stat(full)
            except OSError:
                continue
            entries.append((os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


def _error_code(error):
    code = getattr(error, "error_code", None)
    for status_code in grpc.StatusCode:
        if status_code.value[0] == code:
            return status_code
    if isinstance(error, FileNotFoundError):
        return grpc.StatusCode.NOT_FOUND
    return grpc.StatusCode.UNKNOWN


class ModelManager:
    """Loads, serves and unloads the versions of one model.

    Each `poll()` lists the numeric version directories under the model's
    base path, picks the ones its version policy asks for (by default the
    highest), loads those not loaded yet, and then swaps the set of served
    versions in one step. Like TF Serving's availability-preserving policy, a
    new version is loaded before the old one is unloaded, and if none of the
    wanted versions can be loaded (e.g. the newest directory is still being
    written), the versions already loaded keep serving. A version that fails
    to load is tried again as soon as its directory changes.

    Requests take a version with `acquire()` and must `release()` it; a
    retired version closes its session only after its last request is done.

    Args:
        config: `tensorflow.serving.ModelConfig`. Name, base path, version
            policy and version labels.
        tags: sequence of str. The MetaGraphDef tag set to load.
        session_config: `tf.compat.v1.ConfigProto` or None.
    """

    def __init__(self, config, tags=("serve",), session_config=None):
        self.config = config
        self.tags = tuple(tags)
        self.session_config = session_config
        self._lock = threading.Lock()
        self._available = {}
        self._states = {}
        self._failed = {}
        self._warned = set()

    @property
    def name(self):
        return self.config.name

    @property
    def base_path(self):
        return self.config.base_path

    def reconfigure(self, config):
        """Adopts a new config for the same name and base path (policy, labels)."""
        with self._lock:
            self.config = config

    def label_version(self, label):
        """The version `label` points to, or None if the label is unknown."""
        labels = self.config.version_labels
        return labels[label] if label in labels else None

    def _warn_once(self, key, message, *args):
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)

    def _set_state(self, version, state, code=grpc.StatusCode.OK, message=""):
        with self._lock:
            self._states[version] = (state, code, message)

    def poll(self):
        """Brings the served versions in line with the base path and the policy."""
        try:
            on_disk = list_versions(self.base_path)
        except OSError as e:
            self._warn_once(
                "base path",
                "Could not list base path %s of servable %s: %s",
                self.base_path,
                self.name,
                e,
            )
            return
        self._warned.discard("base path")
        if on_disk:
            self._warned.discard("no versions")
        else:
            self._warn_once(
                "no versions",
                "No versions of servable %s found under base path %s. Did you "
                "forget to name your leaf directory as a number (eg. '/1/')?",
                self.name,
                self.base_path,
            )
        wanted = aspired_versions(self.config.model_version_policy, on_disk)
        loaded = dict(self._available)
        for version in sorted(wanted - set(loaded), reverse=True):
            servable = self._try_load(version, on_disk[version])
            if servable is not None:
                loaded[version] = servable
        ready = {v: s for v, s in loaded.items() if v in wanted}
        if not ready:
            ready = {v: s for v, s in loaded.items() if v in on_disk}
        retired = [s for v, s in loaded.items() if v not in ready]
        with self._lock:
            self._available = ready
            for version in ready:
                self._states[version] = (State.AVAILABLE, grpc.StatusCode.OK, "")
        for servable in retired:
            logger.info("Unloading servable version %s of %s", servable.version, self.name)
            servable.retire()
            self._set_state(servable.version, State.END)

    def _try_load(self, version, path):
        fingerprint = _fingerprint(path)
        if self._failed.get(version) == fingerprint:
            return None
        self._set_state(version, State.LOADING)
        try:
            servable = Servable.load(self.name, version, path, self.tags, self.session_config)
        except Exception as e:
            self._failed[version] = fingerprint
            message = getattr(e, "message", None) or str(e)
            self._set_state(version, State.END, _error_code(e), message)
            logger.warning(
                "Loading servable version %s of %s from %s failed; it is tried "
                "again when the directory changes: %s",
                version,
                self.name,
                path,
                message.splitlines()[0] if message else type(e).__name__,
            )
            return None
        self._failed.pop(version, None)
        logger.info(
            "Successfully loaded servable version %s of %s from %s",
            version,
            self.name,
            path,
        )
        return servable

    def acquire(self, version=None):
        """A served `Servable` (the highest version if `version` is None), or None.

        The caller must call `release()` on it when done.
        """
        with self._lock:
            available = self._available
            if not available:
                return None
            if version is None:
                version = max(available)
            servable = available.get(version)
            if servable is None or not servable.acquire():
                return None
            return servable

    def versions(self):
        """The version numbers being served, ascending."""
        return sorted(self._available)

    def version_states(self):
        """Maps every version seen so far to (State, grpc.StatusCode, message).

        Unloaded versions stay in the map in state END, as in TF Serving.
        """
        with self._lock:
            return dict(self._states)

    def shutdown(self):
        """Unloads every version."""
        with self._lock:
            retired = list(self._available.values())
            self._available = {}
        for servable in retired:
            servable.retire()
            self._set_state(servable.version, State.END)
