"""A TF-Serving-compatible model server: `serve()`, `ModelServer` and a command line.

The server speaks TF Serving's gRPC API (`tensorflow.serving.PredictionService`
and `ModelService`, registered with the generated code of the
`tensorflow-serving-api` wheel) and, optionally, its REST API, over a base
path laid out as TF Serving's: `BASE/NAME/<version>/saved_model.pb`. It
serves any SavedModel, not only keras-gumbel's, and exists because the real
`tensorflow_model_server` cannot be installed from PyPI; its behaviour
(version policy, polling, status codes, messages, serialization) follows TF
Serving's so that a client tested against it works against the real one.

Run it with

    python -m keras_gumbel.serving --model_base_path BASE/NAME \\
        --model_name NAME --port 8500 [--rest_api_port 8501]

or from Python with `serve(...)`.
"""

import argparse
import concurrent.futures
import logging
import numbers
import os
import signal
import sys
import threading

import grpc
from tensorflow.core.protobuf import config_pb2

from keras_gumbel.serving import config as config_lib
from keras_gumbel.serving.grpc_services import add_services
from keras_gumbel.serving.rest import RestServer
from keras_gumbel.serving.server_core import ServerCore

logger = logging.getLogger("keras_gumbel.serving")

# TF Serving calls SetMaxMessageSize(INT32_MAX) on its gRPC server.
INT32_MAX = 2**31 - 1


def _invalid(name, expected, value):
    return ValueError(
        f"Invalid value received for argument `{name}`. Expected {expected}. "
        f"Received: {name}={value!r}"
    )


def _check_int(name, value, minimum, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise _invalid(name, f"an integer >= {minimum}", value)


def _check_seconds(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
        raise _invalid(name, "a number of seconds >= 0", value)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _address(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ModelServer:
    """A running TF-Serving-compatible server; see `serve()` for the arguments.

    Attributes:
        core: `ServerCore`. The served models.
        host: str. The bound address.
        port: int. The bound gRPC port (the real one when 0 was asked).
        rest_port: int or None. The bound REST port, None without REST.
        address: str. `host:port`, ready for `grpc.insecure_channel`.
    """

    def __init__(
        self,
        model_configs,
        *,
        host="127.0.0.1",
        port=8500,
        rest_port=None,
        poll_seconds=1.0,
        max_workers=None,
        max_concurrent_rpcs=1024,
        max_message_bytes=INT32_MAX,
        tls_cert_file=None,
        tls_key_file=None,
        tls_client_ca_file=None,
        grace_seconds=10.0,
        tags=("serve",),
        intra_op_threads=0,
        inter_op_threads=0,
    ):
        if not isinstance(host, str) or not host:
            raise _invalid("host", "a non-empty string", host)
        _check_int("port", port, 0)
        _check_int("rest_port", rest_port, 0, allow_none=True)
        _check_seconds("poll_seconds", poll_seconds)
        _check_int("max_workers", max_workers, 1, allow_none=True)
        _check_int("max_concurrent_rpcs", max_concurrent_rpcs, 1, allow_none=True)
        _check_int("max_message_bytes", max_message_bytes, 1)
        if max_message_bytes > INT32_MAX:
            raise _invalid("max_message_bytes", f"at most {INT32_MAX}", max_message_bytes)
        _check_seconds("grace_seconds", grace_seconds)
        _check_int("intra_op_threads", intra_op_threads, 0)
        _check_int("inter_op_threads", inter_op_threads, 0)
        if (tls_cert_file is None) != (tls_key_file is None):
            raise ValueError(
                "TLS needs both `tls_cert_file` and `tls_key_file`. Received: "
                f"tls_cert_file={tls_cert_file!r}, tls_key_file={tls_key_file!r}"
            )
        if tls_client_ca_file is not None and tls_cert_file is None:
            raise ValueError("`tls_client_ca_file` needs `tls_cert_file` and `tls_key_file`.")

        session_config = config_pb2.ConfigProto(
            allow_soft_placement=True,
            intra_op_parallelism_threads=intra_op_threads,
            inter_op_parallelism_threads=inter_op_threads,
        )
        session_config.gpu_options.allow_growth = True
        self.core = ServerCore(
            list(model_configs),
            poll_seconds=poll_seconds,
            tags=tags,
            session_config=session_config,
        )
        self.host = host
        self.grace_seconds = grace_seconds
        self.max_message_bytes = max_message_bytes
        self._requested_port = port
        self._requested_rest_port = rest_port
        self._max_workers = max_workers or 4 * (os.cpu_count() or 1)
        self._max_concurrent_rpcs = max_concurrent_rpcs
        self._tls = (tls_cert_file, tls_key_file, tls_client_ca_file)
        self._grpc = None
        self._executor = None
        self._rest = None
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self.port = None
        self.rest_port = None

    @property
    def address(self):
        return _address(self.host, self.port)

    def _credentials(self):
        cert_file, key_file, client_ca_file = self._tls
        if cert_file is None:
            return None
        client_ca = _read(client_ca_file) if client_ca_file else None
        return grpc.ssl_server_credentials(
            [(_read(key_file), _read(cert_file))],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )

    def start(self):
        """Loads the models, then opens the gRPC (and REST) ports. Returns self."""
        self.core.start()
        try:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix="keras-gumbel-grpc"
            )
            self._grpc = grpc.server(
                self._executor,
                options=[
                    ("grpc.max_receive_message_length", self.max_message_bytes),
                    ("grpc.max_send_message_length", self.max_message_bytes),
                    # Fail on a port in use instead of sharing it silently.
                    ("grpc.so_reuseport", 0),
                ],
                maximum_concurrent_rpcs=self._max_concurrent_rpcs,
            )
            add_services(self._grpc, self.core)
            target = _address(self.host, self._requested_port)
            credentials = self._credentials()
            try:
                if credentials is None:
                    self.port = self._grpc.add_insecure_port(target)
                else:
                    self.port = self._grpc.add_secure_port(target, credentials)
            except RuntimeError as e:
                raise OSError(f"Could not bind the gRPC server to {target}: {e}") from e
            if not self.port:
                raise OSError(f"Could not bind the gRPC server to {target}")
            self._grpc.start()
            if self._requested_rest_port is not None:
                self._rest = RestServer(
                    self.core,
                    self.host,
                    self._requested_rest_port,
                    max_body_bytes=self.max_message_bytes,
                )
                self.rest_port = self._rest.port
                self._rest.start()
        except BaseException:
            self.stop(grace=0)
            raise
        scheme = "TLS" if self._tls[0] else "insecure"
        logger.info("Running gRPC ModelServer at %s (%s) ...", self.address, scheme)
        if self.rest_port is not None:
            logger.info("Exporting HTTP/REST API at %s ...", _address(self.host, self.rest_port))
        return self

    def stop(self, grace=None):
        """Stops accepting requests, lets running ones finish, unloads the models.

        Args:
            grace: float or None. Seconds running requests may still take;
                None for the server's `grace_seconds`. Requests still running
                after it are cancelled.
        """
        with self._stop_lock:
            if self._stopped.is_set():
                return
            grace = self.grace_seconds if grace is None else grace
            logger.info("Stopping the model server (grace %.1f s)", grace)
            stopped_grpc = self._grpc.stop(grace) if self._grpc is not None else None
            if self._rest is not None:
                self._rest.stop(grace)
            if stopped_grpc is not None:
                stopped_grpc.wait()
            if self._executor is not None:
                self._executor.shutdown(wait=False)
            self.core.stop()
            self._stopped.set()

    def wait(self, timeout=None):
        """Blocks until the server has stopped; False if `timeout` ran out first."""
        return self._stopped.wait(timeout)

    def stop_on_signals(self, signals=(signal.SIGTERM, signal.SIGINT)):
        """Makes SIGTERM and SIGINT stop the server gracefully (main thread only).

        The handler returns at once; the server then stops in a background
        thread, finishing requests in flight within `grace_seconds`, and
        `wait()` returns.
        """

        def handle(signum, frame):
            logger.info("Received signal %s", signal.Signals(signum).name)
            threading.Thread(target=self.stop, name="keras-gumbel-stop").start()

        for signum in signals:
            signal.signal(signum, handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def __repr__(self):
        return (
            f"ModelServer(address={self.address!r}, rest_port={self.rest_port}, "
            f"models={self.core.model_names})"
        )


def serve(
    base_path=None,
    model_name=None,
    *,
    host="127.0.0.1",
    port=8500,
    rest_port=None,
    model_config_file=None,
    version_policy=None,
    version_labels=None,
    poll_seconds=1.0,
    max_workers=None,
    max_concurrent_rpcs=1024,
    max_message_bytes=INT32_MAX,
    tls_cert_file=None,
    tls_key_file=None,
    tls_client_ca_file=None,
    grace_seconds=10.0,
    tags=("serve",),
    intra_op_threads=0,
    inter_op_threads=0,
):
    """Starts a TF-Serving-compatible gRPC (and optionally REST) model server.

    The models come either from `base_path` (one model) or from
    `model_config_file` (a text-format `ModelServerConfig` as TF Serving's
    `--model_config_file`, any number of models, with version policies and
    labels). Under a model's base path, each version is a directory named by
    its number holding a SavedModel; other names are skipped. Versions are
    picked by the version policy (by default the highest one), and the base
    path is polled every `poll_seconds`: a new version is loaded and then
    swapped in atomically, so requests in flight never fail; a version
    directory that is incomplete is retried when it changes; versions the
    policy no longer wants are unloaded once their last request is done.

    The call returns once the initial versions are loaded and the ports are
    open. The server runs in background threads; stop it with `stop()`, or
    in a script call `stop_on_signals()` and `wait()`.

    Args:
        base_path: str, os.PathLike or None. The model's base path,
            `base_path/<version>/saved_model.pb`.
        model_name: str or None. The name clients use; defaults to the last
            component of `base_path` (TF Serving's binary defaults to
            "default").
        host: str. The address to bind; loopback by default. Use "0.0.0.0"
            to accept remote clients (TF Serving's default).
        port: int. gRPC port; 0 picks a free one (see the returned
            server's `port`).
        rest_port: int or None. REST port (0 picks a free one); None, the
            default, serves no REST API.
        model_config_file: str, os.PathLike or None. Instead of `base_path`:
            a text-format `ModelServerConfig` with a `model_config_list`.
        version_policy: str or None. For `base_path`: "latest" (default),
            "latest:N", "all" or "specific:V1,V2"; see
            `parse_version_policy`.
        version_labels: dict or None. For `base_path`: labels to versions,
            e.g. `{"stable": 1, "canary": 2}`, for `ModelSpec.version_label`.
        poll_seconds: float >= 0. Seconds between polls of the base paths;
            0 polls only at start.
        max_workers: int or None. gRPC worker threads; default 4 per CPU as
            TF Serving's `grpc_max_threads`.
        max_concurrent_rpcs: int or None. RPCs accepted at once (running or
            queued); more get RESOURCE_EXHAUSTED. None for no bound.
        max_message_bytes: int. Largest request and response message in
            bytes; INT32_MAX by default, as TF Serving. A larger request gets
            RESOURCE_EXHAUSTED and the server carries on. Also bounds REST
            bodies.
        tls_cert_file: str or None. PEM certificate chain for TLS on gRPC.
        tls_key_file: str or None. PEM private key for TLS.
        tls_client_ca_file: str or None. PEM CA bundle; when set, clients
            must present a certificate signed by it (mutual TLS).
        grace_seconds: float >= 0. On `stop()`, how long requests in flight
            may still take.
        tags: sequence of str. The MetaGraphDef tag set to load.
        intra_op_threads: int >= 0. TensorFlow intra-op threads per model;
            0 lets TensorFlow choose.
        inter_op_threads: int >= 0. TensorFlow inter-op threads per model;
            0 lets TensorFlow choose.

    Returns:
        The running `ModelServer`, with `.port`, `.rest_port`, `.address`,
        `.stop()`, `.wait()` and `.stop_on_signals()`.

    Raises:
        ValueError: For invalid arguments or config file.
        FileNotFoundError: If a base path does not exist.
        OSError: If a port cannot be bound.

    Example:

    ```python
    server = serve("exported/vae", port=0)
    client = ServingClient(server.address, "vae")
    codes = client.encode(images)
    server.stop()
    ```
    """
    if model_config_file is not None:
        if base_path is not None:
            raise ValueError(
                "Pass either `base_path` or `model_config_file`, not both. "
                f"Received: base_path={base_path!r}, "
                f"model_config_file={model_config_file!r}"
            )
        if version_policy is not None or version_labels:
            raise ValueError(
                "`version_policy` and `version_labels` apply to `base_path`; "
                "with `model_config_file`, set them in the file."
            )
        configs = config_lib.read_model_config_file(model_config_file)
    elif base_path is not None:
        configs = [
            config_lib.make_model_config(base_path, model_name, version_policy, version_labels)
        ]
    else:
        raise ValueError("Pass `base_path` or `model_config_file`.")
    server = ModelServer(
        configs,
        host=host,
        port=port,
        rest_port=rest_port,
        poll_seconds=poll_seconds,
        max_workers=max_workers,
        max_concurrent_rpcs=max_concurrent_rpcs,
        max_message_bytes=max_message_bytes,
        tls_cert_file=tls_cert_file,
        tls_key_file=tls_key_file,
        tls_client_ca_file=tls_client_ca_file,
        grace_seconds=grace_seconds,
        tags=tags,
        intra_op_threads=intra_op_threads,
        inter_op_threads=inter_op_threads,
    )
    return server.start()


def _labels(text):
    labels = {}
    for item in filter(None, text.split(",")):
        label, _, version = item.partition("=")
        if not label or not version.isdigit():
            raise argparse.ArgumentTypeError(
                f"expected LABEL=VERSION[,LABEL=VERSION...], got {text!r}"
            )
        labels[label] = int(version)
    return labels


def build_parser(prog="python -m keras_gumbel.serving"):
    """The command line, with TF Serving's flag names where they exist."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve SavedModels over TF Serving's gRPC and REST APIs.",
    )
    parser.add_argument("--model_base_path", help="BASE/NAME holding <version>/ dirs")
    parser.add_argument("--model_name", help="model name (default: base path's name)")
    parser.add_argument("--model_config_file", help="text-format ModelServerConfig")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port; 0: any")
    parser.add_argument(
        "--rest_api_port", type=int, default=0, help="REST port; 0 (default): no REST"
    )
    parser.add_argument(
        "--file_system_poll_wait_seconds",
        type=float,
        default=1.0,
        help="seconds between polls of the base path; 0: poll once",
    )
    parser.add_argument("--version_policy", help='"latest", "latest:N", "all", "specific:1,2"')
    parser.add_argument("--version_labels", type=_labels, help="e.g. stable=1,canary=2")
    parser.add_argument("--grpc_max_threads", type=int, help="default: 4 per CPU")
    parser.add_argument("--max_concurrent_rpcs", type=int, default=1024)
    parser.add_argument("--max_message_bytes", type=int, default=INT32_MAX)
    parser.add_argument("--ssl_cert_file", help="PEM certificate chain (enables TLS)")
    parser.add_argument("--ssl_key_file", help="PEM private key")
    parser.add_argument("--ssl_client_ca_file", help="PEM CA for client certificates")
    parser.add_argument("--grace_seconds", type=float, default=10.0)
    parser.add_argument("--saved_model_tags", default="serve", help="comma-separated")
    parser.add_argument("--tensorflow_intra_op_parallelism", type=int, default=0)
    parser.add_argument("--tensorflow_inter_op_parallelism", type=int, default=0)
    return parser


def main(argv=None, prog="python -m keras_gumbel.serving"):
    """Runs the server until SIGTERM or SIGINT; returns the exit status."""
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        server = serve(
            args.model_base_path,
            args.model_name,
            host=args.host,
            port=args.port,
            rest_port=args.rest_api_port or None,
            model_config_file=args.model_config_file,
            version_policy=args.version_policy,
            version_labels=args.version_labels,
            poll_seconds=args.file_system_poll_wait_seconds,
            max_workers=args.grpc_max_threads,
            max_concurrent_rpcs=args.max_concurrent_rpcs,
            max_message_bytes=args.max_message_bytes,
            tls_cert_file=args.ssl_cert_file,
            tls_key_file=args.ssl_key_file,
            tls_client_ca_file=args.ssl_client_ca_file,
            grace_seconds=args.grace_seconds,
            tags=tuple(filter(None, args.saved_model_tags.split(","))),
            intra_op_threads=args.tensorflow_intra_op_parallelism,
            inter_op_threads=args.tensorflow_inter_op_parallelism,
        )
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    server.stop_on_signals()
    # A line on stdout that scripts (and tests, with --port 0) can wait for.
    print(f"Running gRPC ModelServer at {server.address} ...", flush=True)
    if server.rest_port is not None:
        rest_address = _address(server.host, server.rest_port)
        print(f"Exporting HTTP/REST API at {rest_address} ...", flush=True)
    server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
