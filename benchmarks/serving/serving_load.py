"""Load test of the bundled TF-Serving-compatible server, with a hot version swap.

Two parts, one run, results in benchmarks/serving/results/serving_load.{json,md}:

1. Hot swap under load: CLIENTS concurrent gRPC clients (own channel each,
   official stubs) send REQUESTS Predict requests each to `encode` while
   version 2 is copied into the base path (in place, not renamed, so the
   poller may see it half-written). Every response must be OK; the script
   counts the versions that answered.
2. Latency and throughput at batch sizes 1, 64 and 1024: the `encode`
   signature (both outputs) over gRPC against the same signature called in
   this process (`tf.saved_model.load(...).signatures["encode"]`), first
   one stream, then CLIENTS concurrent streams. Served and in-process blocks
   alternate within each of ROUNDS rounds; the reported figures are the
   medians over rounds of each round's p50, p99 and throughput.

The model is the serving tests' fixture SavedModel (keras_gumbel/serving/
fixture_model.py: D=784, N=20, K=10, encoder 784-512-256-200 and
decoder 200-256-512-784 with fixed random weights), the contract of the
project's export without training a model. The server runs as a separate
process (`python -m keras_gumbel.serving`) on 127.0.0.1; clients and
the in-process calls share the other process, and both processes share the
machine's cores.

Usage:
    PYTHONPATH=. KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=3 \
        python -m benchmarks.serving.serving_load
"""

import argparse
import concurrent.futures
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from benchmarks.common import cpu_model
from benchmarks.common import shown_args
from keras_gumbel.serving import ServingClient
from keras_gumbel.serving import tensors
from keras_gumbel.serving.fixture_model import D
from keras_gumbel.serving.fixture_model import save_fixture_model

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).parent / "results"

MODEL = "gumbel"
BATCH_SIZES = (1, 64, 1024)
# Calls per block (one block served, one in-process, per round) and
# concurrent requests per client per round, by batch size: sized so that
# the whole run takes about a minute on a 2-core machine.
BLOCK = {1: 300, 64: 150, 1024: 30}
CONCURRENT = {1: 60, 64: 20, 1024: 4}


def _machine():
    model = cpu_model()
    import google.protobuf

    return {
        "cpu": model,
        "cpu_cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "grpcio": grpc.__version__,
        "protobuf": google.protobuf.__version__,
        "numpy": np.__version__,
    }


def _start_server(base, poll_seconds):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    command = [
        sys.executable, "-m", "keras_gumbel.serving",
        f"--model_base_path={base}", f"--model_name={MODEL}", "--port=0",
        f"--file_system_poll_wait_seconds={poll_seconds}",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True
    )
    line = process.stdout.readline()
    if not line.startswith("Running gRPC ModelServer at "):
        process.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    return process, line.split()[-2]


def _request(images):
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=MODEL, signature_name="encode")
    )
    request.inputs["images"].CopyFrom(tensors.content_tensor_proto(images))
    return request


def _percentiles(latencies):
    ms = np.asarray(latencies) * 1000.0
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def hot_swap(address, base, source, clients, requests):
    """CLIENTS x REQUESTS Predicts while version 2 is dropped in."""
    images = np.random.default_rng(0).random((clients, 1, D), dtype=np.float32)
    results = [[] for _ in range(clients)]
    errors = []
    done = [0]
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(index):
        options = [("grpc.max_receive_message_length", -1)]
        with grpc.insecure_channel(address, options=options) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = _request(images[index])
            stub.Predict(request, timeout=60)  # connect before the clock starts
            start.wait()
            for _ in range(requests):
                begin = time.perf_counter()
                try:
                    response = stub.Predict(request, timeout=60)
                except grpc.RpcError as e:
                    errors.append(f"{e.code().name}: {e.details()}")
                    continue
                elapsed = time.perf_counter() - begin
                results[index].append(
                    (time.monotonic(), elapsed, response.model_spec.version.value)
                )
                with lock:
                    done[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.monotonic()
    total = clients * requests
    while done[0] < total // 4 and any(t.is_alive() for t in threads):
        time.sleep(0.01)
    dropped = time.monotonic()
    shutil.copytree(source, base / "2")
    copied = time.monotonic()
    for thread in threads:
        thread.join()
    ended = time.monotonic()

    rows = [row for per_client in results for row in per_client]
    versions = {}
    for _, _, version in rows:
        versions[str(version)] = versions.get(str(version), 0) + 1
    first_v2 = min((t for t, _, v in rows if v == 2), default=None)
    p50, p99 = _percentiles([elapsed for _, elapsed, _ in rows])
    return {
        "clients": clients,
        "requests_per_client": requests,
        "requests": total,
        "ok": len(rows),
        "errors": len(errors),
        "error_samples": errors[:5],
        "batch_size": 1,
        "responses_by_version": versions,
        "version_2_dropped_after_s": round(dropped - began, 3),
        "version_2_copy_s": round(copied - dropped, 3),
        "first_version_2_response_after_drop_s": (
            None if first_v2 is None else round(first_v2 - dropped, 3)
        ),
        "wall_s": round(ended - began, 3),
        "throughput_requests_per_s": round(len(rows) / (ended - began), 1),
        "latency_p50_ms": round(p50, 3),
        "latency_p99_ms": round(p99, 3),
    }


def _stream(call, count):
    latencies = []
    began = time.perf_counter()
    for _ in range(count):
        start = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - start)
    return latencies, time.perf_counter() - began


def _concurrent(calls, count):
    """Each of `calls` (one per client) runs `count` times in its own thread."""
    latencies = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(calls))

    def worker(call):
        own = []
        barrier.wait()
        for _ in range(count):
            start = time.perf_counter()
            call()
            own.append(time.perf_counter() - start)
        with lock:
            latencies.extend(own)

    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        list(pool.map(worker, calls))
    return latencies, time.perf_counter() - began


def _summary(rounds, batch):
    p50s, p99s, rps = [], [], []
    for latencies, wall in rounds:
        p50, p99 = _percentiles(latencies)
        p50s.append(p50)
        p99s.append(p99)
        rps.append(len(latencies) / wall)
    return {
        "p50_ms": round(float(np.median(p50s)), 3),
        "p99_ms": round(float(np.median(p99s)), 3),
        "requests_per_s": round(float(np.median(rps)), 1),
        "rows_per_s": round(float(np.median(rps)) * batch, 1),
        "samples_per_round": len(rounds[0][0]),
        "rounds": len(rounds),
    }


def batch_sizes(address, model_path, clients, rounds):
    """Served vs in-process `encode`, one stream and `clients` streams."""
    encode = tf.saved_model.load(str(model_path)).signatures["encode"]
    served_clients = [ServingClient(address, MODEL, timeout=120) for _ in range(clients)]
    rows = []
    for batch in BATCH_SIZES:
        images = np.random.default_rng(batch).random((batch, D), dtype=np.float32)
        constant = tf.constant(images)

        def served(client=served_clients[0], images=images):
            return client.predict({"images": images}, signature="encode")

        def in_process(constant=constant):
            outputs = encode(images=constant)
            return {k: v.numpy() for k, v in outputs.items()}

        # Same answers, and warm-up of both paths.
        np.testing.assert_array_equal(served()["codes"], in_process()["codes"])
        for _ in range(3):
            served()
            in_process()
        single = {"served": [], "in_process": []}
        multi = {"served": [], "in_process": []}
        for r in range(rounds):
            order = ("served", "in_process") if r % 2 == 0 else ("in_process", "served")
            for kind in order:
                call = served if kind == "served" else in_process
                single[kind].append(_stream(call, BLOCK[batch]))
            for kind in order:
                if kind == "served":
                    calls = [
                        lambda c=c, images=images: c.predict({"images": images}, signature="encode")
                        for c in served_clients
                    ]
                else:
                    calls = [in_process] * clients
                multi[kind].append(_concurrent(calls, CONCURRENT[batch]))
        row = {"batch_size": batch}
        for kind in ("served", "in_process"):
            row[f"{kind}_1_stream"] = _summary(single[kind], batch)
            row[f"{kind}_{clients}_streams"] = _summary(multi[kind], batch)
        rows.append(row)
        print(
            f"batch {batch:5d}: served p50 {row['served_1_stream']['p50_ms']:.2f} ms, "
            f"in-process p50 {row['in_process_1_stream']['p50_ms']:.2f} ms",
            flush=True,
        )
    for client in served_clients:
        client.close()
    return rows


def _markdown(payload):
    swap = payload["hot_swap"]
    clients = payload["clients"]
    machine = payload["machine"]
    lines = [
        "# Serving load test",
        "",
        f"Command: `{payload['command']}`",
        "",
        f"Machine: {machine['cpu']}, {machine['cpu_cores']} CPU cores, "
        f"{machine['platform']}; Python {machine['python']}, TensorFlow "
        f"{machine['tensorflow']}, grpcio {machine['grpcio']}, protobuf "
        f"{machine['protobuf']}.",
        "",
        f"Model: {payload['model']}",
        "",
        f"Server: {payload['server']}",
        "",
        "## Hot swap under load",
        "",
        f"{swap['clients']} concurrent clients x {swap['requests_per_client']} "
        f"Predict requests (`encode`, batch {swap['batch_size']}) = "
        f"{swap['requests']} requests; version 2 was copied into the base path "
        f"{swap['version_2_dropped_after_s']} s into the run (the copy took "
        f"{swap['version_2_copy_s']} s).",
        "",
        "| requests | OK | errors | answered by v1 | answered by v2 | first v2 answer after drop | wall | throughput | p50 | p99 |",  # noqa: E501
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {swap['requests']} | {swap['ok']} | {swap['errors']} | "
        f"{swap['responses_by_version'].get('1', 0)} | "
        f"{swap['responses_by_version'].get('2', 0)} | "
        f"{swap['first_version_2_response_after_drop_s']} s | {swap['wall_s']} s | "
        f"{swap['throughput_requests_per_s']} req/s | {swap['latency_p50_ms']} ms | "
        f"{swap['latency_p99_ms']} ms |",
        "",
        "## Latency and throughput by batch size",
        "",
        "`encode` signature, both outputs (`codes` int64 [B, 20], `one_hot` float32 "
        "[B, 20, 10]). *served*: `ServingClient.predict` over gRPC on 127.0.0.1 "
        "(request as `tensor_content`, response as typed fields, decoded to NumPy). "
        "*in-process*: the loaded SavedModel's signature function, outputs "
        "converted to NumPy. Medians over "
        f"{payload['rounds']} rounds of each round's p50, p99 and throughput; "
        "served and in-process blocks alternate.",
        "",
        f"| batch | path | 1 stream p50 | p99 | rows/s | {clients} streams p50 | p99 | rows/s |",  # noqa: E501
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in payload["batch_sizes"]:
        for kind, label in (("served", "served"), ("in_process", "in-process")):
            one, many = row[f"{kind}_1_stream"], row[f"{kind}_{clients}_streams"]
            lines.append(
                f"| {row['batch_size']} | {label} | {one['p50_ms']:.2f} ms | "
                f"{one['p99_ms']:.2f} ms | {one['rows_per_s']:,.0f} | "
                f"{many['p50_ms']:.2f} ms | {many['p99_ms']:.2f} ms | "
                f"{many['rows_per_s']:,.0f} |"
            )
    lines += ["", payload["notes"], ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=500, help="per client")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--poll-seconds", type=float, default=0.5)
    parser.add_argument("--out", default=str(RESULTS), help="results directory")
    args = parser.parse_args()
    started = time.monotonic()

    workdir = Path(tempfile.mkdtemp(prefix="serving_load_"))
    try:
        models = {v: save_fixture_model(workdir / "fixture" / str(v), seed=v - 1) for v in (1, 2)}
        base = workdir / "models" / MODEL
        shutil.copytree(models[1], base / "1")
        server, address = _start_server(base, args.poll_seconds)
        try:
            swap = hot_swap(address, base, models[2], args.clients, args.requests)
            print(
                f"hot swap: {swap['ok']}/{swap['requests']} OK, "
                f"{swap['errors']} errors, by version {swap['responses_by_version']}",
                flush=True,
            )
            rows = batch_sizes(address, models[2], args.clients, args.rounds)
        finally:
            server.send_signal(signal.SIGTERM)
            server_exit = server.wait(timeout=60)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    payload = {
        "command": "PYTHONPATH=. KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=3 "
        "python -m benchmarks.serving.serving_load"
        + "".join(" " + shlex.quote(a) for a in shown_args(sys.argv[1:])),
        "date": time.strftime("%Y-%m-%d"),
        "machine": _machine(),
        "model": "the serving tests' fixture SavedModel (keras_gumbel/serving/"
        "fixture_model.py), not a trained model: D=784, N=20, K=10, "
        "encoder MLP 784-512-256-200, decoder 200-256-512-784, fixed random "
        "weights; signatures encode, encode_probs, decode, reconstruct as the "
        "project's export",
        "server": "python -m keras_gumbel.serving in its own process, "
        f"127.0.0.1, {args.poll_seconds} s polling, default thread pools; "
        f"exit status after SIGTERM: {server_exit}",
        "clients": args.clients,
        "rounds": args.rounds,
        "hot_swap": swap,
        "batch_sizes": rows,
        "total_wall_s": round(time.monotonic() - started, 1),
        "notes": (
            "Client, server and in-process calls share the machine's CPU cores, "
            "so the concurrent figures measure contention as much as the "
            "server. The served path adds gRPC, protobuf and TensorProto "
            "conversion on both ends, in Python; these figures are for the "
            "bundled server, not for TF Serving's C++ server, which was not "
            "available here."
        ),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving_load.json").write_text(json.dumps(payload, indent=2) + "\n")
    (out / "serving_load.md").write_text(_markdown(payload))
    print(f"wrote {out / 'serving_load.json'} and .md in {payload['total_wall_s']} s")
    if swap["errors"] or server_exit != 0:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
