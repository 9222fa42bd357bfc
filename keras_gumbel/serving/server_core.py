"""`ServerCore`: the served models, their polling thread, and request resolution."""

import contextlib
import logging
import os
import threading

import grpc

from keras_gumbel.serving.config import check_model_configs
from keras_gumbel.serving.errors import ServingError
from keras_gumbel.serving.model_manager import ModelManager

logger = logging.getLogger("keras_gumbel.serving")


class ServerCore:
    """Owns one `ModelManager` per configured model and polls their base paths.

    `start()` loads the initial versions before returning (as
    `tensorflow_model_server` does before it opens its port), then a daemon
    thread polls every `poll_seconds`. `servable(model_spec)` resolves a
    request's `ModelSpec` to a loaded version with TF Serving's rules and
    error messages.

    Args:
        configs: list of `tensorflow.serving.ModelConfig`.
        poll_seconds: float >= 0. Seconds between polls of the base paths;
            0 polls only once, in `start()`.
        tags: sequence of str. The MetaGraphDef tag set to load.
        session_config: `tf.compat.v1.ConfigProto` or None.
    """

    def __init__(self, configs, *, poll_seconds=1.0, tags=("serve",), session_config=None):
        check_model_configs(configs)
        self.poll_seconds = poll_seconds
        self.tags = tuple(tags)
        self.session_config = session_config
        self._managers = {c.name: self._new_manager(c) for c in configs}
        self._poll_lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = None

    def _new_manager(self, config):
        if not os.path.isdir(config.base_path):
            raise FileNotFoundError(
                f"Could not find base path {config.base_path} for servable {config.name}"
            )
        return ModelManager(config, self.tags, self.session_config)

    @property
    def model_names(self):
        return sorted(self._managers)

    def manager(self, name):
        """The `ModelManager` of model `name`, or None."""
        return self._managers.get(name)

    def poll(self):
        """Polls every model's base path once (loads, swaps and unloads versions)."""
        with self._poll_lock:
            for manager in list(self._managers.values()):
                try:
                    manager.poll()
                except Exception:  # a bug here must not stop the polling thread
                    logger.exception("Polling servable %s failed", manager.name)

    def start(self):
        """Loads the initial versions, then starts the polling thread."""
        self.poll()
        if self.poll_seconds > 0:
            self._thread = threading.Thread(
                target=self._poll_forever, name="keras-gumbel-serving-poll", daemon=True
            )
            self._thread.start()

    def _poll_forever(self):
        while not self._stopped.wait(self.poll_seconds):
            self.poll()

    def stop(self):
        """Stops polling and unloads every model."""
        self._stopped.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._poll_lock:
            for manager in self._managers.values():
                manager.shutdown()

    def reload(self, configs):
        """Serves exactly the models of `configs` from now on, as TF Serving's reload.

        Models of the same name and base path keep their loaded versions and
        adopt the new policy and labels; others are added or unloaded. Returns
        once the new configuration has been polled.

        Raises:
            ValueError: If the configs are invalid.
            FileNotFoundError: If a new model's base path does not exist.
        """
        check_model_configs(configs)
        with self._poll_lock:
            managers = {}
            for config in configs:
                current = self._managers.get(config.name)
                if current is not None and current.base_path == config.base_path:
                    current.reconfigure(config)
                    managers[config.name] = current
                else:
                    managers[config.name] = self._new_manager(config)
            removed = [m for n, m in self._managers.items() if managers.get(n) is not m]
            self._managers = managers
            for manager in removed:
                manager.shutdown()
        self.poll()

    def resolve_label(self, model_spec):
        """The version a `ModelSpec`'s `version_label` points to.

        Raises:
            ServingError: INVALID_ARGUMENT `Unrecognized servable version
                label: LABEL` for an unknown model or label.
        """
        label = model_spec.version_label
        manager = self._managers.get(model_spec.name)
        version = manager.label_version(label) if manager is not None else None
        if version is None:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Unrecognized servable version label: {label}",
            )
        return version

    @contextlib.contextmanager
    def servable(self, model_spec):
        """Resolves `model_spec` to a loaded `Servable` and holds it for the block.

        Unset version: the highest served version. `version`: exactly that
        version. `version_label`: the labelled version.

        Raises:
            ServingError: INVALID_ARGUMENT for an empty name or an unknown
                label, NOT_FOUND `Servable not found for request:
                Latest(NAME)` / `Specific(NAME, V)` otherwise.
        """
        name = model_spec.name
        if not name:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")
        choice = model_spec.WhichOneof("version_choice")
        if choice == "version":
            version = model_spec.version.value
        elif choice == "version_label":
            version = self.resolve_label(model_spec)
        else:
            version = None
        manager = self._managers.get(name)
        servable = manager.acquire(version) if manager is not None else None
        if servable is None:
            request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            raise ServingError(
                grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {request}"
            )
        try:
            yield servable
        finally:
            servable.release()
