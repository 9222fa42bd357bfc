"""`Servable`: one loaded version of a SavedModel, ready to run signatures."""

import os
import threading

import grpc
import tensorflow as tf
from google.protobuf import any_pb2
from google.protobuf import text_format
from tensorflow.core.protobuf import config_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.util import deprecation
from tensorflow_serving.apis import get_model_metadata_pb2

from keras_gumbel.serving.errors import ServingError

_STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}


def read_meta_graph_def(path, tags=("serve",)):
    """Reads the `MetaGraphDef` tagged exactly `tags` from a SavedModel directory.

    Args:
        path: str. A SavedModel directory (`saved_model.pb` or
            `saved_model.pbtxt`).
        tags: sequence of str. The tag set, e.g. `("serve",)`.

    Returns:
        `tensorflow.MetaGraphDef`.

    Raises:
        OSError: If the directory holds no SavedModel file.
        ValueError: If the file does not parse or no MetaGraphDef has
            exactly these tags.
    """
    binary = os.path.join(path, "saved_model.pb")
    text = os.path.join(path, "saved_model.pbtxt")
    saved_model = saved_model_pb2.SavedModel()
    if os.path.isfile(binary):
        with open(binary, "rb") as f:
            data = f.read()
        try:
            saved_model.ParseFromString(data)
        except Exception as e:  # protobuf raises DecodeError or RuntimeError
            raise ValueError(f"Could not parse {binary}: {e}") from e
    elif os.path.isfile(text):
        with open(text, encoding="utf-8") as f:
            try:
                text_format.Parse(f.read(), saved_model)
            except text_format.ParseError as e:
                raise ValueError(f"Could not parse {text}: {e}") from e
    else:
        raise FileNotFoundError(
            f"SavedModel file does not exist at: {path}{os.sep}{{saved_model.pbtxt|saved_model.pb}}"
        )
    for meta_graph_def in saved_model.meta_graphs:
        if set(meta_graph_def.meta_info_def.tags) == set(tags):
            return meta_graph_def
    available = [sorted(m.meta_info_def.tags) for m in saved_model.meta_graphs]
    raise ValueError(
        f"MetaGraphDef associated with tags {sorted(tags)} could not be found "
        f"in SavedModel {path}. Available tag sets: {available}"
    )


class Servable:
    """A SavedModel version loaded into its own TensorFlow Session.

    This is TF Serving's TF1 Session path: the MetaGraphDef is imported into
    a fresh graph, variables are restored and the init op is run by
    `tf.compat.v1.saved_model.load`, and a request feeds the signature's
    input tensors and fetches its output tensors by graph name. Shape errors
    therefore come from the ops themselves, with TensorFlow's messages, as in
    TF Serving; nothing here validates shapes.

    Signatures are taken from the MetaGraphDef on disk, so metadata lists
    every one of them, `__saved_model_init_op` included.

    A servable counts the requests using it. `retire()` marks it as no longer
    served; the session is closed once the last request has released it, so
    swapping versions never fails a request in flight.

    Args:
        name: str. The model name.
        version: int. The version number.
        path: str. The version directory.
        meta_graph_def: `MetaGraphDef` as read from disk.
        session: `tf.compat.v1.Session` with the model loaded.
    """

    def __init__(self, name, version, path, meta_graph_def, session):
        self.name = name
        self.version = version
        self.path = path
        self.meta_graph_def = meta_graph_def
        self.session = session
        self.signature_defs = dict(meta_graph_def.signature_def)
        signature_def_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature_def in self.signature_defs.items():
            signature_def_map.signature_def[key].CopyFrom(signature_def)
        self.signature_def_map = any_pb2.Any()
        self.signature_def_map.Pack(signature_def_map)
        self._lock = threading.Lock()
        self._callables = {}
        self._users = 0
        self._retired = False
        self._closed = False

    @classmethod
    def load(cls, name, version, path, tags=("serve",), session_config=None):
        """Loads the SavedModel in `path`.

        Args:
            name: str. The model name.
            version: int. The version number.
            path: str. The version directory.
            tags: sequence of str. The MetaGraphDef's tag set.
            session_config: `tf.compat.v1.ConfigProto` or None.

        Returns:
            A `Servable`.

        Raises:
            Exception: Whatever reading or loading the SavedModel raises
                (missing or truncated files, missing variables, unknown ops).
        """
        meta_graph_def = read_meta_graph_def(path, tags)
        if session_config is None:
            session_config = config_pb2.ConfigProto(allow_soft_placement=True)
            session_config.gpu_options.allow_growth = True
        graph = tf.Graph()
        session = tf.compat.v1.Session(graph=graph, config=session_config)
        try:
            # The TF1 loader is TF Serving's own path (a session per version);
            # its deprecation notice is not for users of the server.
            with graph.as_default(), deprecation.silence():
                tf.compat.v1.saved_model.load(session, list(tags), path)
            graph.finalize()
        except BaseException:
            session.close()
            raise
        return cls(name, version, path, meta_graph_def, session)

    def signature(self, signature_name):
        """The `SignatureDef` named `signature_name`.

        Raises:
            ServingError: FAILED_PRECONDITION, as TF Serving's Predict, if the
                MetaGraphDef has no such signature.
        """
        try:
            return self.signature_defs[signature_name]
        except KeyError:
            raise ServingError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature key "{signature_name}" not found.',
            ) from None

    def _callable(self, feeds, fetches):
        key = (feeds, fetches)
        run = self._callables.get(key)
        if run is None:
            with self._lock:
                run = self._callables.get(key)
                if run is None:
                    run = self._make_callable(feeds, fetches)
                    self._callables[key] = run
        return run

    def _make_callable(self, feeds, fetches):
        # `Session._make_callable_from_options` wraps the C++
        # `Session::MakeCallable`, the run path TF Serving uses: arguments go
        # to the graph without Python's feed checks, so a bad shape fails in
        # the op that cannot take it, with TensorFlow's own message, and the
        # call releases the GIL. The public `make_callable` checks shapes in
        # Python first; it is the fallback should the private method vanish.
        options = config_pb2.CallableOptions(feed=list(feeds), fetch=list(fetches))
        make = getattr(self.session, "_make_callable_from_options", None)
        if make is not None:
            return make(options)
        return self.session.make_callable(list(fetches), feed_list=list(feeds))

    def run(self, feeds, fetches):
        """Runs the graph: feeds arrays to tensor names, returns fetched arrays.

        Args:
            feeds: sequence of (tensor name, NumPy array) pairs.
            fetches: sequence of tensor names.

        Returns:
            A list of NumPy arrays, one per fetch.

        Raises:
            ServingError: With TensorFlow's status code and message if the
                run fails (e.g. INVALID_ARGUMENT for incompatible shapes).
        """
        names = tuple(name for name, _ in feeds)
        try:
            run = self._callable(names, tuple(fetches))
            return list(run(*(value for _, value in feeds)))
        except tf.errors.OpError as e:
            code = _STATUS_CODES.get(e.error_code, grpc.StatusCode.UNKNOWN)
            raise ServingError(code, e.message) from e

    def acquire(self):
        """Registers one more user; False if the servable is already retired."""
        with self._lock:
            if self._retired:
                return False
            self._users += 1
            return True

    def release(self):
        """Unregisters a user; the last user of a retired servable closes it."""
        with self._lock:
            self._users -= 1
            close = self._retired and self._users == 0
        if close:
            self._close()

    def retire(self):
        """Stops serving: closes now if unused, else when the last user releases."""
        with self._lock:
            self._retired = True
            close = self._users == 0
        if close:
            self._close()

    def _close(self):
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._callables.clear()
        self.session.close()

    def __repr__(self):
        return f"Servable(name={self.name!r}, version={self.version}, path={self.path!r})"
